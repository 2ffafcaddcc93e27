package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rtcgate/rtcgate/internal/cli"
)

type testServer struct {
	srv      *Server
	httpURL  string
	wsURL    string
	cliAddr  string
	registry *cli.Registry
}

func startServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	if opts.MaxMessage == 0 {
		opts.MaxMessage = 4096
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	reg := cli.New(nil)
	reg.Handle("list numsessions", "", "", func(_ context.Context, _ []string, w io.Writer) {
		io.WriteString(w, "Current sessions own: 0\n")
	})
	reg.Handle("echo", "", "", func(_ context.Context, args []string, w io.Writer) {
		fmt.Fprintf(w, "%s\n", strings.Join(args, "|"))
	})
	promReg := prometheus.NewRegistry()
	s := New(opts, reg, promReg, promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}))
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cliLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { s.ServeHTTPListener(httpLn); done <- struct{}{} }()
	go func() { s.ServeCLIListener(cliLn); done <- struct{}{} }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
		<-done
	})
	return &testServer{srv: s, httpURL: "http://" + httpLn.Addr().String(), wsURL: "ws://" + httpLn.Addr().String(),
		cliAddr: cliLn.Addr().String(), registry: reg}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestPingCLIAndNotFound(t *testing.T) {
	ts := startServer(t, Options{})
	if code, body, h := get(t, ts.httpURL+"/ping"); code != 200 || body != "pong\n" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("GET /ping = %d %q %q", code, body, h.Get("Content-Type"))
	}
	if code, body, _ := get(t, ts.httpURL+"/cli/list+numsessions"); code != 200 || body != "Current sessions own: 0\n" {
		t.Errorf("GET /cli/list+numsessions = %d %q", code, body)
	}
	// '+' is a space, %2B a literal plus, %20 a space too.
	if code, body, _ := get(t, ts.httpURL+"/cli/echo+a%2Bb+c%20d"); code != 200 || body != "a+b|c|d\n" {
		t.Errorf("GET /cli/echo... = %d %q", code, body)
	}
	if code, body, _ := get(t, ts.httpURL+"/cli/no+such"); code != 200 || body != "Unknown or incomplete command::no such\n" {
		t.Errorf("unknown command = %d %q", code, body)
	}
	if code := rawStatus(t, ts.httpURL, "GET /cli/bad%zz HTTP/1.1\r\nHost: localhost\r\n\r\n"); code != 400 {
		t.Errorf("bad escape = %d, want 400", code)
	}
	if code, body, _ := get(t, ts.httpURL+"/nothing"); code != 404 || body != "404 page not found\n" {
		t.Errorf("GET /nothing = %d %q", code, body)
	}
	resp, err := http.Post(ts.httpURL+"/ping", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ping = %d, want 405", resp.StatusCode)
	}
}

// rawStatus sends a request as written, for requests Go's client refuses to
// send, and returns the status code.
func rawStatus(t *testing.T, baseURL, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, request)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func post(t *testing.T, url, ctype, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCLIPost(t *testing.T) {
	ts := startServer(t, Options{MaxMessage: 600})
	if code, body := post(t, ts.httpURL+"/cli", "text/plain", "list numsessions"); code != 200 || body != "Current sessions own: 0\n" {
		t.Errorf("POST /cli = %d %q", code, body)
	}
	if code, body := post(t, ts.httpURL+"/cli", "text/plain; charset=utf-8", "echo x y\n"); code != 200 || body != "x|y\n" {
		t.Errorf("POST /cli with charset = %d %q", code, body)
	}
	if code, _ := post(t, ts.httpURL+"/cli", "application/json", `{"cmd":"x"}`); code != http.StatusUnsupportedMediaType {
		t.Errorf("POST /cli json = %d, want 415", code)
	}
	code, body := post(t, ts.httpURL+"/cli", "text/plain", "echo "+strings.Repeat("x", 600))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "control-max-message") {
		t.Errorf("oversized POST /cli = %d %q, want 413 naming the limit", code, body)
	}
}

// TestSlowBodyTimesOut: a client that never finishes its body gets 408 within
// control-timeout instead of holding the connection.
func TestSlowBodyTimesOut(t *testing.T) {
	ts := startServer(t, Options{Timeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.httpURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /cli HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nlist")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body = %d, want 408", resp.StatusCode)
	}
}

func dialWS(t *testing.T, url string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protocols})
}

func wsRoundTrip(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, reply, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(reply)
}

func TestWebSocketSubprotocols(t *testing.T) {
	ts := startServer(t, Options{})
	echo, _, err := dialWS(t, ts.wsURL, "echo.rtpengine.com")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.CloseNow()
	if echo.Subprotocol() != "echo.rtpengine.com" {
		t.Fatalf("negotiated %q", echo.Subprotocol())
	}
	for _, m := range []string{"hello", "", "d7:command4:pinge"} {
		if got := wsRoundTrip(t, echo, m); got != m {
			t.Errorf("echo %q = %q", m, got)
		}
	}
	// Binary messages come back binary.
	ctx := context.Background()
	echo.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2})
	if typ, b, err := echo.Read(ctx); err != nil || typ != websocket.MessageBinary || string(b) != "\x00\x01\x02" {
		t.Errorf("binary echo = %v %q %v", typ, b, err)
	}

	// The first known subprotocol offered wins.
	c, _, err := dialWS(t, ts.wsURL+"/any/path", "unknown.example", "cli.rtpengine.com")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "cli.rtpengine.com" {
		t.Fatalf("negotiated %q", c.Subprotocol())
	}
	if got := wsRoundTrip(t, c, "list numsessions"); got != "Current sessions own: 0\n" {
		t.Errorf("cli over ws = %q", got)
	}
	if got := wsRoundTrip(t, c, "echo 1 2"); got != "1|2\n" {
		t.Errorf("second cli message = %q", got)
	}
}

func TestWebSocketRefusals(t *testing.T) {
	ts := startServer(t, Options{MaxMessage: 1024})
	for _, offered := range [][]string{nil, {"ng.example.com"}} {
		_, resp, err := dialWS(t, ts.wsURL, offered...)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("handshake offering %v: err %v, resp %v; want 400", offered, err, resp)
		}
	}
	// A browser page from another origin must not drive the control plane.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, ts.wsURL, &websocket.DialOptions{
		Subprotocols: []string{"cli.rtpengine.com"},
		HTTPHeader:   http.Header{"Origin": {"http://evil.example"}},
	})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin handshake: err %v resp %v; want 403", err, resp)
	}

	// A message over control-max-message closes with 1009.
	c, _, err := dialWS(t, ts.wsURL, "echo.rtpengine.com")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 2048))); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("oversized message: close status %v (%v), want 1009", got, err)
	}
}

// cliExchange speaks rtpengine-ctl's wire format: a line in, text until close.
func cliExchange(t *testing.T, addr, send string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, send); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestTCPCLI(t *testing.T) {
	ts := startServer(t, Options{MaxMessage: 600, Timeout: 500 * time.Millisecond})
	if got := cliExchange(t, ts.cliAddr, "list numsessions\n"); got != "Current sessions own: 0\n" {
		t.Errorf("tcp cli = %q", got)
	}
	if got := cliExchange(t, ts.cliAddr, "echo a b\r\n"); got != "a|b\n" {
		t.Errorf("CRLF line = %q", got)
	}
	if got := cliExchange(t, ts.cliAddr, "echo "+strings.Repeat("y", 5000)+"\n"); !strings.HasPrefix(got, "Command too long") {
		t.Errorf("oversized line = %q", got)
	}
	// A client that half-closes instead of sending a newline is answered too.
	conn, err := net.Dial("tcp", ts.cliAddr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "echo half")
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if out, _ := io.ReadAll(conn); string(out) != "half\n" {
		t.Errorf("half-closed = %q", out)
	}
	conn.Close()
	// A client that sends nothing is dropped after control-timeout.
	idle, err := net.Dial("tcp", ts.cliAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	out, err := io.ReadAll(idle)
	if err != nil || len(out) != 0 {
		t.Fatalf("idle connection: %q %v", out, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle connection held %v, control-timeout is 500ms", d)
	}
}

// TestShutdownLetsInFlightFinish: a command running when shutdown starts
// completes and is answered; new connections are refused.
func TestShutdownLetsInFlightFinish(t *testing.T) {
	ts := startServer(t, Options{})
	started, release := make(chan struct{}), make(chan struct{})
	ts.registry.Handle("slow", "", "", func(_ context.Context, _ []string, w io.Writer) {
		close(started)
		<-release
		io.WriteString(w, "finished\n")
	})
	ws, _, err := dialWS(t, ts.wsURL, "echo.rtpengine.com")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(ts.httpURL + "/cli/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- ts.srv.Shutdown(ctx)
	}()
	// The open WebSocket is told the server is going away.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("websocket on shutdown: %v, want close 1001", err)
	}
	// New connections are refused once the listeners are closed.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", ts.cliAddr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("CLI listener still accepting during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if got := <-result; got != "finished\n" {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := ts.srv.Shutdown(context.Background()); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("second Shutdown = %v", err)
	}
}
