package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// clusterNode runs one rtcgate of a cluster on rURL, with its own state
// file (unused in a cluster) and a short heartbeat.
func clusterNode(t *testing.T, rURL string) *rtcgate {
	t.Helper()
	args := append(append([]string(nil), ephemeral...), "--cluster-redis", rURL,
		"--cluster-heartbeat", "250ms", "--cluster-node-ttl", "2s",
		"--state-file", filepath.Join(t.TempDir(), "state.json"))
	return start(t, args...)
}

// listedNodes parses `list nodes`: the node ids, sorted; nil for an error.
func listedNodes(out string) []string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Node") {
		return nil
	}
	var ids []string
	for _, l := range lines[1:] {
		ids = append(ids, strings.Fields(l)[0])
	}
	sort.Strings(ids)
	return ids
}

// nodeID is a node's default node-id: the host name and its listen-client.
func nodeID(t *testing.T, r *rtcgate) string {
	host, _ := os.Hostname()
	return host + "/" + r.addr(t, "listen-client")
}

// eventually polls cond (a bounded deadline, not a sleep).
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

// TestClusterApps: two nodes on one Redis. An app added through node A's
// CLI is listed by node B within a second and admits B's clients; both
// nodes restarted, it is still there; `list nodes` on either shows both.
// Redis killed: node A still answers /ping and admits a client of the
// default app; Redis back: `list nodes` recovers.
func TestClusterApps(t *testing.T) {
	dir := t.TempDir()
	red := testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, AOF: true})
	a, b := clusterNode(t, red.URL), clusterNode(t, red.URL)

	if got := cliTCP(t, a.addr(t, "listen-cli"), "add app X xKey http://127.0.0.1:9/X"); got != "App X added\n" {
		t.Fatalf("add app on A = %q", got)
	}
	took := eventually(t, time.Second, "B lists X", func() bool {
		return appSources(t, cliTCP(t, b.addr(t, "listen-cli"), "show apps"))["X"] == "runtime"
	})
	t.Logf("X listed on B %s after it was added on A", took)
	ws := dialWS(t, "ws://"+b.addr(t, "listen-client")+"/", nil)
	sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"xKey"}]}`))

	both := []string{nodeID(t, a), nodeID(t, b)}
	sort.Strings(both)
	eventually(t, 2*time.Second, "list nodes shows A and B", func() bool {
		return strings.Join(listedNodes(cliTCP(t, a.addr(t, "listen-cli"), "list nodes")), ",") == strings.Join(both, ",")
	})
	// B's client is counted in its line (id, client, http, sessions, …)
	// from B's next heartbeat.
	eventually(t, 2*time.Second, "B's session in list nodes", func() bool {
		for _, l := range strings.Split(cliTCP(t, a.addr(t, "listen-cli"), "list nodes"), "\n") {
			if f := strings.Fields(l); len(f) > 4 && f[0] == nodeID(t, b) {
				return f[1] == b.addr(t, "listen-client") && f[2] == b.addr(t, "listen-http") && f[3] == "1"
			}
		}
		return false
	})

	// Both restarted: X is in Redis, not in either state file.
	a.stop(t, syscall.SIGTERM)
	b.stop(t, syscall.SIGTERM)
	a, b = clusterNode(t, red.URL), clusterNode(t, red.URL)
	for _, n := range []*rtcgate{a, b} {
		if src := appSources(t, cliTCP(t, n.addr(t, "listen-cli"), "show apps")); src["X"] != "runtime" {
			t.Errorf("after restart: %v", src)
		}
	}
	both = []string{nodeID(t, a), nodeID(t, b)}
	sort.Strings(both)
	for _, n := range []*rtcgate{a, b} {
		eventually(t, 2*time.Second, "list nodes shows the restarted A and B", func() bool {
			return strings.Join(listedNodes(cliTCP(t, n.addr(t, "listen-cli"), "list nodes")), ",") == strings.Join(both, ",")
		})
	}

	// Redis killed: A serves its own.
	red.Kill()
	resp, err := http.Get("http://" + a.addr(t, "listen-http") + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp.Body); resp.StatusCode != 200 || strings.TrimSpace(body) != "pong" {
		t.Errorf("/ping with Redis down = %d %q", resp.StatusCode, body)
	}
	resp.Body.Close()
	ws = dialWS(t, "ws://"+a.addr(t, "listen-client")+"/", nil)
	sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"defaultApp"}]}`))
	ws = dialWS(t, "ws://"+a.addr(t, "listen-client")+"/", nil)
	sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"xKey"}]}`)) // known from before
	if out := cliTCP(t, a.addr(t, "listen-cli"), "list nodes"); !strings.HasPrefix(out, "Error: cluster-redis unreachable") {
		t.Errorf("list nodes with Redis down = %q", out)
	}
	// A's metrics: Redis down, its failed commands counted.
	eventually(t, 2*time.Second, "A's metrics say Redis is down, with errors", func() bool {
		m := scrape(t, "http://"+a.addr(t, "listen-http"))
		errs := 0.0
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, "rtcgate_cluster_redis_errors_total{"); ok {
				f, _ := strconv.ParseFloat(v[strings.LastIndexByte(v, ' ')+1:], 64)
				errs += f
			}
		}
		return errs > 0 && strings.Contains(m, "rtcgate_cluster_redis_up 0\n")
	})

	// Redis back (its AOF kept X): the registry catches up.
	_, port, _ := net.SplitHostPort(red.Addr)
	p, _ := strconv.Atoi(port)
	testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, AOF: true, Port: p})
	took = eventually(t, 5*time.Second, "list nodes recovers", func() bool {
		return strings.Join(listedNodes(cliTCP(t, a.addr(t, "listen-cli"), "list nodes")), ",") == strings.Join(both, ",")
	})
	t.Logf("list nodes recovered %s after Redis was back", took)
}
