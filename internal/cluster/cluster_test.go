package cluster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// fast are options with a short lease, so that the tests see it end.
func fast(url string) Options {
	return Options{URL: url, Heartbeat: 100 * time.Millisecond, NodeTTL: 500 * time.Millisecond, Timeout: 200 * time.Millisecond}
}

func newCluster(t *testing.T, o Options) *Cluster {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodeIDs(t *testing.T, c *Cluster) string {
	t.Helper()
	nodes, _, err := c.Nodes(context.Background())
	if err != nil {
		return "error: " + err.Error()
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	return strings.Join(ids, ",")
}

// TestRegistry: two nodes register with their addresses and session
// counts; one that stops leaves at once, one that dies (no more
// heartbeats) is gone when its lease ends; list nodes prints them.
func TestRegistry(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	a, b := newCluster(t, fast(r.URL)), newCluster(t, fast(r.URL))
	a.Start("a", "10.0.0.1:8080", "10.0.0.1:2225", func() int { return 3 })
	b.Start("b", "10.0.0.2:8080", "10.0.0.2:2225", nil)
	waitFor(t, 2*time.Second, "both nodes listed", func() bool { return nodeIDs(t, a) == "a,b" })

	reg := cli.New(nil)
	b.RegisterCLI(reg)
	out := reg.Run(context.Background(), "list nodes")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "Node") {
		t.Fatalf("list nodes:\n%s", out)
	}
	f := strings.Fields(lines[1])
	if f[0] != "a" || f[1] != "10.0.0.1:8080" || f[2] != "10.0.0.1:2225" || f[3] != "3" || !strings.HasSuffix(lines[1], "ago)") {
		t.Errorf("node a: %q", lines[1])
	}
	waitFor(t, time.Second, "a's gauge counts two nodes", func() bool { return testutil.ToFloat64(a.metrics.nodes) == 2 })
	if !a.Up() || testutil.ToFloat64(a.metrics.up) != 1 {
		t.Errorf("up %v", a.Up())
	}
	nodeSessions := func(series ...string) error {
		want := "# HELP rtcgate_cluster_node_sessions Client sessions of each live node, as the node registry had them at this node's last heartbeat\n" +
			"# TYPE rtcgate_cluster_node_sessions gauge\n" + strings.Join(series, "")
		return testutil.CollectAndCompare(a.metrics.sessions, strings.NewReader(want))
	}
	if err := nodeSessions(`rtcgate_cluster_node_sessions{node="a"} 3`+"\n", `rtcgate_cluster_node_sessions{node="b"} 0`+"\n"); err != nil {
		t.Error(err)
	}

	// b dies: no heartbeat, no goodbye. Its lease ends within the TTL.
	b.cancel()
	b.wg.Wait()
	died := time.Now()
	waitFor(t, 2*time.Second, "b gone after its lease", func() bool { return nodeIDs(t, a) == "a" })
	if since := time.Since(died); since < 300*time.Millisecond {
		t.Errorf("b gone after %s, before its lease (500ms) could end", since)
	}
	waitFor(t, time.Second, "b's series gone from a's metrics", func() bool {
		return nodeSessions(`rtcgate_cluster_node_sessions{node="a"} 3`+"\n") == nil
	})
	// a stops: gone at once.
	c := newCluster(t, fast(r.URL))
	c.Start("c", "x:1", "x:2", nil)
	waitFor(t, 2*time.Second, "c listed", func() bool { return nodeIDs(t, c) == "a,c" })
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := nodeIDs(t, c); got != "c" {
		t.Errorf("after a stopped: %s", got)
	}
}

// TestRegistryRedisRestart: Redis killed → the node counts errors and
// `list nodes` says Redis is unreachable; Redis back (empty: no AOF) → the
// node registers again within a few heartbeats.
func TestRegistryRedisRestart(t *testing.T) {
	dir := t.TempDir()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir})
	a := newCluster(t, fast(r.URL))
	a.Start("a", "x:1", "x:2", nil)
	waitFor(t, 2*time.Second, "a listed", func() bool { return nodeIDs(t, a) == "a" })
	reg := cli.New(nil)
	a.RegisterCLI(reg)

	r.Kill()
	waitFor(t, 2*time.Second, "a sees Redis down", func() bool { return !a.Up() })
	if out := reg.Run(context.Background(), "list nodes"); !strings.HasPrefix(out, "Error: cluster-redis unreachable") {
		t.Errorf("list nodes with Redis down: %q", out)
	}
	if n := testutil.ToFloat64(a.metrics.errors.WithLabelValues("evalsha")) + testutil.ToFloat64(a.metrics.errors.WithLabelValues("dial")); n == 0 {
		t.Error("no Redis error counted")
	}

	_, port, _ := net.SplitHostPort(r.Addr)
	p, _ := strconv.Atoi(port)
	testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: p})
	waitFor(t, 3*time.Second, "a registered again", func() bool { return nodeIDs(t, a) == "a" })
	if !a.Up() {
		t.Error("a not up after Redis came back")
	}
	if testutil.CollectAndCount(a.metrics.latency) == 0 {
		t.Error("no latency observed")
	}
}

// TestNewURL: cluster-redis's forms; a bad one is refused without its
// password in the message; Sentinel's form parses.
func TestNewURL(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:1/0", "rediss://user:pw@example.com:6380/2",
		"redis://:pw@127.0.0.1:26379/0?master_name=mymaster&addr=127.0.0.1:26380"} {
		c, err := New(Options{URL: u, Timeout: time.Second})
		if err != nil {
			t.Errorf("%s: %v", u, err)
			continue
		}
		c.Stop(context.Background())
	}
	for _, u := range []string{"http://127.0.0.1:1", "redis://:secretpw@127.0.0.1:1/notadb", "redis://", "127.0.0.1:6379"} {
		_, err := New(Options{URL: u, Timeout: time.Second})
		if err == nil {
			t.Errorf("%s accepted", u)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%s: the password is in %q", u, err)
		}
	}
}

// A node that cannot reach Redis at all still starts; Stop returns.
func TestStartWithoutRedis(t *testing.T) {
	c := newCluster(t, fast("redis://127.0.0.1:1/0"))
	c.Start("a", "x:1", "x:2", nil)
	waitFor(t, 2*time.Second, "a heartbeat failed", func() bool { return c.down.Load() })
	if c.Up() {
		t.Error("up without Redis")
	}
	if err := c.Stop(context.Background()); errors.Is(err, context.DeadlineExceeded) {
		t.Error(err)
	}
}

// TestRedisTimeout: a Redis that accepts and never answers costs a command
// cluster-redis-timeout (with its one retry), not more.
func TestRedisTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	o := fast("redis://" + ln.Addr().String() + "/0")
	c := newCluster(t, o)
	c.o.NodeID = "a"
	start := time.Now()
	_, _, err = c.Nodes(context.Background())
	took := time.Since(start)
	if err == nil || took > 3*o.Timeout {
		t.Errorf("Nodes against a silent Redis: %v after %s (cluster-redis-timeout %s)", err, took, o.Timeout)
	}
}
