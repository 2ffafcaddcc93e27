package client

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsServer runs a hub and its listener on loopback.
func wsServer(t *testing.T, opts Options, app Handler) (*Hub, string) {
	t.Helper()
	if opts.MaxFrame == 0 {
		opts.MaxFrame = 64 << 10
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = time.Minute
	}
	if opts.SyncWait == 0 {
		opts.SyncWait = 5 * time.Second
	}
	if opts.Strategy == "" {
		opts.Strategy = "reject"
	}
	if app == nil {
		app = BuiltIn{}
	}
	h := NewHub(opts, app)
	srv := NewServer(h, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	go srv.Serve(ln, nil)
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
	})
	return h, ln.Addr().String()
}

func dial(t *testing.T, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func sendFrame(t *testing.T, c *websocket.Conn, message string, data any) {
	t.Helper()
	b, _ := EncodeFrame(message, data)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// next reads frames until one named message arrives (pings are skipped).
func next(t *testing.T, c *websocket.Conn, message string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", message, err)
		}
		var f struct {
			Message string
			Data    []map[string]any
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("bad frame %q: %v", b, err)
		}
		if f.Message == message {
			if len(f.Data) == 0 {
				return nil
			}
			return f.Data[0]
		}
		if f.Message != "ping" {
			t.Fatalf("got %s (%s) while waiting for %s", f.Message, b, message)
		}
	}
}

func TestWebSocketSession(t *testing.T) {
	h, addr := wsServer(t, Options{}, nil)
	c := dial(t, "ws://"+addr+"/", nil)

	sendFrame(t, c, "sendData", map[string]any{"operationId": "early"})
	if f := next(t, c, "fail"); f["apiMethod"] != "sendData" || !strings.Contains(f["info"].(string), "not connected") {
		t.Fatalf("action before connection: %v", f)
	}
	sendFrame(t, c, "connection", map[string]any{"appKey": "defaultApp", "clientVersion": "2.0", "custom": map[string]any{"x": 1}})
	ud := next(t, c, "getUserData")
	if ud["appKey"] != "defaultApp" || ud["sessionId"] == "" || ud["authToken"] == "" || ud["clientVersion"] != "2.0" {
		t.Fatalf("getUserData = %v", ud)
	}
	if h.Len() != 1 || h.session(ud["sessionId"].(string)) == nil {
		t.Fatalf("hub does not know the session")
	}
	sendFrame(t, c, "ping", nil)
	next(t, c, "pong")
	sendFrame(t, c, "sendData", map[string]any{"operationId": "op-1", "payload": map[string]any{"hello": "rtcgate"}})
	if ds := next(t, c, "DataStatusEvent"); ds["operationId"] != "op-1" || ds["status"] != "ACCEPTED" {
		t.Fatalf("DataStatusEvent = %v", ds)
	}
	sendFrame(t, c, "publishStream", map[string]any{"name": "s"})
	if f := next(t, c, "fail"); f["apiMethod"] != "publishStream" || !strings.Contains(f["info"].(string), "not supported") {
		t.Fatalf("publishStream: %v", f)
	}
	sendFrame(t, c, "call", map[string]any{"callId": "c1", "callee": "bob"})
	if f := next(t, c, "fail"); f["apiMethod"] != "call" || !strings.Contains(f["info"].(string), "SIP gateway") {
		t.Fatalf("call without gateway: %v", f)
	}
	sendFrame(t, c, "frobnicate", nil)
	if f := next(t, c, "fail"); f["apiMethod"] != "frobnicate" {
		t.Fatalf("unknown message: %v", f)
	}
	ctx := context.Background()
	c.Write(ctx, websocket.MessageText, []byte("not json"))
	if f := next(t, c, "fail"); !strings.Contains(f["info"].(string), "JSON object") {
		t.Fatalf("garbage: %v", f)
	}
	sendFrame(t, c, "connection", map[string]any{"appKey": "again"})
	if f := next(t, c, "fail"); f["info"] != "already connected" {
		t.Fatalf("second connection: %v", f)
	}
}

func TestWebSocketLimits(t *testing.T) {
	h, addr := wsServer(t, Options{MaxFrame: 2048, MaxConnections: 1, Strategy: "reject"}, nil)
	c := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, c, "connection", map[string]any{"appKey": "a"})
	next(t, c, "getUserData")

	// Over max connections (reject): the newcomer is closed with 1013.
	extra := dial(t, "ws://"+addr+"/", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := extra.Read(ctx); websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
		t.Fatalf("connection over the limit: %v", err)
	}
	// A frame over client-max-frame: close 1009.
	big := strings.Repeat("x", 4096)
	c.Write(ctx, websocket.MessageText, []byte(`{"message":"sendData","data":[{"payload":"`+big+`"}]}`))
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: %v", err)
	}
	if h.Len() != 1 {
		t.Fatalf("the session must outlive its WebSocket for a resume, have %d", h.Len())
	}
}

func TestWebSocketCloseStrategyDropsOldestIdle(t *testing.T) {
	h, addr := wsServer(t, Options{MaxConnections: 2, Strategy: "close"}, nil)
	var ids []string
	var conns []*websocket.Conn
	for range 2 {
		c := dial(t, "ws://"+addr+"/", nil)
		sendFrame(t, c, "connection", map[string]any{"appKey": "a"})
		ids = append(ids, next(t, c, "getUserData")["sessionId"].(string))
		conns = append(conns, c)
	}
	// The second client speaks again, so the first is the quietest.
	sendFrame(t, conns[1], "ping", nil)
	next(t, conns[1], "pong")
	c3 := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, c3, "connection", map[string]any{"appKey": "a"})
	next(t, c3, "getUserData")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := conns[0].Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("oldest idle session not closed: %v", err)
	}
	if h.session(ids[0]) != nil || h.session(ids[1]) == nil || h.Len() != 2 {
		t.Fatalf("sessions after close strategy: %d", h.Len())
	}
}

func TestOrigins(t *testing.T) {
	for _, c := range []struct {
		origin, host string
		patterns     []string
		want         bool
	}{
		{"", "h:1", nil, true},
		{"http://127.0.0.1:9000", "10.0.0.1:8080", nil, true},
		{"http://localhost:3000", "10.0.0.1:8080", nil, true},
		{"https://app.example.com", "app.example.com:8080", nil, true},
		{"https://evil.example", "app.example.com:8080", nil, false},
		{"https://a.example.com", "x", []string{"http*://*.example.com"}, true},
		{"http://a.b.example.com", "x", []string{"http*://*.example.com"}, true},
		{"https://example.org", "x", []string{"http*://*.example.com"}, false},
		{"http://127.0.0.1:9000", "x", []string{"https://only.example"}, false},
		{"https://anything", "x", []string{"*"}, true},
		{"::not a url", "x", nil, false},
	} {
		if got := originAllowed(c.origin, c.host, c.patterns); got != c.want {
			t.Errorf("originAllowed(%q, %q, %v) = %v", c.origin, c.host, c.patterns, got)
		}
	}
	_, addr := wsServer(t, Options{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", err, resp)
	}
	dial(t, "ws://"+addr+"/", http.Header{"Origin": {"http://localhost:1234"}})
}

// pushApp tells a test of each session established.
type pushApp struct {
	BuiltIn
	established chan Session
}

func (a pushApp) Established(s Session) { a.established <- s }

// TestResumeOverWebSocket: a dropped WebSocket leaves the session; the
// client comes back with sessionId and authToken and gets what was queued
// meanwhile; a wrong token is refused.
func TestResumeOverWebSocket(t *testing.T) {
	h, addr := wsServer(t, Options{}, nil)
	ud := wsAway(t, h, addr, 0, "while you were away")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := dial(t, "ws://"+addr+"/?sessionId="+ud["sessionId"].(string)+"&authToken=wrong", nil)
	if _, _, err := bad.Read(ctx); websocket.CloseStatus(err) != closeUnknownSession {
		t.Fatalf("wrong token: %v", err)
	}
	back := dial(t, "ws://"+addr+"/?sessionId="+ud["sessionId"].(string)+"&authToken="+ud["authToken"].(string), nil)
	if ev := next(t, back, "OnDataEvent"); ev["payload"] != "while you were away" {
		t.Fatalf("resumed frame = %v", ev)
	}
	if h.Len() != 1 {
		t.Fatalf("sessions = %d", h.Len())
	}
}

func TestIdleTimeoutEndsDetachedSession(t *testing.T) {
	h, addr := wsServer(t, Options{IdleTimeout: 200 * time.Millisecond}, nil)
	c := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, c, "connection", map[string]any{"appKey": "a"})
	next(t, c, "getUserData")
	c.CloseNow() // lost without a close frame: the session waits client-idle-timeout
	for deadline := time.Now().Add(10 * time.Second); h.Len() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("detached session outlived client-idle-timeout")
		}
	}
}

func TestKeepalive(t *testing.T) {
	_, addr := wsServer(t, Options{Keepalive: 100 * time.Millisecond}, nil)
	c := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, c, "connection", map[string]any{"appKey": "a"})
	next(t, c, "getUserData")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The server pings; a client that never answers is dropped.
	sawPing := false
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusGoingAway || !sawPing {
				t.Fatalf("silent client: %v (ping seen: %v)", err, sawPing)
			}
			return
		}
		sawPing = sawPing || strings.Contains(string(b), `"message":"ping"`)
	}
}

// TestFrameInTheHandshakePacket: a client whose first frame arrives in the
// same packet as its handshake (net/http has already buffered it) is served.
func TestFrameInTheHandshakePacket(t *testing.T) {
	_, addr := wsServer(t, Options{}, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte(`{"message":"connection","data":[{"appKey":"early"}]}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatal(err)
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		io.ReadFull(br, ext)
		n = int(ext[0])<<8 | int(ext[1])
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x81 || !strings.Contains(string(body), `"getUserData"`) || !strings.Contains(string(body), `"appKey":"early"`) {
		t.Fatalf("first frame %x %q", hdr, body)
	}
}

// wsAway connects a WebSocket client (appKey "a") to the hub h listening
// at addr, runs sendData n times, drops the WebSocket without a close
// frame and, once the session noticed, queues an OnDataEvent with payload
// for it. It returns getUserData's object.
func wsAway(t *testing.T, h *Hub, addr string, n int, payload string) map[string]any {
	t.Helper()
	ws := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, ws, "connection", map[string]any{"appKey": "a"})
	ud := next(t, ws, "getUserData")
	for i := range n {
		sendFrame(t, ws, "sendData", map[string]any{"operationId": "op-" + strconv.Itoa(i), "payload": map[string]any{}})
		next(t, ws, "DataStatusEvent")
	}
	s := h.session(ud["sessionId"].(string))
	ws.CloseNow() // the transport drops: no close frame
	waitDetached(t, s)
	s.Send("OnDataEvent", map[string]any{"payload": payload})
	return ud
}

// waitDetached waits until s has no transport.
func waitDetached(t *testing.T, s *session) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		detached := s.transport == nil
		s.mu.Unlock()
		if detached {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("session never detached")
		}
	}
}

// TestReconnectWithAuthToken: the Web SDK's way back,
// createSession({authToken, keepAlive: true}) — a new WebSocket whose
// `connection` carries the authToken of getUserData. The WebSocket takes
// the session over: what was queued meanwhile, then getUserData again with
// the same sessionId and authToken; the app is not told of a new session;
// the session goes on. A wrong token gets `fail` and the WebSocket closes;
// a connection with an authToken after another frame is refused; over the
// HTTP fallback it is refused with a pointer to open's sessionId.
func TestReconnectWithAuthToken(t *testing.T) {
	app := pushApp{established: make(chan Session, 2)}
	h, addr := wsServer(t, Options{}, app)
	ud := wsAway(t, h, addr, 0, "while you were away")
	<-app.established
	token := ud["authToken"].(string)
	if tokenSession(token) != ud["sessionId"] {
		t.Fatalf("authToken %q does not name session %v", token, ud["sessionId"])
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, bad, "connection", map[string]any{"appKey": "a", "authToken": ud["sessionId"].(string) + ".wrong"})
	if f := next(t, bad, "fail"); f["apiMethod"] != "connection" || f["info"] != "unknown session or wrong authToken" {
		t.Fatalf("wrong token: %v", f)
	}
	if _, _, err := bad.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after a wrong token: %v", err)
	}
	late := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, late, "ping", nil)
	next(t, late, "pong")
	sendFrame(t, late, "connection", map[string]any{"appKey": "a", "authToken": token})
	if f := next(t, late, "fail"); f["apiMethod"] != "connection" || !strings.Contains(f["info"].(string), "first frame") {
		t.Fatalf("authToken after another frame: %v", f)
	}

	back := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, back, "connection", map[string]any{"appKey": "defaultApp", "authToken": token, "keepAlive": true})
	if ev := next(t, back, "OnDataEvent"); ev["payload"] != "while you were away" {
		t.Fatalf("resumed frame = %v", ev)
	}
	if ud2 := next(t, back, "getUserData"); ud2["sessionId"] != ud["sessionId"] || ud2["authToken"] != token || ud2["appKey"] != "a" {
		t.Fatalf("getUserData after the reconnect = %v, want the session's own %v", ud2, ud)
	}
	sendFrame(t, back, "sendData", map[string]any{"operationId": "op-1", "payload": map[string]any{}})
	if ds := next(t, back, "DataStatusEvent"); ds["operationId"] != "op-1" {
		t.Fatalf("DataStatusEvent = %v", ds)
	}
	select {
	case <-app.established:
		t.Fatal("the app was told of a new session")
	default:
	}
	// The fresh sessions of the three WebSockets are gone; "late" is
	// still open, unconnected.
	if n := h.Len(); n != 2 {
		t.Fatalf("sessions = %d, want the resumed one and late's", n)
	}

	// Over the HTTP fallback: a 400 naming the way.
	e := newFBEnv(t, nil)
	fc := e.conn()
	fc.open()
	r := fc.post("send", "utid", "1", "data", `{"message":"connection","data":[{"appKey":"a","authToken":"x.y"}]}`)
	if r.status != 400 || !strings.Contains(string(r.body), "open with sessionId and authToken") {
		t.Fatalf("connection with an authToken over the fallback: %v", r)
	}
}
