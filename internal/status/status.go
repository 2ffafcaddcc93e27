// Package status is the operator's page on the control plane: GET /status
// on listen-http (and listen-https), behind the control plane's guard. It
// shows the client sessions per app, their SIP accounts and calls, the
// relay's calls and streams with packet rates, the hook queue and the
// backends' latency, and the cluster's nodes — and follows them live over
// server-sent events. The page is embedded (HTML, script and style, no other
// origin: a strict Content-Security-Policy).
//
// Nothing here keeps figures of its own: counters are gathered from the
// Prometheus registry that /metrics serves, the relay's figures are `list
// totals`' (stats), and the lists are the subsystems' own state (the client
// hub's sessions, the SIP gateway's accounts and calls, the media engine's
// calls, the cluster's node registry). Rates are the growth between two
// snapshots.
package status

import (
	"context"
	"embed"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/cluster"
	"github.com/rtcgate/rtcgate/internal/control"
	"github.com/rtcgate/rtcgate/internal/gateway"
	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// Sources are where the figures come from. Sessions, Apps and Metrics are
// required; SIP is nil without the SIP gateway, Nodes on a single node.
type Sources struct {
	Metrics  prometheus.Gatherer // the registry /metrics serves
	Stats    *stats.Stats        // `list totals`' relay figures
	Relay    *media.Engine
	Sessions func(visit func(client.SessionInfo) bool) // client.Hub.EachSession
	SIP      func(client.Session) (gateway.SIPStatus, bool)
	Apps     func() []hooks.App
	Nodes    func(ctx context.Context) ([]cluster.Node, int64, error) // cluster.Cluster.Nodes
	Node     func() string                                            // this node's id (known once listening)
	Version  string
}

// Options are the page's settings.
type Options struct {
	Interval time.Duration // between two snapshots of a live page (status-interval)
	MaxRows  int           // rows of each list (status-max-rows); the rest are counted
}

// Status builds snapshots and serves the page.
type Status struct {
	src  Sources
	opts Options

	mu      sync.Mutex
	last    []byte    // the last snapshot, JSON
	builtAt time.Time // when it was built
	prev    sample    // the counters it was built from, for rates
}

// sample is what rates are computed from: packets per relay stream and
// hook requests per app, at a moment.
type sample struct {
	at       time.Time
	streams  map[string]uint64
	requests map[string]float64
}

// New builds the page over src.
func New(src Sources, opts Options) *Status {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 100
	}
	return &Status{src: src, opts: opts}
}

//go:embed static
var static embed.FS

// Register adds the page to the control plane: /status (the page),
// /status/status.js and /status/status.css, /status/snapshot (one snapshot,
// JSON) and /status/events (snapshots as server-sent events).
func (st *Status) Register(c *control.Server) {
	mux := http.NewServeMux()
	file := func(name, ctype string) http.HandlerFunc {
		body, err := static.ReadFile("static/" + name)
		if err != nil {
			panic("status: " + err.Error()) // embedded at build time
		}
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.Write(body)
		}
	}
	page := file("status.html", "text/html; charset=utf-8")
	mux.HandleFunc("GET /status", page)
	mux.HandleFunc("GET /status/{$}", page)
	mux.HandleFunc("GET /status/status.js", file("status.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /status/status.css", file("status.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /status/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(st.Current(r.Context()))
	})
	mux.HandleFunc("GET /status/events", func(w http.ResponseWriter, r *http.Request) {
		c.ServeEvents(w, r, st.opts.Interval, func(ctx context.Context) ([]byte, error) { return st.Current(ctx), nil })
	})
	c.HandlePage("/status", mux)
}

// Current returns the latest snapshot as JSON, built anew unless one was
// built within half an interval: any number of open pages cost one
// snapshot per interval.
func (st *Status) Current(ctx context.Context) []byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	if st.last != nil && now.Sub(st.builtAt) < st.opts.Interval/2 {
		return st.last
	}
	// Shared: a page that goes away meanwhile does not cut the others'
	// snapshot short (the cluster's reads have their own timeout).
	snap, cur := st.build(context.WithoutCancel(ctx), now)
	b, err := json.Marshal(snap)
	if err != nil {
		b = []byte(`{"error":"snapshot not encodable"}`)
	}
	st.last, st.builtAt, st.prev = b, now, cur
	return b
}

// shortID is as much of a sessionId as the page shows: enough to tell
// sessions apart and to find one in a backend's log.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// build reads every source once.
func (st *Status) build(ctx context.Context, now time.Time) (*Snapshot, sample) {
	src := st.src
	mfs, _ := src.Metrics.Gather() // what could be gathered: /metrics continues on error too
	f := gathered(mfs)
	node := ""
	if src.Node != nil {
		node = src.Node()
	}
	snap := &Snapshot{Node: node, Version: src.Version, Time: now.UnixMilli(), Interval: seconds(st.opts.Interval)}
	cur := sample{at: now, streams: map[string]uint64{}, requests: map[string]float64{}}
	// A rate over a long gap (no page open for a while) says little.
	prev := st.prev
	if now.Sub(prev.at) > 5*st.opts.Interval {
		prev = sample{}
	}
	rate := func(now, before float64, ok bool) *float64 {
		if !ok || prev.at.IsZero() || now < before {
			return nil
		}
		r := (now - before) / now2sec(cur.at.Sub(prev.at))
		return &r
	}

	apps := src.Apps()
	names := make(map[string]string, len(apps))
	for _, a := range apps {
		names[a.Key] = a.Name
	}
	st.clients(snap, f, apps, names, now)
	st.relay(snap, cur, prev, rate, now)
	st.hooks(snap, f, cur, prev, rate)
	if src.Nodes != nil {
		st.cluster(ctx, snap, f, node)
	}
	if src.Stats != nil {
		snap.Uptime = seconds(src.Stats.Uptime())
	}
	return snap, cur
}

func now2sec(d time.Duration) float64 { return max(d.Seconds(), 0.001) }

// clients lists the sessions, and their SIP side when there is a gateway.
func (st *Status) clients(snap *Snapshot, f figures, apps []hooks.App, names map[string]string, now time.Time) {
	src, rows := st.src, st.opts.MaxRows
	byApp := map[string]*AppSessions{}
	for _, a := range apps {
		byApp[a.Key] = &AppSessions{App: a.Name, Key: a.Key}
	}
	snap.Clients.Sessions = int(f.value("rtcgate_client_sessions"))
	if src.SIP != nil {
		snap.SIP = &SIP{
			Accounts: int(f.value("rtcgate_sip_accounts")), ActiveCalls: int(f.value("rtcgate_sip_calls_active")),
			Registrations: f.by("rtcgate_sip_registrations_total", "status"),
			Ended:         f.by("rtcgate_sip_calls_total", "direction", "status"),
			Messages:      f.by("rtcgate_sip_messages_total", "direction", "status"),
		}
	}
	src.Sessions(func(si client.SessionInfo) bool {
		if !si.Established {
			return true // not an app's session yet
		}
		a := byApp[si.App]
		if a == nil { // an app removed since the session connected
			a = &AppSessions{App: names[si.App], Key: si.App}
			if a.App == "" {
				a.App = si.App
			}
			byApp[si.App] = a
		}
		a.Sessions++
		switch si.Transport {
		case "websocket":
			a.WebSocket++
		case "http":
			a.HTTP++
		default:
			a.Waiting++
		}
		id, app := shortID(si.Session.ID()), a.App
		s := Session{ID: id, App: app, Transport: si.Transport, Remote: si.RemoteIP, Age: seconds(now.Sub(si.Created))}
		if src.SIP != nil {
			if sip, ok := src.SIP(si.Session); ok {
				s.Account, s.Registration, s.Calls = sip.Account, sip.Registration, len(sip.Calls)
				st.sipRows(snap.SIP, id, app, sip, now)
			}
		}
		if len(snap.Clients.List) < rows {
			snap.Clients.List = append(snap.Clients.List, s)
		} else {
			snap.Clients.More++
		}
		return true
	})
	for _, a := range byApp {
		snap.Clients.Apps = append(snap.Clients.Apps, *a)
	}
	sort.Slice(snap.Clients.Apps, func(i, j int) bool {
		x, y := snap.Clients.Apps[i], snap.Clients.Apps[j]
		if x.Sessions != y.Sessions {
			return x.Sessions > y.Sessions
		}
		return x.App < y.App
	})
}

// sipRows adds a session's account and calls to the SIP lists.
func (st *Status) sipRows(s *SIP, session, app string, sip gateway.SIPStatus, now time.Time) {
	rows := st.opts.MaxRows
	if sip.Account != "" {
		if len(s.Accts) < rows {
			r := Registration{Session: session, App: app, Account: sip.Account, Transport: strings.ToUpper(sip.Transport),
				Status: sip.Registration, Code: sip.RegistrationCode}
			if r.Transport == "" {
				r.Transport = "UDP"
			}
			if !sip.RegistrationAt.IsZero() {
				r.Age = seconds(now.Sub(sip.RegistrationAt))
			}
			s.Accts = append(s.Accts, r)
		} else {
			s.MoreAccounts++
		}
	}
	for _, c := range sip.Calls {
		if len(s.Calls) >= rows {
			s.MoreCalls++
			continue
		}
		call := Call{Session: session, App: app, ID: c.ID, Direction: "outgoing", Caller: c.Caller, Callee: c.Callee,
			Status: c.Status, Duration: seconds(now.Sub(c.Started)), Media: c.MediaID}
		if c.Incoming {
			call.Direction = "incoming"
		}
		if !c.Answered.IsZero() {
			call.Talking = seconds(now.Sub(c.Answered))
		}
		s.Calls = append(s.Calls, call)
	}
}

// relay reads `list totals`' figures and the engine's calls.
func (st *Status) relay(snap *Snapshot, cur, prev sample, rate func(float64, float64, bool) *float64, now time.Time) {
	src, r := st.src, &snap.Relay
	if src.Stats != nil {
		n := src.Stats.Snapshot()
		// Both paths: userspace and kernel forwarding.
		r.Sessions, r.Streams = n.SessionsOwn, n.StreamsUser+n.StreamsKernel+n.StreamsMixed
		rt, tot := n.Rates.Total(), n.RelayedUser.Plus(n.RelayedKernel)
		r.PacketsPerSecond, r.BytesPerSecond, r.ErrorsPerSecond = rt.Packets, rt.Bytes, rt.Errors
		r.Packets, r.Bytes, r.Errors = tot.Packets, tot.Bytes, tot.Errors
	}
	if src.Relay == nil {
		return
	}
	for _, i := range src.Relay.Interfaces() {
		r.PortsUsed += i.Used
		r.PortsTotal += i.Total
	}
	ids := src.Relay.List(st.opts.MaxRows)
	r.More = max(src.Relay.NumCalls()-len(ids), 0)
	for _, id := range ids {
		info, err := src.Relay.Query(id)
		if err != nil {
			continue // ended meanwhile
		}
		call := RelayCall{ID: info.CallID, Age: seconds(now.Sub(info.Created)), Packets: info.RTP.Packets + info.RTCP.Packets}
		for _, tag := range info.Tags {
			for _, m := range tag.Medias {
				for _, s := range m.Streams {
					key := info.CallID + "\x00" + tag.Tag + "\x00" + s.Local.String()
					before, ok := prev.streams[key]
					cur.streams[key] = s.Packets
					stream := Stream{Tag: tag.Tag, Media: m.Index, Type: m.Type, RTCP: s.RTCP, Local: s.Local.String(),
						Confirmed: s.Confirmed, Packets: s.Packets, Bytes: s.Bytes, Errors: s.Errors,
						Rate: rate(float64(s.Packets), float64(before), ok)}
					if s.Endpoint.IsValid() {
						stream.Remote = s.Endpoint.String()
					}
					call.Streams = append(call.Streams, stream)
				}
			}
		}
		r.Calls = append(r.Calls, call)
	}
}

// hooks reads the hook queue's and the backends' metrics.
func (st *Status) hooks(snap *Snapshot, f figures, cur, prev sample, rate func(float64, float64, bool) *float64) {
	h := &snap.Hooks
	h.Depth = f.value("rtcgate_hook_queue_depth")
	h.Oldest = f.value("rtcgate_hook_queue_oldest_seconds")
	h.Delivered = f.value("rtcgate_hook_events_delivered_total")
	h.Retries = f.value("rtcgate_hook_retries_total")
	h.DeadLettered = f.value("rtcgate_hook_dead_letters_total")
	h.DeadLetters = f.value("rtcgate_hook_dead_letters")
	h.Dropped = f.value("rtcgate_hook_dead_letters_dropped_total")
	h.Replayed = f.value("rtcgate_hook_dead_letters_replayed_total")
	h.Spilled = f.value("rtcgate_hook_events_spilled")
	h.Refused = f.value("rtcgate_hook_events_refused_total")
	requests := f.by("rtcgate_hook_requests_total", "app", "status")
	perApp, failures := map[string]float64{}, map[string]float64{}
	for k, n := range requests {
		app, code, _ := strings.Cut(k, " ")
		perApp[app] += n
		if !strings.HasPrefix(code, "2") {
			failures[app] += n
		}
	}
	latency := f.histograms("rtcgate_hook_request_seconds", "app")
	for app, n := range perApp {
		before, ok := prev.requests[app]
		cur.requests[app] = n
		b := Backend{App: app, Requests: n, Failures: failures[app], Rate: rate(n, before, ok)}
		if l := latency[app]; l != nil {
			b.Mean, b.P50, b.P95 = l.mean(), l.quantile(0.5), l.quantile(0.95)
		}
		h.Backends = append(h.Backends, b)
	}
	sort.Slice(h.Backends, func(i, j int) bool { return h.Backends[i].App < h.Backends[j].App })
}

// cluster reads `list nodes`.
func (st *Status) cluster(ctx context.Context, snap *Snapshot, f figures, self string) {
	c := &Cluster{RedisUp: f.value("rtcgate_cluster_redis_up") == 1}
	snap.Cluster = c
	nodes, now, err := st.src.Nodes(ctx)
	if err != nil {
		c.Error = err.Error() // the cluster package keeps the URL's password out
		return
	}
	for _, n := range nodes {
		c.Nodes = append(c.Nodes, Node{ID: n.ID, Client: n.Client, HTTP: n.HTTP, Sessions: n.Sessions,
			Heartbeat: float64(now-n.Heartbeat) / 1000, Self: n.ID == self})
	}
}
