package status

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/client/clienttest"
	"github.com/rtcgate/rtcgate/internal/cluster"
	"github.com/rtcgate/rtcgate/internal/gateway"
	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// TestQuantile: the backends' latency percentiles are estimated the way
// Prometheus's histogram_quantile does, over the histogram /metrics shows.
func TestQuantile(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: []float64{1, 2, 4}}, []string{"app", "method"})
	reg.MustRegister(h)
	for range 10 {
		h.WithLabelValues("a", "connect").Observe(0.5)
		h.WithLabelValues("a", "call").Observe(1.5) // merged with connect's: by app
	}
	h.WithLabelValues("b", "call").Observe(10) // beyond the last bound
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hs := gathered(mfs).histograms("h", "app")
	a, b := hs["a"], hs["b"]
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"a p50", a.quantile(0.5), 1},    // rank 10: the top of the first bucket
		{"a p95", a.quantile(0.95), 1.9}, // rank 19: 9/10 into (1, 2]
		{"a p0", a.quantile(0), 0},
		{"a mean", a.mean(), 1},
		{"b p50 beyond the buckets", b.quantile(0.5), 4},
		{"b mean", b.mean(), 10},
		{"none", (&histogram{}).quantile(0.5), 0},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// fixture is a Status over fake sessions and a real registry, stats and
// app list.
type fixture struct {
	st       *Status
	requests *prometheus.CounterVec
	stats    *stats.Stats
}

func newFixture(t *testing.T, rows int) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	gauge := func(name string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
		g.Set(v)
		reg.MustRegister(g)
	}
	gauge("rtcgate_client_sessions", 4)
	gauge("rtcgate_sip_accounts", 2)
	gauge("rtcgate_sip_calls_active", 1)
	gauge("rtcgate_hook_queue_depth", 7)
	gauge("rtcgate_cluster_redis_up", 1)
	regs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_sip_registrations_total"}, []string{"status"})
	regs.WithLabelValues("REGISTERED").Add(3)
	regs.WithLabelValues("FAILED").Add(1)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_hook_requests_total"}, []string{"app", "method", "status"})
	requests.WithLabelValues("One", "connect", "200").Add(8)
	requests.WithLabelValues("One", "CallStatusEvent", "503").Add(2)
	requests.WithLabelValues("One", "CallStatusEvent", "0").Add(1)
	reg.MustRegister(regs, requests)

	s := stats.New()
	s.SessionsOwn.Store(2)
	s.StreamsUser.Store(8)
	s.Packets.Add(1000)

	sess := func(id, app, transport string, established bool, age time.Duration) client.SessionInfo {
		return client.SessionInfo{Session: &clienttest.Session{SessionID: id}, App: app, Transport: transport,
			RemoteIP: "192.0.2.1", Created: time.Now().Add(-age), Established: established}
	}
	sessions := []client.SessionInfo{
		sess("aaaaaaaa-first-session", "k1", "websocket", true, time.Minute),
		sess("bbbbbbbb-second", "k1", "", true, 30*time.Second),
		sess("cccccccc-connecting", "", "websocket", false, time.Second),
		sess("dddddddd-removed-app", "gone", "http", true, time.Second),
	}
	sip := map[string]gateway.SIPStatus{
		"aaaaaaaa-first-session": {Account: "alice@example.com", Registration: "REGISTERED", RegistrationCode: 200,
			RegistrationAt: time.Now().Add(-10 * time.Second), Calls: []gateway.CallStatus{
				{ID: "c1", MediaID: "gw-1", Caller: "alice", Callee: "bob", Status: "ESTABLISHED",
					Started: time.Now().Add(-20 * time.Second), Answered: time.Now().Add(-15 * time.Second)},
				{ID: "c2", MediaID: "gw-2", Incoming: true, Caller: "carol", Callee: "alice", Status: "RING", Started: time.Now()},
			}},
		"bbbbbbbb-second": {},
	}
	st := New(Sources{
		Metrics: reg, Stats: s,
		Sessions: func(visit func(client.SessionInfo) bool) {
			for _, si := range sessions {
				if !visit(si) {
					return
				}
			}
		},
		SIP: func(s client.Session) (gateway.SIPStatus, bool) { v, ok := sip[s.ID()]; return v, ok },
		Apps: func() []hooks.App {
			return []hooks.App{{Name: "One", Key: "k1"}, {Name: "Zero", Key: "k0", Password: "secret"}}
		},
		Nodes: func(context.Context) ([]cluster.Node, int64, error) {
			return []cluster.Node{{ID: "n1", Client: "10.0.0.1:8080", Sessions: 4, Heartbeat: 9_000}, {ID: "n2", Heartbeat: 8_500}}, 10_000, nil
		},
		Node:    func() string { return "n1" },
		Version: "v-test",
	}, Options{Interval: time.Hour, MaxRows: rows})
	return &fixture{st: st, requests: requests, stats: s}
}

// TestSnapshot: sessions counted per app by transport (a session not yet
// connected left out, an app with none listed), the lists cut at
// status-max-rows and the rest counted, the SIP accounts and calls, the
// relay's and the hook queue's figures, the backends' failures and rate,
// the cluster's nodes — and no app's password.
func TestSnapshot(t *testing.T) {
	f := newFixture(t, 2)
	t0 := time.Now()
	snap, cur := f.st.build(context.Background(), t0)
	f.st.prev = cur

	c := snap.Clients
	if c.Sessions != 4 || len(c.List) != 2 || c.More != 1 {
		t.Errorf("clients: %d sessions, %d listed, %d more", c.Sessions, len(c.List), c.More)
	}
	if len(c.Apps) != 3 || c.Apps[0] != (AppSessions{App: "One", Key: "k1", Sessions: 2, WebSocket: 1, Waiting: 1}) ||
		c.Apps[1] != (AppSessions{App: "gone", Key: "gone", Sessions: 1, HTTP: 1}) || c.Apps[2] != (AppSessions{App: "Zero", Key: "k0"}) {
		t.Errorf("apps = %+v", c.Apps)
	}
	if s := c.List[0]; s.ID != "aaaaaaaa" || s.App != "One" || s.Account != "alice@example.com" || s.Registration != "REGISTERED" ||
		s.Calls != 2 || s.Age < 59 || s.Transport != "websocket" {
		t.Errorf("first session = %+v", s)
	}
	sip := snap.SIP
	if sip.Accounts != 2 || sip.ActiveCalls != 1 || sip.Registrations["REGISTERED"] != 3 || sip.Registrations["FAILED"] != 1 {
		t.Errorf("sip figures = %+v", sip)
	}
	if len(sip.Accts) != 1 || sip.Accts[0].Transport != "UDP" || sip.Accts[0].Code != 200 || sip.Accts[0].Age < 9 {
		t.Errorf("accounts = %+v", sip.Accts)
	}
	if len(sip.Calls) != 2 || sip.MoreCalls != 0 {
		t.Fatalf("calls = %+v", sip.Calls)
	}
	if c1, c2 := sip.Calls[0], sip.Calls[1]; c1.Direction != "outgoing" || c1.Status != "ESTABLISHED" || c1.Duration < 19 ||
		c1.Talking < 14 || c1.Talking > c1.Duration || c1.Session != "aaaaaaaa" || c1.Media != "gw-1" ||
		c2.Direction != "incoming" || c2.Talking != 0 {
		t.Errorf("calls = %+v", sip.Calls)
	}
	if r := snap.Relay; r.Sessions != 2 || r.Streams != 8 || r.Packets != 1000 {
		t.Errorf("relay = %+v", r)
	}
	if h := snap.Hooks; h.Depth != 7 || len(h.Backends) != 1 || h.Backends[0].Requests != 11 || h.Backends[0].Failures != 3 || h.Backends[0].Rate != nil {
		t.Errorf("hooks = %+v, backends %+v", h, h.Backends)
	}
	if cl := snap.Cluster; cl == nil || !cl.RedisUp || len(cl.Nodes) != 2 || !cl.Nodes[0].Self || cl.Nodes[1].Self || cl.Nodes[1].Heartbeat != 1.5 {
		t.Errorf("cluster = %+v", cl)
	}
	if b, _ := json.Marshal(snap); strings.Contains(string(b), "secret") || strings.Contains(string(b), "first-session") {
		t.Errorf("the snapshot shows an app's password or a whole sessionId: %s", b)
	}

	// Two seconds later, ten more requests: 5 per second.
	f.requests.WithLabelValues("One", "connect", "200").Add(10)
	snap, _ = f.st.build(context.Background(), t0.Add(2*time.Second))
	if r := snap.Hooks.Backends[0].Rate; r == nil || *r != 5 {
		t.Errorf("backend rate = %v, want 5/s", r)
	}
	// After a long pause there is no rate to tell.
	snap, _ = f.st.build(context.Background(), t0.Add(time.Hour*6))
	if r := snap.Hooks.Backends[0].Rate; r != nil {
		t.Errorf("backend rate after a pause = %v, want none", *r)
	}
}

// TestCurrentShared: any number of pages cost one snapshot per half
// interval; a cluster whose Redis does not answer is said so.
func TestCurrentShared(t *testing.T) {
	f := newFixture(t, 10)
	f.st.src.Nodes = func(context.Context) ([]cluster.Node, int64, error) {
		return nil, 0, errors.New("cluster-redis unreachable")
	}
	a := f.st.Current(context.Background())
	f.stats.SessionsOwn.Store(9)
	if b := f.st.Current(context.Background()); string(a) != string(b) {
		t.Error("a second page within half an interval got another snapshot")
	}
	f.st.opts.Interval = time.Millisecond
	time.Sleep(2 * time.Millisecond)
	var snap Snapshot
	if err := json.Unmarshal(f.st.Current(context.Background()), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Relay.Sessions != 9 || snap.Cluster == nil || snap.Cluster.Error != "cluster-redis unreachable" || snap.Version != "v-test" || snap.Node != "n1" {
		t.Errorf("snapshot after the interval = %+v", snap)
	}
}
