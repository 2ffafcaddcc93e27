package control

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestPageToken: a page takes the control-token as a Basic password (a
// browser cannot send a bearer token) and its 401 asks for Basic; nothing
// else does — Basic credentials a browser remembers drive no command.
func TestPageToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	pub, loop := &listenerInfo{needToken: true}, &listenerInfo{}
	for _, c := range []struct {
		name         string
		li           *listenerInfo
		method, path string
		auth         string
		want         int
		challenge    string // the 401's scheme
	}{
		{"page without", pub, "GET", "/status", "", 401, "Basic"},
		{"page events without", pub, "GET", "/status/events", "", 401, "Basic"},
		{"page with the token as Basic password", pub, "GET", "/status", basic("operator", token), 200, ""},
		{"page, any user name", pub, "GET", "/status/status.js", basic("", token), 200, ""},
		{"page HEAD", pub, "HEAD", "/status", basic("x", token), 200, ""},
		{"page with a wrong password", pub, "GET", "/status", basic("operator", token+"x"), 401, "Basic"},
		{"page with the token as user name", pub, "GET", "/status", basic(token, ""), 401, "Basic"},
		{"page with bearer", pub, "GET", "/status/snapshot", "Bearer " + token, 200, ""},
		{"not a page: POST", pub, "POST", "/status", basic("x", token), 401, "Bearer"},
		{"not a page: a longer name", pub, "GET", "/statusx", basic("x", token), 401, "Bearer"},
		{"not a page: the CLI", pub, "GET", "/cli/list+totals", basic("x", token), 401, "Bearer"},
		{"not a page: metrics", pub, "GET", "/metrics", basic("x", token), 401, "Bearer"},
		{"loopback page without", loop, "GET", "/status", "", 200, ""},
		{"loopback page with a wrong password", loop, "GET", "/status", basic("x", "nope"), 401, "Basic"},
	} {
		w := guarded(&Server{opts: Options{Token: token}, pages: []string{"/status"}}, c.li, c.method, c.path, c.auth)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.want)
		}
		if c.challenge != "" && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), c.challenge+" ") {
			t.Errorf("%s: WWW-Authenticate %q, want %s", c.name, w.Header().Get("WWW-Authenticate"), c.challenge)
		}
		if strings.Contains(w.Body.String(), token) {
			t.Errorf("%s: the answer shows the token", c.name)
		}
	}
}

// TestPageOrigin: a page is behind the same guard as the rest: its own
// requests (no Origin, Sec-Fetch-Site same-origin) pass, a foreign Origin
// or a cross-site request does not; it only reads (GET, HEAD); its answers
// carry the Content-Security-Policy.
func TestPageOrigin(t *testing.T) {
	ts := startServer(t, Options{})
	ts.srv.HandlePage("/status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page\n") }))
	for _, c := range []struct {
		name, request string
		want          int
	}{
		{"typed in", "GET /status HTTP/1.1\r\nHost: localhost\r\nSec-Fetch-Site: none\r\n", 200},
		{"its own request", "GET /status/events HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\n", 200},
		{"a foreign Origin", "GET /status/events HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n", 403},
		{"its own origin sent", "GET /status/snapshot HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\n", 403},
		{"cross-site, no Origin", "GET /status/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n", 403},
		{"same-site, no Origin", "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-site\r\n", 403},
		{"rebound name", "GET /status HTTP/1.1\r\nHost: rebind.attacker.example\r\n", 421},
		{"POST", "POST /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n", 405},
	} {
		if got := rawStatus(t, ts.httpURL, c.request+"Connection: close\r\n\r\n"); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	_, body, h := get(t, ts.httpURL+"/status")
	if body != "page\n" || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") ||
		h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("page = %q, headers %v", body, h)
	}
}

// events opens an event stream on conn and returns a reader of its events'
// data lines.
func openEvents(t *testing.T, conn net.Conn, path string) *bufio.Reader {
	t.Helper()
	io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	return bufio.NewReader(resp.Body)
}

// nextData reads lines up to the next "data:" line; "" at the end of the
// stream.
func nextData(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ""
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			return strings.TrimSuffix(d, "\n")
		}
	}
}

func eventsServer(t *testing.T, opts Options) (*testServer, *atomic.Int64) {
	t.Helper()
	ts := startServer(t, opts)
	var n atomic.Int64
	ts.srv.HandlePage("/events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.srv.ServeEvents(w, r, 20*time.Millisecond, func(context.Context) ([]byte, error) {
			return []byte(`{"n":` + itoa(int(n.Add(1))) + `}`), nil
		})
	}))
	return ts, &n
}

// TestEventsQuiet: an event stream follows next at its interval and counts
// as a quiet connection: control-idle-timeout ends it (the browser
// reconnects) and the connection serves the next request; at the cap it
// gives way to a newcomer.
func TestEventsQuiet(t *testing.T) {
	ts, _ := eventsServer(t, Options{MaxConnections: 1, IdleTimeout: 400 * time.Millisecond, PressureIdleTimeout: 400 * time.Millisecond})
	addr := strings.TrimPrefix(ts.httpURL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	started := time.Now()
	events := openEvents(t, conn, "/events")
	seen := 0
	for nextData(t, events) != "" {
		seen++
	}
	if took := time.Since(started); seen < 5 || took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("the stream brought %d events and ended after %s; want several, ended at control-idle-timeout", seen, took)
	}
	// The stream ended cleanly: the connection is a keep-alive one again.
	io.WriteString(conn, "GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the connection after its stream: %v %v", resp, err)
	}
	conn.Close()

	// A stream holds the only slot: a newcomer takes it.
	holder, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	holder.SetDeadline(time.Now().Add(10 * time.Second))
	events = openEvents(t, holder, "/events")
	nextData(t, events)
	if code, body, _ := get(t, ts.httpURL+"/ping"); code != 200 || body != "pong\n" {
		t.Fatalf("ping while a stream held the only slot: %d %q", code, body)
	}
	for nextData(t, events) != "" {
	}
}

// TestEventsEndAtShutdown: an open stream does not hold Shutdown up.
func TestEventsEndAtShutdown(t *testing.T) {
	ts, _ := eventsServer(t, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.httpURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	events := openEvents(t, conn, "/events")
	if d := nextData(t, events); d != `{"n":1}` {
		t.Fatalf("first event %q", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stream open: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Shutdown took %s with a stream open", took)
	}
	for nextData(t, events) != "" {
	}
}
