package e2e

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// TestClusterHooksRedisDown: two nodes on one Redis (AOF); sessions
// connect, send data and leave on both nodes before Redis is killed and
// while it is down for 2 s; their status events wait in each node's
// spill (rtcgate_hook_events_spilled) and, once Redis is back on the same
// port, the backend gets every event of every session, in order per
// session, each id once.
func TestClusterHooksRedisDown(t *testing.T) {
	began := time.Now()
	dir := t.TempDir()
	red := testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, AOF: true})
	b := newClusterBackend(t)
	b.unhold()
	cfgFile := b.config(t)
	node := func(id string) *rtcgate {
		return start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--hooks-redis-claim-after", "1s", "--cluster-heartbeat", "250ms",
			"--shutdown-timeout", "2s")...)
	}
	nodes := []*rtcgate{node("a"), node("b")}
	var (
		mu  sync.Mutex
		all []string
	)
	sessions := func(perNode int) {
		var wg sync.WaitGroup
		for _, r := range nodes {
			url := "ws://" + r.addr(t, "listen-client") + "/"
			for range perNode {
				wg.Go(func() {
					sid := clusterSession(t, url)
					mu.Lock()
					all = append(all, sid)
					mu.Unlock()
				})
			}
		}
		wg.Wait()
	}
	sessions(3)
	red.Kill()
	killed := time.Now()
	sessions(8) // connect, 20 sendData, leave: all with Redis down
	for _, r := range nodes {
		if v := outageMetric(scrape(t, "http://"+r.addr(t, "listen-http")), "rtcgate_hook_events_spilled"); v < 8 {
			t.Errorf("rtcgate_hook_events_spilled = %v with Redis down, want ≥ 8 sessions' events", v)
		}
	}
	sleepUntil(killed.Add(2 * time.Second))
	_, port, _ := net.SplitHostPort(red.Addr)
	p, _ := strconv.Atoi(port)
	testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, AOF: true, Port: p})
	back := time.Now()

	perSession := len(clusterWant())
	b.waitAll(t, all, perSession, 10*time.Second, "after Redis was back")
	t.Logf("all %d events delivered %.1f s after Redis was back (test %.1f s)", len(all)*perSession,
		time.Since(back).Seconds(), time.Since(began).Seconds())
	for _, r := range nodes {
		waitOutageMetric(t, "http://"+r.addr(t, "listen-http"), "rtcgate_hook_events_spilled",
			func(v float64) bool { return v == 0 }, 5*time.Second)
		m := scrape(t, "http://"+r.addr(t, "listen-http"))
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "rtcgate_hook_events_refused_total") && !strings.HasSuffix(l, " 0") {
				t.Errorf("refused: %s", l)
			}
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	dups := b.checkOrder(t, all)
	t.Logf("%d sessions on 2 nodes, %d events, %d redeliveries", len(all), len(all)*perSession, dups)
}
