package control

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestGuard: Host, Origin and Sec-Fetch-Site decide before anything runs.
func TestGuard(t *testing.T) {
	ts := startServer(t, Options{AllowedOrigins: []string{"https://*.admin.example"}, Hosts: []string{"rtcgate.internal"}})
	addr := strings.TrimPrefix(ts.httpURL, "http://")
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		name, headers string
		want          int
	}{
		{"no Host (HTTP/1.0 tool)", "", 200},
		{"loopback address", "Host: 127.0.0.1:" + port, 200},
		{"other loopback address", "Host: 127.0.0.2", 200},
		{"ipv6 loopback", "Host: [::1]:" + port, 200},
		{"localhost", "Host: LOCALHOST.:" + port, 200},
		{"configured name", "Host: rtcgate.internal", 200},
		{"foreign name (DNS rebinding)", "Host: rebind.attacker.example", 421},
		{"foreign address", "Host: 192.0.2.7", 421},
		{"a name that ends like ours", "Host: evil-rtcgate.internal", 421},
		{"Origin not allowed", "Host: localhost\r\nOrigin: http://evil.example", 403},
		{"own origin (none allowed by default)", "Host: localhost\r\nOrigin: http://localhost:" + port, 403},
		{"Origin null", "Host: localhost\r\nOrigin: null", 403},
		{"allowed Origin", "Host: localhost\r\nOrigin: https://ops.admin.example", 200},
		{"allowed pattern is not a suffix match", "Host: localhost\r\nOrigin: https://ops.admin.example.evil", 403},
		{"cross-site without Origin", "Host: localhost\r\nSec-Fetch-Site: cross-site", 403},
		{"same-site without Origin", "Host: localhost\r\nSec-Fetch-Site: same-site", 403},
		{"typed in the address bar", "Host: localhost\r\nSec-Fetch-Site: none", 200},
		{"stray credentials on loopback", "Host: localhost\r\nAuthorization: Basic dTpw", 200},
	} {
		req := "GET /cli/list+numsessions HTTP/1.1\r\n" + c.headers + "\r\nConnection: close\r\n\r\n"
		if c.headers == "" {
			req = "GET /cli/list+numsessions HTTP/1.0\r\n\r\n"
		}
		if got := rawStatus(t, ts.httpURL, req); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// A preflight from an allowed origin is answered; the actual request
	// gets Access-Control-Allow-Origin.
	req, _ := http.NewRequest(http.MethodOptions, ts.httpURL+"/cli", nil)
	req.Header.Set("Origin", "https://ops.admin.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://ops.admin.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight = %d %v", resp.StatusCode, resp.Header)
	}
	// A refused request with a body is answered at once, not after the
	// body (which never comes).
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(conn, "POST /cli HTTP/1.1\r\nHost: localhost\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nset")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 403 {
		t.Errorf("refused POST with a pending body: %v %v", resp, err)
	}
	if got := counterValue(ts.srv.refused.WithLabelValues("host")); got != 3 {
		t.Errorf("refused{reason=host} = %v, want 3", got)
	}
}

// TestToken: on a listener bound to a non-loopback address, every request
// but GET /ping needs the bearer token; a wrong one is refused anywhere;
// without a configured token a public listener accepts nothing.
func TestToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	pub, loop := &listenerInfo{needToken: true}, &listenerInfo{}
	for _, c := range []struct {
		name       string
		configured string
		li         *listenerInfo
		method     string
		path, auth string
		want       int
	}{
		{"public without", token, pub, "GET", "/cli/x", "", 401},
		{"public ping without", token, pub, "GET", "/ping", "", 200},
		{"public ping wrong", token, pub, "GET", "/ping", "Bearer nope", 401},
		{"public right", token, pub, "POST", "/ng", "Bearer " + token, 200},
		{"public right, scheme case", token, pub, "GET", "/metrics", "bearer " + token, 200},
		{"public wrong", token, pub, "GET", "/cli/x", "Bearer " + token + "x", 401},
		{"public prefix", token, pub, "GET", "/cli/x", "Bearer " + token[:8], 401},
		{"public basic", token, pub, "GET", "/cli/x", "Basic " + token, 401},
		{"public, no token configured", "", pub, "GET", "/cli/x", "Bearer ", 401},
		{"public, no token configured, none sent", "", pub, "GET", "/cli/x", "", 401},
		{"loopback without", token, loop, "GET", "/cli/x", "", 200},
		{"loopback right", token, loop, "GET", "/cli/x", "Bearer " + token, 200},
		{"loopback wrong", token, loop, "GET", "/cli/x", "Bearer nope", 401},
	} {
		w := guarded(&Server{opts: Options{Token: c.configured}}, c.li, c.method, c.path, c.auth)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
		if w.Code == 401 && (w.Header().Get("WWW-Authenticate") == "" || strings.Contains(w.Body.String(), token)) {
			t.Errorf("%s: 401 without WWW-Authenticate, or showing the token: %q", c.name, w.Body.String())
		}
	}
}

// TestBusyConnectionsAreNotEvicted: at the cap, a connection running a
// command keeps its slot; the newcomer waits for it.
func TestBusyConnectionsAreNotEvicted(t *testing.T) {
	ts := startServer(t, Options{MaxConnections: 1, PressureIdleTimeout: 50 * time.Millisecond})
	started, release := make(chan struct{}), make(chan struct{})
	ts.registry.Handle("block", "", "", func(_ context.Context, _ []string, w io.Writer) {
		close(started)
		<-release
		io.WriteString(w, "done\n")
	})
	busy, err := net.Dial("tcp", ts.cliAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "block\n")
	<-started
	next, err := net.Dial("tcp", ts.cliAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	io.WriteString(next, "list numsessions\n")
	next.SetReadDeadline(time.Now().Add(400 * time.Millisecond)) // 8 pressure periods
	if n, err := next.Read(make([]byte, 1)); n != 0 || !isTimeoutErr(err) {
		t.Fatalf("newcomer served while the only slot was busy: n=%d err=%v", n, err)
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(busy); string(got) != "done\n" {
		t.Fatalf("busy connection got %q", got)
	}
	next.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(next); string(got) != "Current sessions own: 0\n" {
		t.Fatalf("newcomer got %q", got)
	}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestQuietConnectionsGiveWay: with every slot held by idle keep-alive
// connections and echo WebSockets, /ping is answered at once (it takes the
// place of the quietest); over 3/4 of the cap, quiet connections are closed
// after PressureIdleTimeout.
func TestQuietConnectionsGiveWay(t *testing.T) {
	ts := startServer(t, Options{MaxConnections: 8, IdleTimeout: time.Minute, PressureIdleTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(ts.httpURL, "http://")
	var idle []net.Conn
	for range 6 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("keep-alive request: %v %v", resp, err)
		}
		idle = append(idle, c)
	}
	for range 2 {
		ws, _, err := dialWS(t, ts.wsURL, "echo.rtpengine.com")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	begin := time.Now()
	resp, err := client.Get(ts.httpURL + "/ping")
	if err != nil {
		t.Fatalf("/ping with every slot held: %v", err)
	}
	resp.Body.Close()
	if d := time.Since(begin); d > time.Second {
		t.Errorf("/ping took %v", d)
	}
	// Then quiet connections are closed until no more than 3/4 of the cap
	// are open: the one the newcomer replaced and at least one more.
	closed, deadline := 0, time.Now().Add(2*time.Second)
	for _, c := range idle {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); !isTimeoutErr(err) {
			closed++
		}
	}
	if closed < 2 {
		t.Errorf("%d idle keep-alive connections closed under pressure, want at least 2", closed)
	}
	if got := counterValue(ts.srv.evicted.WithLabelValues("cap")) + counterValue(ts.srv.evicted.WithLabelValues("pressure")); got < 2 {
		t.Errorf("closed connections counted: %v, want at least 2", got)
	}
}

// TestWebSocketIdleTimeout: a control WebSocket that receives nothing for
// IdleTimeout is closed with 1001; one that talks stays.
func TestWebSocketIdleTimeout(t *testing.T) {
	ts := startServer(t, Options{IdleTimeout: 400 * time.Millisecond, PressureIdleTimeout: 400 * time.Millisecond})
	quiet, _, err := dialWS(t, ts.wsURL, "echo.rtpengine.com")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.CloseNow()
	talker, _, err := dialWS(t, ts.wsURL, "cli.rtpengine.com")
	if err != nil {
		t.Fatal(err)
	}
	defer talker.CloseNow()
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, err := quiet.Read(ctx)
		closed <- err
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-closed:
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Fatalf("quiet WebSocket: %v, want close 1001", err)
			}
			// The talker, 4+ idle periods later, still answers.
			if got := wsRoundTrip(t, talker, "list numsessions"); got != "Current sessions own: 0\n" {
				t.Fatalf("talker = %q", got)
			}
			return
		case <-tick.C:
			wsRoundTrip(t, talker, "list numsessions")
		}
	}
}

// TestHTTPOnTheCLIPort: a browser made to POST to the TCP CLI port runs
// nothing: its request line is no command.
func TestHTTPOnTheCLIPort(t *testing.T) {
	ts := startServer(t, Options{})
	if got := cliExchange(t, ts.cliAddr, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\necho x\n"); got != "" {
		t.Errorf("HTTP request on the CLI answered %q", got)
	}
	if got := cliExchange(t, ts.cliAddr, "echo HTTP/1.1 x\n"); got != "HTTP/1.1|x\n" {
		t.Errorf("a command mentioning HTTP = %q", got)
	}
}

// guarded runs one request through s's guard, in front of a handler that
// answers 200, with auth as its Authorization ("": none).
func guarded(s *Server, li *listenerInfo, method, path, auth string) *httptest.ResponseRecorder {
	s.requests, s.refused = newTestCounters()
	s.log = discardLog()
	h := s.guard(li, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	r := httptest.NewRequest(method, "http://127.0.0.1"+path, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newTestCounters() (requests, refused *prometheus.CounterVec) {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"transport", "endpoint", "code"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "f"}, []string{"reason"})
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func counterValue(c prometheus.Counter) float64 {
	m := &dto.Metric{}
	if err := c.Write(m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
