package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// fromLoopback is an HTTP client dialling from ip (another loopback
// address), so that the load balancer's X-Forwarded-For names it.
func fromLoopback(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	probe, err := d.Dial("tcp", "127.0.0.1:1")
	if probe != nil {
		probe.Close()
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Skipf("cannot dial from %s: %v", ip, err)
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// lbConn is an HTTP fallback client through the load balancer.
type lbConn struct {
	t      *testing.T
	url    string
	id     string
	hc     *http.Client
	served []string // X-Served-By of every request, in order
}

func (c *lbConn) post(action string, kv ...string) (int, []byte, http.Header) {
	c.t.Helper()
	v := url.Values{"connectionId": {c.id}, "action": {action}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	res, err := c.hc.PostForm(c.url+"/http", v)
	if err != nil {
		c.t.Fatalf("%s: %v", action, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	c.served = append(c.served, res.Header.Get("X-Served-By"))
	return res.StatusCode, body, res.Header
}

func (c *lbConn) send(frame string, utid int) {
	c.t.Helper()
	st, body, _ := c.post("send", "data", frame, "utid", strconv.Itoa(utid))
	want := `{"type":"response","code":0,"msg":"ok","utid":` + strconv.Itoa(utid) + `}`
	if st != 200 || string(body) != want {
		c.t.Fatalf("send %s: %d %s, want %s", frame, st, body, want)
	}
}

// sync returns the frames' message names (and DataStatusEvent's
// operationId) and the last frame's number.
func (c *lbConn) sync(ack string) ([]string, string) {
	c.t.Helper()
	st, body, hd := c.post("sync", "ack", ack, "wait", "0")
	if st != 200 {
		c.t.Fatalf("sync: %d %s", st, body)
	}
	var frames []string
	if err := json.Unmarshal(body, &frames); err != nil {
		c.t.Fatalf("sync: %s: %v", body, err)
	}
	var names []string
	for _, f := range frames {
		var m struct {
			Message string            `json:"message"`
			Data    []json.RawMessage `json:"data"`
		}
		json.Unmarshal([]byte(f), &m)
		name := m.Message
		if name == "DataStatusEvent" && len(m.Data) > 0 {
			var d struct {
				OperationID string `json:"operationId"`
			}
			json.Unmarshal(m.Data[0], &d)
			name += ":" + d.OperationID
		}
		names = append(names, name)
	}
	last := hd.Get("X-Rtcgate-Last-Seq")
	if last == "" {
		last = ack
	}
	return names, last
}

// TestClusterFallbackThroughHAProxy: three nodes on one Redis behind
// HAProxy (round robin, no stickiness, X-Forwarded-For). A fallback client
// opens, connects, sends data (each retried once, on another node) and
// syncs with acks, every request on another node than the one before:
// every DataStatusEvent reaches the client once, in order; the backend gets
// each sendData once, in order; another client address with the same
// connectionId is refused; close through any node ends the session.
func TestClusterFallbackThroughHAProxy(t *testing.T) {
	began := time.Now()
	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	b := newClusterBackend(t)
	b.unhold()
	dir := t.TempDir()
	cfgFile := b.config(t)
	var addrs []string
	var nodes []*rtcgate
	for i := range 3 {
		id := "n" + strconv.Itoa(i)
		r := start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--client-trusted-proxies", "127.0.0.1/32")...)
		addrs = append(addrs, r.addr(t, "listen-client"))
		nodes = append(nodes, r)
	}
	lb := testpeer.StartHAProxy(t, addrs...)
	c := &lbConn{t: t, url: lb.URL, id: "cluster-sessions-" + strconv.FormatInt(time.Now().UnixNano(), 36), hc: fromLoopback(t, "127.0.0.2")}
	if st, body, _ := c.post("open"); st != 200 || !strings.Contains(string(body), `"welcome"`) {
		t.Fatalf("open: %d %s", st, body)
	}
	c.send(`{"message":"connection","data":[{"appKey":"clusterKey"}]}`, 1)
	names, last := c.sync("0")
	if len(names) != 1 || names[0] != "getUserData" {
		t.Fatalf("after connection: %v", names)
	}
	const ops = 30
	var got []string
	for i := range ops {
		frame := fmt.Sprintf(`{"message":"sendData","data":[{"operationId":"op%d","payload":{}}]}`, i)
		c.send(frame, 100+i)
		c.send(frame, 100+i) // a retry (its response lost): runs nothing
		if i%3 == 2 {
			var n []string
			n, last = c.sync(last)
			got = append(got, n...)
		}
	}
	for range 5 { // whatever is left
		n, l := c.sync(last)
		got, last = append(got, n...), l
	}
	var want []string
	for i := range ops {
		want = append(want, fmt.Sprintf("DataStatusEvent:op%d", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("client got %v\nwant %v", got, want)
	}
	for i := 1; i < len(c.served); i++ {
		if c.served[i] == "" || c.served[i] == c.served[i-1] {
			t.Fatalf("requests %d and %d both on %q: %v", i-1, i, c.served[i], c.served)
		}
	}
	// Another client address with this connectionId, through the load
	// balancer: refused whichever node it lands on.
	o := &lbConn{t: t, url: lb.URL, id: c.id, hc: fromLoopback(t, "127.0.0.3")}
	for range 3 {
		if st, body, _ := o.post("sync", "wait", "0"); st != 403 {
			t.Fatalf("another address: %d %s", st, body)
		}
	}
	if st, body, _ := c.post("close"); st != 200 {
		t.Fatalf("close: %d %s", st, body)
	}
	// Each request that landed on another node than the owner (the one
	// that served the open) was forwarded once; every node timed its
	// Redis round trips (the bindings' lookups).
	landedElsewhere := 0
	for _, s := range c.served {
		if s != c.served[0] {
			landedElsewhere++
		}
	}
	forwarded := 0.0
	for _, n := range nodes {
		m := scrape(t, "http://"+n.addr(t, "listen-http"))
		forwarded += metricValue(m, `rtcgate_client_requests_routed_total{result="forwarded"}`)
		if metricValue(m, `rtcgate_cluster_redis_seconds_count{command="get"}`) == 0 {
			t.Errorf("a node's Redis round trips:\n%s", grepLines(m, "rtcgate_cluster_redis"))
		}
	}
	if forwarded != float64(landedElsewhere) {
		t.Errorf("%v requests forwarded, %d landed on another node than the owner", forwarded, landedElsewhere)
	}
	// The backend: ESTABLISHED, each sendData once and in order, DISCONNECTED.
	wantEv := append([]string{"ESTABLISHED"}, want...)
	for i := range wantEv {
		wantEv[i] = strings.Replace(wantEv[i], "DataStatusEvent:", "DATA:", 1)
	}
	wantEv = append(wantEv, "DISCONNECTED")
	eventually(t, 10*time.Second, "the backend has every event", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, evs := range b.got {
			return len(evs) >= len(wantEv)
		}
		return false
	})
	b.mu.Lock()
	for sid, evs := range b.got {
		var names []string
		for _, e := range evs {
			names = append(names, e.ev)
		}
		if strings.Join(names, ",") != strings.Join(wantEv, ",") {
			t.Errorf("backend, session %s: %v\nwant %v", sid, names, wantEv)
		}
	}
	b.mu.Unlock()
	t.Logf("%d requests over 3 nodes in %v", len(c.served), time.Since(began))
}

// resumeWS resumes a session over a WebSocket at url (sessionId,
// authToken, ack), trying again while the node refuses it (close 4001:
// its owner's lease still runs), and returns the socket and the first
// frame it sent.
func resumeWS(t *testing.T, url string) (*websocket.Conn, []byte) {
	t.Helper()
	var ws *websocket.Conn
	var first []byte
	eventually(t, 10*time.Second, "resumed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return false
		}
		if _, first, err = c.Read(ctx); err != nil {
			c.CloseNow()
			return false
		}
		ws = c
		return true
	})
	t.Cleanup(func() { ws.CloseNow() })
	return ws, first
}

// TestClusterTakeoverAfterSIGKILL: a WebSocket client of node A (direct),
// A killed with SIGKILL; the client resumes on node B with its sessionId,
// authToken and ack, within the node lease (cluster-node-ttl 2s), and gets
// the frames it had not acknowledged, numbered as before; its next
// sendData runs on B. The backend sees, for the one sessionId:
// ESTABLISHED (from A), the DataStatusEvents, ESTABLISHED again (from B,
// the takeover), the DataStatusEvent of B — and no DISCONNECTED from A,
// which died. A's events it had not had acknowledged by the backend are
// delivered by B (hooks-redis-claim-after), a redelivery under the same
// X-Rtcgate-Event-Id.
func TestClusterTakeoverAfterSIGKILL(t *testing.T) {
	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	b := newClusterBackend(t)
	b.unhold()
	dir := t.TempDir()
	cfgFile := b.config(t)
	node := func(id string) *rtcgate {
		return start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--cluster-heartbeat", "250ms", "--cluster-node-ttl", "2s", "--hooks-redis-claim-after", "1s")...)
	}
	a, bn := node("a"), node("b")
	ws := dialWS(t, "ws://"+a.addr(t, "listen-client")+"/", nil)
	first := wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"clusterKey"}]}`)
	sid := sessionOf(t, first)
	var gud struct{ Data []map[string]any }
	json.Unmarshal([]byte(first), &gud)
	token := gud.Data[0]["authToken"].(string)
	frames := []string{first}
	for i := range 5 {
		frames = append(frames, wsExchange(t, ws, fmt.Sprintf(`{"message":"sendData","data":[{"operationId":"op%d","payload":{}}]}`, i)))
		for !strings.Contains(frames[len(frames)-1], `"DataStatusEvent"`) {
			frames = append(frames, wsRead(t, ws))
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: red.Addr})
	defer rdb.Close()
	eventually(t, 5*time.Second, "A stored every frame", func() bool {
		n, _ := rdb.HGet(context.Background(), "rtcgate:session:"+sid, "last").Int()
		return n == len(frames)
	})
	killed := a.kill()

	const ack = 3 // the client says it has the first three frames
	url := "ws://" + bn.addr(t, "listen-client") + "/?sessionId=" + sid + "&authToken=" + token + "&ack=" + strconv.Itoa(ack)
	c, replayed := resumeWS(t, url)
	t.Logf("resumed on B %v after SIGKILL", time.Since(killed))
	got := []string{string(replayed)}
	for len(got) < len(frames)-ack {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, msg, err := c.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d frames: %v", len(got), err)
		}
		got = append(got, string(msg))
	}
	reply := wsExchange(t, c, `{"message":"sendData","data":[{"operationId":"onB","payload":{}}]}`)
	if !strings.Contains(reply, "onB") {
		t.Fatalf("sendData on B: %s", reply)
	}
	c.Close(websocket.StatusNormalClosure, "")
	if strings.Join(got, "\n") != strings.Join(frames[ack:], "\n") {
		t.Fatalf("B replayed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(frames[ack:], "\n"))
	}
	want := "ESTABLISHED,DATA:op0,DATA:op1,DATA:op2,DATA:op3,DATA:op4,ESTABLISHED,DATA:onB"
	var names []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		names = names[:0]
		seen := map[string]bool{}
		for _, e := range b.got[sid] {
			if !seen[e.id] { // a redelivery of A's, under the same event id
				names = append(names, e.ev)
			}
			seen[e.id] = true
		}
		b.mu.Unlock()
		if strings.HasPrefix(strings.Join(names, ","), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend got %v, want %s", names, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
