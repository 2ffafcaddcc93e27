package client

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// twoNodes runs two hubs sharing their fallback bindings through one Redis.
func twoNodes(t *testing.T) (*fbEnv, *fbEnv, *testpeer.Redis, redis.UniversalClient) {
	t.Helper()
	rs := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{rs.Addr}, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	a, b := newFBEnv(t, nil), newFBEnv(t, nil)
	for i, e := range []*fbEnv{a, b} {
		addr := strings.TrimPrefix(e.srv.URL, "http://")
		e.hub.SetBroker(NewRedisBroker(rdb, "node"+strconv.Itoa(i), addr, time.Minute))
	}
	return a, b, rs, rdb
}

// on points the connection's next request at env (a load balancer's pick).
func (c *fbConn) on(e *fbEnv) *fbConn { c.env = e; return c }

func TestRedisBrokerAnyNodeServesAnyRequest(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	c := a.conn()
	c.on(a).open()
	// The binding is in Redis, hashed; the connectionId is not.
	keys, _ := rdb.Keys(context.Background(), "rtcgate:conn:*").Result()
	if len(keys) != 1 || keys[0] != connKeyPrefix+hashConnectionID(c.id) {
		t.Fatalf("keys %v", keys)
	}
	if ttl := rdb.TTL(context.Background(), keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL %v", ttl)
	}
	c.on(b).send(fbConnection, 1)
	s := c.on(b).sync("ack", "0", "wait", "0")
	wantMessages(t, s, "getUserData")
	sendData := `{"message":"sendData","data":[{"operationId":"op-1","payload":{}}]}`
	envs := []*fbEnv{a, b}
	last := s.last
	for i := range 10 {
		c.on(envs[i%2]).send(sendData, 10+i)
		c.on(envs[(i+1)%2]).send(sendData, 10+i) // a retry on the other node runs nothing
		s := c.on(envs[(i+1)%2]).sync("ack", last, "wait", "0")
		wantMessages(t, s, "DataStatusEvent")
		if want := strconv.Itoa(i + 2); s.first != want {
			t.Fatalf("frame %s, want %s", s.first, want)
		}
		last = s.last
	}
	if n, m := a.app.sendDataCount(), b.app.sendDataCount(); n != 10 || m != 0 {
		t.Fatalf("owner saw %d sendData, the other node %d; want 10, 0", n, m)
	}
	if n := b.hub.Len(); n != 0 {
		t.Fatalf("%d sessions on the routing node", n)
	}
	// Another address is refused on the routing node too.
	other := loopbackClient(t, "127.0.0.2")
	o := &fbConn{env: b, id: c.id, hc: other}
	if r := o.post("sync", "wait", "0"); r.status != 403 {
		t.Fatalf("sync from another address: %v", r)
	}
	// close through the other node ends the session on the owner and
	// forgets the binding.
	if r := c.on(b).post("close"); r.status != 200 {
		t.Fatalf("close: %v", r)
	}
	waitFor(t, "binding forgotten", 5*time.Second, func() bool {
		n, _ := rdb.Exists(context.Background(), keys[0]).Result()
		return n == 0
	})
	if r := c.on(b).post("sync", "wait", "0"); r.status != 400 {
		t.Fatalf("sync after close on the other node: %v", r)
	}
}

func TestRedisBrokerForgedRouteHeader(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	c := a.conn()
	c.on(a).open()
	o := &fbConn{env: b, id: c.id, hc: loopbackClient(t, "127.0.0.2")}
	for _, e := range []*fbEnv{a, b} {
		req := strings.NewReader("connectionId=" + c.id + "&action=sync&wait=0")
		r := e.do(o.hc, mustReq(t, e.srv.URL+"/http", req, "127.0.0.1", "guess"))
		if r.status != 403 {
			t.Fatalf("forged route header on %s: %v", e.srv.URL, r)
		}
	}
}

func TestRedisBrokerRedisDown(t *testing.T) {
	a, b, rs, _ := twoNodes(t)
	c := a.conn()
	c.on(a).open()
	c.on(b).send(fbConnection, 1)
	rs.Kill()
	// The owner serves its session; another node cannot find it.
	c.on(a).send(`{"message":"sendData","data":[{"operationId":"op-1","payload":{}}]}`, 2)
	wantMessages(t, c.on(a).sync("ack", "0", "wait", "0"), "getUserData", "DataStatusEvent")
	r := c.on(b).post("sync", "wait", "0")
	if r.status != 503 || !strings.Contains(string(r.body), "cluster-redis unreachable") {
		t.Fatalf("sync on another node with Redis down: %v", r)
	}
}

func mustReq(t *testing.T, u string, body *strings.Reader, client, secret string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(headerRoutedClient, client)
	req.Header.Set(headerRoutedSecret, secret)
	return req
}
