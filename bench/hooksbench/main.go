// Command hooksbench measures rtcgate's REST hooks (internal/hooks) against
// an app backend that runs inside this program (net/http on 127.0.0.1), on
// loopback. The targets: status events delivered to a local backend
// with order kept per session at ≥ 20 000/s on 2 cores, and a synchronous
// hook adding ≤ 1 ms at p99 over the backend's own time.
//
// It builds rtcgate and starts it as its child (JSON logs; the bound
// addresses are read from the "listening" lines) with one app, "hooksbench",
// whose URL is the backend and whose methods are ConnectionStatusEvent
// (asynchronous: the ordered event queue) and OnDataEvent (synchronous).
// connect is left out so that the status events measured are not paced by
// a synchronous hook; the SIP gateway, where rtcgate has one, is off. Three
// scenarios:
//
//	(b) latency: -lat-clients clients, each holding one WebSocket session
//	    on the hooked app and one on defaultApp (no backend URL: rtcgate
//	    answers DataStatusEvent itself), alternating sendData on the two,
//	    one request at a time, -lat-requests of each kind. Hooked round trip
//	    = sendData written → DataStatusEvent read, through the backend's
//	    OnDataEvent; unhooked the same without a backend; backend time =
//	    the handler's own, from its first line to its reply written and
//	    flushed. Added latency per request = hooked round trip − that
//	    request's backend time − the unhooked median; its p99 is the
//	    verdict (conservative: the ordinary jitter of a round trip stays in
//	    it). pX(hooked) − pX(unhooked) − pX(backend) is shown beside it.
//	    Runs first, on a fresh rtcgate.
//	(a) churn: -churn-conns workers open WebSocket sessions on the hooked
//	    app over the real client protocol (connection → getUserData) and
//	    close them at once, for -churn-duration: each session is one
//	    ConnectionStatusEvent ESTABLISHED, then DISCONNECTED once
//	    -client-idle-timeout has passed (rtcgate's sweep runs each second).
//	    Events/s delivered to the backend over the window after -churn-warmup,
//	    rtcgate's CPU (utime+stime from /proc/PID/stat) per 100 000 events,
//	    whether the queue kept up (the window's events match its sessions,
//	    two each, and the last event comes one sweep after the load: then
//	    the rate is the generator's), then every event is waited for
//	    (-drain) and each session's must have arrived ESTABLISHED before
//	    DISCONNECTED.
//	    With -churn-baseline > 0 the same churn on defaultApp first gives
//	    rtcgate's CPU per session without hooks, so that the hooks' own CPU
//	    per 100 000 events can be told apart from the sessions'.
//	(a) queue: the event queue and sender alone, because opening sessions
//	    through the client protocol costs far more than the events they
//	    produce: this program re-executes itself as a child that builds what
//	    the daemon builds — eventq.New over the Memory store (or Disk,
//	    -store disk) with hooks.Hooks.Sender over restclient, defaults as
//	    in rtcgate's configuration — and enqueues -q-sessions × -q-events
//	    events as fast as it can, each body carrying a sequence number.
//	    Events/s from the first enqueue to the last delivery, the child's
//	    CPU per 100 000 events, and the backend's per-session order check.
//
// Every run is bounded by a count and a time. The backend counts, per
// session, events arrived out of order (one whose predecessor had not
// arrived yet), redeliveries, and — once the run is drained — events that
// never arrived (lost); out-of-order and lost must be 0. It prints a table
// against the targets and a final line of JSON with every figure. Exit
// status: 0 every scenario measured and correct (targets met or not), 1 a
// scenario failed, lost or reordered events, 2 bad flags, 3 rtcgate failed
// to build or start.
//
// The backend, the WebSocket clients and rtcgate share the box: on 2 cores
// the figures of (a) churn are bounded by all three together, which the
// table says (CPU of rtcgate, of this program, box busy).
//
//	go run ./bench/hooksbench
//	go run ./bench/hooksbench -scenarios queue -q-sessions 5000 -store disk
//	go run ./bench/hooksbench -scenarios queue -q-sessions 1000 -q-events 20 -store redis
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

type config struct {
	scenarios    []string
	rtcgateSrc   string
	readyTimeout time.Duration
	keepLogs     bool
	waitQuiet    time.Duration
	store        string

	latClients  int
	latRequests int
	latWarmup   int
	latTimeout  time.Duration

	churnConns    int
	churnDuration time.Duration
	churnWarmup   time.Duration
	churnSessions int
	churnBaseline time.Duration
	drain         time.Duration
	idleTimeout   time.Duration
	queueMaxBytes int
	hooksMaxAsync int
	hooksRetries  int
	qSessions     int
	qEvents       int
	qIdlePerHost  int
	qTimeout      time.Duration
	redisURL      string // -store redis: the redis-server started for the run
}

var knownScenarios = []string{"latency", "churn", "queue"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("hooksbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", "latency,churn,queue", "scenarios to run, in this order: latency (b), churn (a, through rtcgate), queue (a, queue and sender alone)")
	fs.StringVar(&cfg.rtcgateSrc, "rtcgate-src", "./cmd/rtcgate", "rtcgate package to build")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 15*time.Second, "longest rtcgate may take to log its listeners")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep rtcgate's and the queue child's logs after the run")
	fs.DurationVar(&cfg.waitQuiet, "wait-quiet", 10*time.Second, "before each scenario, wait up to this long for other processes to leave the CPUs idle (shared boxes); 0: do not wait")
	fs.StringVar(&cfg.store, "store", "memory", "event queue store in (a): memory (rtcgate's default), disk (hooks-queue-dir) or redis (cluster-redis, a redis-server started for the run)")

	fs.IntVar(&cfg.latClients, "lat-clients", 4, "(b) concurrent clients, each one request at a time")
	fs.IntVar(&cfg.latRequests, "lat-requests", 20000, "(b) measured requests of each kind (hooked, unhooked), over all clients")
	fs.IntVar(&cfg.latWarmup, "lat-warmup", 1000, "(b) requests of each kind before measuring, over all clients")
	fs.DurationVar(&cfg.latTimeout, "lat-timeout", 60*time.Second, "(b) longest the scenario may run")

	fs.IntVar(&cfg.churnConns, "churn-conns", 32, "(a) churn: workers opening and closing sessions")
	fs.DurationVar(&cfg.churnDuration, "churn-duration", 10*time.Second, "(a) churn: measured window")
	fs.DurationVar(&cfg.churnWarmup, "churn-warmup", 2*time.Second, "(a) churn: load before the window (DISCONNECTED trails ESTABLISHED by the idle timeout)")
	fs.IntVar(&cfg.churnSessions, "churn-sessions", 500000, "(a) churn: most sessions to open in a phase")
	fs.DurationVar(&cfg.churnBaseline, "churn-baseline", 5*time.Second, "(a) churn on defaultApp (no hooks) first, for rtcgate's CPU per session without hooks; 0: skip")
	fs.DurationVar(&cfg.drain, "drain", 30*time.Second, "(a) longest to wait, after the load, for every event to arrive")
	fs.DurationVar(&cfg.idleTimeout, "client-idle-timeout", 100*time.Millisecond, "rtcgate's --client-idle-timeout: a closed session's DISCONNECTED is queued after it")
	fs.IntVar(&cfg.queueMaxBytes, "hooks-queue-max-bytes", 64<<20, "rtcgate's --hooks-queue-max-bytes (the Memory store holds this/512 events)")
	fs.IntVar(&cfg.hooksMaxAsync, "hooks-max-async", 32, "rtcgate's --hooks-max-async: events sent at once (queue workers)")
	fs.IntVar(&cfg.hooksRetries, "hooks-retries", 0, "rtcgate's --hooks-retries (0: no cap, hooks-retry-time decides)")
	fs.IntVar(&cfg.qSessions, "q-sessions", 1000, "(a) queue: N sessions (ordering keys)")
	fs.IntVar(&cfg.qEvents, "q-events", 100, "(a) queue: M events per session")
	fs.IntVar(&cfg.qIdlePerHost, "q-idle-per-host", 0, "(a) queue: restclient MaxIdlePerHost; 0: its default, as rtcgate uses it")
	fs.DurationVar(&cfg.qTimeout, "q-timeout", 30*time.Second, "(a) queue: longest the child may take to enqueue and deliver everything")
	if err := benchrun.Parse(fs, args); err != nil {
		return nil, err
	}
	var err error
	if cfg.scenarios, err = benchrun.Scenarios(*scen, knownScenarios); err != nil {
		return nil, err
	}
	switch {
	case cfg.store != "memory" && cfg.store != "disk" && cfg.store != "redis":
		return nil, errors.New("-store: memory or disk")
	case cfg.readyTimeout <= 0 || cfg.readyTimeout > 10*time.Minute:
		return nil, errors.New("-ready-timeout must be in (0, 10m]")
	case cfg.waitQuiet < 0 || cfg.waitQuiet > time.Hour:
		return nil, errors.New("-wait-quiet must be in [0, 1h]")
	case cfg.latClients < 1 || cfg.latClients > 256:
		return nil, errors.New("-lat-clients must be in 1..256")
	case cfg.latRequests < 1 || cfg.latRequests > 10000000 || cfg.latWarmup < 0 || cfg.latWarmup > 1000000:
		return nil, errors.New("-lat-requests must be in 1..10000000, -lat-warmup in 0..1000000")
	case cfg.latTimeout <= 0 || cfg.latTimeout > time.Hour:
		return nil, errors.New("-lat-timeout must be in (0, 1h]")
	case cfg.churnConns < 1 || cfg.churnConns > 4096:
		return nil, errors.New("-churn-conns must be in 1..4096")
	case cfg.churnDuration <= 0 || cfg.churnDuration > time.Hour || cfg.churnWarmup < 0 || cfg.churnWarmup > time.Hour:
		return nil, errors.New("-churn-duration must be in (0, 1h], -churn-warmup in [0, 1h]")
	case cfg.churnBaseline < 0 || cfg.churnBaseline > time.Hour:
		return nil, errors.New("-churn-baseline must be in [0, 1h]")
	case cfg.churnSessions < 1 || cfg.churnSessions > 10000000:
		return nil, errors.New("-churn-sessions must be in 1..10000000")
	case cfg.drain <= 0 || cfg.drain > time.Hour:
		return nil, errors.New("-drain must be in (0, 1h]")
	case cfg.idleTimeout <= 0 || cfg.idleTimeout > time.Minute:
		return nil, errors.New("-client-idle-timeout must be in (0, 1m]")
	case cfg.queueMaxBytes < 1<<16:
		return nil, errors.New("-hooks-queue-max-bytes must be at least 65536")
	case cfg.hooksMaxAsync < 1 || cfg.hooksMaxAsync > 4096 || cfg.hooksRetries < 0:
		return nil, errors.New("-hooks-max-async must be in 1..4096, -hooks-retries 0 or more")
	case cfg.qSessions < 1 || cfg.qSessions > 1000000 || cfg.qEvents < 1 || cfg.qEvents > 1000000:
		return nil, errors.New("-q-sessions and -q-events must be in 1..1000000")
	case int64(cfg.qSessions)*int64(cfg.qEvents) > 20000000:
		return nil, errors.New("-q-sessions × -q-events must be at most 20 000 000")
	case cfg.qIdlePerHost < 0:
		return nil, errors.New("-q-idle-per-host must not be negative")
	case cfg.qTimeout <= 0 || cfg.qTimeout > time.Hour:
		return nil, errors.New("-q-timeout must be in (0, 1h]")
	}
	return cfg, nil
}

func (cfg *config) has(s string) bool { return slices.Contains(cfg.scenarios, s) }

// runEnv is what the scenarios share.
type runEnv struct {
	benchrun.Env // Dir: logs, binary, queue dirs
	cfg          *config
	bin          string
}

// results is everything measured.
type results struct {
	Latency  *latencyResult `json:"latency,omitempty"`
	Baseline *churnResult   `json:"churn_baseline,omitempty"`
	Churn    *churnResult   `json:"churn,omitempty"`
	Queue    *queueResult   `json:"queue,omitempty"`
	benchrun.Notes
}

func main() {
	// The queue scenario runs in a child: this program, re-executed.
	if len(os.Args) > 1 && os.Args[1] == queueChildArg {
		os.Exit(queueChildMain(os.Args[2:]))
	}
	benchrun.Main("hooksbench", parseFlags, run)
}

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	started := time.Now()
	env := &runEnv{Env: benchrun.Env{Name: "hooksbench", Stderr: stderr, KeepLogs: cfg.keepLogs}, cfg: cfg}
	res := &results{}
	if err := env.MakeDir(); err != nil {
		env.Logf("%v", err)
		return 1
	}
	defer env.Cleanup()

	b, err := startBackend()
	if err != nil {
		env.Logf("backend: %v", err)
		return 1
	}
	defer b.Close()
	if cfg.store == "redis" {
		rdir := filepath.Join(env.Dir, "redis")
		os.MkdirAll(rdir, 0o750)
		red, err := testpeer.RunRedis(testpeer.RedisOptions{Dir: rdir})
		if err != nil {
			env.Logf("redis-server: %v", err)
			return 1
		}
		defer red.Stop()
		cfg.redisURL = red.URL
	}

	code := 0
	fail := func(scenario string, err error) {
		code = 1
		env.Fail(&res.Notes, scenario, err)
	}
	// Failing to build or start rtcgate: the table says so, and the logs stay.
	startFail := func(err error) int {
		env.FailStart(&res.Notes, err)
		report(stdout, env, started, res)
		return 3
	}

	if cfg.has("latency") || cfg.has("churn") {
		env.Logf("building %s", cfg.rtcgateSrc)
		if env.bin, err = rtcgatechild.Build(ctx, cfg.rtcgateSrc, env.Dir); err != nil {
			return startFail(err)
		}
		c, err := launch(ctx, env, b)
		if err != nil {
			return startFail(err)
		}
		if cfg.has("latency") && ctx.Err() == nil {
			awaitQuiet(ctx, env, c.Pid(), "latency")
			env.Logf("(b) latency: %d clients, %d requests of each kind", cfg.latClients, cfg.latRequests)
			var serr error
			res.Latency, serr = scenarioLatency(ctx, env, c, b)
			if serr != nil {
				fail("latency", serr)
			}
		}
		if cfg.has("churn") && ctx.Err() == nil {
			if cfg.churnBaseline > 0 {
				awaitQuiet(ctx, env, c.Pid(), "churn baseline")
				env.Logf("(a) churn on defaultApp (no hooks), %d workers, %v", cfg.churnConns, cfg.churnBaseline)
				var serr error
				res.Baseline, serr = scenarioChurn(ctx, env, c, b, false)
				if serr != nil {
					fail("churn baseline", serr)
				}
			}
			if ctx.Err() == nil {
				awaitQuiet(ctx, env, c.Pid(), "churn")
				env.Logf("(a) churn on the hooked app, %d workers, %v", cfg.churnConns, cfg.churnDuration)
				var serr error
				res.Churn, serr = scenarioChurn(ctx, env, c, b, true)
				if serr != nil {
					fail("churn", serr)
				}
			}
		}
		if n := countLog(c.LogPath(), "hook event not queued"); n > 0 {
			fail("rtcgate", fmt.Errorf("%d \"hook event not queued\" lines in its log: events refused by a full queue", n))
		}
		if err := c.Stop(); err != nil {
			fail("rtcgate", fmt.Errorf("%v (died during the run)", err))
		}
		if code != 0 {
			env.Logf("rtcgate log %s, last lines:\n%s", c.LogPath(), childproc.Indent(childproc.LogTail(c.LogPath(), 15)))
		}
	}
	if cfg.has("queue") && ctx.Err() == nil {
		awaitQuiet(ctx, env, 0, "queue")
		env.Logf("(a) queue and sender alone: %d sessions × %d events, %s store", cfg.qSessions, cfg.qEvents, cfg.store)
		var serr error
		res.Queue, serr = scenarioQueue(ctx, env, b)
		if serr != nil {
			fail("queue", serr)
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

// Targets (the issue's).
const (
	targetEventsPerS = 20000
	targetAddedP99Ms = 1.0
)

// report prints the table and the JSON line.
func report(w io.Writer, env *runEnv, started time.Time, res *results) {
	cfg := env.cfg
	res.Warnings = append(res.Warnings, warnings(res)...)
	benchrun.Report(w, "hooksbench", started,
		fmt.Sprintf("store=%s  hooks-max-async=%d  client-idle-timeout=%v", cfg.store, cfg.hooksMaxAsync, cfg.idleTimeout),
		tableLines(cfg, res), res.Notes,
		map[string]any{"config": jsonConfig(cfg), "results": res, "goals": goals(res)})
}

func jsonConfig(cfg *config) map[string]any {
	return map[string]any{
		"scenarios": cfg.scenarios, "store": cfg.store,
		"lat_clients": cfg.latClients, "lat_requests": cfg.latRequests, "lat_warmup": cfg.latWarmup,
		"churn_conns": cfg.churnConns, "churn_duration_s": cfg.churnDuration.Seconds(), "churn_warmup_s": cfg.churnWarmup.Seconds(),
		"churn_baseline_s": cfg.churnBaseline.Seconds(), "client_idle_timeout_s": cfg.idleTimeout.Seconds(),
		"hooks_max_async": cfg.hooksMaxAsync, "hooks_retries": cfg.hooksRetries, "hooks_queue_max_bytes": cfg.queueMaxBytes,
		"q_sessions": cfg.qSessions, "q_events": cfg.qEvents, "q_idle_per_host": cfg.qIdlePerHost,
	}
}

// goals is each target with whether it was met (absent: not measured).
func goals(res *results) map[string]any {
	g := map[string]any{}
	if r := res.Churn; r != nil && r.Events > 0 {
		g["churn_events_per_s"] = map[string]any{"target_min": targetEventsPerS, "value": r.EventsPerS,
			"met": r.EventsPerS >= targetEventsPerS && r.correct(), "bound_by": r.BoundBy}
	}
	if r := res.Queue; r != nil && r.Delivered > 0 {
		g["queue_events_per_s"] = map[string]any{"target_min": targetEventsPerS, "value": r.EventsPerS,
			"met": r.EventsPerS >= targetEventsPerS && r.correct()}
	}
	if r := res.Latency; r != nil && r.Requests > 0 {
		g["added_p99_ms"] = map[string]any{"target_max": targetAddedP99Ms, "value": r.AddedP99Ms, "met": r.AddedP99Ms <= targetAddedP99Ms}
	}
	return g
}

// warnings flag figures to read with care.
func warnings(res *results) []string {
	var out []string
	flag := func(name string, w cpuFigures) {
		if d := proc.Disturbance(w.OtherCPUS, w.WindowS, w.OtherTop); d != "" {
			out = append(out, fmt.Sprintf("(%s) %s: the figures are disturbed", name, d))
		}
	}
	if r := res.Latency; r != nil {
		flag("latency", r.CPU)
	}
	if r := res.Baseline; r != nil {
		flag("churn baseline", r.CPU)
	}
	if r := res.Churn; r != nil {
		flag("churn", r.CPU)
	}
	if r := res.Queue; r != nil {
		flag("queue", r.CPU)
	}
	return out
}
