package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/bench/internal/benchrun"
	"github.com/rtcgate/rtcgate/bench/internal/hookbackend"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// The app every node has, from the configuration file: its backend is
// this program's.
const (
	appName = "clusterbench"
	appKey  = "clusterbench"
)

// runEnv is what the scenarios share: the built rtcgate, one redis-server
// and the hook backend for the whole run.
type runEnv struct {
	benchrun.Env
	cfg     *config
	bin     string
	cfgPath string // rtcgate.yaml: the app
	redis   *testpeer.Redis
	rdb     *redis.Client
	backend *hookbackend.Backend
	hooks   atomic.Uint64 // hook requests the backend answered
	nodeSeq int           // numbers the nodes started: n1, n2, …
}

// startShared starts redis-server and the backend and writes the nodes'
// configuration.
func (e *runEnv) startShared() error {
	b, err := hookbackend.Start(appName, func(string, []byte) (func(time.Duration), error) {
		e.hooks.Add(1)
		return nil, nil
	})
	if err != nil {
		return &startError{fmt.Errorf("hook backend: %w", err)}
	}
	e.backend = b
	e.cfgPath, err = rtcgatechild.WriteConfig(e.Dir, rtcgatechild.App{Name: appName, Key: appKey, URL: b.AppURL(),
		Methods: []string{"connect", "ConnectionStatusEvent", "OnDataEvent"}})
	if err != nil {
		return err
	}
	rdir := filepath.Join(e.Dir, "redis")
	if err := os.MkdirAll(rdir, 0o750); err != nil {
		return err
	}
	if e.redis, err = testpeer.RunRedis(testpeer.RedisOptions{Dir: rdir}); err != nil {
		return &startError{err}
	}
	opt, err := redis.ParseURL(e.redis.URL)
	if err != nil {
		return err
	}
	e.rdb = redis.NewClient(opt)
	e.Logf("redis-server pid %d at %s, hook backend %s", e.redis.Pid(), e.redis.Addr, b.AppURL())
	return nil
}

func (e *runEnv) stopShared() {
	if e.rdb != nil {
		e.rdb.Close()
	}
	if e.redis != nil {
		e.redis.Stop()
	}
	if e.backend != nil {
		e.backend.Close()
	}
}

// flushRedis empties Redis between scenarios (no node running), so that
// each starts from a clean cluster.
func (e *runEnv) flushRedis(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return e.rdb.FlushAll(ctx).Err()
}

// node is one rtcgate of the cluster.
type node struct {
	*rtcgatechild.Child
	id string
}

// startNode starts one node on the run's Redis with lease l: the app from
// the configuration file, its own state file, no SIP gateway, no per-
// address limits (every client is 127.0.0.1), no keep-alive pings (the
// takeover's clients read only when they expect a frame), HAProxy trusted
// for X-Forwarded-For.
func (e *runEnv) startNode(ctx context.Context, l lease) (*node, error) {
	e.nodeSeq++
	id := fmt.Sprintf("n%d", e.nodeSeq)
	args := append(rtcgatechild.ServeArgs(e.cfgPath, "127.0.0.1:0"),
		"--state-file", filepath.Join(e.Dir, id+"-state.json"),
		"--cluster-redis", e.redis.URL, "--node-id", id,
		"--cluster-node-ttl", l.TTL.String(), "--cluster-heartbeat", l.Heartbeat.String(),
		"--client-trusted-proxies", "127.0.0.1/32",
		"--client-max-sessions-per-ip", "0", "--client-new-sessions-per-ip", "0",
		"--client-keepalive", "0s",
		"--client-sync-wait", (e.cfg.syncWait + 5*time.Second).String(),
		"--shutdown-timeout", "5s",
	)
	c, err := rtcgatechild.Start(ctx, rtcgatechild.Options{
		Bin: e.bin, Args: args, Env: []string{"RTCGATE_LISTEN_SIP="},
		LogPath: filepath.Join(e.Dir, id+".log"), Want: []string{"listen-http", "listen-client"},
		ReadyTimeout: e.cfg.readyTimeout, Logf: e.Logf,
	})
	if err != nil {
		return nil, &startError{fmt.Errorf("node %s: %w", id, err)}
	}
	n := &node{Child: c, id: id}
	// Up means registered: its lease is in Redis.
	if err := e.awaitLease(ctx, n, true, 10*time.Second); err != nil {
		c.Stop()
		return nil, &startError{fmt.Errorf("node %s: %w", id, err)}
	}
	return n, nil
}

// startNodes starts count nodes.
func (e *runEnv) startNodes(ctx context.Context, count int, l lease) ([]*node, error) {
	var nodes []*node
	for range count {
		n, err := e.startNode(ctx, l)
		if err != nil {
			stopNodes(nodes)
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// stopNodes stops nodes in order; a node that had died is an error.
func stopNodes(nodes []*node) error {
	var errs []error
	for _, n := range nodes {
		if n == nil {
			continue
		}
		if err := n.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w (log %s)", n.id, err, n.LogPath()))
		}
	}
	return errors.Join(errs...)
}

// kill ends n with SIGKILL, as a crash would, and waits until it is reaped.
func (n *node) kill() {
	syscall.Kill(n.Pid(), syscall.SIGKILL)
	<-n.Exited()
	n.MarkReported()
}

// leaseKey is n's lease in Redis (README "Cluster").
func leaseKey(id string) string { return "rtcgate:node:" + id }

// awaitLease waits until n's lease is there (want) or gone, polling every
// 5 ms, and returns an error after limit.
func (e *runEnv) awaitLease(ctx context.Context, n *node, want bool, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got, err := e.rdb.Exists(ctx, leaseKey(n.id)).Result()
		if err == nil && (got == 1) == want {
			return nil
		}
		if !n.Alive() && want {
			return n.ExitError()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lease %s %s after %v (%v)", leaseKey(n.id), map[bool]string{true: "not there", false: "still there"}[want], limit, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// routedForwarded sums rtcgate_client_requests_routed_total{result=
// "forwarded"} over nodes: fallback requests a node passed to the owner.
func routedForwarded(ctx context.Context, nodes []*node) (float64, error) {
	var sum float64
	for _, n := range nodes {
		var v float64
		if _, err := n.Metrics(ctx, 5*time.Second, map[string]*float64{`rtcgate_client_requests_routed_total{result="forwarded"}`: &v}); err != nil {
			return 0, fmt.Errorf("node %s: %w", n.id, err)
		}
		sum += v
	}
	return sum, nil
}

// cpuSnap is the CPU used so far by each process of a scenario and by the
// box, at one instant.
type cpuSnap struct {
	at      time.Time
	host    proc.HostCPU
	nodes   []float64 // CPU-s of each node, in order
	haproxy float64
	redis   float64
	self    float64 // clients and backend
	ticks   map[int]proc.Ticks
}

// procs are the processes a scenario measures.
type procs struct {
	nodes   []*node
	haproxy int // pid; 0: none
	redis   int
}

func (p procs) pids() []int {
	out := []int{p.redis}
	for _, n := range p.nodes {
		out = append(out, n.Pid())
	}
	if p.haproxy > 0 {
		out = append(out, p.haproxy)
	}
	return out
}

func (p procs) snap(names bool) cpuSnap {
	s := cpuSnap{at: time.Now()}
	if names {
		s.ticks = proc.AllTicks()
	}
	s.host, _ = proc.ReadHostCPU()
	for _, n := range p.nodes {
		v, _ := proc.CPUSeconds(n.Pid())
		s.nodes = append(s.nodes, v)
	}
	if p.haproxy > 0 {
		s.haproxy, _ = proc.CPUSeconds(p.haproxy)
	}
	s.redis, _ = proc.CPUSeconds(p.redis)
	s.self, _ = proc.CPUSeconds(0)
	return s
}

// cpuWindow is the CPU each process used over a window (seconds).
type cpuWindow struct {
	WindowS     float64   `json:"window_s"`
	Nodes       []float64 `json:"nodes_cpu_s"` // each rtcgate's
	NodesS      float64   `json:"rtcgate_cpu_s"`
	HAProxyS    float64   `json:"haproxy_cpu_s"`
	RedisS      float64   `json:"redis_cpu_s"`
	SelfS       float64   `json:"clusterbench_cpu_s"` // clients and backend
	HostBusyPct float64   `json:"host_busy_pct"`
	OtherS      float64   `json:"other_processes_cpu_s"`
	OtherTop    string    `json:"other_processes,omitempty"`
}

func (p procs) between(a, b cpuSnap) cpuWindow {
	w := cpuWindow{WindowS: b.at.Sub(a.at).Seconds(), HAProxyS: b.haproxy - a.haproxy, RedisS: b.redis - a.redis, SelfS: b.self - a.self,
		HostBusyPct: proc.BusyPercent(a.host, b.host)}
	for i := range b.nodes {
		d := b.nodes[i] - a.nodes[i]
		w.Nodes = append(w.Nodes, d)
		w.NodesS += d
	}
	w.OtherS = max(0, proc.BusySeconds(a.host, b.host)-w.NodesS-w.HAProxyS-w.RedisS-w.SelfS)
	if w.OtherS > proc.BusyOtherCores*w.WindowS && a.ticks != nil && b.ticks != nil {
		// Name the others: the processes measured here are not among them.
		ta, tb := maps.Clone(a.ticks), maps.Clone(b.ticks)
		for _, pid := range p.pids() {
			delete(ta, pid)
			delete(tb, pid)
		}
		top, seen := proc.TopOthers(ta, tb, 0, 3)
		w.OtherTop = proc.NameOthers(top, w.OtherS, seen)
	}
	return w
}

// add sums windows (the same processes).
func (w *cpuWindow) add(o cpuWindow) {
	w.WindowS += o.WindowS
	if w.Nodes == nil {
		w.Nodes = make([]float64, len(o.Nodes))
	}
	for i := range o.Nodes {
		w.Nodes[i] += o.Nodes[i]
	}
	w.NodesS += o.NodesS
	w.HAProxyS += o.HAProxyS
	w.RedisS += o.RedisS
	w.SelfS += o.SelfS
	w.OtherS += o.OtherS
	if w.OtherTop == "" {
		w.OtherTop = o.OtherTop // the first window's busiest others
	}
	w.HostBusyPct = max(w.HostBusyPct, o.HostBusyPct)
}

// awaitQuiet waits (at most -wait-quiet) for the rest of the box to calm
// down before a measured window.
func (e *runEnv) awaitQuiet(ctx context.Context, p procs, what string) {
	q := proc.Quiet{Limit: e.cfg.waitQuiet, Step: time.Second, Who: "other processes", Logf: e.Logf}
	q.Await(ctx, what, func(sleep func()) float64 {
		a := p.snap(false)
		sleep()
		w := p.between(a, p.snap(false))
		return w.OtherS / w.WindowS
	})
}
