package client

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rtcgate/rtcgate/internal/testutil"
)

func routedCount(h *Hub, result string) float64 {
	return promtest.ToFloat64(h.routed.WithLabelValues(result))
}

// TestRedisBrokerOwnerCached: a node that forwarded a connection's request
// forwards the next ones to the owner it remembers, without Redis; when
// that owner answers that it no longer holds the connection (closed there,
// opened again on a third node), the node drops what it remembered, looks
// the owner up again and forwards once more, and the client sees nothing
// of it.
func TestRedisBrokerOwnerCached(t *testing.T) {
	envs, _, rdb := clusterNodes(t, 3, nil)
	a, b, c3 := envs[0], envs[1], envs[2]
	ctx := context.Background()
	c := a.conn()
	c.on(a).open()
	c.on(b).send(fbConnection, 1)
	if _, ok := b.hub.owners.get(hashConnectionID(c.id), "127.0.0.1"); !ok {
		t.Fatal("the forwarding node does not remember the owner")
	}
	// With the binding gone from Redis, b still finds the owner: no lookup.
	key := connKeyPrefix + hashConnectionID(c.id)
	val, err := rdb.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, key)
	wantMessages(t, c.on(b).sync("ack", "0", "wait", "0"), "getUserData")
	rdb.Set(ctx, key, val, time.Minute)

	// The client closes on a and opens the same connectionId on c3: b's
	// memory is stale.
	if r := c.on(a).post("close"); r.status != 200 {
		t.Fatalf("close: %v", r)
	}
	waitFor(t, "binding forgotten", 5*time.Second, func() bool {
		n, _ := rdb.Exists(ctx, key).Result()
		return n == 0
	})
	c.on(c3).open()
	stale := routedCount(b.hub, "stale-owner")
	c.on(b).send(fbConnection, 2)
	wantMessages(t, c.on(b).sync("ack", "0", "wait", "0"), "getUserData")
	if n := routedCount(b.hub, "stale-owner") - stale; n != 1 {
		t.Fatalf("stale-owner counted %v times, want 1", n)
	}
	if n := c3.hub.Len(); n != 1 {
		t.Fatalf("%d sessions on the new owner", n)
	}
	// Closed on its owner for good: b finds no owner and answers 400.
	if r := c.on(c3).post("close"); r.status != 200 {
		t.Fatalf("close: %v", r)
	}
	waitFor(t, "binding forgotten", 5*time.Second, func() bool {
		n, _ := rdb.Exists(ctx, key).Result()
		return n == 0
	})
	if r := c.on(b).post("sync", "wait", "0"); r.status != 400 || r.header.Get(headerRoutedUnbound) != "" {
		t.Fatalf("sync after close on the other node: %v", r)
	}
}

// TestOwnerCacheBounds: the owner cache holds at most ownerCacheSize
// entries, forgets an expired one, and one remembered for another client
// address.
func TestOwnerCacheBounds(t *testing.T) {
	c := newOwnerCache()
	for i := range ownerCacheSize + 500 {
		c.put(strconv.Itoa(i), Route{Node: "n", Addr: "127.0.0.1:1", IP: "127.0.0.1"})
		if n := c.len(); n > ownerCacheSize {
			t.Fatalf("%d entries after %d puts, bound %d", n, i+1, ownerCacheSize)
		}
	}
	c.put("x", Route{Node: "n", IP: "127.0.0.1"})
	if _, ok := c.get("x", "127.0.0.2"); ok {
		t.Fatal("remembered owner returned for another client address")
	}
	c.put("y", Route{Node: "n", IP: "127.0.0.1"})
	if _, ok := c.get("y", "127.0.0.1"); !ok {
		t.Fatal("fresh entry not returned")
	}
	c.mu.Lock()
	e := c.m["y"]
	e.until = time.Now().Add(-time.Millisecond)
	c.m["y"] = e
	c.mu.Unlock()
	if _, ok := c.get("y", "127.0.0.1"); ok {
		t.Fatal("expired entry returned")
	}
	if n := c.len(); n > ownerCacheSize {
		t.Fatalf("%d entries", n)
	}
}

// TestRedisBrokerClientGoneDuringForwardedSync: a client that leaves while
// a sync it sent to a non-owner long-polls on the owner is no owner
// failure: no WARN, counted as client-gone, not owner-unreachable.
func TestRedisBrokerClientGoneDuringForwardedSync(t *testing.T) {
	var logs testutil.SyncBuffer
	envs, _, _ := clusterNodes(t, 2, func(o *Options) {
		o.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a, b := envs[0], envs[1]
	c := a.conn()
	c.on(a).open()
	c.on(b).send(fbConnection, 1)
	wantMessages(t, c.on(b).sync("ack", "0", "wait", "0"), "getUserData")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := url.Values{"connectionId": {c.id}, "action": {"sync"}, "ack": {"1"}, "wait": {"10"}}
	req, _ := http.NewRequestWithContext(ctx, "POST", b.srv.URL+"/http", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	done := make(chan error, 1)
	go func() {
		res, err := b.hc.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	bd := a.hub.fallback.lookup(bindingKey{hash: hashConnectionID(c.id)})
	waitFor(t, "the forwarded sync waiting on the owner", 5*time.Second, func() bool {
		bd.mu.Lock()
		defer bd.mu.Unlock()
		return bd.release != nil
	})
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the canceled sync got an answer")
	}
	waitFor(t, "client-gone counted", 5*time.Second, func() bool { return routedCount(b.hub, "client-gone") == 1 })
	if n := routedCount(b.hub, "owner-unreachable"); n != 0 {
		t.Fatalf("owner-unreachable counted %v times", n)
	}
	if strings.Contains(logs.String(), "owner node unreachable") {
		t.Fatalf("a client leaving logged as an owner failure:\n%s", logs.String())
	}
	// The owner still serves the connection through b.
	wantMessages(t, c.on(b).sync("ack", "1", "wait", "0"))
}
