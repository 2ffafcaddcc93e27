package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// callResult is (b): C sessions each looping call → talk → hangup →
// finish against the sipp UAS, through rtcgate (every hook) and Kamailio.
type callResult struct {
	Clients  int     `json:"clients"`
	RateCap  float64 `json:"rate_cap_per_s,omitempty"`
	WindowS  float64 `json:"window_s"`
	Started  uint64  `json:"started"`   // calls whose `call` went out in the window
	Complete uint64  `json:"completed"` // `finish` FINISH after our hangup, in the window
	Failed   uint64  `json:"failed"`    // calls that ended otherwise, in the window
	PerS     float64 `json:"calls_per_s"`
	// call written → talk read, for the calls established in the window.
	Setup latency `json:"setup"`
	// ring / notifyTryingResponse frames read after their call's talk (or
	// during a later call), whole phase: status events out of order.
	LateProgress uint64 `json:"progress_frames_after_talk"`
	// hangup written → finish read, for the calls completed in the window.
	Teardown latency    `json:"teardown"`
	CPU      cpuFigures `json:"cpu"`
	// CPU per call completed in the window.
	RtcgateMs  float64 `json:"rtcgate_cpu_ms_per_call"`
	KamailioMs float64 `json:"kamailio_cpu_ms_per_call"`
	SippMs     float64 `json:"sipp_cpu_ms_per_call"`
	SelfMs     float64 `json:"sipbench_cpu_ms_per_call"`
	// Whole phase (warm-up and the calls finishing after the window too).
	AllComplete uint64 `json:"completed_total"`
	AllFailed   uint64 `json:"failed_total"`
	// Hooks with a callId the backend received over the whole phase, per
	// call ended (completed or failed), by method.
	HooksPerCall  float64            `json:"hooks_per_call"`
	HooksByMethod map[string]float64 `json:"hooks_per_call_by_method"`
	Sipp          *sippCounts        `json:"sipp,omitempty"` // the UAS's own counts over the phase
	CountBound    bool               `json:"count_bound_reached,omitempty"`
	FailSample    []string           `json:"fail_sample,omitempty"`
	BoundBy       string             `json:"bound_by,omitempty"`
	Profile       string             `json:"cpu_profile,omitempty"`
}

// callRec is one call as the client saw it.
type callRec struct {
	start, talk, hangup, end time.Time
	ok                       bool
	reason                   string
	// Progress frames (ring, notifyTryingResponse) read after this call's
	// talk, or of an earlier call: reordered or late status events.
	late int
}

// scenarioCalls runs (b) on the first -call-clients registered sessions:
// -call-warmup of load, then the -call-duration window the figures are
// taken over; each client finishes the call it is in when the window ends.
func scenarioCalls(ctx context.Context, env *runEnv, c *rtcgatechild.Child, s *sipp, b *backend, clients []*sdkClient) (*callResult, error) {
	cfg := env.cfg
	r := &callResult{Clients: len(clients), RateCap: cfg.callRate}
	_, callHooksA := b.counts()
	sippA, sippErr := s.counts()

	// -call-rate paces the calls' starts over all clients.
	var tokens chan struct{}
	pctx, stopPacer := context.WithCancel(ctx)
	defer stopPacer()
	if cfg.callRate > 0 {
		tokens = make(chan struct{}, 1)
		go func() {
			t := time.NewTicker(time.Duration(float64(time.Second) / cfg.callRate))
			defer t.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
					select {
					case tokens <- struct{}{}:
					default:
					}
				}
			}
		}()
	}

	start := time.Now()
	winStart := start.Add(cfg.callWarmup)
	winEnd := winStart.Add(cfg.callDuration)
	// Every loop ends by this time whatever happens: the window, then the
	// call in flight (talk, then finish, each bounded by -call-timeout).
	hardStop := winEnd.Add(2*cfg.callTimeout + 5*time.Second)
	var stop atomic.Bool
	var started atomic.Uint64
	recs := make([][]callRec, len(clients))
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() {
			sdp := offer(20000+2*i, cfg.webrtc) // a distinct port per client; nothing is sent to it
			for n := 0; !stop.Load() && ctx.Err() == nil && time.Now().Before(hardStop); n++ {
				if started.Add(1) > uint64(cfg.maxCalls) {
					return
				}
				if tokens != nil {
					select {
					case <-tokens:
					case <-pctx.Done():
						return
					}
					if stop.Load() {
						return
					}
				}
				rec := oneCall(ctx, cl, fmt.Sprintf("b%d-%d", i, n), cfg.callee, sdp, cfg.callTimeout)
				recs[i] = append(recs[i], rec)
				if errors.Is(ctx.Err(), context.Canceled) || rec.reason == errClosed.Error() {
					return
				}
				if !rec.ok {
					time.Sleep(10 * time.Millisecond) // no busy loop when everything fails at once
				}
			}
		})
	}

	proc.SleepCtx(ctx, time.Until(winStart))
	profDone := make(chan error, 1)
	if cfg.cpuProfile != "" {
		go func() { profDone <- cpuProfile(ctx, c, cfg.callDuration, cfg.cpuProfile) }()
	}
	a := snap(env.pids)
	proc.SleepCtx(ctx, time.Until(winEnd))
	w := snap(env.pids)
	stop.Store(true)
	stopPacer()
	wg.Wait()
	r.CPU = between(a, w)
	r.CountBound = started.Load() > uint64(cfg.maxCalls)
	if cfg.cpuProfile != "" {
		if err := <-profDone; err != nil {
			env.Logf("(b) CPU profile: %v", err)
		} else {
			r.Profile = cfg.cpuProfile
		}
	}

	var setup, teardown hist.Histogram
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(a.at) && t.Before(w.at) }
	var fails []string
	for _, rs := range recs {
		for _, rec := range rs {
			if in(rec.start) {
				r.Started++
			}
			r.LateProgress += uint64(rec.late)
			if in(rec.talk) {
				setup.Record(rec.talk.Sub(rec.start))
			}
			if rec.ok {
				r.AllComplete++
			} else {
				r.AllFailed++
				if len(fails) < 8 {
					fails = append(fails, rec.reason)
				}
			}
			if !in(rec.end) {
				continue
			}
			if rec.ok {
				r.Complete++
				teardown.Record(rec.end.Sub(rec.hangup))
			} else {
				r.Failed++
			}
		}
	}
	r.FailSample = fails
	r.Setup, r.Teardown = summarize(&setup), summarize(&teardown)
	r.WindowS = r.CPU.WindowS
	if r.WindowS > 0 {
		r.PerS = float64(r.Complete) / r.WindowS
	}
	if r.Complete > 0 {
		per := func(s float64) float64 { return s / float64(r.Complete) * 1000 }
		r.RtcgateMs, r.KamailioMs, r.SippMs, r.SelfMs = per(r.CPU.RtcgateS), per(r.CPU.KamailioS), per(r.CPU.SippS), per(r.CPU.SelfS)
	}

	// The calls' status events are queued: wait for the last ones, then
	// for sipp's statistics file (written each second) to catch up.
	b.settle(10*time.Second, 500*time.Millisecond)
	_, callHooksB := b.counts()
	if ended := r.AllComplete + r.AllFailed; ended > 0 {
		r.HooksByMethod = map[string]float64{}
		var n uint64
		for m, v := range diff(callHooksA, callHooksB) {
			n += v
			r.HooksByMethod[m] = float64(v) / float64(ended)
		}
		r.HooksPerCall = float64(n) / float64(ended)
	}
	if sippErr == nil {
		proc.SleepCtx(ctx, 1200*time.Millisecond)
		if sippB, err := s.counts(); err == nil {
			r.Sipp = &sippCounts{Successful: sippB.Successful - sippA.Successful,
				Failed: sippB.Failed - sippA.Failed, Total: sippB.Total - sippA.Total}
		}
	}
	r.BoundBy = boundBy(r)

	switch {
	case !c.Alive():
		return r, c.ExitError()
	case ctx.Err() != nil:
		return r, ctx.Err()
	case r.Complete == 0 && len(fails) > 0:
		return r, fmt.Errorf("no call completed in the window, e.g. %s", fails[0])
	case r.Complete == 0:
		return r, errors.New("no call completed in the window")
	}
	return r, nil
}

// oneCall places one call and hangs it up once it talks. Every wait is
// bounded by timeout; a call that does not talk in time is hung up anyway
// (best effort, without waiting long) so that the next one starts clean.
func oneCall(ctx context.Context, cl *sdkClient, id, callee, sdp string, timeout time.Duration) callRec {
	rec := callRec{start: time.Now()}
	fail := func(reason string) callRec {
		rec.end, rec.reason = time.Now(), reason
		return rec
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := cl.send(cctx, "call", map[string]any{
		"callId": id, "callee": callee, "sdp": sdp, "hasAudio": true, "hasVideo": false,
		"incoming": false, "status": "PENDING", "caller": cl.user.Name, "visibleName": cl.user.Name,
	})
	if err != nil {
		return fail("call: " + err.Error())
	}
	progress := func(f frame, e event, talked bool) {
		if (f.Message == "ring" || f.Message == "notifyTryingResponse") && (talked || e.CallID != id) {
			rec.late++
		}
	}
	_, err = cl.await(cctx, func(f frame) (bool, error) {
		e := f.event()
		progress(f, e, false)
		switch {
		case f.Message == "talk" && e.CallID == id && e.Status == "ESTABLISHED":
			return true, nil
		case f.Message == "finish" && e.CallID == id:
			return false, fmt.Errorf("%s %d %s before talk", e.Status, e.SipStatus, e.SipMessage)
		case f.Message == "fail" && e.APIMethod == "call":
			return false, fmt.Errorf("fail (call): %s", e.Info)
		}
		return false, nil
	})
	if err != nil {
		if errors.Is(err, errClosed) {
			return fail(errClosed.Error())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no talk within %v", timeout)
			hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
			if cl.send(hctx, "hangup", map[string]any{"callId": id}) == nil {
				cl.await(hctx, func(f frame) (bool, error) {
					return f.Message == "finish" && f.event().CallID == id, nil
				})
			}
			hcancel()
			cl.drain()
		}
		return fail(err.Error())
	}
	rec.talk = time.Now()

	hctx, hcancel := context.WithTimeout(ctx, timeout)
	defer hcancel()
	rec.hangup = time.Now()
	if err := cl.send(hctx, "hangup", map[string]any{"callId": id}); err != nil {
		return fail("hangup: " + err.Error())
	}
	f, err := cl.await(hctx, func(f frame) (bool, error) {
		e := f.event()
		progress(f, e, true)
		switch {
		case f.Message == "finish" && e.CallID == id:
			return true, nil
		case f.Message == "fail" && e.APIMethod == "hangup":
			return false, fmt.Errorf("fail (hangup): %s", e.Info)
		}
		return false, nil
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fail(fmt.Sprintf("no finish within %v of hangup", timeout))
	case err != nil:
		return fail(err.Error())
	}
	if e := f.event(); e.Status != "FINISH" {
		return fail(fmt.Sprintf("finish %s %d %s after hangup", e.Status, e.SipStatus, e.SipMessage))
	}
	rec.end, rec.ok = time.Now(), true
	return rec
}

// boundBy says what set the pace of (b), as far as the CPU figures tell.
func boundBy(r *callResult) string {
	f := r.CPU
	if f.WindowS <= 0 {
		return ""
	}
	switch {
	case r.RateCap > 0 && r.PerS >= 0.95*r.RateCap:
		return fmt.Sprintf("the -call-rate cap (%.0f/s)", r.RateCap)
	case f.HostBusyPct > 90:
		return fmt.Sprintf("the box: %.0f%% busy (rtcgate %.2f, Kamailio %.2f, sipp %.2f, sipbench %.2f cores)",
			f.HostBusyPct, f.RtcgateS/f.WindowS, f.KamailioS/f.WindowS, f.SippS/f.WindowS, f.SelfS/f.WindowS)
	default:
		return fmt.Sprintf("latency: %d clients one call at a time, box %.0f%% busy (more -call-clients for more calls/s)", r.Clients, f.HostBusyPct)
	}
}
