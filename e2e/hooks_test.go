package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

// backend is an app backend that records every hook, in arrival order.
type backend struct {
	srv     *httptest.Server
	mu      sync.Mutex
	hooks   []hook
	arrived chan struct{}
	refuse  func(method string, body map[string]any) int // status to answer; 0: 200
	reply   func(method string, body map[string]any) map[string]any
}

type hook struct {
	Method  string
	Body    map[string]any
	At      time.Time // when the backend received it
	EventID string    // X-Rtcgate-Event-Id
}

func newBackend(t *testing.T) *backend {
	b := &backend{arrived: make(chan struct{}, 1000)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		json.Unmarshal(raw, &body)
		method := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		b.mu.Lock()
		b.hooks = append(b.hooks, hook{method, body, time.Now(), r.Header.Get(hooks.HeaderEventID)})
		refuse, reply := b.refuse, b.reply
		b.mu.Unlock()
		b.arrived <- struct{}{}
		if refuse != nil {
			if code := refuse(method, body); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		out := body
		if reply != nil {
			out = reply(method, body)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// waitFor waits until the hooks received match want (method[:status]) in
// order, for the session given.
func (b *backend) waitFor(t *testing.T, sessionID string, want ...string) {
	t.Helper()
	b.waitForHooks(t, sessionID, false, want...)
}

// waitForDistinct is waitFor counting a hook redelivered under the same
// X-Rtcgate-Event-Id once: a cluster's node that died before it had the
// backend's answer.
func (b *backend) waitForDistinct(t *testing.T, sessionID string, want ...string) {
	t.Helper()
	b.waitForHooks(t, sessionID, true, want...)
}

func (b *backend) waitForHooks(t *testing.T, sessionID string, distinct bool, want ...string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		b.mu.Lock()
		var got []string
		seen := map[string]bool{}
		for _, h := range b.hooks {
			if sessionID != "" && h.Body["sessionId"] != sessionID {
				continue
			}
			if distinct && h.EventID != "" {
				if seen[h.EventID] {
					continue
				}
				seen[h.EventID] = true
			}
			name := h.Method
			if st, ok := h.Body["status"].(string); ok && strings.HasSuffix(h.Method, "StatusEvent") {
				name += ":" + st
			}
			got = append(got, name)
		}
		b.mu.Unlock()
		if strings.Join(got, " ") == strings.Join(want, " ") {
			return
		}
		select {
		case <-b.arrived:
		case <-deadline:
			t.Fatalf("hooks for %s = %v, want %v", sessionID, got, want)
		}
	}
}

func sessionOf(t *testing.T, reply string) string {
	t.Helper()
	var f struct {
		Message string
		Data    []map[string]any
	}
	if err := json.Unmarshal([]byte(reply), &f); err != nil || f.Message != "getUserData" {
		t.Fatalf("not getUserData: %s", reply)
	}
	return f.Data[0]["sessionId"].(string)
}

// TestHooksConnectionFlow: seed 000's first flow against a real backend —
// connect, ConnectionStatusEvent ESTABLISHED — then sendData as OnDataEvent,
// DISCONNECTED when the session ends, and a refused connect (403) as FAILED
// then DISCONNECTED with a `fail` to the client.
func TestHooksConnectionFlow(t *testing.T) {
	b := newBackend(t)
	b.refuse = func(method string, body map[string]any) int {
		if method == "connect" {
			if c, ok := body["custom"].(map[string]any); ok && c["deny"] == true {
				return http.StatusForbidden
			}
		}
		return 0
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: EchoApp\n    key: echoKey\n    url: "+b.srv.URL+"/EchoApp\n"+
		"    methods: [connect, ConnectionStatusEvent, OnDataEvent]\n"), 0o600)
	r := start(t, append(ephemeral, "--config", cfgFile, "--client-idle-timeout", "1s", "--node-id", "node1")...)
	url := "ws://" + r.addr(t, "listen-client") + "/"

	ws := dialWS(t, url, nil)
	sid := sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"echoKey","sipLogin":"alice"}]}`))
	b.waitFor(t, sid, "connect", "ConnectionStatusEvent:ESTABLISHED")
	b.mu.Lock()
	first := b.hooks[0].Body
	b.mu.Unlock()
	if first["nodeId"] != "node1" || first["appKey"] != "echoKey" || first["sipLogin"] != "alice" {
		t.Errorf("connect body = %v", first)
	}
	if reply := wsExchange(t, ws, `{"message":"sendData","data":[{"operationId":"op1","payload":{"hello":1}}]}`); !strings.Contains(reply, `"DataStatusEvent"`) || !strings.Contains(reply, `"ACCEPTED"`) {
		t.Errorf("sendData = %s", reply)
	}
	b.waitFor(t, sid, "connect", "ConnectionStatusEvent:ESTABLISHED", "OnDataEvent")
	ws.CloseNow()
	b.waitFor(t, sid, "connect", "ConnectionStatusEvent:ESTABLISHED", "OnDataEvent", "ConnectionStatusEvent:DISCONNECTED")

	denied := dialWS(t, url, nil)
	reply := wsExchange(t, denied, `{"message":"connection","data":[{"appKey":"echoKey","custom":{"deny":true}}]}`)
	if !strings.Contains(reply, `"fail"`) || !strings.Contains(reply, "403") {
		t.Fatalf("refused connect = %s", reply)
	}
	b.mu.Lock()
	var deniedID string
	for _, h := range b.hooks {
		if c, ok := h.Body["custom"].(map[string]any); ok && c["deny"] == true {
			deniedID, _ = h.Body["sessionId"].(string)
		}
	}
	b.mu.Unlock()
	b.waitFor(t, deniedID, "connect", "ConnectionStatusEvent:FAILED", "ConnectionStatusEvent:DISCONNECTED")
}

// TestHooksPolicies: the backend's restClientConfig rules the session —
// connect OVERWRITE changes what the client gets, OnDataEvent with
// restOnError FAIL turns a backend error into DataStatusEvent FAILED — and a
// status event the backend refuses with 503 is retried until it lands, in
// order.
func TestHooksPolicies(t *testing.T) {
	b := newBackend(t)
	var mu sync.Mutex
	statusEventTries := 0
	b.refuse = func(method string, body map[string]any) int {
		mu.Lock()
		defer mu.Unlock()
		switch method {
		case "OnDataEvent":
			return http.StatusInternalServerError
		case "ConnectionStatusEvent":
			statusEventTries++
			if statusEventTries <= 3 {
				return http.StatusServiceUnavailable // down for a while
			}
		}
		return 0
	}
	b.reply = func(method string, body map[string]any) map[string]any {
		if method != "connect" {
			return body
		}
		return map[string]any{
			"sipLogin": "bob",
			"restClientConfig": map[string]any{
				"connect":               map[string]any{"restPolicy": "OVERWRITE", "restOverwrite": "sipLogin"},
				"OnDataEvent":           map[string]any{"restOnError": "FAIL"},
				"ConnectionStatusEvent": map[string]any{"restExclude": "info"},
			},
		}
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: App\n    key: appKey1\n    url: "+b.srv.URL+"\n"+
		"    methods: [connect, ConnectionStatusEvent, OnDataEvent]\n"), 0o600)
	r := start(t, append(ephemeral, "--config", cfgFile)...)
	ws := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", nil)
	reply := wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"appKey1","sipLogin":"alice"}]}`)
	sid := sessionOf(t, reply)
	if !strings.Contains(reply, `"sipLogin":"bob"`) {
		t.Errorf("OVERWRITE not applied: %s", reply)
	}
	if reply := wsExchange(t, ws, `{"message":"sendData","data":[{"operationId":"op2","payload":{}}]}`); !strings.Contains(reply, `"FAILED"`) || !strings.Contains(reply, "500") {
		t.Errorf("sendData with restOnError FAIL and a 500 = %s", reply)
	}
	// Three 503s, then the event lands (the synchronous OnDataEvent may
	// arrive between the attempts).
	deadline := time.After(20 * time.Second)
	for {
		mu.Lock()
		tries := statusEventTries
		mu.Unlock()
		if tries >= 4 {
			break
		}
		select {
		case <-b.arrived:
		case <-deadline:
			t.Fatalf("ConnectionStatusEvent tried %d times, want 4 (three 503s then 200)", tries)
		}
	}
	if sid == "" {
		t.Fatal("no session")
	}
	m := scrape(t, "http://"+r.addr(t, "listen-http"))
	for _, want := range []string{
		`rtcgate_hook_requests_total{app="App",method="ConnectionStatusEvent",status="503"} 3`,
		`rtcgate_hook_requests_total{app="App",method="OnDataEvent",status="500"} 1`,
		`rtcgate_hook_requests_total{app="App",method="connect",status="200"} 1`,
		`rtcgate_hook_retries_total 3`,
		`rtcgate_hook_dead_letters_total 0`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(m, "rtcgate_hook"))
		}
	}
	b.mu.Lock()
	for _, h := range b.hooks {
		if h.Method == "ConnectionStatusEvent" {
			if _, has := h.Body["info"]; has {
				t.Errorf("restExclude info not applied: %v", h.Body)
			}
		}
	}
	b.mu.Unlock()
}

// TestHooksSurviveRestart: with hooks-queue-dir, a status event the backend
// could not take is delivered after rtcgate restarts.
func TestHooksSurviveRestart(t *testing.T) {
	b := newBackend(t)
	var mu sync.Mutex
	down := true
	var accepted []string // statuses the backend took, in order
	b.refuse = func(method string, body map[string]any) int {
		mu.Lock()
		defer mu.Unlock()
		if method != "ConnectionStatusEvent" {
			return 0
		}
		if down {
			return http.StatusServiceUnavailable
		}
		st, _ := body["status"].(string)
		accepted = append(accepted, st)
		return 0
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: App\n    key: k\n    url: "+b.srv.URL+"\n    methods: [connect, ConnectionStatusEvent]\n"), 0o600)
	args := append(ephemeral, "--config", cfgFile, "--hooks-queue-dir", filepath.Join(dir, "queue"), "--shutdown-timeout", "1s")
	r := start(t, args...)
	ws := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", nil)
	sid := sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"k"}]}`))
	// The backend refuses the event at least once before the restart.
	b.waitFor(t, sid, "connect", "ConnectionStatusEvent:ESTABLISHED")
	r.stop(t, syscall.SIGTERM)

	mu.Lock()
	down = false
	mu.Unlock()
	r2 := start(t, args...)
	// Both events of the first run arrive after the restart, in order:
	// ESTABLISHED, then the DISCONNECTED its shutdown caused.
	deadline := time.After(20 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(accepted, " ")
		mu.Unlock()
		if got == "ESTABLISHED DISCONNECTED" {
			return
		}
		select {
		case <-b.arrived:
		case <-deadline:
			t.Fatalf("after the restart the backend took %q, want the queued ESTABLISHED then DISCONNECTED\nfirst run:\n%s\nsecond run:\n%s", got, r.Logs(), r2.Logs())
		}
	}
}

// TestSampleBackend runs examples/backend, the README's starting point, and
// checks that its rules work through rtcgate.
func TestSampleBackend(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "backend")
	if out, err := execCommand(t, "go", []string{"build", "-o", bin, "../examples/backend"}, "").CombinedOutput(); err != nil {
		t.Fatalf("building the sample backend: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	backend := execCommand(t, bin, []string{"-listen", addr, "-deny-login", "mallory", "-secret", "s3"}, "")
	var logs testutil.SyncBuffer
	backend.Stderr = &logs
	if err := backend.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Process.Kill(); backend.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sample backend not listening:\n%s", logs.String())
		}
	}
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: EchoApp\n    key: echoKey\n    url: http://"+addr+"/EchoApp\n    methods: [connect, ConnectionStatusEvent, OnDataEvent]\n"), 0o600)
	r := start(t, append(ephemeral, "--config", cfgFile, "--hooks-secret", "s3")...)
	url := "ws://" + r.addr(t, "listen-client") + "/"
	if reply := wsExchange(t, dialWS(t, url, nil), `{"message":"connection","data":[{"appKey":"echoKey","sipLogin":"mallory","sipPassword":"pw"}]}`); !strings.Contains(reply, "403") {
		t.Errorf("denied login = %s", reply)
	}
	ok := dialWS(t, url, nil)
	sessionOf(t, wsExchange(t, ok, `{"message":"connection","data":[{"appKey":"echoKey","sipLogin":"alice","sipPassword":"pw"}]}`))
	if reply := wsExchange(t, ok, `{"message":"sendData","data":[{"operationId":"x","payload":{}}]}`); !strings.Contains(reply, "ACCEPTED") {
		t.Errorf("sendData through the sample backend = %s", reply)
	}
	// The backend's log reaches us through a pipe: wait for its lines.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "ESTABLISHED") || !strings.Contains(logs.String(), "OnDataEvent"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sample backend never logged ESTABLISHED and OnDataEvent:\n%s", logs.String())
		}
	}
	if out := logs.String(); strings.Contains(out, `"pw"`) || strings.Contains(out, "bad signature") {
		t.Errorf("sample backend log:\n%s", out)
	}
}
