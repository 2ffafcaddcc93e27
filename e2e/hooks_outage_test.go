package e2e

import (
	"context"
	"encoding/json"
	"flag"
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

	"github.com/coder/websocket"
)

// outage is how long the backend is down in TestHookBackendOutage*: 15 s in
// the default suite, which is already longer than the old default retry
// budget (8 attempts with backoff from 100 ms doubling up to 10 s: given up
// within 6–13 s). The figure, a backend down 60 s, is
//
//	go test -race -count=1 -run 'TestHookBackendOutage' ./e2e/ -outage 60s
//
// (a soak run, not part of `make test`).
var outage = flag.Duration("outage", 15*time.Second, "how long the backend is down in TestHookBackendOutage*")

const (
	outageSessions = 20
	// outageResume bounds how long delivery may take to resume once the
	// backend is back: with the default hooks-max-backoff (10 s, equal
	// jitter) a session that failed just before the backend came back may
	// wait 10 s for its next attempt; its later events follow at once.
	outageResume = 20 * time.Second
)

// TestHookBackendOutage: with the default hook settings, a backend whose
// port refuses connections for -outage (15 s) while 20 sessions connect,
// send data and leave gets, once it is back, every status event of every
// session in order (ESTABLISHED, two DataStatusEvent ACCEPTED,
// DISCONNECTED), none dead-lettered; meanwhile `list totals` and the
// metrics show the backlog and its age. The queue is the in-memory one:
// rtcgate keeps running.
func TestHookBackendOutage(t *testing.T) { testHookBackendOutage(t, false) }

// TestHookBackendOutageAcrossRestart: the same with hooks-queue-dir, and
// rtcgate stopped (SIGTERM) and started again on the same queue directory
// during the outage: the events queued by the first process reach the
// backend from the second.
func TestHookBackendOutageAcrossRestart(t *testing.T) { testHookBackendOutage(t, true) }

func testHookBackendOutage(t *testing.T, restart bool) {
	if testing.Short() {
		t.Skip("keeps a backend down for -outage")
	}
	outageFor := *outage
	// Most of the test is waiting on the outage timer: let the two variants
	// wait side by side.
	t.Parallel()
	began := time.Now()
	b := newOutageBackend(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	// connect is left out of the methods: it is a synchronous hook, and a
	// backend that is down would refuse every connection (and OnDataEvent
	// likewise). The status events are what the queue carries.
	os.WriteFile(cfgFile, []byte("apps:\n  - name: Outage\n    key: outageKey\n    url: http://"+b.addr+"/Outage\n"+
		"    methods: [ConnectionStatusEvent, DataStatusEvent]\n"), 0o600)
	// The default hook settings: no hooks-* key is set.
	args := append(append([]string(nil), ephemeral...), "--config", cfgFile,
		// A WebSocket dropped without a close frame (CloseNow) leaves its
		// session waiting this long for a resume: DISCONNECTED then.
		"--client-idle-timeout", "1s",
		"--shutdown-timeout", "2s")
	if restart {
		args = append(args, "--hooks-queue-dir", filepath.Join(dir, "queue"))
	}
	r := start(t, args...)
	url := "ws://" + r.addr(t, "listen-client") + "/"

	// Before the outage one session's events arrive: the backend works, and
	// rtcgate holds a keep-alive connection to it that the outage will cut.
	pre := outageSession(t, url)
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
		sids = append(sids, outageSession(t, url)) // DISCONNECTED after client-idle-timeout
	}
	// The outage is timed from the first refused attempt, which rtcgate
	// counts as a retry.
	downAt := waitOutageMetric(t, base, "rtcgate_hook_retries_total", func(v float64) bool { return v >= 1 }, 10*time.Second)
	// Every session's events are queued: the sessions have ended.
	want := float64(len(outageWant) * outageSessions)
	waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == want }, 15*time.Second)
	// The backlog, in the metrics and `list totals`.
	waitOutageMetric(t, base, "rtcgate_hook_queue_oldest_seconds", func(v float64) bool { return v >= 1 }, 10*time.Second)
	totals := cliText(t, base, "list totals")
	if !strings.Contains(totals, fmt.Sprintf(" %-48s:%d\n", "Queued hook events", int(want))) ||
		!strings.Contains(totals, fmt.Sprintf(" %-48s:%d\n", "Hook dead letters kept", 0)) {
		t.Errorf("list totals during the outage:\n%s", totals)
	}

	if restart {
		// Stop rtcgate midway through the outage, so that the restarted one also
		// meets a refusing backend (its own retries).
		sleepUntil(downAt.Add(outageFor / 2))
		m := scrape(t, base)
		checkOutageMetrics(t, "first rtcgate, before SIGTERM", m)
		r.stop(t, syscall.SIGTERM)
		if strings.Contains(r.Logs(), "hook event not queued") {
			t.Errorf("first rtcgate failed to queue an event:\n%s", grepLines(r.Logs(), "hook event not queued"))
		}
		r = start(t, args...)
		base = "http://" + r.addr(t, "listen-http")
		// The restarted rtcgate loaded every event from the queue dir.
		waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == want }, 10*time.Second)
		waitOutageMetric(t, base, "rtcgate_hook_retries_total", func(v float64) bool { return v >= 1 }, 10*time.Second)
	}

	sleepUntil(downAt.Add(outageFor))
	m := scrape(t, base)
	checkOutageMetrics(t, "at the end of the outage", m)
	b.up(t)
	backAt := time.Now()
	t.Logf("backend down %.1f s from the first refused attempt", backAt.Sub(downAt).Seconds())
	b.waitDelivered(t, sids, outageResume)
	t.Logf("all %d events delivered %.1f s after the backend came back (test %.1f s so far)",
		int(want), time.Since(backAt).Seconds(), time.Since(began).Seconds())

	// The backend notes an event before its reply reaches rtcgate: the
	// queue empties a moment after the last arrival.
	waitOutageMetric(t, base, "rtcgate_hook_queue_depth", func(v float64) bool { return v == 0 }, 5*time.Second)
	m = scrape(t, base)
	checkOutageMetrics(t, "after the outage", m)
	if v := outageMetric(m, "rtcgate_hook_dead_letters"); v != 0 {
		t.Errorf("rtcgate_hook_dead_letters = %v, want 0", v)
	}
	if strings.Contains(r.Logs(), "hook event not queued") || strings.Contains(r.Logs(), "dead-lettered") {
		t.Errorf("rtcgate lost or gave up on an event:\n%s", grepLines(r.Logs(), "hook event"))
	}
	dups := b.check(t, append([]string{pre}, sids...))
	t.Logf("%d sessions, %d events, %d duplicate deliveries (at least once), retries %v, dead letters %v",
		outageSessions+1, len(outageWant)*(outageSessions+1), dups,
		outageMetric(m, "rtcgate_hook_retries_total"), outageMetric(m, "rtcgate_hook_dead_letters_total"))
}

// outageSession connects a client, sends data twice and closes the
// WebSocket: ESTABLISHED, two DataStatusEvent and, after
// client-idle-timeout, DISCONNECTED.
func outageSession(t *testing.T, url string) string {
	t.Helper()
	ws := dialWS(t, url, nil)
	defer ws.CloseNow()
	sid := sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"outageKey"}]}`))
	for _, op := range []string{"op1", "op2"} {
		reply := wsExchange(t, ws, `{"message":"sendData","data":[{"operationId":"`+op+`","payload":{"n":1}}]}`)
		for !strings.Contains(reply, `"DataStatusEvent"`) {
			reply = wsRead(t, ws)
		}
		if !strings.Contains(reply, `"ACCEPTED"`) || !strings.Contains(reply, op) {
			t.Fatalf("sendData %s = %s", op, reply)
		}
	}
	return sid
}

func wsRead(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cliText runs a CLI command over the control plane's HTTP.
func cliText(t *testing.T, base, cmd string) string {
	t.Helper()
	resp, err := http.Post(base+"/cli", "text/plain", strings.NewReader(cmd))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return readAll(t, resp.Body)
}

// TestHookDeadLettersReplay: status events a backend refuses with a 4xx —
// its answer, not an outage — are dead-lettered at once and kept in
// hooks-queue-dir; after a restart `rtcgate ctl` and rtpengine-ctl list
// them (without their bodies), and once the backend accepts them `rtcgate
// ctl replay hook-dead-letters APP` delivers them, in order per session.
func TestHookDeadLettersReplay(t *testing.T) {
	ctl := needTool(t, "rtpengine-ctl", "rtpengine-utils")
	b := newOutageBackend(t)
	b.mu.Lock()
	b.status = http.StatusBadRequest
	b.mu.Unlock()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: Outage\n    key: outageKey\n    url: http://"+b.addr+"/Outage\n"+
		"    methods: [ConnectionStatusEvent, DataStatusEvent]\n"), 0o600)
	args := append(append([]string(nil), ephemeral...), "--config", cfgFile, "--client-idle-timeout", "1s",
		"--hooks-queue-dir", filepath.Join(dir, "queue"))
	r := start(t, args...)
	url := "ws://" + r.addr(t, "listen-client") + "/"
	sids := []string{outageSession(t, url), outageSession(t, url)}
	base := "http://" + r.addr(t, "listen-http")
	want := float64(len(outageWant) * len(sids))
	waitOutageMetric(t, base, "rtcgate_hook_dead_letters", func(v float64) bool { return v == want }, 10*time.Second)
	if v := outageMetric(scrape(t, base), "rtcgate_hook_retries_total"); v != 0 {
		t.Errorf("a 4xx was retried: rtcgate_hook_retries_total = %v", v)
	}
	r.stop(t, syscall.SIGTERM)

	r = start(t, args...)
	base = "http://" + r.addr(t, "listen-http")
	list, stderr, code := runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "list", "hook-dead-letters")
	if code != 0 || strings.Count(list, "backend answered 400") != int(want) || !strings.Contains(list, sids[1]) || strings.Contains(list, `"n"`) {
		t.Fatalf("rtcgate ctl list hook-dead-letters (exit %d, %s):\n%s", code, stderr, list)
	}
	host, port := splitHostPort(t, r.addr(t, "listen-cli"))
	out, _, code := runCmd(t, 20*time.Second, ctl, "-ip", host, "-port", port, "list", "hook-dead-letters", "outageKey")
	if code != 0 || strings.Count(out, "backend answered 400") != int(want) {
		t.Errorf("rtpengine-ctl list hook-dead-letters outageKey (exit %d):\n%s", code, out)
	}
	if tot := cliText(t, base, "list totals"); !strings.Contains(tot, fmt.Sprintf(" %-48s:%d\n", "Hook dead letters kept", int(want))) {
		t.Errorf("list totals:\n%s", grepLines(tot, "ook"))
	}

	b.mu.Lock()
	b.status = 0
	b.mu.Unlock()
	out, _, code = runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "replay", "hook-dead-letters", "Outage")
	if code != 0 || out != fmt.Sprintf("Replayed %d hook dead letters\n", int(want)) {
		t.Fatalf("rtcgate ctl replay hook-dead-letters Outage (exit %d): %q", code, out)
	}
	b.waitDelivered(t, sids, 10*time.Second)
	b.check(t, sids)
	waitOutageMetric(t, base, "rtcgate_hook_dead_letters", func(v float64) bool { return v == 0 }, 5*time.Second)
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
// each session's ConnectionStatusEvent statuses and DataStatusEvents
// (DATA:operationId:status) in arrival order.
type outageBackend struct {
	addr    string
	arrived chan struct{} // a token when an event arrives

	mu     sync.Mutex
	srv    *http.Server // nil while down
	got    map[string][]string
	status int // answered instead of 200 when set (events are not recorded then)
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
		SessionID   string `json:"sessionId"`
		Status      string `json:"status"`
		OperationID string `json:"operationId"`
	}
	json.Unmarshal(raw, &body)
	b.mu.Lock()
	status := b.status
	b.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	ev := body.Status
	if strings.HasSuffix(r.URL.Path, "/DataStatusEvent") {
		ev = "DATA:" + body.OperationID + ":" + body.Status
	}
	if strings.HasSuffix(r.URL.Path, "/ConnectionStatusEvent") || strings.HasSuffix(r.URL.Path, "/DataStatusEvent") {
		b.mu.Lock()
		b.got[body.SessionID] = append(b.got[body.SessionID], ev)
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

var outageWant = []string{"ESTABLISHED", "DATA:op1:ACCEPTED", "DATA:op2:ACCEPTED", "DISCONNECTED"}

// waitDelivered waits until each session has had every event of
// outageWant (in whatever order: check judges order).
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
