package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/bench/internal/sdkclient"
)

// scenarioHTTP is (3): cfg.conns fallback sessions, each with a sync loop,
// looping sendData (POST) → its DataStatusEvent arriving through sync.
func scenarioHTTP(ctx context.Context, env *runEnv, c *rtcgatechild.Child) (*loadResult, error) {
	cfg := env.cfg
	r := &loadResult{Transport: "http-long-poll", Conns: cfg.conns}
	client := sdkclient.NewHTTPClient(cfg.conns)
	defer client.CloseIdleConnections()

	syncCtx, stopSync := context.WithCancel(ctx)
	var syncWG sync.WaitGroup
	sessions := make([]*sdkclient.Session, 0, cfg.conns)
	hardStop := time.Now().Add(cfg.warmup + cfg.duration + cfg.syncWait + 60*time.Second)
	defer func() {
		stopSync()
		syncWG.Wait()
		var wg sync.WaitGroup
		for _, s := range sessions { // polite close, bounded
			wg.Go(s.Close)
		}
		wg.Wait()
	}()

	for i := range cfg.conns {
		s := sdkclient.NewSession(client, c.Addr("listen-client"))
		welcome, err := s.Open(ctx)
		if err != nil {
			var u *sdkclient.ErrUnavailable
			if errors.As(err, &u) {
				r.Unavailable, r.UnavailableStatus = u.Error(), u.Status
			}
			return r, fmt.Errorf("open session %d: %w", i, err)
		}
		if i == 0 {
			env.Logf("(3) open → %s", sdkclient.Clip(welcome, 300))
		}
		sessions = append(sessions, s)
		syncWG.Go(func() { s.SyncLoop(syncCtx, cfg.syncWait, hardStop) })
		if err := s.Send(ctx, connectFrame); err != nil {
			return r, fmt.Errorf("session %d: send connection: %w", i, err)
		}
		if _, err := s.Await(ctx, "getUserData", 10*time.Second); err != nil {
			return r, fmt.Errorf("session %d: %w", i, err)
		}
	}
	env.Logf("(3) %d fallback sessions connected; warm-up %v, measuring %v", cfg.conns, cfg.warmup, cfg.duration)

	l := &loadRun{}
	loopStop := time.Now().Add(cfg.warmup + cfg.duration + 10*time.Second)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			var h hist.Histogram
			defer l.merge(&h)
			prefix := "h" + strconv.Itoa(i) + "-"
			for n := 0; ; n++ {
				if l.phase.Load() == phaseStop || ctx.Err() != nil || time.Now().After(loopStop) {
					return
				}
				d, err := s.SendData(ctx, prefix+strconv.Itoa(n))
				if err != nil {
					l.noteErr(fmt.Errorf("session %d: %w", i, err))
					return
				}
				if l.phase.Load() == phaseMeasure {
					h.Record(d)
				}
			}
		})
	}
	l.measure(ctx, env, c, r, &wg)
	return r, runOutcome(c, r)
}
