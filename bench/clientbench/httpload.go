package main

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// The HTTP long-poll fallback at /http, as described for rtcgate:
//
//	GET  /http?connectionId=SECRET&action=open              → JSON welcome
//	POST /http?connectionId=SECRET&action=send&utid=N       body: one frame
//	GET  /http?connectionId=SECRET&action=sync&ack=N&wait=S → JSON array of
//	     frame strings; X-Rtcgate-Last-Seq: number of the last one (the next ack)
//	GET  /http?connectionId=SECRET&action=close

// errUnavailable is a fallback that answers 404 or 501: not built (yet).
type errUnavailable struct {
	status string
	body   string
}

func (e *errUnavailable) Error() string {
	return fmt.Sprintf("the HTTP fallback is not available: /http answered %s (%s)", e.status, e.body)
}

// httpEvent is a frame the sync loop received, or why it stopped.
type httpEvent struct {
	message string
	frame   []byte
	at      time.Time
	err     error
}

type httpSess struct {
	client *http.Client
	base   string       // http://ADDR/http?connectionId=SECRET
	utid   atomic.Int64 // numbers the sends (a pong may go from the sync loop)
	events chan httpEvent
}

func newHTTPClient(conns int) *http.Client {
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

func newConnectionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// do runs one request and returns the body (at most 4 MiB).
func (s *httpSess) do(ctx context.Context, method, query string, body []byte, timeout time.Duration) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+query, rd)
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
		return resp, b, fmt.Errorf("%s %s: %s: %s", method, query, resp.Status, clip(bytes.TrimSpace(b), 200))
	}
	return resp, b, nil
}

// open starts the session; the welcome is returned for the log.
func (s *httpSess) open(ctx context.Context) ([]byte, error) {
	resp, b, err := s.do(ctx, "GET", "&action=open", nil, 10*time.Second)
	if resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotImplemented) {
		return b, &errUnavailable{resp.Status, clip(bytes.TrimSpace(b), 120)}
	}
	if err != nil {
		return b, err
	}
	if !json.Valid(b) {
		return b, fmt.Errorf("open: the welcome is not JSON: %s", clip(b, 200))
	}
	return b, nil
}

func (s *httpSess) send(ctx context.Context, frame []byte) error {
	n := s.utid.Add(1)
	_, _, err := s.do(ctx, "POST", "&action=send&utid="+strconv.FormatInt(n, 10), frame, rtTimeout)
	return err
}

// syncLoop long-polls until ctx ends or the session fails, passing every
// frame to s.events.
func (s *httpSess) syncLoop(ctx context.Context, wait time.Duration, deadline time.Time) {
	var ack uint64
	waitS := strconv.Itoa(max(1, int(wait.Seconds())))
	fail := func(err error) {
		select {
		case s.events <- httpEvent{err: err, at: time.Now()}:
		case <-ctx.Done():
		}
	}
	for ctx.Err() == nil && time.Now().Before(deadline) {
		resp, b, err := s.do(ctx, "GET", "&action=sync&ack="+strconv.FormatUint(ack, 10)+"&wait="+waitS, nil, wait+10*time.Second)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fail(fmt.Errorf("sync: %w", err))
			return
		}
		at := time.Now()
		frames, err := parseSync(b)
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
			ack = n
		}
		for _, f := range frames {
			if string(f) == "http.command.close" {
				fail(errors.New("rtcgate ended the session (http.command.close)"))
				return
			}
			msg := jsonField(f, "message")
			if msg == "ping" {
				go s.send(ctx, []byte(`{"message":"pong","data":[null]}`))
				continue
			}
			select {
			case s.events <- httpEvent{message: msg, frame: f, at: at}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// parseSync reads the sync body: a JSON array of frame strings (frames as
// objects are taken too).
func parseSync(b []byte) ([][]byte, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("sync: not a JSON array: %v: %s", err, clip(b, 200))
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

// await waits for a frame named message from the sync loop.
func (s *httpSess) await(ctx context.Context, message string, timeout time.Duration) (httpEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev := <-s.events:
			if ev.err != nil {
				return ev, ev.err
			}
			if ev.message == message {
				return ev, nil
			}
			return ev, fmt.Errorf("got %s while waiting for %s", clip(ev.frame, 200), message)
		case <-t.C:
			return httpEvent{}, fmt.Errorf("no %s within %v", message, timeout)
		case <-ctx.Done():
			return httpEvent{}, ctx.Err()
		}
	}
}

// scenarioHTTP is (3): cfg.conns fallback sessions, each with a sync loop,
// looping sendData (POST) → its DataStatusEvent arriving through sync.
func scenarioHTTP(ctx context.Context, env *runEnv, c *rtcgatechild.Child) (*loadResult, error) {
	cfg := env.cfg
	r := &loadResult{Transport: "http-long-poll", Conns: cfg.conns}
	client := newHTTPClient(cfg.conns)
	defer client.CloseIdleConnections()
	base := "http://" + c.Addr("listen-client") + "/http?connectionId="

	syncCtx, stopSync := context.WithCancel(ctx)
	var syncWG sync.WaitGroup
	sessions := make([]*httpSess, 0, cfg.conns)
	hardStop := time.Now().Add(cfg.warmup + cfg.duration + cfg.syncWait + 60*time.Second)
	defer func() {
		stopSync()
		syncWG.Wait()
		var wg sync.WaitGroup
		for _, s := range sessions { // polite close, bounded
			wg.Go(func() { s.do(context.Background(), "GET", "&action=close", nil, 2*time.Second) })
		}
		wg.Wait()
	}()

	for i := range cfg.conns {
		s := &httpSess{client: client, base: base + newConnectionID(), events: make(chan httpEvent, 64)}
		welcome, err := s.open(ctx)
		if err != nil {
			var u *errUnavailable
			if errors.As(err, &u) {
				r.Unavailable, r.UnavailableStatus = u.Error(), u.status
			}
			return r, fmt.Errorf("open session %d: %w", i, err)
		}
		if i == 0 {
			env.Logf("(3) open → %s", clip(welcome, 300))
		}
		sessions = append(sessions, s)
		syncWG.Go(func() { s.syncLoop(syncCtx, cfg.syncWait, hardStop) })
		if err := s.send(ctx, connectFrame); err != nil {
			return r, fmt.Errorf("session %d: send connection: %w", i, err)
		}
		if _, err := s.await(ctx, "getUserData", 10*time.Second); err != nil {
			return r, fmt.Errorf("session %d: %w", i, err)
		}
	}
	env.Logf("(3) %d fallback sessions connected; warm-up %v, measuring %v", cfg.conns, cfg.warmup, cfg.duration)

	l := &loadRun{}
	loopStop := time.Now().Add(cfg.warmup + cfg.duration + 10*time.Second)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			var h hist.Histogram
			defer l.merge(&h)
			prefix := "h" + strconv.Itoa(i) + "-"
			var frame []byte
			for n := 0; ; n++ {
				if l.phase.Load() == phaseStop || ctx.Err() != nil || time.Now().After(loopStop) {
					return
				}
				op := prefix + strconv.Itoa(n)
				frame = sendDataFrame(frame, op)
				t0 := time.Now()
				if err := s.send(ctx, frame); err != nil {
					l.noteErr(fmt.Errorf("session %d: send: %w", i, err))
					return
				}
				ev, err := s.await(ctx, "DataStatusEvent", rtTimeout)
				if err != nil {
					l.noteErr(fmt.Errorf("session %d: %w", i, err))
					return
				}
				if err := checkStatus(ev.frame, op); err != nil {
					l.noteErr(fmt.Errorf("session %d: %w", i, err))
					return
				}
				if l.phase.Load() == phaseMeasure {
					h.Record(ev.at.Sub(t0))
				}
			}
		})
	}
	l.measure(ctx, env, c, r, &wg)
	return r, runOutcome(c, r)
}
