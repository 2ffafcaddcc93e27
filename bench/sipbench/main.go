// Command sipbench measures rtcgate's SIP gateway end to end on loopback:
// WebSocket clients (the Flashphoner Web SDK protocol) → rtcgate, with
// every REST hook going to an app backend inside this program → Debian's
// Kamailio (registrar and proxy, digest auth) → a sipp UAS. The issue's
// target: ≥ 200 calls/s set up and torn down, sustained, on 2 cores with
// every hook enabled.
//
// It builds rtcgate and starts it as its child (JSON logs; the bound
// addresses, listen-sip among them, are read from the "listening" lines)
// with one app, "sipbench", whose methods are all of hooks.Methods and
// whose backend answers 200 {} to everything. Kamailio and sipp are run by
// internal/testpeer, as for the tests but for load: Kamailio with users
// u0000… in its htable, a static route for the callee to sipp, N workers
// and no log line per request; sipp from uas.xml next to this file
// (INVITE → 180 → 200 → ACK, BYE → 200; no -m, a high -l, no message
// trace). Two scenarios, in one run:
//
//	(a) register: -users sessions, -reg-concurrency at a time, each as its
//	    own Kamailio user with sipRegisterRequired: registrations/s from
//	    the first WebSocket dial to the last `registered` frame, the
//	    per-session time (dial → registered) p50/p99, rtcgate's and
//	    Kamailio's CPU per registration (their threads' run time from
//	    /proc/PID/task/*/schedstat, exact however short the burst;
//	    Kamailio's summed over its process group), hooks per registration.
//	(b) calls: the first -call-clients of those sessions each loop call →
//	    `talk` → hangup → `finish` to the callee routed to sipp, for
//	    -call-warmup then the -call-duration window: calls/s completed in
//	    the window, failed calls, setup time (call written → talk read)
//	    p50/p99, teardown (hangup → finish), CPU-ms per call of rtcgate,
//	    Kamailio, sipp and this program, hooks per call (the backend's,
//	    by method), and sipp's own counts. No RTP flows: the client's SDP
//	    is a plain RTP/AVP offer (with -webrtc a browser's WebRTC offer:
//	    ICE, DTLS fingerprint, rtcp-mux) and rtcgate's relay only
//	    allocates ports (and, for WebRTC, its ICE/DTLS side).
//
// Every loop is bounded in count and time. It prints a table against the
// target and a final line of JSON with every figure. Exit status: 0 both
// scenarios measured (target met or not), 1 a scenario failed (sessions
// that did not register, no call completed, rtcgate died), 2 bad flags,
// 3 rtcgate, Kamailio or sipp failed to build or start.
//
// Everything shares the box: on 2 cores the rate of (b) is bounded by
// rtcgate, Kamailio, sipp and the clients and backend together, which the
// table says (each one's CPU, box busy). -cpuprofile saves rtcgate's CPU
// profile over (b)'s window (rtcgate started with --pprof).
//
//	go run ./bench/sipbench
//	go run ./bench/sipbench -call-clients 100 -call-duration 30s -cpuprofile /tmp/rtcgate.pprof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// The callee goes into kamailio.cfg inside double quotes, and must not be
// one of the users (it would be routed to sipp instead of registered).
var (
	calleeRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
	userRE   = regexp.MustCompile(`^u[0-9]+$`)
)

type config struct {
	rtcgateSrc   string
	readyTimeout time.Duration
	keepLogs     bool
	waitQuiet    time.Duration
	logLevel     int
	kamChildren  int
	cpuProfile   string
	webrtc       bool

	users          int
	regConcurrency int
	regTimeout     time.Duration

	callClients  int
	callWarmup   time.Duration
	callDuration time.Duration
	callRate     float64
	callTimeout  time.Duration
	maxCalls     int
	callee       string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("sipbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.rtcgateSrc, "rtcgate-src", "./cmd/rtcgate", "rtcgate package to build")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 15*time.Second, "longest rtcgate may take to log its listeners")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep the logs of rtcgate, Kamailio and sipp after the run")
	fs.DurationVar(&cfg.waitQuiet, "wait-quiet", 10*time.Second, "before each scenario, wait up to this long for other processes to leave the CPUs idle; 0: do not wait")
	fs.IntVar(&cfg.logLevel, "log-level", 6, "rtcgate's --log-level (6: its default)")
	fs.IntVar(&cfg.kamChildren, "kamailio-children", 2, "Kamailio's UDP worker processes")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write rtcgate's CPU profile over (b)'s window to this file (starts rtcgate with --pprof)")

	fs.IntVar(&cfg.users, "users", 200, "(a) sessions registering, each a distinct Kamailio user")
	fs.IntVar(&cfg.regConcurrency, "reg-concurrency", 200, "(a) sessions connecting at once")
	fs.DurationVar(&cfg.regTimeout, "reg-timeout", 60*time.Second, "(a) longest the whole phase may take")

	fs.IntVar(&cfg.callClients, "call-clients", 50, "(b) sessions calling, one call at a time each (at most -users)")
	fs.DurationVar(&cfg.callWarmup, "call-warmup", 2*time.Second, "(b) load before the measured window")
	fs.DurationVar(&cfg.callDuration, "call-duration", 10*time.Second, "(b) measured window")
	fs.Float64Var(&cfg.callRate, "call-rate", 0, "(b) most calls started per second over all clients; 0: as fast as they go")
	fs.DurationVar(&cfg.callTimeout, "call-timeout", 10*time.Second, "(b) longest a call may take to talk, and then to finish after hangup")
	fs.IntVar(&cfg.maxCalls, "max-calls", 1000000, "(b) most calls to start in the phase")
	fs.StringVar(&cfg.callee, "callee", "uas", "(b) the user Kamailio routes to sipp")
	fs.BoolVar(&cfg.webrtc, "webrtc", false, "(b) the clients offer WebRTC (ICE, DTLS-SRTP) as a browser does: rtcgate's cost of a browser call's setup and teardown (no media flows)")
	if err := benchrun.Parse(fs, args); err != nil {
		return nil, err
	}
	switch {
	case cfg.readyTimeout <= 0 || cfg.readyTimeout > 10*time.Minute:
		return nil, errors.New("-ready-timeout must be in (0, 10m]")
	case cfg.waitQuiet < 0 || cfg.waitQuiet > time.Hour:
		return nil, errors.New("-wait-quiet must be in [0, 1h]")
	case cfg.logLevel < 1 || cfg.logLevel > 7:
		return nil, errors.New("-log-level must be in 1..7")
	case cfg.kamChildren < 1 || cfg.kamChildren > 64:
		return nil, errors.New("-kamailio-children must be in 1..64")
	case cfg.users < 1 || cfg.users > 10000:
		return nil, errors.New("-users must be in 1..10000")
	case cfg.regConcurrency < 1 || cfg.regConcurrency > 10000:
		return nil, errors.New("-reg-concurrency must be in 1..10000")
	case cfg.regTimeout <= 0 || cfg.regTimeout > time.Hour:
		return nil, errors.New("-reg-timeout must be in (0, 1h]")
	case cfg.callClients < 1 || cfg.callClients > cfg.users:
		return nil, errors.New("-call-clients must be in 1..-users (the calls use the registered sessions)")
	case cfg.callWarmup < 0 || cfg.callWarmup > time.Hour || cfg.callDuration <= 0 || cfg.callDuration > time.Hour:
		return nil, errors.New("-call-duration must be in (0, 1h], -call-warmup in [0, 1h]")
	case cfg.callRate < 0 || cfg.callRate > 100000:
		return nil, errors.New("-call-rate must be in [0, 100000]")
	case cfg.callTimeout <= 0 || cfg.callTimeout > 5*time.Minute:
		return nil, errors.New("-call-timeout must be in (0, 5m]")
	case cfg.maxCalls < 1 || cfg.maxCalls > 100000000:
		return nil, errors.New("-max-calls must be in 1..100000000")
	case !calleeRE.MatchString(cfg.callee) || userRE.MatchString(cfg.callee):
		return nil, errors.New("-callee: letters, digits, '.', '_', '-', and not a user name like u0001")
	}
	if cfg.cpuProfile != "" {
		p, err := filepath.Abs(cfg.cpuProfile)
		if err != nil {
			return nil, err
		}
		cfg.cpuProfile = p
	}
	return cfg, nil
}

// runEnv is what the scenarios share.
type runEnv struct {
	benchrun.Env // Dir: logs, binary, peer configs
	cfg          *config
	bin          string
	pids         pids
}

// results is everything measured.
type results struct {
	Register      *regResult  `json:"register,omitempty"`
	Calls         *callResult `json:"calls,omitempty"`
	RtcgateWarns  int         `json:"rtcgate_warn_or_error_lines"`
	DroppedFrames uint64      `json:"dropped_frames,omitempty"`
	benchrun.Notes
}

func main() { benchrun.Main("sipbench", parseFlags, run) }

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	started := time.Now()
	env := &runEnv{Env: benchrun.Env{Name: "sipbench", Stderr: stderr, KeepLogs: cfg.keepLogs}, cfg: cfg}
	res := &results{}
	if err := env.MakeDir(); err != nil {
		env.Logf("%v", err)
		return 1
	}
	defer env.Cleanup()

	// Failing to start something: the table says what, and the logs stay.
	startFail := func(err error) int {
		env.FailStart(&res.Notes, err)
		report(stdout, env, started, res)
		return 3
	}

	b, err := startBackend()
	if err != nil {
		return startFail(fmt.Errorf("backend: %w", err))
	}
	defer b.Close()

	env.Logf("building %s", cfg.rtcgateSrc)
	if env.bin, err = rtcgatechild.Build(ctx, cfg.rtcgateSrc, env.Dir); err != nil {
		return startFail(err)
	}
	s, err := startSipp(env)
	if err != nil {
		return startFail(err)
	}
	defer s.Stop()
	users := benchUsers(cfg.users)
	k, err := startKamailio(env, users, cfg.callee, s.Addr)
	if err != nil {
		return startFail(err)
	}
	defer k.Stop()
	c, err := launch(ctx, env, b)
	if err != nil {
		return startFail(err)
	}
	env.pids = pids{rtcgate: c.Pid(), kamailio: k.Pid(), sipp: s.Pid()}
	env.Logf("kamailio %s (pid %d), sipp UAS %s (pid %d), callee %q", k.Addr, k.Pid(), s.Addr, s.Pid(), cfg.callee)

	code := 0
	fail := func(scenario string, err error) {
		code = 1
		env.Fail(&res.Notes, scenario, err)
	}

	var clients []*sdkClient
	if ctx.Err() == nil {
		awaitQuiet(ctx, env, env.pids, "register")
		env.Logf("(a) register: %d sessions, %d at a time", cfg.users, cfg.regConcurrency)
		var serr error
		res.Register, clients, serr = scenarioRegister(ctx, env, c, k, b, users)
		if serr != nil {
			fail("register", serr)
		}
	}
	if ctx.Err() == nil && c.Alive() && len(clients) > 0 {
		n := min(cfg.callClients, len(clients))
		awaitQuiet(ctx, env, env.pids, "calls")
		env.Logf("(b) calls: %d clients, %v warm-up, %v window, callee %s", n, cfg.callWarmup, cfg.callDuration, cfg.callee)
		var serr error
		res.Calls, serr = scenarioCalls(ctx, env, c, s, b, clients[:n])
		if serr != nil {
			fail("calls", serr)
		}
	}
	// Closing the sessions unregisters them: rtcgate's last work, bounded
	// by its close timeout per session.
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(cl.close)
	}
	wg.Wait()
	res.DroppedFrames = droppedFrames.Load()

	if ctx.Err() != nil {
		env.Logf("interrupted")
		res.Errors = append(res.Errors, "interrupted")
		code = 1
	}
	if err := c.Stop(); err != nil {
		fail("rtcgate", fmt.Errorf("%v (died during the run)", err))
	}
	var sample []string
	res.RtcgateWarns, sample = logProblems(c.LogPath(), 6)
	for _, l := range sample {
		res.Warnings = append(res.Warnings, "rtcgate logged: "+l)
	}
	if code != 0 {
		env.Logf("rtcgate log %s, last lines:\n%s", c.LogPath(), childproc.Indent(childproc.LogTail(c.LogPath(), 15)))
	}
	report(stdout, env, started, res)
	return code
}

// Target (the issue's).
const targetCallsPerS = 200

// report prints the table and the JSON line.
func report(w io.Writer, env *runEnv, started time.Time, res *results) {
	cfg := env.cfg
	res.Warnings = append(res.Warnings, warnings(res)...)
	benchrun.Report(w, "sipbench", started,
		fmt.Sprintf("users=%d  call-clients=%d  kamailio-children=%d  hooks=all", cfg.users, cfg.callClients, cfg.kamChildren),
		tableLines(cfg, res), res.Notes,
		map[string]any{"config": jsonConfig(cfg), "results": res, "goals": goals(res)})
}

func jsonConfig(cfg *config) map[string]any {
	return map[string]any{
		"users": cfg.users, "reg_concurrency": cfg.regConcurrency,
		"call_clients": cfg.callClients, "call_warmup_s": cfg.callWarmup.Seconds(), "call_duration_s": cfg.callDuration.Seconds(),
		"call_rate": cfg.callRate, "call_timeout_s": cfg.callTimeout.Seconds(), "max_calls": cfg.maxCalls,
		"kamailio_children": cfg.kamChildren, "rtcgate_log_level": cfg.logLevel,
	}
}

// callsMet is the target: the rate, with no call failing in the window.
func callsMet(r *callResult) bool {
	return r.PerS >= targetCallsPerS && r.Failed == 0
}

func goals(res *results) map[string]any {
	g := map[string]any{}
	if r := res.Calls; r != nil && r.WindowS > 0 {
		g["calls_per_s"] = map[string]any{"target_min": targetCallsPerS, "value": r.PerS, "failed": r.Failed,
			"met": callsMet(r), "bound_by": r.BoundBy}
	}
	return g
}

// warnings flag figures to read with care.
func warnings(res *results) []string {
	var out []string
	flag := func(name string, w cpuFigures) {
		// At least 0.1 s: below, a short window's share is the /proc/stat
		// tick's granularity, not a disturbance.
		if d := proc.Disturbance(w.OtherS, w.WindowS, w.OtherTop); d != "" && w.OtherS >= 0.1 {
			out = append(out, fmt.Sprintf("(%s) %s: the figures are disturbed", name, d))
		}
	}
	if r := res.Register; r != nil {
		// The processes' CPU is exact (schedstat) however short the
		// window; only the box's busy share counts 10 ms ticks.
		flag("register", r.CPU)
	}
	if r := res.Calls; r != nil {
		flag("calls", r.CPU)
		if r.CountBound {
			out = append(out, "(calls) -max-calls reached: the window was cut short")
		}
	}
	if res.DroppedFrames > 0 {
		out = append(out, fmt.Sprintf("%d frames dropped by the clients' readers (no room): a wait may have missed its frame", res.DroppedFrames))
	}
	return out
}
