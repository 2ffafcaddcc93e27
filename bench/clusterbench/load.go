package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/sdkclient"
)

// fallbackSessions are the load's sessions over the HTTP fallback, each
// with its sync loop running.
type fallbackSessions struct {
	client   *http.Client
	list     []*sdkclient.Session
	stopSync context.CancelFunc
	syncWG   sync.WaitGroup
}

// openSessions opens conns sessions at endpoint (HAProxy or a node), each
// connected to the app (connection → getUserData) with its sync loop
// running until close (bounded by hardStop).
func openSessions(ctx context.Context, env *runEnv, endpoint string, conns int, hardStop time.Time) (*fallbackSessions, error) {
	fs := &fallbackSessions{client: sdkclient.NewHTTPClient(conns)}
	syncCtx, stop := context.WithCancel(ctx)
	fs.stopSync = stop
	connect := sdkclient.ConnectFrame(appKey, "clusterbench")
	for i := range conns {
		s := sdkclient.NewSession(fs.client, endpoint)
		if _, err := s.Open(ctx); err != nil {
			fs.close()
			return nil, fmt.Errorf("open session %d: %w", i, err)
		}
		fs.list = append(fs.list, s)
		fs.syncWG.Go(func() { s.SyncLoop(syncCtx, env.cfg.syncWait, hardStop) })
		if err := s.Send(ctx, connect); err != nil {
			fs.close()
			return nil, fmt.Errorf("session %d: send connection: %w", i, err)
		}
		if _, err := s.Await(ctx, "getUserData", 10*time.Second); err != nil {
			fs.close()
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
	}
	return fs, nil
}

// close stops the sync loops and closes the sessions, politely and
// bounded.
func (fs *fallbackSessions) close() {
	fs.stopSync()
	fs.syncWG.Wait()
	var wg sync.WaitGroup
	for _, s := range fs.list {
		wg.Go(s.Close)
	}
	wg.Wait()
	fs.client.CloseIdleConnections()
}

// requests is the client requests answered 2xx so far, over all sessions.
func (fs *fallbackSessions) requests() uint64 {
	var n uint64
	for _, s := range fs.list {
		n += s.Requests()
	}
	return n
}

// loadWindow is one measured window of closed-loop sendData round trips.
type loadWindow struct {
	RoundTrips uint64    `json:"round_trips"`
	Requests   uint64    `json:"client_requests"` // sends and syncs answered 2xx
	P50Ms      float64   `json:"p50_ms"`
	P99Ms      float64   `json:"p99_ms"`
	MaxMs      float64   `json:"max_ms"`
	CPU        cpuWindow `json:"cpu"`
	Errors     uint64    `json:"errors"`
	ErrorFirst string    `json:"error_first,omitempty"`
}

// Load phases: warm-up (not recorded), measured, stop.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// loadSpec says how runLoad drives the sessions.
type loadSpec struct {
	warmup, dur time.Duration
	tag         string // in the operation ids
	// rate paces the round trips, in all (per second; each session takes
	// its share, a session behind its schedule goes on at once); 0: a
	// closed loop, each session's next round trip as soon as it has the
	// last one's answer.
	rate float64
	// edge, when set, is called right after the CPU snapshot at the
	// window's start (false) and end (true): figures read over the same
	// window.
	edge func(end bool)
}

// runLoad loops sendData → DataStatusEvent on every session, one at a time
// each, for the warm-up then the measured window, and returns the window's
// figures: round trips completed in it, the client requests answered in
// it, and the CPU of the processes p over it.
func runLoad(ctx context.Context, fs *fallbackSessions, p procs, sp loadSpec) loadWindow {
	warmup, dur := sp.warmup, sp.dur
	var every time.Duration
	if sp.rate > 0 {
		every = time.Duration(float64(len(fs.list)) / sp.rate * float64(time.Second))
	}
	var (
		phase  atomic.Int32
		mu     sync.Mutex
		h      hist.Histogram
		errs   atomic.Uint64
		first  atomic.Pointer[string]
		wg     sync.WaitGroup
		stopAt = time.Now().Add(warmup + dur + 10*time.Second)
	)
	for i, s := range fs.list {
		wg.Go(func() {
			var mine hist.Histogram
			defer func() { mu.Lock(); h.Merge(&mine); mu.Unlock() }()
			prefix := sp.tag + "-" + strconv.Itoa(i) + "-"
			next := time.Now()
			if every > 0 { // spread the sessions over the interval
				next = next.Add(every * time.Duration(i) / time.Duration(len(fs.list)))
			}
			for n := 0; phase.Load() != phaseStop && ctx.Err() == nil && time.Now().Before(stopAt); n++ {
				if every > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = later(next.Add(every), time.Now())
				}
				d, err := s.SendData(ctx, prefix+strconv.Itoa(n))
				if err != nil {
					if errs.Add(1) == 1 {
						msg := fmt.Sprintf("session %d: %v", i, err)
						first.Store(&msg)
					}
					return
				}
				if phase.Load() == phaseMeasure {
					mine.Record(d)
				}
			}
		})
	}
	proc.SleepCtx(ctx, warmup)
	reqA, a := fs.requests(), p.snap(true)
	if sp.edge != nil {
		sp.edge(false)
	}
	phase.Store(phaseMeasure)
	proc.SleepCtx(ctx, dur)
	phase.Store(phaseStop)
	b, reqB := p.snap(true), fs.requests()
	if sp.edge != nil {
		sp.edge(true)
	}
	wg.Wait() // each worker ends with its round trip, bounded by its timeouts
	w := loadWindow{RoundTrips: h.Count(), Requests: reqB - reqA, CPU: p.between(a, b), Errors: errs.Load(),
		P50Ms: ms(h.Quantile(0.5)), P99Ms: ms(h.Quantile(0.99)), MaxMs: ms(h.Max())}
	if f := first.Load(); f != nil {
		w.ErrorFirst = *f
	}
	return w
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// perS is the window's round trips per second.
func (w loadWindow) perS() float64 {
	if w.CPU.WindowS <= 0 {
		return 0
	}
	return float64(w.RoundTrips) / w.CPU.WindowS
}

// outcome says whether a window counts: no failed round trip, at least one
// completed.
func (w loadWindow) outcome() error {
	if w.Errors > 0 {
		return fmt.Errorf("%d sessions failed a round trip, the first: %s", w.Errors, w.ErrorFirst)
	}
	if w.RoundTrips == 0 {
		return fmt.Errorf("no round trip completed in the window")
	}
	return nil
}
