package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The client side speaks the Flashphoner Web SDK protocol over WebSocket,
// as e2e/sip_test.go does: `connection` with the sip* fields, then
// `getUserData` (sessionId) and `registered`; `call` with callId, callee
// and an SDP offer, answered by `setRemoteSDP` and `talk` (ESTABLISHED);
// `hangup`, answered by `finish`. rtcgate's keep-alive `ping`s are
// answered with `pong` as the SDK does.

// frame is what the benchmark reads of a server frame.
type frame struct {
	Message string            `json:"message"`
	Data    []json.RawMessage `json:"data"`
}

// event is the first data element of a status frame (talk, finish, fail…).
type event struct {
	CallID     string `json:"callId"`
	Status     string `json:"status"`
	SipStatus  int    `json:"sipStatus"`
	SipMessage string `json:"sipMessage"`
	APIMethod  string `json:"apiMethod"` // fail
	Info       string `json:"info"`      // fail
}

func (f frame) event() event {
	var e event
	if len(f.Data) > 0 {
		json.Unmarshal(f.Data[0], &e)
	}
	return e
}

// droppedFrames counts frames a client's reader had no room for: they
// would be frames nobody waits for (an idle session's), or a bug here.
var droppedFrames atomic.Uint64

// sdkClient is one WebSocket session. Its reader goroutine answers pings
// and hands every other frame to frames, closed when the socket ends.
type sdkClient struct {
	ws     *websocket.Conn
	frames chan frame
	id     string // sessionId
	user   user
}

// wsHTTP is the HTTP client for the WebSocket handshakes: no proxy from the
// environment, ever (the target is loopback).
var wsHTTP = &http.Client{Transport: &http.Transport{Proxy: nil,
	DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}}

// dialClient opens a session for u on rtcgate's client listener url, with
// Kamailio (kam, host:port) as outbound proxy; register asks rtcgate to
// register the account. It returns once getUserData has come.
func dialClient(ctx context.Context, url string, u user, kam string, register bool) (*sdkClient, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: wsHTTP})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &sdkClient{ws: ws, frames: make(chan frame, 256), user: u}
	go c.read()
	host, port, _ := net.SplitHostPort(kam)
	if err := c.send(ctx, "connection", map[string]any{
		"appKey": appKey, "clientVersion": "sipbench",
		"sipLogin": u.Name, "sipAuthenticationName": u.Name, "sipPassword": u.Password,
		"sipDomain": domain, "sipOutboundProxy": host, "sipPort": port, "sipRegisterRequired": register,
	}); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("connection: %w", err)
	}
	f, err := c.await(ctx, func(f frame) (bool, error) {
		if f.Message == "fail" {
			return false, fmt.Errorf("fail before getUserData: %s", firstOf(f))
		}
		return f.Message == "getUserData", nil
	})
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	var ud struct {
		SessionID string `json:"sessionId"`
	}
	if len(f.Data) == 0 || json.Unmarshal(f.Data[0], &ud) != nil || ud.SessionID == "" {
		ws.CloseNow()
		return nil, fmt.Errorf("getUserData without sessionId: %s", firstOf(f))
	}
	c.id = ud.SessionID
	return c, nil
}

func (c *sdkClient) read() {
	defer close(c.frames)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		var f frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		if f.Message == "ping" {
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.ws.Write(wctx, websocket.MessageText, []byte(`{"message":"pong","data":[null]}`))
			cancel()
			continue
		}
		select {
		case c.frames <- f:
		default:
			droppedFrames.Add(1)
		}
	}
}

func (c *sdkClient) send(ctx context.Context, message string, data any) error {
	b, err := json.Marshal(map[string]any{"message": message, "data": []any{data}})
	if err != nil {
		return err
	}
	return c.ws.Write(ctx, websocket.MessageText, b)
}

var errClosed = errors.New("WebSocket closed")

// await reads frames until match says done (or fails), ctx ends, or the
// socket closes; frames that do not match are dropped.
func (c *sdkClient) await(ctx context.Context, match func(frame) (bool, error)) (frame, error) {
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return frame{}, errClosed
			}
			done, err := match(f)
			if err != nil {
				return f, err
			}
			if done {
				return f, nil
			}
		case <-ctx.Done():
			return frame{}, ctx.Err()
		}
	}
}

// drain drops the frames already read (those of an abandoned call).
func (c *sdkClient) drain() {
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

func (c *sdkClient) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Close waits for the server's close frame; the reader reads it.
	done := make(chan struct{})
	go func() { c.ws.Close(websocket.StatusNormalClosure, ""); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.ws.CloseNow()
	}
}

func firstOf(f frame) string {
	s := f.Message
	if len(f.Data) > 0 {
		s += " " + clip(f.Data[0], 200)
	}
	return s
}

// offer is the client's SDP: a plain RTP/AVP audio offer, as
// e2e/sip_test.go's rtpPeer sends (rtcgate relays RTP; no packet flows in
// this benchmark, so the port is only a number); with webrtc, an audio
// offer as Chromium's Web SDK sends it (ICE credentials and a host
// candidate, a DTLS fingerprint, rtcp-mux), which no ICE check or DTLS
// handshake follows.
func offer(port int, webrtc bool) string {
	if !webrtc {
		return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(port) + " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
	}
	p := strconv.Itoa(port)
	return "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"a=msid-semantic: WMS sipbench\r\n" +
		"m=audio " + p + " UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 127.0.0.1\r\na=rtcp:" + p + " IN IP4 127.0.0.1\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 " + p + " typ host generation 0\r\n" +
		"a=ice-ufrag:Cs7a\r\na=ice-pwd:b8Y6lVn8N4x0oUqXPY8YcXaT\r\na=ice-options:trickle\r\n" +
		"a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n" +
		"a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=msid:sipbench audio\r\na=rtcp-mux\r\n" +
		"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:126 telephone-event/8000\r\na=ssrc:3735928559 cname:sipbench\r\n"
}
