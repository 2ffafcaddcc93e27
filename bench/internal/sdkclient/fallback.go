package sdkclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// The HTTP long-poll fallback at /http, as rtcgate serves it:
//
//	GET  /http?connectionId=SECRET&action=open              → JSON welcome
//	POST /http?connectionId=SECRET&action=send&utid=N       body: one frame
//	GET  /http?connectionId=SECRET&action=sync&ack=N&wait=S → JSON array of
//	     frame strings; X-Rtcgate-Last-Seq: number of the last one (the next ack)
//	GET  /http?connectionId=SECRET&action=close

// RoundTripTimeout bounds one send, and one sendData round trip of the
// programs' load loops.
const RoundTripTimeout = 5 * time.Second

// ErrUnavailable is a fallback that answers 404 or 501: not built (yet).
type ErrUnavailable struct {
	Status string
	Body   string
}

func (e *ErrUnavailable) Error() string {
	return fmt.Sprintf("the HTTP fallback is not available: /http answered %s (%s)", e.Status, e.Body)
}

// Event is a frame the sync loop received, or why it stopped (Err).
type Event struct {
	Message string // the frame's "message"
	Frame   []byte
	At      time.Time // when the sync that brought it answered
	Err     error
}

// Session is one fallback connection. Its requests go to the endpoint it
// was made with, or the last one SetEndpoint gave (another node of a
// cluster). Send and the sync loop may run at once.
type Session struct {
	client   *http.Client
	id       string
	base     atomic.Pointer[string] // http://ADDR/http?connectionId=SECRET
	utid     atomic.Int64           // numbers the sends (a pong may go from the sync loop)
	ack      atomic.Uint64          // the last frame the sync loop got: the next sync's ack
	requests atomic.Uint64          // requests answered 2xx
	// Events gets the frames of the sync loop (pings answered on the way).
	Events chan Event
}

// NewHTTPClient is a client for conns sessions, each with its sync loop
// and its sends: connections kept alive, no proxy from the environment.
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 0, // each request has its own context deadline
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}).DialContext,
			MaxIdleConns:        4*conns + 16,
			MaxIdleConnsPerHost: 4*conns + 16,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// NewConnectionID is a fresh connectionId: 32 hex digits, a secret.
func NewConnectionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewSession is a session with a new connectionId on the fallback at
// endpoint (host:port).
func NewSession(client *http.Client, endpoint string) *Session {
	s := &Session{client: client, id: NewConnectionID(), Events: make(chan Event, 64)}
	s.SetEndpoint(endpoint)
	return s
}

// SetEndpoint sends the next requests to endpoint (host:port).
func (s *Session) SetEndpoint(endpoint string) {
	b := "http://" + endpoint + "/http?connectionId=" + s.id
	s.base.Store(&b)
}

// Requests is how many of the session's requests were answered 2xx.
func (s *Session) Requests() uint64 { return s.requests.Load() }

// Do runs one request (query: "&action=…") and returns the body (at most
// 4 MiB); a status other than 2xx is an error, with the response.
func (s *Session) Do(ctx context.Context, method, query string, body []byte, timeout time.Duration) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, *s.base.Load()+query, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return resp, nil, err
	}
	if resp.StatusCode/100 != 2 {
		return resp, b, fmt.Errorf("%s %s: %s: %s", method, query, resp.Status, Clip(bytes.TrimSpace(b), 200))
	}
	s.requests.Add(1)
	return resp, b, nil
}

// Open starts the session; the welcome is returned for the log.
func (s *Session) Open(ctx context.Context) ([]byte, error) {
	resp, b, err := s.Do(ctx, "GET", "&action=open", nil, 10*time.Second)
	if resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotImplemented) {
		return b, &ErrUnavailable{resp.Status, Clip(bytes.TrimSpace(b), 120)}
	}
	if err != nil {
		return b, err
	}
	if !json.Valid(b) {
		return b, fmt.Errorf("open: the welcome is not JSON: %s", Clip(b, 200))
	}
	return b, nil
}

// Send posts one frame with the next utid.
func (s *Session) Send(ctx context.Context, frame []byte) error {
	n := s.utid.Add(1)
	_, _, err := s.Do(ctx, "POST", "&action=send&utid="+strconv.FormatInt(n, 10), frame, RoundTripTimeout)
	return err
}

// Close ends the session, politely and bounded.
func (s *Session) Close() {
	s.Do(context.Background(), "GET", "&action=close", nil, 2*time.Second)
}

// SyncLoop long-polls (wait per sync) until ctx ends, deadline passes or
// the session fails, passing every frame to s.Events and acknowledging it
// with the next sync; a protocol ping is answered with pong. It may be
// started again after it returned: the ack carries on.
func (s *Session) SyncLoop(ctx context.Context, wait time.Duration, deadline time.Time) {
	waitS := strconv.Itoa(max(1, int(wait.Seconds())))
	fail := func(err error) {
		select {
		case s.Events <- Event{Err: err, At: time.Now()}:
		case <-ctx.Done():
		}
	}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		resp, b, err := s.Do(ctx, "GET", "&action=sync&ack="+strconv.FormatUint(s.ack.Load(), 10)+"&wait="+waitS, nil, wait+10*time.Second)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fail(fmt.Errorf("sync: %w", err))
			return
		}
		at := time.Now()
		frames, err := ParseSync(b)
		if err != nil {
			fail(err)
			return
		}
		if len(frames) > 0 {
			h := resp.Header.Get("X-Rtcgate-Last-Seq")
			n, err := strconv.ParseUint(h, 10, 64)
			if err != nil {
				fail(fmt.Errorf("sync returned %d frames with X-Rtcgate-Last-Seq %q", len(frames), h))
				return
			}
			s.ack.Store(n)
		}
		for _, f := range frames {
			if string(f) == "http.command.close" {
				fail(errors.New("rtcgate ended the session (http.command.close)"))
				return
			}
			msg := JSONField(f, "message")
			if msg == "ping" {
				go s.Send(ctx, []byte(`{"message":"pong","data":[null]}`))
				continue
			}
			select {
			case s.Events <- Event{Message: msg, Frame: f, At: at}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// ParseSync reads a sync's body: a JSON array of frame strings (frames as
// objects are taken too).
func ParseSync(b []byte) ([][]byte, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("sync: not a JSON array: %v: %s", err, Clip(b, 200))
	}
	out := make([][]byte, 0, len(raw))
	for _, r := range raw {
		if len(r) > 0 && r[0] == '"' {
			var s string
			if err := json.Unmarshal(r, &s); err != nil {
				return nil, fmt.Errorf("sync: element: %v", err)
			}
			out = append(out, []byte(s))
		} else {
			out = append(out, r)
		}
	}
	return out, nil
}

// Await waits for a frame named message from the sync loop; any other
// frame first is an error.
func (s *Session) Await(ctx context.Context, message string, timeout time.Duration) (Event, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev := <-s.Events:
		if ev.Err != nil {
			return ev, ev.Err
		}
		if ev.Message == message {
			return ev, nil
		}
		return ev, fmt.Errorf("got %s while waiting for %s", Clip(ev.Frame, 200), message)
	case <-t.C:
		return Event{}, fmt.Errorf("no %s within %v", message, timeout)
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// SendData is one sendData round trip: the frame for operation op posted,
// then its DataStatusEvent out of the sync loop, which must be about op
// and ACCEPTED. It returns the time from the post to the sync that brought
// the answer.
func (s *Session) SendData(ctx context.Context, op string) (time.Duration, error) {
	t0 := time.Now()
	if err := s.Send(ctx, SendDataFrame(nil, op)); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	ev, err := s.Await(ctx, "DataStatusEvent", RoundTripTimeout)
	if err != nil {
		return 0, err
	}
	if err := CheckStatus(ev.Frame, op); err != nil {
		return 0, err
	}
	return ev.At.Sub(t0), nil
}
