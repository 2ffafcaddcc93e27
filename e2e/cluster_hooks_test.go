package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// clusterBackend records every status event with its X-Rtcgate-Event-Id,
// per session, on arrival; while held, it does not answer.
type clusterBackend struct {
	srv *httptest.Server

	mu      sync.Mutex
	got     map[string][]clusterEvent
	held    bool
	release chan struct{}
}

type clusterEvent struct{ ev, id string }

func newClusterBackend(t *testing.T) *clusterBackend {
	b := &clusterBackend{got: map[string][]clusterEvent{}, held: true, release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			SessionID   string `json:"sessionId"`
			Status      string `json:"status"`
			OperationID string `json:"operationId"`
		}
		json.Unmarshal(raw, &body)
		ev := body.Status
		if strings.HasSuffix(r.URL.Path, "/DataStatusEvent") {
			ev = "DATA:" + body.OperationID
		}
		b.mu.Lock()
		b.got[body.SessionID] = append(b.got[body.SessionID], clusterEvent{ev, r.Header.Get("X-Rtcgate-Event-Id")})
		held, release := b.held, b.release
		b.mu.Unlock()
		if held {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		time.Sleep(time.Millisecond) // a slow backend
		io.WriteString(w, "{}")
	}))
	t.Cleanup(func() {
		b.unhold()
		b.srv.Close()
	})
	return b
}

// config writes a configuration file with the app Cluster (key
// clusterKey) whose backend is b, for its status events, and returns its
// path.
func (b *clusterBackend) config(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rtcgate.yaml")
	err := os.WriteFile(f, []byte("apps:\n  - name: Cluster\n    key: clusterKey\n    url: "+b.srv.URL+"/Cluster\n"+
		"    methods: [ConnectionStatusEvent, DataStatusEvent]\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkOrder checks what the backend got for the sessions of all: each
// event carries an event id, one id per event, every session's events in
// order by first arrival; a redelivery keeps its id. It returns the
// redeliveries. b.mu is held.
func (b *clusterBackend) checkOrder(t *testing.T, all []string) int {
	t.Helper()
	dups := 0
	want := strings.Join(clusterWant(), " ")
	ids := map[string]string{} // event id → session/event
	for _, sid := range all {
		var order []string
		seen := map[string]string{}
		for _, e := range b.got[sid] {
			if e.id == "" {
				t.Fatalf("session %s: %s without X-Rtcgate-Event-Id", sid, e.ev)
			}
			if id, ok := seen[e.ev]; ok {
				dups++
				if id != e.id {
					t.Errorf("session %s: %s redelivered under another id (%s, then %s)", sid, e.ev, id, e.id)
				}
				continue
			}
			seen[e.ev] = e.id
			order = append(order, e.ev)
			if other, ok := ids[e.id]; ok {
				t.Errorf("event id %s for %s and %s/%s", e.id, other, sid, e.ev)
			}
			ids[e.id] = sid + "/" + e.ev
		}
		if got := strings.Join(order, " "); got != want {
			t.Errorf("session %s: events by first arrival %v, want %v", sid, order, want)
		}
	}
	return dups
}

// waitAll waits until every session of all has perSession distinct events
// at the backend, bounded by limit (since, for the failure: after what).
func (b *clusterBackend) waitAll(t *testing.T, all []string, perSession int, limit time.Duration, since string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		missing := 0
		b.mu.Lock()
		for _, sid := range all {
			seen := map[string]bool{}
			for _, e := range b.got[sid] {
				seen[e.ev] = true
			}
			missing += perSession - len(seen)
		}
		b.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still missing %v %s", missing, limit, since)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *clusterBackend) unhold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held {
		b.held = false
		close(b.release)
	}
}

const clusterOps = 20

// clusterWant is a session's events: ESTABLISHED, clusterOps DataStatusEvents, DISCONNECTED.
func clusterWant() []string {
	w := []string{"ESTABLISHED"}
	for i := range clusterOps {
		w = append(w, fmt.Sprintf("DATA:op%d", i))
	}
	return append(w, "DISCONNECTED")
}

// clusterSession connects, sends data clusterOps times and closes its
// WebSocket with a close frame (DISCONNECTED at once).
func clusterSession(t *testing.T, url string) string {
	t.Helper()
	ws := dialWS(t, url, nil)
	defer ws.CloseNow()
	sid := sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"clusterKey"}]}`))
	for i := range clusterOps {
		reply := wsExchange(t, ws, fmt.Sprintf(`{"message":"sendData","data":[{"operationId":"op%d","payload":{}}]}`, i))
		for !strings.Contains(reply, `"DataStatusEvent"`) {
			reply = wsRead(t, ws)
		}
	}
	ws.Close(websocket.StatusNormalClosure, "")
	return sid
}

// TestClusterHooksNodeKilled: two rtcgate nodes on one Redis (cluster-redis)
// and a backend that holds its first requests; sessions on both nodes
// produce status events; node A is killed with SIGKILL while its attempts
// hang. Node B takes A's events over after hooks-redis-claim-after and the
// backend gets every event of every session, in order per session, each
// with an X-Rtcgate-Event-Id, a redelivery only under the same id.
func TestClusterHooksNodeKilled(t *testing.T) {
	began := time.Now()
	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	b := newClusterBackend(t)
	dir := t.TempDir()
	cfgFile := b.config(t)
	node := func(id string) *rtcgate {
		return start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--hooks-redis-claim-after", "1s", "--shutdown-timeout", "2s")...)
	}
	a, bn := node("a"), node("b")
	const perNode = 25
	var (
		mu   sync.Mutex
		sids = map[string][]string{}
		wg   sync.WaitGroup
	)
	for name, r := range map[string]*rtcgate{"a": a, "b": bn} {
		url := "ws://" + r.addr(t, "listen-client") + "/"
		for range perNode {
			wg.Go(func() {
				sid := clusterSession(t, url)
				mu.Lock()
				sids[name] = append(sids[name], sid)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	// Every event is queued, and A holds its own: one attempt per session
	// hangs at the backend, the rest wait behind it.
	perSession := len(clusterWant())
	for _, r := range []*rtcgate{a, bn} {
		waitOutageMetric(t, "http://"+r.addr(t, "listen-http"), "rtcgate_hook_queue_depth",
			func(v float64) bool { return v == float64(perNode*perSession) }, 10*time.Second)
	}
	killed := a.kill()
	b.unhold()

	var all []string
	for _, s := range sids {
		all = append(all, s...)
	}
	b.waitAll(t, all, perSession, 15*time.Second, "after node A was killed")
	t.Logf("all %d events delivered %.1f s after SIGKILL (test %.1f s)", len(all)*perSession,
		time.Since(killed).Seconds(), time.Since(began).Seconds())

	b.mu.Lock()
	defer b.mu.Unlock()
	dups := b.checkOrder(t, all)
	if len(b.got) != len(all) {
		t.Errorf("events for %d sessions, want %d", len(b.got), len(all))
	}
	t.Logf("%d sessions on 2 nodes, %d events, %d redeliveries (same id)", len(all), len(all)*perSession, dups)
	if !strings.Contains(bn.Logs(), "took over a dead node's events") {
		t.Errorf("node B did not log the takeover")
	}
}
