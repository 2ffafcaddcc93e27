package daemon

import (
	"context"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// gauge reads a metric without labels (-1: not exported).
func gauge(t *testing.T, d *Daemon, name string) float64 {
	t.Helper()
	mfs, err := d.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestHookQueueStartsWithRedisDown: with cluster-redis down at start the
// node starts (no config error); a hook event waits in the spill, and
// reaches Redis once Redis answers. (After TestSingleNodeHasNoRedis, which
// counts the Redis clients built: keep this file sorted after it.)
func TestHookQueueStartsWithRedisDown(t *testing.T) {
	port := testpeer.FreeUDPPort(t)
	url := "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	var over []config.Override
	for _, k := range []string{"listen-http", "listen-cli", "listen-ng", "listen-client", "listen-sip"} {
		over = append(over, config.Override{Key: k, Value: "127.0.0.1:0"})
	}
	over = append(over, config.Override{Key: "state-file", Value: filepath.Join(t.TempDir(), "state.json")},
		config.Override{Key: "cluster-redis", Value: url},
		config.Override{Key: "cluster-heartbeat", Value: "100ms"},
		config.Override{Key: "hooks-redis-claim-after", Value: "400ms"})
	cfg, err := config.Load("", nil, over)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatalf("a node must start while Redis is down: %v", err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}()
	t.Logf("started in %v with Redis down", time.Since(start))
	if err := d.hookEvents.Enqueue("sess", "nokey", "ConnectionStatusEvent", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if g := gauge(t, d, "rtcgate_hook_events_spilled"); g != 1 {
		t.Fatalf("rtcgate_hook_events_spilled = %v, want 1", g)
	}
	if g := gauge(t, d, "rtcgate_hook_events_refused_total"); g != 0 {
		t.Errorf("rtcgate_hook_events_refused_total = %v", g)
	}
	testpeer.StartRedis(t, testpeer.RedisOptions{Port: port})
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, d, "rtcgate_hook_events_spilled") != 0 || c.Exists(context.Background(), "rtcgate:hooks:origin").Val() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the spill did not reach Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if seq, _ := c.Get(context.Background(), "rtcgate:hooks:seq").Int(); seq < 1 {
		t.Errorf("seq = %d: the spilled event was not appended", seq)
	}
}
