package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// lbResult is (1) for one node count.
type lbResult struct {
	Nodes     int        `json:"nodes"`
	Conns     int        `json:"conns"`
	PerS      float64    `json:"round_trips_per_s"`
	Window    loadWindow `json:"window"`
	Forwarded float64    `json:"requests_forwarded"` // by the nodes to the owner, in the window
	// ForwardedShare is the share of the client's requests a node
	// forwarded: (N−1)/N expected with round robin.
	ForwardedShare float64 `json:"forwarded_share"`
	// CPU-ms per round trip, over the window.
	NodesMsPerRT   float64 `json:"rtcgate_cpu_ms_per_round_trip"`
	HAProxyMsPerRT float64 `json:"haproxy_cpu_ms_per_round_trip"`
	RedisMsPerRT   float64 `json:"redis_cpu_ms_per_round_trip"`
	ClientMsPerRT  float64 `json:"clusterbench_cpu_ms_per_round_trip"`
	RequestsPerRT  float64 `json:"client_requests_per_round_trip"`
}

// scenarioLB is (1) with count nodes behind HAProxy.
func scenarioLB(ctx context.Context, env *runEnv, count int) (*lbResult, error) {
	cfg := env.cfg
	if err := env.flushRedis(ctx); err != nil {
		return nil, fmt.Errorf("FLUSHALL: %w", err)
	}
	nodes, err := env.startNodes(ctx, count, defaultLease)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr("listen-client"))
	}
	dir := filepath.Join(env.Dir, "haproxy-"+strconv.Itoa(count))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		stopNodes(nodes)
		return nil, err
	}
	lb, err := testpeer.RunHAProxy(dir, 0, addrs...)
	if err != nil {
		stopNodes(nodes)
		return nil, &startError{err}
	}
	defer func() {
		lb.Stop()
		os.WriteFile(filepath.Join(dir, "haproxy.log"), []byte(lb.Logs()), 0o644)
	}()
	env.Logf("(1) haproxy pid %d at %s over %v", lb.Pid(), lb.Addr, addrs)
	p := procs{nodes: nodes, haproxy: lb.Pid(), redis: env.redis.Pid()}
	r := &lbResult{Nodes: count, Conns: cfg.conns}

	hardStop := time.Now().Add(cfg.warmup + cfg.duration + 2*time.Minute)
	fs, err := openSessions(ctx, env, lb.Addr, cfg.conns, hardStop)
	if err != nil {
		return r, errors.Join(err, stopNodes(nodes))
	}
	env.awaitQuiet(ctx, p, fmt.Sprintf("lb %d", count))
	var fwdA, fwdB float64
	var errA, errB error
	r.Window = runLoad(ctx, fs, p, loadSpec{warmup: cfg.warmup, dur: cfg.duration, tag: "lb", edge: func(end bool) {
		if end {
			fwdB, errB = routedForwarded(ctx, nodes)
		} else {
			fwdA, errA = routedForwarded(ctx, nodes)
		}
	}})
	fs.close()
	if err := errors.Join(errA, errB); err == nil {
		r.Forwarded = fwdB - fwdA
	} else {
		env.Logf("warning: (1) %d node(s): routed requests from /metrics: %v", count, err)
	}
	w := r.Window
	r.PerS = w.perS()
	if w.RoundTrips > 0 {
		rt := float64(w.RoundTrips)
		r.NodesMsPerRT = w.CPU.NodesS / rt * 1000
		r.HAProxyMsPerRT = w.CPU.HAProxyS / rt * 1000
		r.RedisMsPerRT = w.CPU.RedisS / rt * 1000
		r.ClientMsPerRT = w.CPU.SelfS / rt * 1000
		r.RequestsPerRT = float64(w.Requests) / rt
	}
	if w.Requests > 0 {
		r.ForwardedShare = r.Forwarded / float64(w.Requests)
	}
	err = errors.Join(w.outcome(), stopNodes(nodes))
	if ferr := env.flushRedis(ctx); ferr != nil && err == nil {
		err = fmt.Errorf("FLUSHALL: %w", ferr)
	}
	return r, err
}

// defaultLease is rtcgate's own (config defaults): the nodes of (1) and (2)
// are never killed.
var defaultLease = lease{TTL: 5 * time.Second, Heartbeat: time.Second}
