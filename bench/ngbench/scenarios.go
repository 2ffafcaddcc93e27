package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
)

// maxCyclesPerWorker bounds scenario (a) by count as well as by time.
const maxCyclesPerWorker = 10_000_000

// aResult is scenario (a), signalling, for one target.
type aResult struct {
	DurationS     float64 `json:"duration_s"`
	Workers       int     `json:"workers"`
	Cycles        uint64  `json:"cycles"`
	CyclesPerS    float64 `json:"cycles_per_s"`
	Errors        uint64  `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	Retransmits   uint64  `json:"retransmits"`
	Requests      uint64  `json:"requests"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	RelayCPUS     float64 `json:"relay_cpu_s"`
	CyclesPerCPUS float64 `json:"cycles_per_cpu_s"`
	CPUMsPerCycle float64 `json:"cpu_ms_per_cycle"`
	GenCPUS       float64 `json:"gen_cpu_s"`
	HostBusyPct   float64 `json:"host_busy_pct"`
	OtherCPUS     float64 `json:"other_cpu_s"`
	SnapSkewMs    float64 `json:"cpu_window_skew_ms"`
	OtherTop      string  `json:"other_top,omitempty"`
}

type aWorkerStats struct {
	cycles, errors, requests uint64
	firstErr                 error
	lat                      hist.Histogram
}

// scenarioA runs offer+answer+delete cycles, each with a fresh call-id, from
// `workers` goroutines: a warm-up, then the measured window. A cycle counts
// when it completes inside the window; latencies are those of requests of
// cycles that started inside it.
func scenarioA(ctx context.Context, t *target, c *ngClient, cfg *config) (*aResult, error) {
	warm, dur := int64(cfg.warmupA), int64(cfg.durationA)
	ws := mono() + warm
	we := ws + dur
	stats := make([]aWorkerStats, cfg.workers)
	var wg sync.WaitGroup
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			aWorker(ctx, c, w, ws, we, &stats[w])
		}()
	}
	sleepUntilCtx(ctx, ws)
	s0 := snapCPU(t.Pid(), true)
	retr1 := c.retransmits.Load()
	sleepUntilCtx(ctx, we)
	s1 := snapCPU(t.Pid(), true)
	retr2 := c.retransmits.Load()
	wg.Wait()
	if s0.err != nil || s1.err != nil {
		return nil, fmt.Errorf("reading CPU counters: %v", errors.Join(s0.err, s1.err))
	}

	r := &aResult{DurationS: time.Duration(dur).Seconds(), Workers: cfg.workers, Retransmits: retr2 - retr1}
	var lat hist.Histogram
	var firstErr error
	for i := range stats {
		s := &stats[i]
		r.Cycles += s.cycles
		r.Errors += s.errors
		r.Requests += s.requests
		lat.Merge(&s.lat)
		if firstErr == nil {
			firstErr = s.firstErr
		}
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	r.CyclesPerS = float64(r.Cycles) / r.DurationS
	r.P50Ms, r.P99Ms, r.MaxMs = ms(lat.Quantile(0.50)), ms(lat.Quantile(0.99)), ms(lat.Max())
	r.RelayCPUS = s1.relay - s0.relay
	r.GenCPUS = s1.self - s0.self
	r.HostBusyPct = proc.BusyPercent(s0.host, s1.host)
	r.OtherCPUS = otherCPUSeconds(s0, s1)
	r.OtherTop = topOthers(s0, s1, t.Pid(), 3)
	r.SnapSkewMs = ms(snapSkew(s0, s1, time.Duration(dur)))
	if r.RelayCPUS > 0 {
		r.CyclesPerCPUS = float64(r.Cycles) / r.RelayCPUS
	}
	if r.Cycles > 0 {
		r.CPUMsPerCycle = 1000 * r.RelayCPUS / float64(r.Cycles)
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if r.Cycles == 0 {
		return r, fmt.Errorf("no cycle completed (first error: %v)", firstErr)
	}
	return r, nil
}

func aWorker(ctx context.Context, c *ngClient, w int, ws, we int64, st *aWorkerStats) {
	// Media ports in these SDPs are never used: no RTP flows in (a).
	callerSDP := makeSDP(uint64(2*w+1), 30000+2*w)
	calleeSDP := makeSDP(uint64(2*w+2), 31000+2*w)
	prefix := "ngbench-a-" + c.prefix + strconv.Itoa(w) + "-"
	fail := func(err error, inWin bool) {
		if inWin {
			st.errors++
			if st.firstErr == nil {
				st.firstErr = err
			}
		}
	}
	for i := 0; i < maxCyclesPerWorker && ctx.Err() == nil; i++ {
		start := mono()
		if start >= we {
			return
		}
		inWin := start >= ws
		callID := prefix + strconv.Itoa(i)
		ft, tt := "ft"+strconv.Itoa(i), "tt"+strconv.Itoa(i)
		rec := func(lat time.Duration) {
			if inWin {
				st.requests++
				st.lat.Record(lat)
			}
		}
		sdp, lat, err := c.offer(ctx, callID, ft, callerSDP)
		rec(lat)
		if err == nil {
			_, err = sdpMediaAddr(sdp)
			if err != nil {
				err = fmt.Errorf("offer reply: %w", err)
			}
		}
		if err != nil {
			fail(err, inWin)
			_, _ = c.del(ctx, callID, ft) // best effort: do not leak the call
			continue
		}
		sdp, lat, err = c.answer(ctx, callID, ft, tt, calleeSDP)
		rec(lat)
		if err == nil {
			if _, err = sdpMediaAddr(sdp); err != nil {
				err = fmt.Errorf("answer reply: %w", err)
			}
		}
		if err != nil {
			fail(err, inWin)
			_, _ = c.del(ctx, callID, ft)
			continue
		}
		lat, err = c.del(ctx, callID, ft)
		rec(lat)
		if err != nil {
			fail(err, inWin)
			continue
		}
		if end := mono(); end >= ws && end < we {
			st.cycles++
		}
	}
}

// bResult is scenario (b), media relay, for one target.
type bResult struct {
	Calls           int     `json:"calls"`
	SetupErrors     int     `json:"setup_errors"`
	FirstError      string  `json:"first_error,omitempty"`
	SetupS          float64 `json:"setup_s"`
	Rate            int     `json:"rate_per_stream"`
	OfferedPPS      float64 `json:"offered_pps"`
	DurationS       float64 `json:"duration_s"`
	Sent            uint64  `json:"sent"`
	Received        uint64  `json:"received"`
	Lost            int64   `json:"lost"`
	LossPct         float64 `json:"loss_pct"`
	SentTotal       uint64  `json:"sent_total"`
	ReceivedTotal   uint64  `json:"received_total"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	ReadP50Ms       float64 `json:"read_p50_ms"`           // to the generator's read, not the kernel's receive time
	ReadP99Ms       float64 `json:"read_p99_ms"`           //
	UserStamps      uint64  `json:"user_stamps,omitempty"` // packets timed at the read: no kernel receive time
	RelayCPUS       float64 `json:"relay_cpu_s"`
	CPUSPer1M       float64 `json:"cpu_s_per_1m_packets"`
	HostCPUS        float64 `json:"host_cpu_s"`          // the whole box's busy time (/proc/stat)
	SysCPUS         float64 `json:"system_cpu_s"`        // less other processes alive through the window
	SysCPUSPer1M    float64 `json:"system_cpu_s_per_1m"` // per million packets received
	ExitedCPUS      float64 `json:"exited_cpu_s"`        // of processes that came and went inside the window
	OwnCPUS         float64 `json:"own_cpu_s"`           // relay + generator + ksoftirqd
	OwnCPUSPer1M    float64 `json:"own_cpu_s_per_1m"`
	AddedCPUSPer1M  float64 `json:"added_cpu_s_per_1m"`        // own, less the sink's
	AddedSysPer1M   float64 `json:"added_system_cpu_s_per_1m"` // system, less the sink's
	Rounds          int     `json:"rounds,omitempty"`          // with -rounds: this is the median round of these
	AddedMin        float64 `json:"added_cpu_s_per_1m_min,omitempty"`
	AddedMax        float64 `json:"added_cpu_s_per_1m_max,omitempty"`
	AddedP50Ms      float64 `json:"added_p50_ms"`
	AddedP99Ms      float64 `json:"added_p99_ms"`
	AddedReadP99Ms  float64 `json:"added_read_p99_ms"`
	BPFRunS         float64 `json:"bpf_run_s,omitempty"` // the eBPF program's run time (kernel.bpf_stats)
	BPFRuns         uint64  `json:"bpf_runs,omitempty"`
	BPFPer1M        float64 `json:"bpf_cpu_s_per_1m,omitempty"`
	LoOtherPrograms int     `json:"lo_other_programs"` // other processes' eBPF programs on lo ingress during the window (-1: unknown)
	GenCPUS         float64 `json:"gen_cpu_s"`
	HostBusyPct     float64 `json:"host_busy_pct"`
	OtherCPUS       float64 `json:"other_cpu_s"`
	SnapSkewMs      float64 `json:"cpu_window_skew_ms"`
	OtherTop        string  `json:"other_top,omitempty"`
	LateSends       uint64  `json:"late_sends"`
	MaxSendLagMs    float64 `json:"max_send_lag_ms"`
	Misrouted       uint64  `json:"misrouted"`
	Foreign         uint64  `json:"foreign"`
	SilentStreams   int     `json:"silent_streams"`
	SendErrors      uint64  `json:"send_errors"`
	DeleteErrors    int     `json:"delete_errors"`
	GeneratorError  string  `json:"generator_error,omitempty"`
}

// forEach runs fn(i) for i in [0, n) on `workers` goroutines.
func forEach(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// scenarioB sets up n calls, relays RTP both ways through them at cfg.rate
// packets/s per direction, and deletes them. Without a target (t nil), the
// sink baseline: the same load with each side sending straight to the
// other's socket.
func scenarioB(ctx context.Context, t *target, c *ngClient, cfg *config, n int) (*bResult, error) {
	socks, err := openMediaSockets(cfg.mediaSockets)
	if err != nil {
		return nil, err
	}
	defer socks.close()

	r := &bResult{Rate: cfg.rate, DurationS: cfg.durationB.Seconds()}
	if t == nil {
		r.Calls = n
		return measureB(ctx, 0, cfg, socks, socks.sinkCalls(n), r)
	}
	// Each run its own call-ids: a relay still tearing down the previous
	// count's calls must not see them again.
	prefix := fmt.Sprintf("ngbench-b%d-%s", n, c.prefix)
	calls := make([]*mediaCall, n)
	errs := make([]error, n)
	callID := func(i int) string { return prefix + strconv.Itoa(i) }
	setupStart := time.Now()
	forEach(n, cfg.workers, func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		id := callID(i)
		// The offer carries the caller's socket; the relay's rewritten
		// offer tells the callee where to send (toCaller). The answer
		// carries the callee's socket and tells the caller where to send.
		sdp, _, err := c.offer(ctx, id, "caller", makeSDP(uint64(2*i+1), socks.callerPort(i)))
		var toCaller, toCallee *net.UDPAddr
		if err == nil {
			toCaller, err = relayAddr(sdp)
		}
		if err == nil {
			sdp, _, err = c.answer(ctx, id, "caller", "callee", makeSDP(uint64(2*i+2), socks.calleePort(i)))
			if err == nil {
				toCallee, err = relayAddr(sdp)
			}
		}
		if err != nil {
			errs[i] = err
			return
		}
		calls[i] = &mediaCall{idx: i, toCallee: toCallee, toCaller: toCaller}
	})
	r.SetupS = time.Since(setupStart).Seconds()

	// Delete every call we tried, whatever happens below: a half-set-up
	// call still holds relay ports.
	defer func() {
		if ctx.Err() != nil || !t.Alive() {
			return // interrupted, or nobody left to answer: the relay is stopped next anyway
		}
		var delErrs atomic.Int64
		forEach(n, cfg.workers, func(i int) {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := c.del(dctx, callID(i), "caller"); err != nil && calls[i] != nil {
				delErrs.Add(1)
			}
		})
		r.DeleteErrors = int(delErrs.Load())
	}()

	var ok []mediaCall
	for i, mc := range calls {
		if mc != nil {
			ok = append(ok, *mc)
		} else {
			r.SetupErrors++
			if r.FirstError == "" && errs[i] != nil {
				r.FirstError = errs[i].Error()
			}
		}
	}
	r.Calls = len(ok)
	if len(ok) == 0 {
		return r, fmt.Errorf("no call could be set up (first error: %s)", r.FirstError)
	}
	return measureB(ctx, t.Pid(), cfg, socks, ok, r)
}

// measureB runs the load over calls and fills r; relayPID is the relay's
// process (0: none, the sink).
func measureB(ctx context.Context, relayPID int, cfg *config, socks *mediaSockets, ok []mediaCall, r *bResult) (*bResult, error) {
	r.OfferedPPS = float64(2 * len(ok) * cfg.rate)

	t0 := mono() + int64(50*time.Millisecond)
	ws := t0 + int64(cfg.warmupB)
	we := ws + int64(cfg.durationB)
	m := &mediaLoad{
		socks: socks,
		calls: ok,
		plan: mediaPlan{
			rate: cfg.rate, t0: t0, ws: ws, we: we, tick: time.Millisecond,
			drain: int64(cfg.drain), hardStop: we + int64(cfg.drain) + int64(10*time.Second),
		},
	}
	var s0, s1 cpuSnap
	var b0, b1 bpfRun
	prog := kernelProgram(relayPID)
	defer prog.Close()
	var lo0, lo1 int
	res := m.run(ctx, func() { s0, b0, lo0 = snapCPU(relayPID, true), prog.stats(), loIngressPrograms() },
		func() { s1, b1, lo1 = snapCPU(relayPID, true), prog.stats(), loIngressPrograms() })
	// Others' programs: all but the target's own.
	r.LoOtherPrograms = max(lo0, lo1)
	if prog.in != nil && r.LoOtherPrograms > 0 {
		r.LoOtherPrograms--
	}
	if s0.err != nil || s1.err != nil {
		return r, fmt.Errorf("reading CPU counters: %v", errors.Join(s0.err, s1.err))
	}
	r.Sent, r.Received = res.sentWin, res.recvWin
	r.Lost = int64(res.sentWin) - int64(res.recvWin)
	if res.sentWin > 0 {
		r.LossPct = 100 * float64(r.Lost) / float64(res.sentWin)
	}
	r.SentTotal, r.ReceivedTotal = res.sent, res.recv
	r.P50Ms, r.P99Ms, r.MaxMs = ms(res.lat.Quantile(0.50)), ms(res.lat.Quantile(0.99)), ms(res.lat.Max())
	r.ReadP50Ms, r.ReadP99Ms = ms(res.readLat.Quantile(0.50)), ms(res.readLat.Quantile(0.99))
	r.UserStamps = res.userStamps
	r.RelayCPUS = s1.relay - s0.relay
	r.GenCPUS = s1.self - s0.self
	r.HostBusyPct = proc.BusyPercent(s0.host, s1.host)
	r.OtherCPUS = otherCPUSeconds(s0, s1)
	r.OtherTop = topOthers(s0, s1, relayPID, 3)
	r.SnapSkewMs = ms(snapSkew(s0, s1, cfg.durationB))
	r.HostCPUS = proc.BusySeconds(s0.host, s1.host)
	r.SysCPUS, r.ExitedCPUS, r.OwnCPUS = systemCPU(s0, s1, relayPID)
	if b0.ok && b1.ok {
		r.BPFRunS, r.BPFRuns = (b1.runtime - b0.runtime).Seconds(), b1.runs-b0.runs
	}
	if res.recvWin > 0 {
		per1M := func(v float64) float64 { return v / float64(res.recvWin) * 1e6 }
		r.CPUSPer1M, r.SysCPUSPer1M, r.OwnCPUSPer1M, r.BPFPer1M = per1M(r.RelayCPUS), per1M(r.SysCPUS), per1M(r.OwnCPUS), per1M(r.BPFRunS)
	}
	r.LateSends, r.MaxSendLagMs = res.late, ms(res.maxLag)
	r.Misrouted, r.Foreign, r.SilentStreams = res.misrouted, res.foreign, res.silentStreams
	r.SendErrors = res.sendErrors
	if res.firstErr != nil {
		r.GeneratorError = res.firstErr.Error()
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	if res.recvWin == 0 {
		return r, errors.New("no media packet came back through the relay")
	}
	return r, nil
}

// addBaseline fills each target's added figures: its own less the sink's,
// at the same call count.
func addBaseline(results []*targetResult) {
	var sink *targetResult
	for _, r := range results {
		if r.Name == sinkName {
			sink = r
		}
	}
	if sink == nil {
		return
	}
	for _, r := range results {
		for calls, b := range r.B {
			base := sink.B[calls]
			if base == nil || base.Received == 0 || b.Received == 0 {
				continue
			}
			b.AddedCPUSPer1M = b.OwnCPUSPer1M - base.OwnCPUSPer1M
			b.AddedSysPer1M = b.SysCPUSPer1M - base.SysCPUSPer1M
			b.AddedP50Ms = b.P50Ms - base.P50Ms
			b.AddedP99Ms = b.P99Ms - base.P99Ms
			b.AddedReadP99Ms = b.ReadP99Ms - base.ReadP99Ms
		}
	}
}

// relayAddr extracts and vets the media address from a relay's SDP.
func relayAddr(sdp string) (*net.UDPAddr, error) {
	ap, err := sdpMediaAddr(sdp)
	if err != nil {
		return nil, err
	}
	if err := loopbackOnly(ap); err != nil {
		return nil, err
	}
	return net.UDPAddrFromAddrPort(ap), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
