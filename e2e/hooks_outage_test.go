package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The figure: a backend down for 30 s loses no status event.
const (
	outageFor      = 30 * time.Second
	outageSessions = 20
	// outageResume bounds how long delivery may take to resume once the
	// backend is back. eventq's backoff doubles from 100 ms up to a cap of
	// 30 s (eventq.Options.BackoffMax; the daemon does not set it, so the
	// default holds), with equal jitter: a session that failed just before
	// the backend came back may wait up to 30 s for its next attempt.
	outageResume = 40 * time.Second
)

// TestHookBackendOutage30s: a backend whose port refuses connections for
// 30 s while 20 sessions connect and disconnect gets, once it is back, every
// ConnectionStatusEvent of every session in order (ESTABLISHED then
// DISCONNECTED), none dead-lettered, with the failed attempts counted as
// retries. The queue is the in-memory one: rtcgate keeps running.
func TestHookBackendOutage30s(t *testing.T) { testHookBackendOutage(t, false) }

// TestHookBackendOutage30sAcrossRestart: the same with hooks-queue-dir, and
// rtcgate stopped (SIGTERM) and started again on the same queue directory
// during the outage: the events queued by the first process reach the
// backend from the second.
func TestHookBackendOutage30sAcrossRestart(t *testing.T) { testHookBackendOutage(t, true) }

func testHookBackendOutage(t *testing.T, restart bool) {
	if testing.Short() {
		t.Skip("keeps a backend down for 30 s")
	}
	// Most of the test is waiting on the outage timer: let the two variants
	// wait side by side.
	t.Parallel()
	began := time.Now()
	b := newOutageBackend(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	// connect is left out of the methods: it is a synchronous hook, and a
	// backend that is down would refuse every connection. The status events
	// are what the queue carries.
	os.WriteFile(cfgFile, []byte("apps:\n  - name: Outage\n    key: outageKey\n    url: http://"+b.addr+"/Outage\n"+
		"    methods: [ConnectionStatusEvent]\n"), 0o600)
	args := append(append([]string(nil), ephemeral...), "--config", cfgFile,
		// A WebSocket dropped without a close frame (CloseNow) leaves its
		// session waiting this long for a resume: DISCONNECTED then.
		"--client-idle-timeout", "1s",
		// 30 s of backoff from 100 ms is 10 attempts or so; the default 8
		// would dead-letter. 50 leaves room for the restart, which grants a
		// fresh budget anyway.
		"--hooks-retries", "50",
		"--shutdown-timeout", "2s")
	if restart {
		args = append(args, "--hooks-queue-dir", filepath.Join(dir, "queue"))
	}
	r := start(t, args...)
	url := "ws://" + r.addr(t, "listen-client") + "/"
	connect := `{"message":"connection","data":[{"appKey":"outageKey"}]}`

	// Before the outage one session's events arrive: the backend works, and
	// rtcgate holds a keep-alive connection to it that the outage will cut.
	ws := dialWS(t, url, nil)
	pre := sessionOf(t, wsExchange(t, ws, connect))
	ws.CloseNow()
	b.waitDelivered(t, []string{pre}, 15*time.Second)
	// And rtcgate has had the backend's replies: taking the backend down
	// closes active connections too, and a reply cut off there would leave
	// the event queued for a retry, counted in the depth below.
	base := "http://" + r.addr(t, "listen-http")
	waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == 0 }, 5*time.Second)

	// Down: the listener is closed, connections are refused, and the
	// keep-alive connection is closed too.
	b.down()
	var sids []string
	for range outageSessions {
		ws := dialWS(t, url, nil)
		sids = append(sids, sessionOf(t, wsExchange(t, ws, connect)))
		ws.CloseNow() // DISCONNECTED after client-idle-timeout
	}
	// The outage is timed from the first refused attempt, which rtcgate
	// counts as a retry.
	downAt := waitOutageMetric(t, base, "rtcgate_hook_retries_total", func(v float64) bool { return v >= 1 }, 10*time.Second)
	// Every session's two events are queued: the sessions have ended.
	waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == 2*outageSessions }, 15*time.Second)

	if restart {
		// Stop rtcgate late in the outage, so that the restarted one also
		// meets a refusing backend (its own retries), but with its backoff
		// begun afresh: delivery then resumes within seconds of the return.
		sleepUntil(downAt.Add(outageFor - 8*time.Second))
		m := scrape(t, base)
		checkOutageMetrics(t, "first rtcgate, before SIGTERM", m)
		r.stop(t, syscall.SIGTERM)
		if strings.Contains(r.Logs(), "hook event not queued") {
			t.Errorf("first rtcgate failed to queue an event:\n%s", grepLines(r.Logs(), "hook event not queued"))
		}
		r = start(t, args...)
		base = "http://" + r.addr(t, "listen-http")
		// The restarted rtcgate loaded every event from the queue dir.
		waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == 2*outageSessions }, 10*time.Second)
		waitOutageMetric(t, base, "rtcgate_hook_retries_total", func(v float64) bool { return v >= 1 }, 10*time.Second)
	}

	sleepUntil(downAt.Add(outageFor))
	b.up(t)
	backAt := time.Now()
	t.Logf("backend down %.1f s from the first refused attempt", backAt.Sub(downAt).Seconds())
	b.waitDelivered(t, sids, outageResume)
	t.Logf("all %d events delivered %.1f s after the backend came back (test %.1f s so far)",
		2*outageSessions, time.Since(backAt).Seconds(), time.Since(began).Seconds())

	// The backend notes an event before its reply reaches rtcgate: the
	// queue empties a moment after the last arrival.
	waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == 0 }, 5*time.Second)
	m := scrape(t, base)
	checkOutageMetrics(t, "after the outage", m)
	if strings.Contains(r.Logs(), "hook event not queued") {
		t.Errorf("rtcgate failed to queue an event:\n%s", grepLines(r.Logs(), "hook event not queued"))
	}
	dups := b.check(t, append([]string{pre}, sids...))
	t.Logf("%d sessions, %d events, %d duplicate deliveries (at least once), retries %v, dead letters %v",
		outageSessions+1, 2*(outageSessions+1), dups,
		outageMetric(m, "rtcgate_hook_retries_total"), outageMetric(m, "rtcgate_hook_dead_letters_total"))
}

// checkOutageMetrics: some attempts failed and were retried, none was given
// up on.
func checkOutageMetrics(t *testing.T, when, m string) {
	t.Helper()
	if v := outageMetric(m, "rtcgate_hook_retries_total"); v <= 0 {
		t.Errorf("%s: rtcgate_hook_retries_total = %v, want > 0\n%s", when, v, grepLines(m, "rtcgate_hook"))
	}
	if v := outageMetric(m, "rtcgate_hook_dead_letters_total"); v != 0 {
		t.Errorf("%s: rtcgate_hook_dead_letters_total = %v, want 0\n%s", when, v, grepLines(m, "rtcgate_hook"))
	}
}

// outageMetric is the value of an unlabelled series in a /metrics text; -1
// when it is missing.
func outageMetric(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// waitOutageMetric polls /metrics until ok(series) and returns when it was
// first seen so.
func waitOutageMetric(t *testing.T, base, name string, ok func(float64) bool, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		m := scrape(t, base)
		if ok(outageMetric(m, name)) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the wanted value within %v:\n%s", name, limit, grepLines(m, "rtcgate_hook"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sleepUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

// outageBackend is an app backend that can be taken down — its port then
// refuses connections — and brought back on the same address. It records
// each session's ConnectionStatusEvent statuses in arrival order.
type outageBackend struct {
	addr    string
	arrived chan struct{} // a token when an event arrives

	mu  sync.Mutex
	srv *http.Server // nil while down
	got map[string][]string
}

func newOutageBackend(t *testing.T) *outageBackend {
	b := &outageBackend{arrived: make(chan struct{}, 1), got: map[string][]string{}}
	ln := listenOffEphemeral(t)
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.down)
	return b
}

// listenOffEphemeral listens on a loopback port below the ephemeral range
// when it can. A port inside the range may, while nothing listens on it, be
// picked as the source port of rtcgate's own connect to it: Linux then
// connects the socket to itself, and our re-listen would find the port
// taken.
func listenOffEphemeral(t *testing.T) net.Listener {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo)
	}
	if lo > 11000 {
		for range 50 {
			ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(10000+rand.IntN(lo-10000)))
			if err == nil {
				return ln
			}
		}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (b *outageBackend) serve(ln net.Listener) {
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection, idle keep-alive ones
// included, so that nothing reaches the handler until up.
func (b *outageBackend) down() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens on the same address again.
func (b *outageBackend) up(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp4", b.addr)
		if err == nil {
			b.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-listening on %s: %v", b.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *outageBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		SessionID string `json:"sessionId"`
		Status    string `json:"status"`
	}
	json.Unmarshal(raw, &body)
	if strings.HasSuffix(r.URL.Path, "/ConnectionStatusEvent") {
		b.mu.Lock()
		b.got[body.SessionID] = append(b.got[body.SessionID], body.Status)
		b.mu.Unlock()
		select {
		case b.arrived <- struct{}{}:
		default:
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}")
}

// firstArrivals is a session's statuses by first arrival (redeliveries
// dropped) and how many redeliveries there were.
func firstArrivals(got []string) ([]string, int) {
	var order []string
	seen := map[string]bool{}
	for _, s := range got {
		if !seen[s] {
			seen[s] = true
			order = append(order, s)
		}
	}
	return order, len(got) - len(order)
}

var outageWant = []string{"ESTABLISHED", "DISCONNECTED"}

// waitDelivered waits until each session has had ESTABLISHED and
// DISCONNECTED (in whatever order: check judges order).
func (b *outageBackend) waitDelivered(t *testing.T, sids []string, limit time.Duration) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		missing := 0
		for _, sid := range sids {
			order, _ := firstArrivals(b.got[sid])
			missing += len(outageWant) - min(len(order), len(outageWant))
		}
		b.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-b.arrived:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%d of %d events still missing %v after waiting for them:\n%s", missing, len(outageWant)*len(sids), limit, b.dump(sids))
		}
	}
}

// check requires every session's events in order with none lost and
// returns the number of redeliveries.
func (b *outageBackend) check(t *testing.T, sids []string) int {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	dups := 0
	for _, sid := range sids {
		order, d := firstArrivals(b.got[sid])
		dups += d
		if strings.Join(order, " ") != strings.Join(outageWant, " ") {
			t.Errorf("session %s: events %v (by first arrival %v), want %v", sid, b.got[sid], order, outageWant)
		}
	}
	if len(b.got) != len(sids) {
		t.Errorf("events for %d sessions, want %d", len(b.got), len(sids))
	}
	return dups
}

func (b *outageBackend) dump(sids []string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, sid := range sids {
		out = append(out, fmt.Sprintf("%s: %v", sid, b.got[sid]))
	}
	return strings.Join(out, "\n")
}
