// Command clusterbench measures rtcgate's cluster on Redis (README
// "Cluster") on this machine: real rtcgate processes on one redis-server,
// behind HAProxy where a load balancer belongs, with an app whose hooks
// (connect, ConnectionStatusEvent, OnDataEvent) a backend inside this
// program answers at once (200 {}). Four scenarios:
//
//	(1) lb: sendData round trips per second over the HTTP fallback through
//	    HAProxy (round robin, no stickiness) in front of 1, 2 and 3 nodes
//	    (-nodes): -conns sessions opened through HAProxy, each driven as the
//	    browser shim drives it — open, send with utids, a long-poll sync
//	    loop acknowledging what it got — looping sendData → its
//	    DataStatusEvent for -duration after -warmup. With round robin a
//	    request reaches its session's owner one time in N; the others are
//	    forwarded. Rates and ratios to 1 node, latency, the share of
//	    requests forwarded (rtcgate_client_requests_routed_total), and the
//	    CPU per round trip of the rtcgates, HAProxy and Redis (utime+stime
//	    from /proc/PID/stat).
//	(2) route: CPU per request served for a session owned by another node,
//	    relative to one served by its owner (target ≤ 2×): two nodes, A
//	    and B, no load balancer; -conns sessions opened on A; the same load
//	    (paced at -route-rate round trips/s, so that both are compared at
//	    one load: CPU per request grows as load falls, with fewer wake-ups
//	    shared) with every request sent to A (local), then to B (forwarded
//	    to A), alternating -route-rounds times. CPU of both rtcgates per
//	    client request (send or sync), each node's share, and Redis's apart.
//	(3) takeover: -takeover-sessions WebSocket sessions on node A, each
//	    with a frame it has not acknowledged; A killed with SIGKILL; every
//	    client resumes on node B (sessionId, authToken, ack) in a loop, one
//	    try every -retry-every (refused with close 4001 while A's lease
//	    lives): time from the kill to its first replayed frame (which must
//	    be the one it had not acknowledged) and to its next sendData
//	    answered by B. B is killed in the next round and the sessions move
//	    to a fresh node, -takeover-rounds rounds for each lease setting of
//	    -leases (cluster-node-ttl/cluster-heartbeat; takeover time is bounded
//	    below by the lease, which ends ttl − (time since its last renewal)
//	    after the kill: the program watches the key and prints when).
//	(4) hookstore: hook events per second through the queue's Redis store
//	    vs its disk store: bench/hooksbench's queue scenario (-scenarios
//	    queue -store disk|redis), built and run as it is, its figures read
//	    from its JSON line.
//
// A note at the end says what the figures mean on 2 cores and what to
// expect on N machines, from the figures measured.
//
// The box is shared by everything: clients and backend (this program),
// the rtcgates, HAProxy and redis-server. Every loop is bounded in count
// and time. Exit status: 0 every scenario measured (targets met or not),
// 1 a scenario failed (a lost or repeated frame, a failed round trip, a
// session not resumed), 2 bad flags, 3 rtcgate, redis-server or haproxy
// failed to build or start.
//
//	go run ./bench/clusterbench
//	go run ./bench/clusterbench -scenarios lb,route -duration 20s -conns 128
//	go run ./bench/clusterbench -scenarios takeover -takeover-sessions 1000 -takeover-rounds 10 -leases 4s/1s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

type config struct {
	scenarios    []string
	rtcgateSrc   string
	hooksSrc     string
	readyTimeout time.Duration
	keepLogs     bool
	waitQuiet    time.Duration

	nodes       []int
	conns       int
	duration    time.Duration
	warmup      time.Duration
	syncWait    time.Duration
	routeRounds int
	routeDur    time.Duration
	routeRate   float64

	tkSessions int
	tkRounds   int
	leases     []lease
	retryEvery time.Duration

	hookSessions int
	hookEvents   int
}

// lease is one setting of a node's lease: cluster-node-ttl and
// cluster-heartbeat.
type lease struct {
	TTL       time.Duration `json:"cluster_node_ttl"`
	Heartbeat time.Duration `json:"cluster_heartbeat"`
}

func (l lease) String() string { return l.TTL.String() + "/" + l.Heartbeat.String() }

var knownScenarios = []string{"lb", "route", "takeover", "hookstore"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("clusterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", "lb,route,takeover,hookstore", "scenarios to run, in this order: lb (1), route (2), takeover (3), hookstore (4)")
	fs.StringVar(&cfg.rtcgateSrc, "rtcgate-src", "./cmd/rtcgate", "rtcgate package to build")
	fs.StringVar(&cfg.hooksSrc, "hooksbench-src", "./bench/hooksbench", "(4) hooksbench package to build")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 15*time.Second, "longest a node may take to log its listeners")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep the nodes', HAProxy's and hooksbench's logs after the run")
	fs.DurationVar(&cfg.waitQuiet, "wait-quiet", 3*time.Second, "before each measured window, wait up to this long for other processes to leave the CPUs idle (shared boxes); 0: do not wait")

	nodes := fs.String("nodes", "1,2,3", "(1) node counts behind HAProxy")
	fs.IntVar(&cfg.conns, "conns", 32, "(1, 2) C: fallback sessions, each one sendData at a time")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "(1) measured window per node count")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "(1, 2) unmeasured load before each window")
	fs.DurationVar(&cfg.syncWait, "sync-wait", 10*time.Second, "(1, 2) wait= of the sync long-polls")
	fs.IntVar(&cfg.routeRounds, "route-rounds", 2, "(2) local/forwarded windows, alternating")
	fs.DurationVar(&cfg.routeDur, "route-duration", 4*time.Second, "(2) measured window of each")
	fs.Float64Var(&cfg.routeRate, "route-rate", 500, "(2) round trips/s in all, paced, the same for both kinds so that the CPU per request is compared at one load; 0: closed loop (the forwarded side then runs at a lower rate)")

	fs.IntVar(&cfg.tkSessions, "takeover-sessions", 200, "(3) WebSocket sessions on the node killed")
	fs.IntVar(&cfg.tkRounds, "takeover-rounds", 3, "(3) kills per lease setting")
	leases := fs.String("leases", "4s/1s,2s/250ms", "(3) lease settings, cluster-node-ttl/cluster-heartbeat, comma-separated (4s/1s: rtcgate's defaults)")
	fs.DurationVar(&cfg.retryEvery, "retry-every", 200*time.Millisecond, "(3) a client's pause between resume tries (the first after a random part of it)")

	fs.IntVar(&cfg.hookSessions, "hook-sessions", 1000, "(4) hooksbench -q-sessions")
	fs.IntVar(&cfg.hookEvents, "hook-events", 20, "(4) hooksbench -q-events")
	if err := benchrun.Parse(fs, args); err != nil {
		return nil, err
	}
	var err error
	if cfg.scenarios, err = benchrun.Scenarios(*scen, knownScenarios); err != nil {
		return nil, err
	}
	if cfg.nodes, err = parseNodes(*nodes); err != nil {
		return nil, err
	}
	if cfg.leases, err = parseLeases(*leases); err != nil {
		return nil, err
	}
	switch {
	case cfg.readyTimeout <= 0 || cfg.readyTimeout > 10*time.Minute:
		return nil, errors.New("-ready-timeout must be in (0, 10m]")
	case cfg.waitQuiet < 0 || cfg.waitQuiet > time.Hour:
		return nil, errors.New("-wait-quiet must be in [0, 1h]")
	case cfg.conns < 1 || cfg.conns > 400:
		return nil, errors.New("-conns must be in 1..400 (HAProxy's maxconn is 1000: a sync and a send each)")
	case cfg.duration <= 0 || cfg.duration > time.Hour || cfg.warmup < 0 || cfg.warmup > time.Hour:
		return nil, errors.New("-duration must be in (0, 1h], -warmup in [0, 1h]")
	case cfg.syncWait < time.Second || cfg.syncWait > 50*time.Second:
		return nil, errors.New("-sync-wait must be in [1s, 50s] (HAProxy's server timeout is 60s)")
	case cfg.routeRounds < 1 || cfg.routeRounds > 100:
		return nil, errors.New("-route-rounds must be in 1..100")
	case cfg.routeDur <= 0 || cfg.routeDur > time.Hour:
		return nil, errors.New("-route-duration must be in (0, 1h]")
	case cfg.routeRate < 0 || cfg.routeRate > 1e6:
		return nil, errors.New("-route-rate must be in [0, 1000000]")
	case cfg.tkSessions < 1 || cfg.tkSessions > 10000:
		return nil, errors.New("-takeover-sessions must be in 1..10000")
	case cfg.tkRounds < 1 || cfg.tkRounds > 100:
		return nil, errors.New("-takeover-rounds must be in 1..100")
	case cfg.retryEvery < 10*time.Millisecond || cfg.retryEvery > 10*time.Second:
		return nil, errors.New("-retry-every must be in [10ms, 10s]")
	case cfg.hookSessions < 1 || cfg.hookEvents < 1 || int64(cfg.hookSessions)*int64(cfg.hookEvents) > 20000000:
		return nil, errors.New("-hook-sessions and -hook-events must be at least 1, their product at most 20 000 000")
	}
	return cfg, nil
}

// items are the non-empty comma-separated items of a flag's list, trimmed.
func items(list string) []string {
	var out []string
	for f := range strings.SplitSeq(list, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseNodes reads -nodes: node counts in 1..8, each once, in order.
func parseNodes(list string) ([]int, error) {
	var out []int
	for _, f := range items(list) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 8 {
			return nil, fmt.Errorf("-nodes: %q: want node counts in 1..8", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-nodes: none given")
	}
	return out, nil
}

// parseLeases reads -leases: TTL/HEARTBEAT pairs as rtcgate accepts them
// (heartbeat ≥ 100ms, TTL ≥ twice the heartbeat), at most 4.
func parseLeases(list string) ([]lease, error) {
	var out []lease
	for _, f := range items(list) {
		a, b, ok := strings.Cut(f, "/")
		ttl, err1 := time.ParseDuration(a)
		hb, err2 := time.ParseDuration(b)
		if !ok || err1 != nil || err2 != nil || hb < 100*time.Millisecond || ttl < 2*hb || ttl > time.Minute {
			return nil, fmt.Errorf("-leases: %q: want TTL/HEARTBEAT with HEARTBEAT ≥ 100ms and 2×HEARTBEAT ≤ TTL ≤ 1m", f)
		}
		out = append(out, lease{TTL: ttl, Heartbeat: hb})
	}
	if len(out) == 0 || len(out) > 4 {
		return nil, errors.New("-leases: 1 to 4 settings")
	}
	return out, nil
}

func (cfg *config) has(s string) bool { return slices.Contains(cfg.scenarios, s) }

// results is everything measured.
type results struct {
	LB        []*lbResult       `json:"lb,omitempty"`
	Route     *routeResult      `json:"route,omitempty"`
	Takeover  []*takeoverResult `json:"takeover,omitempty"`
	HookStore []*hookStoreRun   `json:"hookstore,omitempty"`
	benchrun.Notes
}

func main() { benchrun.Main("clusterbench", parseFlags, run) }

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	started := time.Now()
	env := &runEnv{Env: benchrun.Env{Name: "clusterbench", Stderr: stderr, KeepLogs: cfg.keepLogs}, cfg: cfg}
	res := &results{}
	if err := env.MakeDir(); err != nil {
		env.Logf("%v", err)
		return 1
	}
	defer env.Cleanup()
	startFail := func(err error) int {
		env.FailStart(&res.Notes, err)
		report(stdout, env, started, res)
		return 3
	}

	needCluster := cfg.has("lb") || cfg.has("route") || cfg.has("takeover")
	if needCluster {
		env.Logf("building %s", cfg.rtcgateSrc)
		var err error
		if env.bin, err = rtcgatechild.Build(ctx, cfg.rtcgateSrc, env.Dir); err != nil {
			return startFail(err)
		}
		if err := env.startShared(); err != nil {
			return startFail(err)
		}
		defer env.stopShared()
	}

	code := 0
	for _, sc := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		var serr error
		switch sc {
		case "lb":
			res.LB, serr = forEach(ctx, cfg.nodes, func(n int) string { return strconv.Itoa(n) + " node(s)" }, func(n int) (*lbResult, error) {
				env.Logf("(1) %d node(s) behind HAProxy, %d fallback sessions", n, cfg.conns)
				return scenarioLB(ctx, env, n)
			})
		case "route":
			env.Logf("(2) owner vs another node, %d fallback sessions", cfg.conns)
			res.Route, serr = scenarioRoute(ctx, env)
		case "takeover":
			res.Takeover, serr = forEach(ctx, cfg.leases, func(l lease) string { return "lease " + l.String() }, func(l lease) (*takeoverResult, error) {
				env.Logf("(3) takeover after SIGKILL, %d sessions, lease %s", cfg.tkSessions, l)
				return scenarioTakeover(ctx, env, l)
			})
		case "hookstore":
			env.Logf("(4) hook events through the disk and the Redis store (bench/hooksbench -scenarios queue)")
			res.HookStore, serr = scenarioHookStore(ctx, env)
		}
		var se *startError
		if errors.As(serr, &se) {
			return startFail(se.err)
		}
		if serr != nil {
			code = 1
			env.Fail(&res.Notes, sc, serr)
		}
	}
	if ctx.Err() != nil {
		env.Logf("interrupted")
		res.Errors = append(res.Errors, "interrupted")
		code = 1
	}
	report(stdout, env, started, res)
	return code
}

// forEach runs a scenario for each of list in turn, keeping every result
// it returns (with an error too) and every error, named by what; it stops
// when something fails to start or ctx ends.
func forEach[T, R any](ctx context.Context, list []T, what func(T) string, f func(T) (*R, error)) ([]*R, error) {
	var out []*R
	var errs error
	for _, x := range list {
		if ctx.Err() != nil {
			break
		}
		r, err := f(x)
		if r != nil {
			out = append(out, r)
		}
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s: %w", what(x), err))
			if se := (*startError)(nil); errors.As(err, &se) {
				break
			}
		}
	}
	return out, errs
}

// startError is a node, HAProxy or hooksbench that did not build or start:
// the run stops there (exit status 3).
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }

// Targets (the issue's).
const (
	targetRoutedRatio = 2.0             // CPU per request on a non-owner ≤ 2× on the owner
	targetTakeoverP99 = 5 * time.Second // takeover after SIGKILL, p99
)

// report prints the table with the note under it, the errors and warnings,
// and the JSON line.
func report(w io.Writer, env *runEnv, started time.Time, res *results) {
	cfg := env.cfg
	res.Warnings = append(res.Warnings, warnings(res)...)
	var ls []string
	for _, l := range cfg.leases {
		ls = append(ls, l.String())
	}
	note := noteLines(res)
	benchrun.Report(w, "clusterbench", started,
		fmt.Sprintf("C=%d D=%v nodes=%v  leases (ttl/heartbeat) %s  retry-every %v", cfg.conns, cfg.duration, cfg.nodes, strings.Join(ls, ","), cfg.retryEvery),
		append(tableLines(cfg, res), note...), res.Notes,
		map[string]any{"config": jsonConfig(cfg), "results": res, "goals": goals(res), "note": strings.Join(note, "\n")})
}

func jsonConfig(cfg *config) map[string]any {
	return map[string]any{
		"scenarios": cfg.scenarios, "nodes": cfg.nodes, "conns": cfg.conns,
		"duration_s": cfg.duration.Seconds(), "warmup_s": cfg.warmup.Seconds(), "sync_wait_s": cfg.syncWait.Seconds(),
		"route_rounds": cfg.routeRounds, "route_duration_s": cfg.routeDur.Seconds(), "route_rate": cfg.routeRate,
		"takeover_sessions": cfg.tkSessions, "takeover_rounds": cfg.tkRounds, "leases": cfg.leases, "retry_every_s": cfg.retryEvery.Seconds(),
		"hook_sessions": cfg.hookSessions, "hook_events": cfg.hookEvents,
	}
}

// logPath is a file in the run's directory.
func (e *runEnv) logPath(name string) string { return filepath.Join(e.Dir, name) }
