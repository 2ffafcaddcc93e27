package client

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// twoNodes runs two hubs sharing their fallback bindings through one Redis.
func twoNodes(t *testing.T) (*fbEnv, *fbEnv, *testpeer.Redis, redis.UniversalClient) {
	t.Helper()
	envs, rs, rdb := clusterNodes(t, 2, nil)
	return envs[0], envs[1], rs, rdb
}

// clusterNodes runs n hubs (their Options changed by mod) sharing their
// fallback bindings through one Redis.
func clusterNodes(t *testing.T, n int, mod func(*Options)) ([]*fbEnv, *testpeer.Redis, redis.UniversalClient) {
	t.Helper()
	rs := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{rs.Addr}, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	envs := make([]*fbEnv, n)
	for i := range envs {
		e := newFBEnv(t, mod)
		addr := strings.TrimPrefix(e.srv.URL, "http://")
		e.hub.SetBroker(NewRedisBroker(rdb, "node"+strconv.Itoa(i), addr, time.Minute))
		envs[i] = e
	}
	return envs, rs, rdb
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
	c, d := a.conn(), a.conn()
	c.on(a).open()
	d.on(a).open()
	c.on(b).send(fbConnection, 1)
	rs.Kill()
	// The owner serves its session; another node cannot find one it never
	// routed, and still routes the one whose owner it remembers.
	c.on(a).send(`{"message":"sendData","data":[{"operationId":"op-1","payload":{}}]}`, 2)
	wantMessages(t, c.on(a).sync("ack", "0", "wait", "0"), "getUserData", "DataStatusEvent")
	r := d.on(b).post("sync", "wait", "0")
	if r.status != 503 || !strings.Contains(string(r.body), "cluster-redis unreachable") {
		t.Fatalf("sync on another node with Redis down: %v", r)
	}
	wantMessages(t, c.on(b).sync("ack", "0", "wait", "0"), "getUserData", "DataStatusEvent")
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

// TestRedisBrokerTakeOver: a session established on node 0 is stored in
// Redis; while node 0's lease lives, node 1 refuses a resume; once it
// ended (the node died), node 1 takes the session over: the same sessionId
// and authToken, the frames the client had not acknowledged, numbered as
// before, and the app is told Established again.
func TestRedisBrokerTakeOver(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	ctx := context.Background()
	c := a.conn()
	c.on(a).open()
	c.on(a).send(fbConnection, 1)
	sendData := `{"message":"sendData","data":[{"operationId":"op-1","payload":{}}]}`
	c.on(a).send(sendData, 2)
	c.on(a).send(sendData, 3)
	s := c.on(a).sync("ack", "0", "wait", "0")
	wantMessages(t, s, "getUserData", "DataStatusEvent", "DataStatusEvent")
	sid, token := s.arg(t, 0)["sessionId"].(string), s.arg(t, 0)["authToken"].(string)
	c.on(a).sync("ack", "1", "wait", "0") // the client has getUserData only
	waitFor(t, "frames stored", 5*time.Second, func() bool {
		n, _ := rdb.XLen(ctx, "rtcgate:session:"+sid+":frames").Result()
		return n == 2
	})
	h, _ := rdb.HGetAll(ctx, "rtcgate:session:"+sid).Result()
	if h["owner"] != "node0" || h["token"] != hashToken(token) || strings.Contains(h["config"], token) {
		t.Fatalf("stored session %v", h)
	}
	rdb.Set(ctx, "rtcgate:node:node0", "{}", time.Minute)
	c2 := b.conn()
	if r := c2.on(b).post("open", "sessionId", sid, "authToken", token, "ack", "1"); r.status != 400 {
		t.Fatalf("resume while the owner lives: %v", r)
	}
	rdb.Del(ctx, "rtcgate:node:node0")
	if r := c2.on(b).post("open", "sessionId", sid, "authToken", "wrong"+token[5:], "ack", "1"); r.status != 400 {
		t.Fatalf("resume with a wrong token: %v", r)
	}
	w := c2.on(b).open("sessionId", sid, "authToken", token, "ack", "1")
	if w.SourceID != sid || w.LastSeq != 3 {
		t.Fatalf("welcome %+v", w)
	}
	s = c2.on(b).sync("ack", "1", "wait", "0")
	wantMessages(t, s, "DataStatusEvent", "DataStatusEvent")
	if s.first != "2" || s.last != "3" {
		t.Fatalf("frames %s..%s, want 2..3", s.first, s.last)
	}
	c2.on(b).send(sendData, 4)
	s = c2.on(b).sync("ack", "3", "wait", "0")
	wantMessages(t, s, "DataStatusEvent")
	if s.first != "4" || b.app.sendDataCount() != 1 {
		t.Fatalf("frame %s, node 1 ran %d sendData", s.first, b.app.sendDataCount())
	}
	if h, _ := rdb.HGet(ctx, "rtcgate:session:"+sid, "owner").Result(); h != "node1" {
		t.Fatalf("owner %q", h)
	}
}

// TestRedisBrokerResumeRoutedToLiveOwner: a resume under a new
// connectionId reaching another node while the owner lives is forwarded to
// the owner, which serves the session; nothing is taken over.
func TestRedisBrokerResumeRoutedToLiveOwner(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	ctx := context.Background()
	rdb.Set(ctx, "rtcgate:node:node0", `{"id":"node0","client":"`+strings.TrimPrefix(a.srv.URL, "http://")+`"}`, time.Minute)
	c := a.conn()
	c.on(a).open()
	c.on(a).send(fbConnection, 1)
	s := c.on(a).sync("ack", "0", "wait", "0")
	sid, token := s.arg(t, 0)["sessionId"].(string), s.arg(t, 0)["authToken"].(string)
	waitFor(t, "session stored", 5*time.Second, func() bool {
		n, _ := rdb.Exists(ctx, "rtcgate:session:"+sid).Result()
		return n == 1
	})
	c2 := b.conn()
	w := c2.on(b).open("sessionId", sid, "authToken", token, "ack", "1")
	if w.SourceID != sid {
		t.Fatalf("welcome %+v", w)
	}
	c2.on(b).send(`{"message":"sendData","data":[{"operationId":"op-1","payload":{}}]}`, 2)
	wantMessages(t, c2.on(b).sync("ack", "1", "wait", "0"), "DataStatusEvent")
	if b.hub.Len() != 0 || a.app.sendDataCount() != 1 {
		t.Fatalf("node 1 holds %d sessions; node 0 ran %d sendData", b.hub.Len(), a.app.sendDataCount())
	}
}

// TestRedisBrokerTakeOverStoredValues: what a layer keeps with a session
// (SetStored) is written with it to Redis, forgotten there when the layer
// forgets it, and handed to the node that takes the session over, whose
// layer may forget it in turn.
func TestRedisBrokerTakeOverStoredValues(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	ctx := context.Background()
	c := a.conn()
	c.on(a).open()
	c.on(a).send(`{"message":"connection","data":[{"appKey":"defaultApp","keep":"at connect"}]}`, 1)
	s := c.on(a).sync("ack", "0", "wait", "0")
	sid, token := s.arg(t, 0)["sessionId"].(string), s.arg(t, 0)["authToken"].(string)
	onA := <-a.app.established
	onA.SetStored("call:1", []byte(`{"callee":"bob"}`))
	onA.SetStored("call:2", []byte(`{"callee":"carol"}`))
	onA.SetStored("call:2", nil)
	onA.SetStored("call:3", nil) // never kept: nothing written
	key := "rtcgate:session:" + sid
	waitFor(t, "the values in Redis", 5*time.Second, func() bool {
		h, _ := rdb.HGetAll(ctx, key).Result()
		_, two := h["v:call:2"]
		return h["v:connect"] == "at connect" && h["v:call:1"] == `{"callee":"bob"}` && !two
	})
	rdb.Del(ctx, "rtcgate:node:node0") // node 0's lease ended
	c2 := b.conn()
	c2.on(b).open("sessionId", sid, "authToken", token, "ack", "1")
	onB := <-b.app.established
	if got := onB.Stored(); len(got) != 2 || string(got["call:1"]) != `{"callee":"bob"}` || string(got["connect"]) != "at connect" {
		t.Fatalf("taken over with %q", got)
	}
	onB.SetStored("call:1", nil)
	waitFor(t, "the value forgotten in Redis", 5*time.Second, func() bool {
		n, _ := rdb.HExists(ctx, key, "v:call:1").Result()
		return !n
	})
	if owner, _ := rdb.HGet(ctx, key, "owner").Result(); owner != "node1" {
		t.Fatalf("owner %q", owner)
	}
}

// TestRedisBrokerTakeOverAfterUnstoredFrames: the lost node had sent its
// client frames it had not stored yet (its writes trail the frames). A
// client resuming with an ack beyond the stored frames gets the new
// owner's frames numbered after that ack, not under it (where its ack
// would drop them); an ack beyond anything the node could have had
// waiting to be stored is not believed.
func TestRedisBrokerTakeOverAfterUnstoredFrames(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	ctx := context.Background()
	session := func(frames int) (sid, token string) {
		c := a.conn()
		c.on(a).open()
		c.on(a).send(fbConnection, 1)
		s := c.on(a).sync("ack", "0", "wait", "0")
		sid, token = s.arg(t, 0)["sessionId"].(string), s.arg(t, 0)["authToken"].(string)
		onA := <-a.app.established
		for range frames - 1 {
			onA.Send("onA")
		}
		key := "rtcgate:session:" + sid
		waitFor(t, "the frames stored", 5*time.Second, func() bool {
			n, _ := rdb.HGet(ctx, key, "last").Int()
			return n == frames
		})
		// All but the first never reached Redis (the node died first).
		for seq := 2; seq <= frames; seq++ {
			rdb.XDel(ctx, key+":frames", strconv.Itoa(seq)+"-0")
		}
		rdb.HSet(ctx, key, "last", 1)
		return sid, token
	}
	sid, token := session(3)
	c := b.conn()
	if w := c.on(b).open("sessionId", sid, "authToken", token, "ack", "3"); w.LastSeq != 3 {
		t.Fatalf("welcome %+v, want last 3", w)
	}
	(<-b.app.established).Send("onB")
	s := c.on(b).sync("ack", "3", "wait", "0")
	wantMessages(t, s, "onB")
	if s.first != "4" {
		t.Fatalf("B's frame numbered %s, want 4", s.first)
	}

	sid, token = session(2)
	c = b.conn()
	bogus := strconv.Itoa(1 + persistQueue + 5)
	if w := c.on(b).open("sessionId", sid, "authToken", token, "ack", bogus); w.LastSeq != 1 {
		t.Fatalf("welcome after ack %s: %+v, want last 1 (the stored frames)", bogus, w)
	}
	(<-b.app.established).Send("onB")
	s = c.on(b).sync("ack", "1", "wait", "0")
	wantMessages(t, s, "onB")
	if s.first != "2" {
		t.Fatalf("B's frame numbered %s, want 2", s.first)
	}
}

// TestRedisReconnectTakesOverWithoutRepeats: the Web SDK's reconnect
// (`connection` with the authToken) on node 1 after node 0 died. Node 0
// wrote getUserData and two DataStatusEvents to the WebSocket — stored as
// sent — and queued one more frame after its client vanished. Node 1 takes
// the session over and sends the frame that was never written, then
// getUserData: nothing the client had is repeated, nothing is lost.
func TestRedisReconnectTakesOverWithoutRepeats(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	ctx := context.Background()
	ud := wsAway(t, a.hub, strings.TrimPrefix(a.srv.URL, "http://"), 2, "never written")
	sid, token := ud["sessionId"].(string), ud["authToken"].(string)
	waitFor(t, "frames and the sent mark stored", 5*time.Second, func() bool {
		h, _ := rdb.HGetAll(ctx, "rtcgate:session:"+sid).Result()
		return h["sent"] == "3" && h["last"] == "4"
	})

	// Node 0 has no lease (it died): node 1 takes the session over.
	back := dial(t, "ws"+strings.TrimPrefix(b.srv.URL, "http")+"/", nil)
	sendFrame(t, back, "connection", map[string]any{"appKey": "a", "authToken": token, "keepAlive": true})
	if ev := next(t, back, "OnDataEvent"); ev["payload"] != "never written" {
		t.Fatalf("first frame on node 1 = %v", ev)
	}
	if ud2 := next(t, back, "getUserData"); ud2["sessionId"] != sid || ud2["authToken"] != token {
		t.Fatalf("getUserData on node 1 = %v", ud2)
	}
	sendFrame(t, back, "sendData", map[string]any{"operationId": "op-3", "payload": map[string]any{}})
	if ds := next(t, back, "DataStatusEvent"); ds["operationId"] != "op-3" {
		t.Fatalf("DataStatusEvent on node 1 = %v", ds)
	}
	if owner, _ := rdb.HGet(ctx, "rtcgate:session:"+sid, "owner").Result(); owner != "node1" || b.app.sendDataCount() != 1 {
		t.Fatalf("owner %q, node 1 ran %d sendData", owner, b.app.sendDataCount())
	}
}

// TestRedisWebSocketResumeProxiedToLiveOwner: a WebSocket resume
// (?sessionId=&authToken=&ack=) reaching node 1 while node 0, the owner,
// lives is proxied to node 0, which serves it: the frame queued meanwhile,
// then sendData run by node 0; node 1 holds no session. An owner whose
// lease names an address that does not answer gives 503.
func TestRedisWebSocketResumeProxiedToLiveOwner(t *testing.T) {
	a, b, _, rdb := twoNodes(t)
	ctx := context.Background()
	lease := func(client string) {
		rdb.Set(ctx, "rtcgate:node:node0", `{"id":"node0","client":"`+client+`"}`, time.Minute)
	}
	lease(strings.TrimPrefix(a.srv.URL, "http://"))
	ud := wsAway(t, a.hub, strings.TrimPrefix(a.srv.URL, "http://"), 0, "while you were away")
	sid, token := ud["sessionId"].(string), ud["authToken"].(string)
	waitFor(t, "session stored", 5*time.Second, func() bool {
		n, _ := rdb.Exists(ctx, "rtcgate:session:"+sid).Result()
		return n == 1
	})

	url := "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/?sessionId=" + sid + "&authToken=" + token + "&ack=1"
	back := dial(t, url, nil)
	if ev := next(t, back, "OnDataEvent"); ev["payload"] != "while you were away" {
		t.Fatalf("resumed frame through node 1 = %v", ev)
	}
	sendFrame(t, back, "sendData", map[string]any{"operationId": "op-1", "payload": map[string]any{}})
	next(t, back, "DataStatusEvent")
	if b.hub.Len() != 0 || a.app.sendDataCount() != 1 {
		t.Fatalf("node 1 holds %d sessions; node 0 ran %d sendData", b.hub.Len(), a.app.sendDataCount())
	}
	back.CloseNow() // no close frame: the session stays

	lease("127.0.0.1:1")
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(dctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("resume to an owner that does not answer: %v %v", resp, err)
	}
}
