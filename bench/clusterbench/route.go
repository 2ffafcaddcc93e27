package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// routeResult is (2): the same load on sessions owned by node A, sent to
// A (local) and to B (forwarded to A).
type routeResult struct {
	Conns  int       `json:"conns"`
	Rate   float64   `json:"paced_round_trips_per_s"` // 0: closed loop
	Local  routeSide `json:"local"`
	Routed routeSide `json:"routed"`
	// Ratio is the rtcgates' CPU per request forwarded over the same on
	// the owner: the target's figure.
	Ratio float64 `json:"cpu_per_request_ratio"`
	// WithRedis counts redis-server's CPU in both.
	WithRedis float64 `json:"cpu_per_request_ratio_with_redis"`
}

// routeSide sums the windows of one kind.
type routeSide struct {
	Windows    []loadWindow `json:"windows"`
	RoundTrips uint64       `json:"round_trips"`
	Requests   uint64       `json:"client_requests"`
	CPU        cpuWindow    `json:"cpu"`
	PerS       float64      `json:"round_trips_per_s"`
	P50Ms      float64      `json:"p50_ms_first_window"`
	// CPU-µs per client request (send or sync): both rtcgates, each (A
	// the owner, B the other), redis-server.
	NodesUsPerReq float64 `json:"rtcgate_cpu_us_per_request"`
	AUsPerReq     float64 `json:"owner_cpu_us_per_request"`
	BUsPerReq     float64 `json:"other_cpu_us_per_request"`
	RedisUsPerReq float64 `json:"redis_cpu_us_per_request"`
}

func (s *routeSide) add(w loadWindow) {
	s.Windows = append(s.Windows, w)
	s.RoundTrips += w.RoundTrips
	s.Requests += w.Requests
	s.CPU.add(w.CPU)
	if len(s.Windows) == 1 {
		s.P50Ms = w.P50Ms
	}
}

func (s *routeSide) finish() {
	if s.CPU.WindowS > 0 {
		s.PerS = float64(s.RoundTrips) / s.CPU.WindowS
	}
	if s.Requests == 0 {
		return
	}
	n := float64(s.Requests)
	s.NodesUsPerReq = s.CPU.NodesS / n * 1e6
	s.AUsPerReq = s.CPU.Nodes[0] / n * 1e6
	s.BUsPerReq = s.CPU.Nodes[1] / n * 1e6
	s.RedisUsPerReq = s.CPU.RedisS / n * 1e6
}

// scenarioRoute is (2).
func scenarioRoute(ctx context.Context, env *runEnv) (*routeResult, error) {
	cfg := env.cfg
	if err := env.flushRedis(ctx); err != nil {
		return nil, fmt.Errorf("FLUSHALL: %w", err)
	}
	nodes, err := env.startNodes(ctx, 2, defaultLease)
	if err != nil {
		return nil, err
	}
	a, b := nodes[0], nodes[1]
	p := procs{nodes: nodes, redis: env.redis.Pid()}
	r := &routeResult{Conns: cfg.conns, Rate: cfg.routeRate}
	rounds := time.Duration(cfg.routeRounds * 2)
	hardStop := time.Now().Add(rounds*(cfg.warmup+cfg.routeDur) + 2*time.Minute)
	fs, err := openSessions(ctx, env, a.Addr("listen-client"), cfg.conns, hardStop)
	if err != nil {
		return r, errors.Join(err, stopNodes(nodes))
	}
	env.Logf("(2) %d sessions on %s (owner); %s forwards to it", cfg.conns, a.id, b.id)
	var errs []error
	for i := range cfg.routeRounds {
		for _, side := range []struct {
			to  *node
			sum *routeSide
		}{{a, &r.Local}, {b, &r.Routed}} {
			if ctx.Err() != nil {
				break
			}
			for _, s := range fs.list {
				s.SetEndpoint(side.to.Addr("listen-client"))
			}
			env.awaitQuiet(ctx, p, "route")
			w := runLoad(ctx, fs, p, loadSpec{warmup: cfg.warmup, dur: cfg.routeDur, tag: fmt.Sprintf("r%d%s", i, side.to.id), rate: cfg.routeRate})
			side.sum.add(w)
			if err := w.outcome(); err != nil {
				errs = append(errs, fmt.Errorf("requests to %s: %w", side.to.id, err))
			}
		}
		if len(errs) > 0 {
			break
		}
	}
	fs.close()
	r.Local.finish()
	r.Routed.finish()
	if r.Local.NodesUsPerReq > 0 {
		r.Ratio = r.Routed.NodesUsPerReq / r.Local.NodesUsPerReq
		r.WithRedis = (r.Routed.NodesUsPerReq + r.Routed.RedisUsPerReq) / (r.Local.NodesUsPerReq + r.Local.RedisUsPerReq)
	}
	err = errors.Join(append(errs, stopNodes(nodes))...)
	if ferr := env.flushRedis(ctx); ferr != nil && err == nil {
		err = fmt.Errorf("FLUSHALL: %w", ferr)
	}
	return r, err
}
