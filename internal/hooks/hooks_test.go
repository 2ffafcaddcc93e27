package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/client/clienttest"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

func newFakeSession() *clienttest.Session {
	return &clienttest.Session{SessionID: "session-1", Key: "k"}
}

// fakeNext is the Handler behind the hooks: it records the actions that
// got past them and runs them as the built-in agent would.
type fakeNext struct {
	client.BuiltIn
	mu  sync.Mutex
	ran []string
}

func (n *fakeNext) Handle(ctx context.Context, s client.Session, a *client.Action, data json.RawMessage) error {
	n.mu.Lock()
	n.ran = append(n.ran, a.Message)
	n.mu.Unlock()
	if a.Message == "sendData" {
		return n.BuiltIn.Handle(ctx, s, a, data)
	}
	return nil
}

// recorder is an app backend: every POST's method, in order; status
// decides the answer (0: 200 with reply).
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	methods []string
	ids     []string // X-Rtcgate-Event-Id of each POST
	got     chan string
	status  func(method string) int
	reply   func(method string) []byte
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{got: make(chan string, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		m := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
		r.mu.Lock()
		r.methods = append(r.methods, m)
		r.ids = append(r.ids, req.Header.Get(HeaderEventID))
		status, reply := r.status, r.reply
		r.mu.Unlock()
		r.got <- m
		if status != nil {
			if code := status(m); code != 0 {
				w.WriteHeader(code)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if reply != nil {
			w.Write(reply(m))
			return
		}
		io.WriteString(w, "{}")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// expect waits for the backend's next calls: want, in order.
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	for i, w := range want {
		select {
		case m := <-r.got:
			if m != w {
				t.Fatalf("backend call %d: %s, want %s", i, m, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("backend got no %s", w)
		}
	}
}

// newHooks is Hooks with one app (all methods) at url, a real restclient
// and an in-memory event queue.
func newHooks(t *testing.T, url string, o restclient.Options) (*Hooks, *fakeNext) {
	t.Helper()
	apps, err := NewApps([]App{{Name: "A", Key: "k", URL: url, Methods: Methods}}, "")
	if err != nil {
		t.Fatal(err)
	}
	hc, err := restclient.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.Close)
	next := &fakeNext{}
	h := &Hooks{Apps: apps, HTTP: hc, NodeID: "n", SettleTimeout: time.Second, Next: next}
	next.Notify = h
	q, err := eventq.New(eventq.Options{Store: eventq.NewMemory(100), Send: h.Sender(), BackoffMin: time.Millisecond, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	h.Events = q
	return h, next
}

func failEverything() []byte {
	cfg := map[string]any{}
	for _, m := range Methods {
		cfg[m] = map[string]any{"restOnError": "FAIL"}
	}
	b, _ := json.Marshal(map[string]any{"restClientConfig": cfg})
	return b
}

// TestRefusalStopsEveryAction: for every action of the protocol table
// with a REST method, a 403 under restOnError FAIL keeps it from Next and
// tells the client — a `fail` naming the method and status, or the event
// the action's row makes of a refusal (sendData: DataStatusEvent FAILED).
func TestRefusalStopsEveryAction(t *testing.T) {
	b := newRecorder(t)
	refused := ""
	b.status = func(m string) int {
		if m == refused {
			return 403
		}
		return 0
	}
	b.reply = func(m string) []byte {
		if m == client.Connection.Method {
			return failEverything()
		}
		return []byte("{}")
	}
	h, next := newHooks(t, b.srv.URL+"/A", restclient.DefaultOptions())
	s := newFakeSession()
	if _, err := h.Connect(context.Background(), s, map[string]any{"appKey": "k"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range client.Actions {
		a := &client.Actions[i]
		if a.Run != client.RunAgent {
			continue
		}
		n++
		b.mu.Lock()
		refused = a.Method
		b.mu.Unlock()
		before := len(s.Sent())
		err := h.Handle(context.Background(), s, a, json.RawMessage(`{"callId":"c","operationId":"op"}`))
		want := a.Method + ": backend answered 403"
		if a.Refused != nil {
			frames := s.Sent()[before:]
			if err != nil || len(frames) != 1 || frames[0] != "DataStatusEvent" {
				t.Errorf("%s refused: err %v, frames %v; want DataStatusEvent", a.Message, err, frames)
			}
		} else if err == nil || err.Error() != want {
			t.Errorf("%s refused: err %v, want %q", a.Message, err, want)
		}
	}
	if n < 10 {
		t.Fatalf("only %d agent actions in the table", n)
	}
	if len(next.ran) != 0 {
		t.Errorf("refused actions reached Next: %v", next.ran)
	}
}

// TestClientGetsMethodAndStatusOnly: a backend that is not there fails the
// connection with the method and "did not answer" — never its URL.
func TestClientGetsMethodAndStatusOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://user:pw@" + ln.Addr().String() + "/A"
	ln.Close()
	h, _ := newHooks(t, url, restclient.DefaultOptions())
	_, err = h.Connect(context.Background(), newFakeSession(), map[string]any{"appKey": "k"})
	if err == nil || err.Error() != "connect: backend did not answer" {
		t.Fatalf("connect to a missing backend: %v", err)
	}
	_, err = h.Connect(context.Background(), newFakeSession(), map[string]any{"appKey": strings.Repeat("x", 5000)})
	if err == nil || len(err.Error()) > 100 {
		t.Fatalf("unknown appKey: %v, want a short error", err)
	}
}

// TestOversizedConnectReplyRefuses: a connect reply over the body limit is
// no answer to act on: the connection is refused, not taken truncated.
func TestOversizedConnectReplyRefuses(t *testing.T) {
	b := newRecorder(t)
	b.reply = func(string) []byte {
		return []byte(`{"restClientConfig":{},"pad":"` + strings.Repeat("x", 2048) + `"}`)
	}
	o := restclient.DefaultOptions()
	o.MaxResponseBody = 1024
	h, _ := newHooks(t, b.srv.URL+"/A", o)
	_, err := h.Connect(context.Background(), newFakeSession(), map[string]any{"appKey": "k"})
	if err == nil || !strings.Contains(err.Error(), "connect: backend answered 200 with a reply that could not be read whole") {
		t.Fatalf("oversized connect reply: %v", err)
	}
}

// TestDataStatusEventIsPosted: sendData goes to the backend as OnDataEvent
// and its outcome, DataStatusEvent, as a status event of its own.
func TestDataStatusEventIsPosted(t *testing.T) {
	b := newRecorder(t)
	h, next := newHooks(t, b.srv.URL+"/A", restclient.DefaultOptions())
	s := newFakeSession()
	if _, err := h.Connect(context.Background(), s, map[string]any{"appKey": "k"}); err != nil {
		t.Fatal(err)
	}
	a, _ := client.ActionOf("sendData")
	if err := h.Handle(context.Background(), s, a, json.RawMessage(`{"operationId":"op","payload":{}}`)); err != nil {
		t.Fatal(err)
	}
	b.expect(t, "connect", "OnDataEvent", "DataStatusEvent")
	if f := s.Sent(); len(f) != 1 || f[0] != "DataStatusEvent" || len(next.ran) != 1 {
		t.Fatalf("client frames %v, next ran %v", f, next.ran)
	}
}

// TestEventIDHeader: every hook request carries X-Rtcgate-Event-Id; a
// queued event's is the same on its retry, and no two events share one.
func TestEventIDHeader(t *testing.T) {
	b := newRecorder(t)
	var failed sync.Once
	b.status = func(m string) int {
		code := 0
		if m == "DataStatusEvent" {
			failed.Do(func() { code = 503 })
		}
		return code
	}
	h, _ := newHooks(t, b.srv.URL+"/A", restclient.DefaultOptions())
	q, err := eventq.New(eventq.Options{Store: eventq.NewMemory(100), Send: h.Sender(), BackoffMin: time.Millisecond, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	h.Events = q
	s := newFakeSession()
	if _, err := h.Connect(context.Background(), s, map[string]any{"appKey": "k"}); err != nil {
		t.Fatal(err)
	}
	a, _ := client.ActionOf("sendData")
	for range 2 {
		if err := h.Handle(context.Background(), s, a, json.RawMessage(`{"operationId":"op","payload":{}}`)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !q.Idle(ctx, s.ID()) {
		t.Fatal("events not delivered")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// connect, OnDataEvent, DataStatusEvent (503), DataStatusEvent again,
	// OnDataEvent, DataStatusEvent, in some interleaving.
	byID := map[string][]string{}
	for i, id := range b.ids {
		if id == "" {
			t.Fatalf("%s without %s", b.methods[i], HeaderEventID)
		}
		byID[id] = append(byID[id], b.methods[i])
	}
	if len(b.ids) != 6 || len(byID) != 5 {
		t.Fatalf("calls %v with ids %v", b.methods, b.ids)
	}
	for id, ms := range byID {
		if len(ms) == 2 && (ms[0] != "DataStatusEvent" || ms[1] != "DataStatusEvent") {
			t.Errorf("id %s shared by %v", id, ms)
		}
	}
}

// adoptingNext is a Next that re-creates its state for a taken-over
// session (client.Adopter), reporting an event as the gateway does.
type adoptingNext struct {
	fakeNext
	told []string
}

func (n *adoptingNext) Adopt(s client.Session) {
	n.told = append(n.told, "adopt")
	n.Notify.Notify(s, client.Event{Name: client.CallStatusEvent, Data: map[string]any{"callId": "c1", "status": "FAILED"}})
}

func (n *adoptingNext) Established(client.Session) { n.told = append(n.told, "established") }

// TestAdoptHandsNextTheSession: a session taken over from a lost node is
// announced ESTABLISHED ("taken over from a lost node"), then Next adopts
// it (not Established); what Next reports follows, to the backend and
// the client.
func TestAdoptHandsNextTheSession(t *testing.T) {
	b := newRecorder(t)
	h, _ := newHooks(t, b.srv.URL+"/A", restclient.DefaultOptions())
	next := &adoptingNext{}
	next.Notify = h
	h.Next = next
	s := newFakeSession()
	h.Adopt(s)
	b.expect(t, "ConnectionStatusEvent", "CallStatusEvent")
	if f := s.Sent(); len(f) != 1 || f[0] != "finish" || strings.Join(next.told, ",") != "adopt" {
		t.Fatalf("client frames %v, next told %v", f, next.told)
	}
}

// countingNext counts the sessions Next was told of ending.
type countingNext struct {
	fakeNext
	ended atomic.Int64
}

func (n *countingNext) Disconnected(client.Session, string) { n.ended.Add(1) }

// TestDisconnectedWhileWaiting: sessions end (Disconnected starts its
// report) while Wait waits, as at shutdown; -race finds no race between
// them, and every Wait that returns has waited for every report started
// before it was called.
func TestDisconnectedWhileWaiting(t *testing.T) {
	b := newRecorder(t)
	h, _ := newHooks(t, b.srv.URL+"/A", restclient.DefaultOptions())
	next := &countingNext{}
	h.Next = next
	const enders, each = 4, 200
	// returned counts calls that returned: each is registered, so a Wait
	// begun after must cover it (counting before the call raced with its
	// registration: "790 reports done of 791").
	var returned atomic.Int64
	var wg sync.WaitGroup
	for range enders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				h.Disconnected(newFakeSession(), "shutdown")
				returned.Add(1)
			}
		}()
	}
	stop := make(chan struct{})
	waited := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				waited <- nil
				return
			default:
			}
			before := returned.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := h.Wait(ctx)
			cancel()
			if err != nil {
				waited <- err
				return
			}
			if got := next.ended.Load(); got < before {
				waited <- fmt.Errorf("Wait returned with %d reports done of %d calls returned before it", got, before)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next.ended.Load(); got != enders*each {
		t.Fatalf("%d reports done of %d", got, enders*each)
	}
}
