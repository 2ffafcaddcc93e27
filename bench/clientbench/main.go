// Command clientbench measures rtcgate's client listener (the Flashphoner
// Web SDK protocol over WebSocket and the HTTP long-poll fallback) on
// loopback: what an idle session costs, and how many sendData round trips
// per second each transport carries.
//
// It builds rtcgate, and for each scenario starts a fresh rtcgate as its
// child (JSON logs; the bound addresses are read from the "listening"
// lines), runs the scenario, and stops it:
//
//	(1) idle: -sessions WebSockets, each through the connection handshake,
//	    opened from 127.0.0.2 … 127.0.0.250 with -ramp-concurrency at once,
//	    then held -hold: rtcgate's VmRSS, Go heap in use, stacks and
//	    goroutines (its /metrics) against the fresh process, per session.
//	(2) ws: -conns WebSockets each looping sendData → DataStatusEvent for
//	    -duration after -warmup: round trips/s, p50/p99, rtcgate CPU-s per
//	    1000 round trips (utime+stime from /proc/PID/stat).
//	(3) http: the same over the fallback at /http, one sync long-poll loop
//	    per session; latency is POST time → DataStatusEvent out of a sync.
//
// Both ends hold a descriptor per idle session: the program raises its
// RLIMIT_NOFILE (soft and hard) to what -sessions needs, and rtcgate
// inherits it. Where the hard limit cannot be raised (no CAP_SYS_RESOURCE,
// as in some containers), -sessions is capped to what fits, with a warning
// in the table and the JSON: the cost per session does not depend on N.
// Source addresses are spread over 249 loopback addresses with
// IP_BIND_ADDRESS_NO_PORT, so the ephemeral port range is never the limit.
//
// It prints a table against the targets and a final line of JSON with every
// figure. Exit status: 0 all scenarios measured (whether targets are met or
// not), 1 a scenario failed or the fallback is missing (404/501), 2 bad
// flags, 3 rtcgate failed to build or start.
//
// The client is cheap on purpose (the box is shared with rtcgate): a
// hand-written RFC 6455 client, no goroutine and no buffer per idle
// session (keep-alive is off, so the server sends nothing to read), one
// goroutine per loaded connection. -pprof starts rtcgate with
// RTCGATE_PPROF=true and saves its heap and goroutine profiles while the
// idle sessions are held.
//
//	go run ./bench/clientbench                                    # everything, N=50000
//	go run ./bench/clientbench -scenarios idle -sessions 10000 -pprof -keep-logs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/bench/internal/sdkclient"
)

type config struct {
	scenarios         []string
	sessions          int
	requestedSessions int // -sessions, when the fd limit capped it
	conns             int
	duration          time.Duration
	warmup            time.Duration
	hold              time.Duration
	rampConcurrency   int
	rampTimeout       time.Duration
	readyTimeout      time.Duration
	syncWait          time.Duration
	keepalive         time.Duration
	clientAddr        string
	logLevel          int
	rtcgateSrc        string
	keepLogs          bool
	pprof             bool
	waitQuiet         time.Duration
	memProfileRate    int
}

var knownScenarios = []string{"idle", "ws", "http"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("clientbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", "idle,ws,http", "scenarios to run, in this order: idle (1), ws (2), http (3)")
	fs.IntVar(&cfg.sessions, "sessions", 50000, "N: idle WebSocket sessions in (1)")
	fs.IntVar(&cfg.conns, "conns", 64, "C: concurrent connections in (2) and (3)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "D: measured time of (2) and (3)")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured load before the window of (2) and (3)")
	fs.DurationVar(&cfg.hold, "hold", 10*time.Second, "how long (1) holds the sessions idle before measuring")
	fs.IntVar(&cfg.rampConcurrency, "ramp-concurrency", 128, "sessions being opened at once in (1)")
	fs.DurationVar(&cfg.rampTimeout, "ramp-timeout", 5*time.Minute, "longest (1) may take to open its sessions")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 15*time.Second, "longest rtcgate may take to log its listeners")
	fs.DurationVar(&cfg.syncWait, "sync-wait", 10*time.Second, "wait= of the fallback's sync long-polls in (3)")
	fs.DurationVar(&cfg.keepalive, "client-keepalive", 0, "rtcgate's --client-keepalive; 0 (no pings) because idle sessions are never read")
	fs.StringVar(&cfg.clientAddr, "listen-client", "127.0.0.1:0", "rtcgate's --listen-client (loopback; port 0: the kernel's choice)")
	fs.IntVar(&cfg.logLevel, "log-level", 4, "rtcgate's log level during the run (set over its CLI once the listeners are logged)")
	fs.StringVar(&cfg.rtcgateSrc, "rtcgate-src", "./cmd/rtcgate", "rtcgate package to build")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep rtcgate's logs and binary after the run")
	fs.BoolVar(&cfg.pprof, "pprof", false, "start rtcgate with RTCGATE_PPROF=true and save its heap and goroutine profiles during the hold of (1)")
	fs.IntVar(&cfg.memProfileRate, "memprofilerate", 0, "with -pprof: rtcgate's GODEBUG=memprofilerate (1: every allocation, an exact heap profile, but RSS figures then include the profiler's own memory); 0: Go's default (one sample per 512 KiB)")
	fs.DurationVar(&cfg.waitQuiet, "wait-quiet", 30*time.Second, "before each scenario, wait up to this long for other processes to leave the CPUs idle (shared boxes); 0: do not wait")
	if err := benchrun.Parse(fs, args); err != nil {
		return nil, err
	}
	var err error
	if cfg.scenarios, err = benchrun.Scenarios(*scen, knownScenarios); err != nil {
		return nil, err
	}
	switch {
	case cfg.sessions < 1 || cfg.sessions > 1000000:
		return nil, errors.New("-sessions must be in 1..1000000")
	case cfg.conns < 1 || cfg.conns > 4096:
		return nil, errors.New("-conns must be in 1..4096")
	case cfg.duration <= 0 || cfg.duration > time.Hour || cfg.warmup < 0 || cfg.warmup > time.Hour:
		return nil, errors.New("-duration must be in (0, 1h], -warmup in [0, 1h]")
	case cfg.hold < 0 || cfg.hold > time.Hour:
		return nil, errors.New("-hold must be in [0, 1h]")
	case cfg.rampConcurrency < 1 || cfg.rampConcurrency > 4096:
		return nil, errors.New("-ramp-concurrency must be in 1..4096")
	case cfg.rampTimeout <= 0 || cfg.rampTimeout > 2*time.Hour || cfg.readyTimeout <= 0 || cfg.readyTimeout > 10*time.Minute:
		return nil, errors.New("-ramp-timeout must be in (0, 2h], -ready-timeout in (0, 10m]")
	case cfg.syncWait < time.Second || cfg.syncWait > 5*time.Minute:
		return nil, errors.New("-sync-wait must be in [1s, 5m]")
	case cfg.keepalive < 0:
		return nil, errors.New("-client-keepalive must not be negative")
	case cfg.memProfileRate < 0:
		return nil, errors.New("-memprofilerate must not be negative")
	case cfg.waitQuiet < 0 || cfg.waitQuiet > time.Hour:
		return nil, errors.New("-wait-quiet must be in [0, 1h]")
	case cfg.logLevel < 1 || cfg.logLevel > 7:
		return nil, errors.New("-log-level must be in 1..7")
	}
	if !isLoopbackAddr(cfg.clientAddr) {
		return nil, fmt.Errorf("-listen-client %q: want a 127.0.0.0/8 address with a port", cfg.clientAddr)
	}
	if slices.Contains(cfg.scenarios, "idle") && cfg.keepalive > 0 && cfg.keepalive*3 < cfg.hold+cfg.rampTimeout {
		fmt.Fprintf(stderr, "clientbench: warning: idle sessions never answer pings; with -client-keepalive %v rtcgate may drop them after %v\n",
			cfg.keepalive, 3*cfg.keepalive)
	}
	return cfg, nil
}

func (cfg *config) has(s string) bool { return slices.Contains(cfg.scenarios, s) }

// runEnv is what the scenarios share.
type runEnv struct {
	benchrun.Env // Dir: logs, binary, profiles; Keep: profiles were saved
	cfg          *config
	bin          string
	childNoFile  int64
	noFile       uint64
}

// results is everything measured.
type results struct {
	Idle *idleResult `json:"idle,omitempty"`
	WS   *loadResult `json:"ws,omitempty"`
	HTTP *loadResult `json:"http,omitempty"`
	benchrun.Notes
}

func main() { benchrun.Main("clientbench", parseFlags, run) }

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	started := time.Now()
	env := &runEnv{Env: benchrun.Env{Name: "clientbench", Stderr: stderr, KeepLogs: cfg.keepLogs}, cfg: cfg}
	res := &results{}

	// Descriptors: the client holds N sockets, rtcgate (which inherits the
	// limit) another N; room for the load scenarios, logs and pipes.
	want := uint64(4*cfg.conns + 4096)
	if cfg.has("idle") {
		want += uint64(cfg.sessions)
	}
	n, err := raiseNoFile(want, env.Logf)
	env.noFile = n
	if err != nil && n < want {
		env.Logf("warning: %v", err)
	}
	if cfg.has("idle") && n < uint64(cfg.sessions+1024) {
		// Both ends hold one descriptor per session and the hard limit
		// cannot be raised (no CAP_SYS_RESOURCE): measure as many as fit.
		fit := (int(n) - 1024) / 1000 * 1000
		if fit < 1000 {
			env.Logf("RLIMIT_NOFILE is %d: too low for the idle scenario", n)
			return 1
		}
		w := fmt.Sprintf("(1) -sessions %d capped to %d: RLIMIT_NOFILE is %d for the client and for rtcgate (it inherits it) and cannot be raised here (%v)",
			cfg.sessions, fit, n, err)
		env.Logf("warning: %s", w)
		res.Warnings = append(res.Warnings, w)
		cfg.requestedSessions, cfg.sessions = cfg.sessions, fit
	}
	if cfg.has("idle") {
		checkPorts(env)
	}

	if err := env.MakeDir(); err != nil {
		env.Logf("%v", err)
		return 1
	}
	env.Logf("building %s", cfg.rtcgateSrc)
	env.bin, err = rtcgatechild.Build(ctx, cfg.rtcgateSrc, env.Dir)
	if err != nil {
		env.Logf("FAILED: %v", err)
		os.RemoveAll(env.Dir)
		return 3
	}

	code := 0
	for _, sc := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		var extraEnv []string
		if sc == "idle" && cfg.pprof {
			extraEnv = []string{"RTCGATE_PPROF=true"}
			if cfg.memProfileRate > 0 {
				extraEnv = append(extraEnv, "GODEBUG=memprofilerate="+strconv.Itoa(cfg.memProfileRate))
			}
		}
		c, err := launch(ctx, env, sc, extraEnv)
		if err != nil {
			env.FailStart(&res.Notes, err)
			report(stdout, env, started, res)
			env.Cleanup()
			return 3
		}
		quietS := awaitQuiet(ctx, env, c, sc)
		var serr error
		switch sc {
		case "idle":
			res.Idle, serr = scenarioIdle(ctx, env, c)
		case "ws":
			env.Logf("(2) sendData over WebSocket, %d connections", cfg.conns)
			res.WS, serr = scenarioWS(ctx, env, c)
		case "http":
			env.Logf("(3) sendData over the HTTP long-poll fallback, %d sessions", cfg.conns)
			res.HTTP, serr = scenarioHTTP(ctx, env, c)
		}
		if sc == "ws" && res.WS != nil {
			res.WS.QuietWaitS = quietS
		} else if sc == "http" && res.HTTP != nil {
			res.HTTP.QuietWaitS = quietS
		}
		if err := c.Stop(); err != nil && serr == nil {
			serr = fmt.Errorf("%v (died during the scenario)", err)
		}
		if serr != nil {
			code = 1
			env.Fail(&res.Notes, sc, serr)
			var u *sdkclient.ErrUnavailable
			if !errors.As(serr, &u) {
				env.Logf("rtcgate log %s, last lines:\n%s", c.LogPath(), childproc.Indent(childproc.LogTail(c.LogPath(), 15)))
			}
		}
	}
	if ctx.Err() != nil {
		env.Logf("interrupted")
		res.Errors = append(res.Errors, "interrupted")
		code = 1
	}
	report(stdout, env, started, res)
	env.Cleanup()
	return code
}

// checkPorts tells whether the ephemeral range suffices for the spread of
// source addresses (it always should: 249 addresses).
func checkPorts(env *runEnv) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || hi < lo {
		return
	}
	perIP := (env.cfg.sessions + 248) / 249
	if perIP > hi-lo+1 {
		env.Logf("warning: %d connections per source address exceed the ephemeral range %d-%d", perIP, lo, hi)
	}
}

func isLoopbackAddr(a string) bool {
	h, _, err := splitHostPort(a)
	return err == nil && h.IsLoopback() && h.To4() != nil
}

// Targets.
const (
	targetIdleBytes = 10 * 1024 // resident bytes per idle session at 50 000 sessions
	targetWSPerS    = 50000
	targetHTTPPerS  = 5000
)

// report prints the table and the JSON line.
func report(w io.Writer, env *runEnv, started time.Time, res *results) {
	cfg := env.cfg
	res.Warnings = append(res.Warnings, warnings(res)...)
	nText := strconv.Itoa(cfg.sessions)
	if cfg.requestedSessions > 0 {
		nText += fmt.Sprintf(" (of %d asked: fd limit)", cfg.requestedSessions)
	}
	benchrun.Report(w, "clientbench", started,
		fmt.Sprintf("N=%s C=%d D=%v  rtcgate log-level %d, keepalive %v", nText, cfg.conns, cfg.duration, cfg.logLevel, cfg.keepalive),
		tableLines(cfg, res), res.Notes,
		map[string]any{"config": jsonConfig(env), "results": res, "goals": goals(res)})
}

func jsonConfig(env *runEnv) map[string]any {
	cfg := env.cfg
	return map[string]any{
		"scenarios": cfg.scenarios, "sessions": cfg.sessions, "sessions_requested": max(cfg.sessions, cfg.requestedSessions), "conns": cfg.conns,
		"duration_s": cfg.duration.Seconds(), "warmup_s": cfg.warmup.Seconds(), "hold_s": cfg.hold.Seconds(),
		"ramp_concurrency": cfg.rampConcurrency, "sync_wait_s": cfg.syncWait.Seconds(),
		"client_keepalive_s": cfg.keepalive.Seconds(), "log_level": cfg.logLevel, "pprof": cfg.pprof, "memprofilerate": cfg.memProfileRate,
		"rlimit_nofile": env.noFile, "rtcgate_rlimit_nofile": env.childNoFile,
	}
}

// goals is each target with whether it was met (absent: not measured).
func goals(res *results) map[string]any {
	g := map[string]any{}
	if r := res.Idle; r != nil && r.Opened > 0 && r.Hold.RSS > 0 {
		g["idle_rss_per_session"] = map[string]any{"target_max_bytes": targetIdleBytes, "value": r.RSSPerSession,
			"met": r.RSSPerSession <= targetIdleBytes, "at_sessions": r.Opened}
	}
	if r := res.WS; r != nil && r.RoundTrips > 0 {
		g["ws_round_trips_per_s"] = map[string]any{"target_min": targetWSPerS, "value": r.PerS, "met": r.PerS >= targetWSPerS}
	}
	if r := res.HTTP; r != nil {
		if r.Unavailable != "" {
			g["http_round_trips_per_s"] = map[string]any{"target_min": targetHTTPPerS, "unavailable": r.Unavailable, "met": false}
		} else if r.RoundTrips > 0 {
			g["http_round_trips_per_s"] = map[string]any{"target_min": targetHTTPPerS, "value": r.PerS, "met": r.PerS >= targetHTTPPerS}
		}
	}
	return g
}

// warnings flag figures to read with care.
func warnings(res *results) []string {
	var out []string
	for _, r := range []*loadResult{res.WS, res.HTTP} {
		if r == nil || r.DurationS == 0 {
			continue
		}
		if d := proc.Disturbance(r.OtherCPUS, r.DurationS, r.OtherTop); d != "" {
			out = append(out, fmt.Sprintf("(%s) %s: the rate and latency are disturbed", r.Transport, d))
		} else if r.HostBusyPct > 95 {
			out = append(out, fmt.Sprintf("(%s) the box was %.0f%% busy (rtcgate %.2f cores, client %.2f): the rate is bounded by the %d cores the client shares with rtcgate",
				r.Transport, r.HostBusyPct, r.ChildCPUS/r.DurationS, r.ClientCPUS/r.DurationS, runtime.NumCPU()))
		}
	}
	if r := res.Idle; r != nil && r.Opened > 0 && r.Opened < 50000 {
		out = append(out, fmt.Sprintf("(1) measured at %d sessions; the target is stated at 50 000 (the cost per session is the figure to compare: run -sessions 5000 and 10000 too to see that it does not depend on N)", r.Opened))
	}
	return out
}
