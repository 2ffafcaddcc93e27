package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/loopdial"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// churnResult is one phase of (a) churn: sessions opened and closed through
// the client protocol, on the hooked app (two status events each) or on
// defaultApp (none: the baseline).
type churnResult struct {
	Hooked       bool    `json:"hooked"`
	Conns        int     `json:"conns"`
	Sessions     uint64  `json:"sessions"` // opened in the window
	SessionsPerS float64 `json:"sessions_per_s"`
	Events       uint64  `json:"events"` // arrived at the backend in the window
	EventsPerS   float64 `json:"events_per_s"`
	// rtcgate's CPU per session and per 100 000 events delivered, over the
	// window: sessions and hooks together.
	CPUMsPerSession  float64 `json:"rtcgate_cpu_ms_per_session"`
	CPUPer100kEvents float64 `json:"rtcgate_cpu_s_per_100k_events,omitempty"`
	// The queue's depth sampled on /metrics during the window: near zero,
	// the queue kept up with what the sessions produced.
	MaxDepth     float64       `json:"max_queue_depth"`
	EndDepth     float64       `json:"queue_depth_at_window_end"`
	BoundBy      string        `json:"bound_by,omitempty"`
	AllSessions  uint64        `json:"sessions_total"` // opened in the whole phase
	Track        *trackSummary `json:"events_check,omitempty"`
	DrainS       float64       `json:"drain_s,omitempty"` // from the end of the load to the last event
	BackendConns uint64        `json:"backend_connections"`
	// After the drain: sessions rtcgate had not ended yet (their
	// DISCONNECTED not queued yet) and events still in its queue.
	SessionsLeft float64    `json:"sessions_left_after_drain"`
	DepthLeft    float64    `json:"queue_depth_after_drain"`
	Retries      float64    `json:"retries"`
	DeadLetters  float64    `json:"dead_letters"`
	CountBound   bool       `json:"count_bound_reached,omitempty"`
	Errors       uint64     `json:"errors"`
	ErrorSample  []string   `json:"error_sample,omitempty"`
	CPU          cpuFigures `json:"cpu"`
}

func (r *churnResult) correct() bool {
	return r.Track != nil && r.Track.Lost == 0 && r.Track.OutOfOrder == 0
}

// scenarioChurn runs one churn phase: -churn-conns workers, each opening a
// session (WebSocket, connection, getUserData) and closing its socket at
// once, in a loop. The session ends — DISCONNECTED — when rtcgate's
// sweep finds it detached for longer than -client-idle-timeout.
func scenarioChurn(ctx context.Context, env *runEnv, c *rtcgatechild.Child, b *backend, hooked bool) (*churnResult, error) {
	cfg := env.cfg
	dur, key := cfg.churnDuration, appKey
	if !hooked {
		dur, key = cfg.churnBaseline, "defaultApp"
	}
	r := &churnResult{Hooked: hooked, Conns: cfg.churnConns}
	var tr *tracker
	if hooked {
		tr = newTracker()
		b.tr.Store(tr)
		defer b.tr.Store(nil)
	}
	url := "ws://" + c.Addr("listen-client") + "/"

	var opened, errCount atomic.Uint64
	var errMu sync.Mutex
	var stop atomic.Bool
	limit := uint64(cfg.churnSessions)
	hardStop := time.Now().Add(cfg.churnWarmup + dur + 10*time.Second)
	var wg sync.WaitGroup
	for i := range cfg.churnConns {
		hc := httpClientFrom(loopdial.SourceAddr(i))
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil && time.Now().Before(hardStop) {
				if opened.Load() >= limit {
					return
				}
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ws, sid, err := dialSession(dctx, hc, url, key)
				cancel()
				if err != nil {
					if stop.Load() || ctx.Err() != nil {
						return
					}
					if errCount.Add(1) <= 8 {
						errMu.Lock()
						r.ErrorSample = append(r.ErrorSample, fmt.Sprintf("worker %d: %v", i, err))
						errMu.Unlock()
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				opened.Add(1)
				if tr != nil {
					tr.expect(sid, 2)
				}
				ws.CloseNow()
			}
		})
	}

	// The queue's depth, sampled while the load runs.
	var maxDepth atomic.Uint64
	samplerDone := make(chan struct{})
	sctx, stopSampler := context.WithCancel(ctx)
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if m, err := fetchMetrics(sctx, c); err == nil && uint64(m.QueueDepth) > maxDepth.Load() {
					maxDepth.Store(uint64(m.QueueDepth))
				}
			}
		}
	}()

	proc.SleepCtx(ctx, cfg.churnWarmup)
	received := func() uint64 {
		if tr == nil {
			return 0
		}
		return tr.received.Load()
	}
	a, sessA, evA := snap(c.Pid()), opened.Load(), received()
	maxDepth.Store(0) // the window's, not the warm-up's
	connsA := b.Conns()
	end := time.Now().Add(dur)
	for time.Now().Before(end) && ctx.Err() == nil && opened.Load() < limit && c.Alive() {
		proc.SleepCtx(ctx, min(100*time.Millisecond, time.Until(end)))
	}
	w, sessB, evB := snap(c.Pid()), opened.Load(), received()
	r.CountBound = sessB >= limit
	stop.Store(true)
	loadEnd := time.Now()
	if m, err := fetchMetrics(ctx, c); err == nil {
		r.EndDepth = m.QueueDepth
	}
	stopSampler()
	<-samplerDone
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		env.Logf("warning: churn workers still busy 15 s after the window")
	}

	r.CPU = between(a, w)
	r.Sessions = sessB - sessA
	r.AllSessions = opened.Load()
	r.Events = evB - evA
	r.MaxDepth = float64(maxDepth.Load())
	r.Errors = errCount.Load()
	if r.CPU.WindowS > 0 {
		r.SessionsPerS = float64(r.Sessions) / r.CPU.WindowS
		r.EventsPerS = float64(r.Events) / r.CPU.WindowS
	}
	if r.Sessions > 0 {
		r.CPUMsPerSession = r.CPU.ChildCPUS / float64(r.Sessions) * 1000
	}
	if r.Events > 0 {
		r.CPUPer100kEvents = r.CPU.ChildCPUS / float64(r.Events) * 1e5
	}

	var fail error
	if hooked {
		// Every event of every session opened, however long it takes
		// within -drain: DISCONNECTED comes after the idle timeout, and a
		// backlog drains at the queue's pace.
		drainEnd := time.Now().Add(cfg.drain)
		for tr.pending() > 0 && time.Now().Before(drainEnd) && ctx.Err() == nil && c.Alive() {
			proc.SleepCtx(ctx, 50*time.Millisecond)
		}
		s := tr.summary()
		r.Track = &s
		if m, err := fetchMetrics(ctx, c); err == nil {
			r.SessionsLeft, r.DepthLeft = m.Sessions, m.QueueDepth
		}
		if l := tr.last.Load(); l > 0 {
			r.DrainS = max(0, float64(l-loadEnd.UnixNano())/1e9)
		}
		r.BackendConns = b.Conns() - connsA
		// Who set the pace. Not the depth: rtcgate's sweep (each second)
		// ends a second's worth of closed sessions at once, so the depth
		// jumps to that many DISCONNECTED events every second even when the
		// queue keeps up. Kept up means: the window's events match its
		// sessions (two each), and the last event came about one sweep
		// after the load stopped.
		keptUp := float64(r.Events) >= 0.9*2*float64(r.Sessions) && r.DrainS <= cfg.idleTimeout.Seconds()+2
		switch {
		case !keptUp:
			r.BoundBy = fmt.Sprintf("the queue: %d events for %d sessions in the window, last event %.1f s after the load", r.Events, r.Sessions, r.DrainS)
		case r.CPU.HostBusyPct > 90:
			r.BoundBy = fmt.Sprintf("session churn: the queue kept up; the box was %.0f%% busy with rtcgate's sessions, the clients and the backend", r.CPU.HostBusyPct)
		default:
			r.BoundBy = "session churn: the queue kept up"
		}
		switch {
		case s.Lost > 0 && (r.SessionsLeft > 0 || r.DepthLeft > 0):
			fail = fmt.Errorf("%d of %d events had not arrived %v after the load: rtcgate still had %.0f sessions to end (their DISCONNECTED not queued yet) and %.0f events queued",
				s.Lost, s.Expected, cfg.drain, r.SessionsLeft, r.DepthLeft)
		case s.Lost > 0:
			fail = fmt.Errorf("%d of %d events lost", s.Lost, s.Expected)
		case s.OutOfOrder > 0:
			fail = fmt.Errorf("%d events arrived before an earlier event of their session", s.OutOfOrder)
		}
	}
	if m, err := fetchMetrics(ctx, c); err == nil {
		r.Retries, r.DeadLetters = m.Retries, m.DeadLetters
	}
	// Leave no session behind for the next phase: they end after the idle
	// timeout, at the next sweep.
	for settle := time.Now().Add(10 * time.Second); time.Now().Before(settle) && ctx.Err() == nil && c.Alive(); {
		if m, err := fetchMetrics(ctx, c); err == nil && m.Sessions == 0 {
			break
		}
		proc.SleepCtx(ctx, 100*time.Millisecond)
	}
	switch {
	case !c.Alive():
		return r, c.ExitError()
	case fail != nil:
		return r, fail
	case r.Sessions == 0:
		if len(r.ErrorSample) > 0 {
			return r, fmt.Errorf("no session opened in the window, e.g. %s", r.ErrorSample[0])
		}
		return r, errors.New("no session opened in the window")
	case r.DeadLetters > 0:
		return r, fmt.Errorf("%.0f events dead-lettered", r.DeadLetters)
	}
	if r.Errors > 0 {
		env.Logf("(a) churn: %d sessions failed to open, e.g. %s", r.Errors, r.ErrorSample[0])
	}
	return r, nil
}
