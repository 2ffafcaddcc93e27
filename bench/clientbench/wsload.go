package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/loopdial"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/bench/internal/sdkclient"
)

// loadResult is scenario (2) or (3): closed-loop sendData round trips.
type loadResult struct {
	Transport         string   `json:"transport"`
	Conns             int      `json:"conns"`
	DurationS         float64  `json:"duration_s"` // the measured window, as it was
	RoundTrips        uint64   `json:"round_trips"`
	PerS              float64  `json:"round_trips_per_s"`
	P50Ms             float64  `json:"p50_ms"`
	P99Ms             float64  `json:"p99_ms"`
	MeanMs            float64  `json:"mean_ms"`
	MaxMs             float64  `json:"max_ms"`
	ChildCPUS         float64  `json:"rtcgate_cpu_s"`
	CPUPer1000        float64  `json:"rtcgate_cpu_s_per_1000"`
	ClientCPUS        float64  `json:"client_cpu_s"`
	HostBusyPct       float64  `json:"host_busy_pct"`
	OtherCPUS         float64  `json:"other_processes_cpu_s"`
	OtherTop          string   `json:"other_processes,omitempty"`
	QuietWaitS        float64  `json:"waited_for_quiet_s,omitempty"`
	Errors            uint64   `json:"errors"`
	ErrorSample       []string `json:"error_sample,omitempty"`
	Unavailable       string   `json:"unavailable,omitempty"` // the fallback is not there (404/501)
	UnavailableStatus string   `json:"-"`
}

// Load phases: warm-up (not recorded), measured, stop.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// loadRun is the bookkeeping shared by the load workers.
type loadRun struct {
	phase  atomic.Int32
	mu     sync.Mutex
	hist   hist.Histogram
	count  uint64
	errors atomic.Uint64
	errMu  sync.Mutex
	errs   []string
}

func (l *loadRun) noteErr(err error) {
	if l.errors.Add(1) <= 8 {
		l.errMu.Lock()
		l.errs = append(l.errs, err.Error())
		l.errMu.Unlock()
	}
}

// merge adds one worker's histogram of measured round trips.
func (l *loadRun) merge(h *hist.Histogram) {
	l.mu.Lock()
	l.hist.Merge(h)
	l.count += h.Count()
	l.mu.Unlock()
}

// measure runs the warm-up and the measured window while the workers loop,
// then tells them to stop and waits for them (at most grace).
func (l *loadRun) measure(ctx context.Context, env *runEnv, c *rtcgatechild.Child, r *loadResult, wg *sync.WaitGroup) {
	cfg := env.cfg
	proc.SleepCtx(ctx, cfg.warmup)
	pa := proc.AllTicks()
	a := snapWindow(c.Pid())
	l.phase.Store(phaseMeasure)
	proc.SleepCtx(ctx, cfg.duration)
	l.phase.Store(phaseStop)
	b := snapWindow(c.Pid())
	pb := proc.AllTicks()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		env.Logf("warning: load workers still busy 15 s after the window")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	win := b.at.Sub(a.at).Seconds()
	r.DurationS = win
	r.RoundTrips = l.count
	r.PerS = float64(l.count) / win
	r.P50Ms = ms(l.hist.Quantile(0.50))
	r.P99Ms = ms(l.hist.Quantile(0.99))
	r.MeanMs = ms(l.hist.Mean())
	r.MaxMs = ms(l.hist.Max())
	r.ChildCPUS = b.child - a.child
	r.ClientCPUS = b.self - a.self
	if l.count > 0 {
		r.CPUPer1000 = r.ChildCPUS / float64(l.count) * 1000
	}
	r.HostBusyPct = proc.BusyPercent(a.host, b.host)
	r.OtherCPUS = otherCPU(a, b)
	if r.OtherCPUS > proc.BusyOtherCores*win {
		top, _ := proc.TopOthers(pa, pb, c.Pid(), 3)
		r.OtherTop = strings.Join(top, ", ")
	}
	r.Errors = l.errors.Load()
	l.errMu.Lock()
	r.ErrorSample = l.errs
	l.errMu.Unlock()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// scenarioWS is (2): cfg.conns WebSockets, each looping sendData → wait
// for its DataStatusEvent.
func scenarioWS(ctx context.Context, env *runEnv, c *rtcgatechild.Child) (*loadResult, error) {
	cfg := env.cfg
	r := &loadResult{Transport: "websocket", Conns: cfg.conns}
	addr := c.Addr("listen-client")
	conns := make([]*wsConn, cfg.conns)
	defer func() {
		for _, wc := range conns {
			if wc != nil {
				wc.nc.Close()
			}
		}
	}()
	for i := range conns {
		wc, err := wsDial(addr, loopdial.SourceAddr(i), "/", 10*time.Second, nil)
		if err == nil {
			_, err = wc.handshake()
		}
		if err != nil {
			if wc != nil {
				wc.nc.Close()
			}
			return r, fmt.Errorf("connection %d: %w", i, err)
		}
		conns[i] = wc
	}
	env.Logf("(2) %d WebSockets connected; warm-up %v, measuring %v", cfg.conns, cfg.warmup, cfg.duration)

	l := &loadRun{}
	hardStop := time.Now().Add(cfg.warmup + cfg.duration + 10*time.Second)
	var wg sync.WaitGroup
	for i, wc := range conns {
		wg.Go(func() {
			var h hist.Histogram
			defer l.merge(&h)
			prefix := "c" + strconv.Itoa(i) + "-"
			var frame, opb []byte
			for n := 0; ; n++ {
				if l.phase.Load() == phaseStop || ctx.Err() != nil || time.Now().After(hardStop) {
					return
				}
				opb = strconv.AppendInt(append(opb[:0], prefix...), int64(n), 10)
				op := string(opb)
				frame = sdkclient.SendDataFrame(frame, op)
				t0 := time.Now()
				wc.nc.SetDeadline(t0.Add(sdkclient.RoundTripTimeout))
				if err := wc.writeText(frame); err != nil {
					l.noteErr(fmt.Errorf("conn %d: write: %w", i, err))
					return
				}
				m, err := wc.nextNamed("DataStatusEvent")
				if err != nil {
					l.noteErr(fmt.Errorf("conn %d: %w", i, err))
					return
				}
				d := time.Since(t0)
				if err := sdkclient.CheckStatus(m, op); err != nil {
					l.noteErr(fmt.Errorf("conn %d: %w", i, err))
					return
				}
				if l.phase.Load() == phaseMeasure { // completed inside the window
					h.Record(d)
				}
			}
		})
	}
	l.measure(ctx, env, c, r, &wg)
	return r, runOutcome(c, r)
}

// runOutcome says whether a measured round-trip run counts: rtcgate still up,
// no failed round trip, at least one completed.
func runOutcome(c *rtcgatechild.Child, r *loadResult) error {
	if !c.Alive() {
		return c.ExitError()
	}
	if r.Errors > 0 {
		return fmt.Errorf("%d round trips failed, e.g. %v", r.Errors, r.ErrorSample[0])
	}
	if r.RoundTrips == 0 {
		return errors.New("no round trip completed in the window")
	}
	return nil
}
