// Command ngbench measures rtcgate's ng control protocol and media relay side
// by side with the anchor, Debian's rtpengine-daemon in userspace mode, in
// one run, on the same machine, with the same client.
//
// Targets: rtpengine (userspace, --table=-1), rtcgate (userspace:
// kernel-forwarding off; relay-io at its default, epoll) and
// rtcgate-kernel (kernel-forwarding required: the eBPF kernel path);
// rtcgate-uring (userspace, relay-io io_uring) on request. Each is
// started as a child process on loopback with its own ng port and media
// port range, measured alone (the targets run one after the other, never
// together), and stopped. Two scenarios:
//
//	(a) signalling: offer+answer+delete cycles from -workers concurrent
//	    workers for -duration-a: cycles/s, request latency, and relay CPU
//	    time per cycle from /proc/<pid>/stat.
//	(c) WebRTC ⇄ plain RTP (-scenarios a,b,c): -calls-c calls, each a
//	    browser (ICE, DTLS client, SRTP: webrtcbridge.Transport, pion) and
//	    a plain RTP party, with the flags Kamailio gives rtpengine for
//	    WebRTC; RTP both ways at -rate for -duration-b: loss, relay CPU
//	    seconds per million packets, and call setup (offer → first packet
//	    decrypted by the browser) p50/p95/p99 with its phases (answer, ICE,
//	    DTLS). Calls arrive at -cps-c per second (0: a burst). See webrtc.go.
//	(b) media: for each count in -calls, that many calls with RTP both
//	    ways at -rate packets/s per direction for -duration-b: loss,
//	    latency, and CPU seconds per million relayed packets, the relay's
//	    own and the whole system's.
//
// Before the targets, (b) runs once per count against a plain sink: the
// generator's packets go straight to its own receiving sockets. That
// baseline is what the generator and the loopback cost without any relay;
// the "added" figures of each target are its own minus the baseline's.
//
// It prints a table with the ratios to rtpengine and a final line of JSON
// with every figure. It exits non-zero if a target could not be measured.
// Run it with `make bench` or `go run ./bench/ngbench`; the anchor comes
// from scripts/bench-deps.sh. The default run is short (one count, short
// windows); the full run is
//
//	go run ./bench/ngbench -calls 500,2000 -duration-a 10s -duration-b 30s
//
// Reading the figures:
//   - Relay CPU is the relay's utime+stime over the measured window. On
//     loopback the kernel's receive path runs in the sender's context, so
//     each side's CPU includes delivering its packets into the other's
//     sockets; a kernel-forwarded packet costs the relay nothing at all,
//     its work runs in the generator's send.
//   - System CPU is the whole box's busy time from /proc/stat over the
//     window, less what other processes alive at both ends of the window
//     used (not the kernel's softirq threads, which do the relays' work);
//     "added" subtracts the sink baseline. Processes that started and ended
//     inside the window (someone's build) cannot be told apart and inflate
//     it: the warnings say when.
//   - The (b) generator is two goroutines, one per direction, on a few
//     plain non-blocking UDP sockets per side that all calls share (see
//     rtpload.go): each millisecond it sends what is due with sendmmsg, 32
//     packets per system call, and reads the other side's sockets empty with
//     recvmmsg; nothing waits on a socket, so arrivals cost no wake-up.
//   - Latency in (b) is the kernel's receive time of each packet
//     (SO_TIMESTAMPNS: when it entered the loopback's receive path after
//     the relay) minus the send time the generator wrote into it just
//     before the sendmmsg that carried it. For a userspace relay that is
//     all the relay adds, up to its own send; for the kernel path the
//     program runs right after that point, in the same softirq, and its
//     time per packet is the eBPF rows. The generator's own scheduling
//     (when it gets round to reading) is not in it: the "to the generator's
//     read" rows have it. "Added" latency subtracts the sink's.
//   - On a shared box, other processes' CPU during each window is reported
//     and flagged; -wait-quiet waits for a calm box before each target.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
)

// config is the parsed command line.
type config struct {
	targets      []string
	scenarios    string
	durationA    time.Duration
	warmupA      time.Duration
	durationB    time.Duration
	warmupB      time.Duration
	drain        time.Duration
	workers      int
	callCounts   []int // scenario (b) runs once per count
	calls        int   // the largest count: it sizes the port ranges
	callsC       int   // scenario (c)
	cpsC         float64
	rate         int
	rtpengine    string
	rtcgateSrc   string
	keepLogs     bool
	portBase     int
	ngSockets    int
	mediaSockets int
	ngTimeout    time.Duration
	ngRetries    int
	readyTimeout time.Duration
	cpuProfile   string
	waitQuiet    time.Duration
	rounds       int
	bpfStats     bool
}

var knownTargets = []string{"rtpengine", "rtcgate", "rtcgate-kernel", "rtcgate-uring"}

// sinkName is the baseline's column: (b) with no relay at all.
const sinkName = "sink"

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("ngbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targets := fs.String("targets", "rtpengine,rtcgate,rtcgate-kernel", "comma-separated targets to measure, in this order (rtpengine, rtcgate, rtcgate-kernel, rtcgate-uring)")
	fs.StringVar(&cfg.scenarios, "scenarios", "a,b", "scenarios to run: a (signalling), b (media), c (WebRTC ⇄ plain RTP)")
	fs.DurationVar(&cfg.durationA, "duration-a", 5*time.Second, "measured time of scenario (a)")
	fs.DurationVar(&cfg.warmupA, "warmup-a", time.Second, "unmeasured warm-up before scenario (a)")
	fs.DurationVar(&cfg.durationB, "duration-b", 10*time.Second, "measured time of scenario (b), per call count")
	fs.DurationVar(&cfg.warmupB, "warmup-b", 2*time.Second, "unmeasured media warm-up before scenario (b)")
	fs.DurationVar(&cfg.drain, "drain", time.Second, "time allowed after the last packet for packets in flight")
	fs.IntVar(&cfg.workers, "workers", 32, "concurrent ng workers (scenario (a), and call setup in (b))")
	callList := fs.String("calls", "500", "comma-separated call counts for scenario (b), e.g. 500,2000")
	fs.IntVar(&cfg.callsC, "calls-c", 200, "WebRTC ⇄ plain calls in scenario (c)")
	fs.Float64Var(&cfg.cpsC, "cps-c", 50, "calls set up per second in scenario (c), the same for every target; 0: as fast as -workers go (a burst)")
	fs.IntVar(&cfg.rate, "rate", 50, "RTP packets/s per direction per call in scenario (b)")
	fs.StringVar(&cfg.rtpengine, "rtpengine", "/usr/bin/rtpengine", "rtpengine binary")
	fs.StringVar(&cfg.rtcgateSrc, "rtcgate-src", "./cmd/rtcgate", "rtcgate package to build")
	fs.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep the targets' logs (and the rtcgate binary) after the run")
	fs.IntVar(&cfg.portBase, "port-base", 20000, "first relay media port; each target gets its own range above it")
	fs.IntVar(&cfg.ngSockets, "ng-sockets", 4, "UDP sockets the ng client spreads requests over")
	fs.IntVar(&cfg.mediaSockets, "media-sockets", 4, "UDP sockets per side (caller, callee) for RTP in scenario (b)")
	fs.DurationVar(&cfg.ngTimeout, "ng-timeout", 500*time.Millisecond, "ng retransmission timeout")
	fs.IntVar(&cfg.ngRetries, "ng-retries", 3, "ng retransmissions before a request fails")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", 10*time.Second, "how long a target may take to answer ping")
	fs.DurationVar(&cfg.waitQuiet, "wait-quiet", 0, "before each target, wait up to this long for other processes to leave the CPUs idle (shared boxes)")
	fs.BoolVar(&cfg.bpfStats, "bpf-stats", true, "time the eBPF program (kernel.bpf_stats; it adds some 50-70 ns to each run of every eBPF program while on)")
	fs.IntVar(&cfg.rounds, "rounds", 1, "measure everything this many times, the targets in turn each round, and report each target's median round (shared boxes)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to this file (to find what the load costs)")
	if err := benchrun.Parse(fs, args); err != nil {
		return nil, err
	}
	for _, t := range strings.Split(*targets, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !slices.Contains(knownTargets, t) {
			return nil, fmt.Errorf("-targets: unknown target %q (want %s)", t, strings.Join(knownTargets, ","))
		}
		if slices.Contains(cfg.targets, t) {
			return nil, fmt.Errorf("-targets: %q given twice", t)
		}
		cfg.targets = append(cfg.targets, t)
	}
	for _, s := range strings.Split(*callList, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 20000 {
			return nil, fmt.Errorf("-calls: %q: want counts in 1..20000", s)
		}
		cfg.callCounts = append(cfg.callCounts, n)
		cfg.calls = max(cfg.calls, n)
	}
	if len(cfg.callCounts) == 0 {
		return nil, fmt.Errorf("-calls: none given")
	}
	for _, s := range strings.Split(cfg.scenarios, ",") {
		if s = strings.TrimSpace(s); s != "a" && s != "b" && s != "c" && s != "" {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (want a, b, c)", s)
		}
	}
	switch {
	case len(cfg.targets) == 0:
		return nil, fmt.Errorf("-targets: none given")
	case cfg.durationA <= 0 || cfg.durationB <= 0 || cfg.warmupA < 0 || cfg.warmupB < 0 || cfg.drain < 0:
		return nil, fmt.Errorf("durations must be positive")
	case cfg.durationA > time.Hour || cfg.durationB > time.Hour:
		return nil, fmt.Errorf("durations are capped at 1h")
	case cfg.workers < 1 || cfg.workers > 4096:
		return nil, fmt.Errorf("-workers must be in 1..4096")
	case cfg.callsC < 1 || cfg.callsC > 2000:
		return nil, fmt.Errorf("-calls-c must be in 1..2000")
	case cfg.cpsC < 0 || cfg.cpsC > 10000:
		return nil, fmt.Errorf("-cps-c must be in 0..10000")
	case cfg.rate < 1 || cfg.rate > 1000:
		return nil, fmt.Errorf("-rate must be in 1..1000")
	case cfg.ngSockets < 1 || cfg.ngSockets > 64 || cfg.mediaSockets < 1 || cfg.mediaSockets > 64:
		return nil, fmt.Errorf("-ng-sockets and -media-sockets must be in 1..64")
	case cfg.ngTimeout <= 0 || cfg.ngRetries < 0 || cfg.ngRetries > 10:
		return nil, fmt.Errorf("-ng-timeout must be positive and -ng-retries in 0..10")
	case cfg.rounds < 1 || cfg.rounds > 20:
		return nil, fmt.Errorf("-rounds must be in 1..20")
	}
	if cfg.portBase < 1024 || cfg.portBase+len(cfg.targets)*cfg.portSpan() > 65536 {
		return nil, fmt.Errorf("-port-base %d: the ranges [%d, %d) do not fit in 1024..65535",
			cfg.portBase, cfg.portBase, cfg.portBase+len(cfg.targets)*cfg.portSpan())
	}
	return cfg, nil
}

func (cfg *config) has(scenario string) bool {
	return slices.Contains(strings.Split(strings.ReplaceAll(cfg.scenarios, " ", ""), ","), scenario)
}

// portSpan is the size of each target's media port range: a call takes an
// RTP and an RTCP port per side (4), with room to spare for ports a relay
// keeps in quarantine or (a) calls still being torn down.
func (cfg *config) portSpan() int {
	return max(4000, 6*cfg.calls, 8*cfg.callsC)
}

// portRange is target i's media port range; the ranges never overlap, so
// a relay that fails to release ports cannot disturb the next one.
func (cfg *config) portRange(i int) (int, int) {
	lo := cfg.portBase + i*cfg.portSpan()
	return lo, lo + cfg.portSpan() - 1
}

// targetResult is everything measured for one target.
type targetResult struct {
	Name    string           `json:"name"`
	OK      bool             `json:"ok"`
	Errors  []string         `json:"errors,omitempty"`
	LogPath string           `json:"log,omitempty"`
	A       *aResult         `json:"a,omitempty"`
	B       map[int]*bResult `json:"b,omitempty"` // by call count
	C       *cResult         `json:"c,omitempty"`
}

func (r *targetResult) fail(format string, args ...any) {
	r.OK = false
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

func main() { benchrun.Main("ngbench", parseFlags, profiled) }

// profiled is run, with the generator's own CPU profile when -cpuprofile
// asks for it.
func profiled(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	if cfg.cpuProfile == "" {
		return run(ctx, cfg, stdout, stderr)
	}
	f, err := os.Create(cfg.cpuProfile)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ngbench: -cpuprofile:", err)
		return 2
	}
	defer pprof.StopCPUProfile()
	return run(ctx, cfg, stdout, stderr)
}

// run measures every target and prints the report; it returns the exit
// status.
func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	logDir, err := os.MkdirTemp("", "ngbench-")
	if err != nil {
		fmt.Fprintln(stderr, "ngbench:", err)
		return 1
	}
	started := time.Now()
	if cfg.bpfStats && cfg.has("b") && slices.Contains(cfg.targets, "rtcgate-kernel") {
		if c := enableBPFStats(); c != nil {
			defer c.Close()
		} else {
			fmt.Fprintln(stderr, "ngbench: cannot enable kernel.bpf_stats: no eBPF program run times")
		}
	}
	var rounds [][]*targetResult
	failed := false
	for round := 1; round <= cfg.rounds && ctx.Err() == nil; round++ {
		if cfg.rounds > 1 {
			fmt.Fprintf(stderr, "ngbench: round %d of %d\n", round, cfg.rounds)
		}
		results, ok := runRound(ctx, cfg, logDir, stderr)
		addBaseline(results)
		rounds = append(rounds, results)
		failed = failed || !ok
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "ngbench: interrupted")
		failed = true
	}
	report(stdout, cfg, started, medianRounds(rounds))
	if cfg.keepLogs || failed {
		fmt.Fprintf(stderr, "ngbench: logs kept in %s\n", logDir)
	} else {
		_ = os.RemoveAll(logDir)
	}
	if failed {
		return 1
	}
	return 0
}

// runRound measures the sink (for (b)) and every target once, in turn.
func runRound(ctx context.Context, cfg *config, logDir string, stderr io.Writer) ([]*targetResult, bool) {
	var results []*targetResult
	failed := false
	if cfg.has("b") {
		r := runSink(ctx, cfg, stderr)
		results = append(results, r)
		failed = failed || !r.OK
	}
	for _, name := range cfg.targets {
		if ctx.Err() != nil {
			break
		}
		if cfg.waitQuiet > 0 {
			if busy, err := waitQuiet(ctx, cfg.waitQuiet); err != nil {
				fmt.Fprintf(stderr, "ngbench: %s: box still busy after %v (other processes use %.2f cores); measuring anyway\n",
					name, cfg.waitQuiet, busy)
			}
		}
		i := slices.Index(knownTargets, name)
		r := runTarget(ctx, cfg, name, i, logDir, stderr)
		results = append(results, r)
		if !r.OK {
			failed = true
		}
	}
	return results, !failed
}

// medianRounds keeps, for each target, the round with the median figure:
// (a) by cycles per CPU-second, (b) by added CPU per million packets, each
// call count apart, (c) by setup p99; B.Rounds, C.Rounds and the range
// fields tell how far the rounds spread. A target that failed in any round keeps its errors.
func medianRounds(rounds [][]*targetResult) []*targetResult {
	if len(rounds) == 1 {
		return rounds[0]
	}
	var out []*targetResult
	for i, first := range rounds[0] {
		m := &targetResult{Name: first.Name, OK: true, LogPath: first.LogPath}
		var as []*aResult
		var cs []*cResult
		bs := map[int][]*bResult{}
		for _, round := range rounds {
			if i >= len(round) {
				continue
			}
			r := round[i]
			m.OK = m.OK && r.OK
			m.Errors = append(m.Errors, r.Errors...)
			if r.A != nil {
				as = append(as, r.A)
			}
			for calls, b := range r.B {
				bs[calls] = append(bs[calls], b)
			}
			if r.C != nil {
				cs = append(cs, r.C)
			}
		}
		if len(cs) > 0 {
			slices.SortFunc(cs, func(x, y *cResult) int { return cmp.Compare(x.SetupP99Ms, y.SetupP99Ms) })
			med := *cs[len(cs)/2]
			med.Rounds, med.SetupP99Min, med.SetupP99Max = len(cs), cs[0].SetupP99Ms, cs[len(cs)-1].SetupP99Ms
			m.C = &med
		}
		if len(as) > 0 {
			slices.SortFunc(as, func(x, y *aResult) int { return cmp.Compare(x.CyclesPerCPUS, y.CyclesPerCPUS) })
			m.A = as[len(as)/2]
		}
		for calls, list := range bs {
			slices.SortFunc(list, func(x, y *bResult) int { return cmp.Compare(x.AddedCPUSPer1M, y.AddedCPUSPer1M) })
			med := *list[len(list)/2]
			med.Rounds, med.AddedMin, med.AddedMax = len(list), list[0].AddedCPUSPer1M, list[len(list)-1].AddedCPUSPer1M
			if m.B == nil {
				m.B = map[int]*bResult{}
			}
			m.B[calls] = &med
		}
		out = append(out, m)
	}
	return out
}

// runTarget starts one target, runs the scenarios against it and stops it.
// Any failure is recorded in the result and shown with the log's tail; it
// never aborts the whole run, so the other target is still measured.
func runTarget(ctx context.Context, cfg *config, name string, idx int, logDir string, stderr io.Writer) *targetResult {
	r := &targetResult{Name: name, OK: true}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "ngbench: %s: "+format+"\n", append([]any{name}, args...)...)
	}
	port, err := freeUDPPort()
	if err != nil {
		r.fail("no free ng port: %v", err)
		return r
	}
	t := &target{name: name, ngAddr: fmt.Sprintf("127.0.0.1:%d", port), logPath: filepath.Join(logDir, name+".log")}
	t.portMin, t.portMax = cfg.portRange(idx)
	r.LogPath = t.logPath
	showLog := func() {
		logf("log %s, last lines:\n%s", t.logPath, childproc.Indent(childproc.LogTail(t.logPath, 30)))
	}

	var bin string
	var args []string
	switch name {
	case "rtpengine":
		bin, args = cfg.rtpengine, rtpengineArgs(t.ngAddr, t.portMin, t.portMax)
	case "rtcgate", "rtcgate-kernel", "rtcgate-uring":
		logf("building %s", cfg.rtcgateSrc)
		bin, err = buildRtcgate(ctx, cfg.rtcgateSrc, logDir, t.logPath)
		if err != nil {
			r.fail("%v", err)
			logf("FAILED: %v", err)
			showLog()
			return r
		}
		mode := "off"
		if name == "rtcgate-kernel" {
			mode = "required"
		}
		args = rtcgateArgs(t.ngAddr, t.portMin, t.portMax, mode)
		if name == "rtcgate-uring" { // userspace over io_uring, not the default's epoll
			args = append(args, "--relay-io", "io_uring")
		}
	}
	if err := startTarget(t, bin, args); err != nil {
		r.fail("%v", err)
		logf("FAILED: %v", err)
		return r
	}
	defer func() {
		if err := t.Stop(); err != nil {
			r.fail("%v", err)
			logf("FAILED: %v (it died during the run)", err)
			showLog()
		}
	}()
	logf("pid %d, ng %s, media ports %d-%d", t.Pid(), t.ngAddr, t.portMin, t.portMax)

	c, err := newNGClient(t.ngAddr, cfg.ngSockets, cfg.ngTimeout, cfg.ngRetries)
	if err != nil {
		r.fail("ng client: %v", err)
		return r
	}
	defer c.Close()
	if err := t.waitReady(ctx, c, cfg.readyTimeout); err != nil {
		r.fail("not ready: %v", err)
		logf("FAILED: not ready: %v", err)
		showLog()
		t.MarkReported() // its death is reported now, not again by Stop
		return r
	}

	if cfg.has("a") {
		logf("(a) signalling: %d workers, warm-up %v, measuring %v", cfg.workers, cfg.warmupA, cfg.durationA)
		a, err := scenarioA(ctx, t, c, cfg)
		r.A = a
		if err != nil {
			r.fail("(a): %v", err)
			logf("(a) FAILED: %v", err)
			if !t.Alive() {
				return r
			}
		} else {
			logf("(a) %.0f cycles/s, %.3f CPU-ms/cycle, p99 %.2f ms, %d errors",
				a.CyclesPerS, a.CPUMsPerCycle, a.P99Ms, a.Errors)
		}
	}
	for _, calls := range cfg.callCounts {
		if !cfg.has("b") || ctx.Err() != nil || !t.Alive() {
			break
		}
		logf("(b) media: %d calls × 2 × %d/s, warm-up %v, measuring %v", calls, cfg.rate, cfg.warmupB, cfg.durationB)
		b, err := scenarioB(ctx, t, c, cfg, calls)
		if r.B == nil {
			r.B = map[int]*bResult{}
		}
		r.B[calls] = b
		if err != nil {
			r.fail("(b) %d calls: %v", calls, err)
			logf("(b) FAILED: %v", err)
		} else {
			logf("(b) %d/%d packets, loss %.3f%%, relay %.2f / system %.2f CPU-s per 1M packets, p99 %.2f ms",
				b.Received, b.Sent, b.LossPct, b.CPUSPer1M, b.SysCPUSPer1M, b.P99Ms)
		}
	}
	if cfg.has("c") && ctx.Err() == nil && t.Alive() {
		logf("(c) WebRTC ⇄ plain: %d calls × 2 × %d/s, measuring %v", cfg.callsC, cfg.rate, cfg.durationB)
		c3, err := scenarioC(ctx, t, c, cfg)
		r.C = c3
		if err != nil {
			r.fail("(c): %v", err)
			logf("(c) FAILED: %v", err)
		} else {
			logf("(c) %d/%d packets in the window, loss %.3f%%, %.2f CPU-s per 1M packets, setup p99 %.1f ms",
				c3.RecvWin, c3.SentWin, c3.LossPct, c3.CPUSPer1M, c3.SetupP99Ms)
		}
	}
	return r
}

// runSink measures scenario (b) with no relay, once per call count: the
// baseline of the added figures.
func runSink(ctx context.Context, cfg *config, stderr io.Writer) *targetResult {
	r := &targetResult{Name: sinkName, OK: true, B: map[int]*bResult{}}
	for _, calls := range cfg.callCounts {
		if ctx.Err() != nil {
			break
		}
		if cfg.waitQuiet > 0 {
			if busy, err := waitQuiet(ctx, cfg.waitQuiet); err != nil {
				fmt.Fprintf(stderr, "ngbench: sink: box still busy after %v (other processes use %.2f cores); measuring anyway\n", cfg.waitQuiet, busy)
			}
		}
		fmt.Fprintf(stderr, "ngbench: sink: (b) baseline without relay: %d calls × 2 × %d/s, measuring %v\n", calls, cfg.rate, cfg.durationB)
		b, err := scenarioB(ctx, nil, nil, cfg, calls)
		r.B[calls] = b
		if err != nil {
			r.fail("(b) %d calls: %v", calls, err)
			fmt.Fprintf(stderr, "ngbench: sink: (b) FAILED: %v\n", err)
		}
	}
	return r
}

// report prints the table and the JSON line.
func report(w io.Writer, cfg *config, started time.Time, results []*targetResult) {
	byName := map[string]*targetResult{}
	for _, r := range results {
		byName[r.Name] = r
	}
	benchrun.Header(w, "ngbench", started, fmt.Sprintf("Da=%v Db=%v W=%d  C=%v R=%d/s %dB",
		cfg.durationA, cfg.durationB, cfg.workers, cfg.callCounts, cfg.rate, rtpPacketLen))
	for _, line := range table(cfg, byName) {
		fmt.Fprintln(w, line)
	}
	for _, r := range results {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "%s: %s\n", r.Name, e)
		}
		for _, warn := range warnings(r) {
			fmt.Fprintf(w, "%s: warning: %s\n", r.Name, warn)
		}
	}
	benchrun.JSON(w, started, map[string]any{
		"config":  jsonConfig(cfg),
		"targets": byName,
		"ratios":  ratios(cfg, byName),
		"goals":   goals(cfg, byName),
	})
}

// warnings flags figures that are probably not the relay's own doing: other
// load on the box, or a generator that could not keep its schedule.
func warnings(r *targetResult) []string {
	var out []string
	common := func(sc string, other, skewMs, durS float64, top string) {
		if d := proc.Disturbance(other, durS, top); d != "" {
			out = append(out, fmt.Sprintf("(%s) %s: figures are disturbed", sc, d))
		}
		if skewMs > 0.02*1000*durS {
			out = append(out, fmt.Sprintf("(%s) the CPU window closed %.0f ms late (box overloaded): CPU figures are inflated", sc, skewMs))
		}
	}
	if a := r.A; a != nil {
		common("a", a.OtherCPUS, a.SnapSkewMs, a.DurationS, a.OtherTop)
	}
	for _, calls := range slices.Sorted(maps.Keys(r.B)) {
		b := r.B[calls]
		sc := fmt.Sprintf("b %d", calls)
		common(sc, b.OtherCPUS, b.SnapSkewMs, b.DurationS, b.OtherTop)
		if b.Sent > 0 && float64(b.LateSends) > 0.01*float64(b.Sent) {
			out = append(out, fmt.Sprintf("(%s) %d packets (%.1f%%) left the generator more than 5 ms late (max %.1f ms): latency and loss include generator stalls",
				sc, b.LateSends, 100*float64(b.LateSends)/float64(b.Sent), b.MaxSendLagMs))
		}
		if b.LoOtherPrograms > 0 {
			out = append(out, fmt.Sprintf("(%s) %d eBPF program(s) of other processes sat on the loopback's ingress and ran on every packet: CPU figures include them", sc, b.LoOtherPrograms))
		}
		if b.ExitedCPUS >= 0.1*b.DurationS {
			out = append(out, fmt.Sprintf("(%s) %.1f CPU-s went to processes that came and went inside the window: the system CPU figures include them",
				sc, b.ExitedCPUS))
		}
	}
	return out
}

func jsonConfig(cfg *config) map[string]any {
	return map[string]any{
		"targets": cfg.targets, "scenarios": cfg.scenarios,
		"duration_a_s": cfg.durationA.Seconds(), "warmup_a_s": cfg.warmupA.Seconds(),
		"duration_b_s": cfg.durationB.Seconds(), "warmup_b_s": cfg.warmupB.Seconds(),
		"workers": cfg.workers, "calls": cfg.callCounts, "rate": cfg.rate, "packet_bytes": rtpPacketLen,
		"ng_sockets": cfg.ngSockets, "media_sockets": cfg.mediaSockets,
	}
}
