package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// regResult is (a): N sessions connecting with sipRegisterRequired, each a
// distinct Kamailio user.
type regResult struct {
	Users       int     `json:"users"`
	Concurrency int     `json:"concurrency"`
	Registered  int     `json:"registered"`
	Failed      int     `json:"failed"`
	WallS       float64 `json:"first_dial_to_last_registered_s"`
	PerS        float64 `json:"registrations_per_s"`
	// Per session: WebSocket dial → `registered` read (the handshake, the
	// connect hook, the account, REGISTER → 401 → REGISTER → 200).
	Latency     latency           `json:"connection_to_registered"`
	CPU         cpuFigures        `json:"cpu"`
	RtcgateMs   float64           `json:"rtcgate_cpu_ms_per_registration"`
	KamailioMs  float64           `json:"kamailio_cpu_ms_per_registration"`
	Hooks       map[string]uint64 `json:"hooks"`
	HooksPerReg float64           `json:"hooks_per_registration"`
	ErrorSample []string          `json:"error_sample,omitempty"`
}

// latency is a histogram's summary, in milliseconds.
type latency struct {
	N     uint64  `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func summarize(h *hist.Histogram) latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return latency{N: h.Count(), P50Ms: ms(h.Quantile(0.5)), P99Ms: ms(h.Quantile(0.99)), MaxMs: ms(h.Max())}
}

// scenarioRegister opens the N sessions, -reg-concurrency at a time, and
// waits for each one's `registered` (or its `fail`), within -reg-timeout
// for the whole phase. The registered sessions are returned, in user
// order, for (b); the caller closes them.
func scenarioRegister(ctx context.Context, env *runEnv, c *rtcgatechild.Child, k *testpeer.Kamailio, b *backend, users []user) (*regResult, []*sdkClient, error) {
	cfg := env.cfg
	r := &regResult{Users: len(users), Concurrency: cfg.regConcurrency}
	url := "ws://" + c.Addr("listen-client") + "/"
	pctx, cancel := context.WithTimeout(ctx, cfg.regTimeout)
	defer cancel()

	clients := make([]*sdkClient, len(users))
	lat := make([]time.Duration, len(users))
	doneAt := make([]time.Time, len(users))
	var errMu sync.Mutex
	var errs []string
	sem := make(chan struct{}, cfg.regConcurrency)
	hooksA, _ := b.counts()
	a := snap(env.pids)
	start := time.Now()
	var wg sync.WaitGroup
	for i, u := range users {
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			cl, d, err := registerOne(pctx, url, k.Addr, u)
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", u.Name, err))
				errMu.Unlock()
				if cl != nil {
					cl.close()
				}
				return
			}
			clients[i], lat[i], doneAt[i] = cl, d, time.Now()
		})
	}
	wg.Wait()
	w := snap(env.pids)

	var h hist.Histogram
	var last time.Time
	var ok []*sdkClient
	for i, cl := range clients {
		if cl == nil {
			continue
		}
		ok = append(ok, cl)
		h.Record(lat[i])
		if doneAt[i].After(last) {
			last = doneAt[i]
		}
	}
	r.Registered, r.Failed = len(ok), len(users)-len(ok)
	r.Latency = summarize(&h)
	r.CPU = between(a, w)
	if r.Registered > 0 {
		r.WallS = last.Sub(start).Seconds()
		r.PerS = float64(r.Registered) / r.WallS
		r.RtcgateMs = r.CPU.RtcgateS / float64(r.Registered) * 1000
		r.KamailioMs = r.CPU.KamailioS / float64(r.Registered) * 1000
	}
	// The status events (ConnectionStatusEvent, RegistrationStatusEvent)
	// are queued: they may trail the frames.
	b.settle(5*time.Second, 500*time.Millisecond)
	hooksB, _ := b.counts()
	r.Hooks = diff(hooksA, hooksB)
	if r.Registered > 0 {
		var n uint64
		for _, v := range r.Hooks {
			n += v
		}
		r.HooksPerReg = float64(n) / float64(r.Registered)
	}
	if len(errs) > 0 {
		r.ErrorSample = errs[:min(len(errs), 8)]
	}
	switch {
	case !c.Alive():
		return r, ok, c.ExitError()
	case ctx.Err() != nil:
		return r, ok, ctx.Err()
	case r.Registered == 0 && len(errs) > 0:
		return r, ok, fmt.Errorf("no session registered, e.g. %s", errs[0])
	case r.Registered == 0:
		return r, ok, errors.New("no session registered")
	case r.Failed > 0:
		return r, ok, fmt.Errorf("%d of %d sessions did not register, e.g. %s", r.Failed, len(users), firstOr(errs, "(no error: the phase's time bound)"))
	}
	return r, ok, nil
}

// registerOne opens u's session and waits for `registered`; the duration
// is from the WebSocket dial to it.
func registerOne(ctx context.Context, url, kam string, u user) (*sdkClient, time.Duration, error) {
	t0 := time.Now()
	cl, err := dialClient(ctx, url, u, kam, true)
	if err != nil {
		return nil, 0, err
	}
	_, err = cl.await(ctx, func(f frame) (bool, error) {
		switch f.Message {
		case "registered":
			return true, nil
		case "fail":
			return false, fmt.Errorf("fail: %s", firstOf(f))
		}
		return false, nil
	})
	if err != nil {
		return cl, 0, err
	}
	return cl, time.Since(t0), nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
