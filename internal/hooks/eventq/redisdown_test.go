package eventq

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// downClient is a client for a Redis on port that may not run: short
// timeouts, few retries, as the cluster's client.
func downClient(t *testing.T, port int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port),
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

func openRedisCtx(t *testing.T, c *redis.Client, consumer string, spill int64) *Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := OpenRedis(ctx, RedisOptions{Client: c, Consumer: consumer,
		ClaimAfter: 300 * time.Millisecond, Batch: 4, SpillBytes: spill})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRedisDownWhileRunning: Redis is killed with events in flight; 200
// events over 20 keys are spilled; Redis comes back (same port, AOF):
// every event is delivered, in order per key, none lost.
func TestRedisDownWhileRunning(t *testing.T) {
	dir := t.TempDir()
	port := testpeer.FreeUDPPort(t)
	srv := testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: port, AOF: true})
	c := downClient(t, port)
	st := openRedisCtx(t, c, "a", 0)
	rec := newIDRecorder()
	q, err := New(Options{Store: st, Workers: 4, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Send: rec.send(func(context.Context, *Event) (bool, error) {
			time.Sleep(time.Millisecond)
			return false, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	want := map[string]int{}
	enqueue := func(n int) {
		for i := range n {
			k := "s" + strconv.Itoa(i%20)
			if err := q.Enqueue(k, "app", "m", []byte("x")); err != nil {
				t.Fatal(err)
			}
			want[k]++
		}
	}
	enqueue(60) // some delivered, some in flight when Redis dies
	srv.Kill()
	enqueue(200)
	if n, _ := st.Spilled(); n < 200 {
		t.Fatalf("%d events spilled, want at least 200", n)
	}
	time.Sleep(300 * time.Millisecond) // a few failed heartbeats
	testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: port, AOF: true})
	waitFor(t, 15*time.Second, "everything delivered", func() bool { return rec.count.Load() >= 260 && q.Depth() == 0 })
	rec.check(t, want)
	if n, b := st.Spilled(); n != 0 || b != 0 {
		t.Errorf("spill not empty: %d events, %d bytes", n, b)
	}
	waitFor(t, 5*time.Second, "Redis drained", func() bool {
		n, _ := c.Get(context.Background(), "rtcgate:hooks:bytes").Int64()
		keys, _ := c.Keys(context.Background(), "rtcgate:hooks:q:*").Result()
		return n == 0 && len(keys) == 0
	})
}

// TestRedisOpenWhileDown: a store opened while Redis is down starts; its
// events wait in the spill and are delivered once Redis answers.
func TestRedisOpenWhileDown(t *testing.T) {
	port := testpeer.FreeUDPPort(t)
	c := downClient(t, port)
	st := openRedisCtx(t, c, "a", 0)
	rec := newIDRecorder()
	q, err := New(Options{Store: st, Workers: 4, Send: rec.send(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	want := map[string]int{}
	for i := range 40 {
		k := "s" + strconv.Itoa(i%4)
		if err := q.Enqueue(k, "app", "m", []byte("x")); err != nil {
			t.Fatal(err)
		}
		want[k]++
	}
	time.Sleep(200 * time.Millisecond)
	if n := rec.count.Load(); n != 0 {
		t.Fatalf("%d events delivered while Redis is down: they wait for Redis", n)
	}
	if n, _ := q.Spilled(); n != 40 {
		t.Fatalf("%d spilled, want 40", n)
	}
	testpeer.StartRedis(t, testpeer.RedisOptions{Port: port})
	waitFor(t, 10*time.Second, "delivered", func() bool { return rec.count.Load() == 40 })
	rec.check(t, want)
	if o, _ := c.Get(context.Background(), "rtcgate:hooks:origin").Result(); o == "" || st.getOrigin() != o {
		t.Errorf("origin %q, store's %q", o, st.getOrigin())
	}
	// Later events go to Redis directly.
	if err := q.Enqueue("s0", "app", "m", []byte("y")); err != nil {
		t.Fatal(err)
	}
	want["s0"]++
	waitFor(t, 5*time.Second, "delivered", func() bool { return rec.count.Load() == 41 })
	rec.check(t, want)
}

// TestRedisSpillBound: over SpillBytes Enqueue refuses with ErrSpillFull,
// counted as spill_full.
func TestRedisSpillBound(t *testing.T) {
	port := testpeer.FreeUDPPort(t)
	c := downClient(t, port)
	body := make([]byte, 200)
	st := openRedisCtx(t, c, "a", 1000)
	q, err := New(Options{Store: st, Send: func(context.Context, *Event) (bool, error) { return false, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	var ok, refused int
	for range 10 {
		err := q.Enqueue("s", "app", "m", body)
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrSpillFull):
			refused++
		default:
			t.Fatal(err)
		}
	}
	size := eventSize(&Event{Key: "s", App: "app", Method: "m", Body: body})
	if want := int(1000 / size); ok != want || refused != 10-want {
		t.Fatalf("%d spilled, %d refused; want %d spilled", ok, refused, want)
	}
	if got := q.Stats().Refused["spill_full"]; got != uint64(refused) {
		t.Errorf("refused spill_full counted %d, want %d", got, refused)
	}
	if n, b := q.Spilled(); n != ok || b != int64(ok)*size {
		t.Errorf("Spilled = %d, %d", n, b)
	}
}

// TestRedisDownHeldEventsDelivered: events a node already holds are
// delivered while Redis is down (their acknowledgements kept), later ones
// spill; when Redis is back the acknowledgements are sent, the spill
// appended and delivered, in order, and Redis is left empty.
func TestRedisDownHeldEventsDelivered(t *testing.T) {
	dir := t.TempDir()
	port := testpeer.FreeUDPPort(t)
	srv := testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: port, AOF: true})
	c := downClient(t, port)
	st := openRedisCtx(t, c, "a", 0)
	rec := newIDRecorder()
	gate := make(chan struct{})
	started := make(chan struct{}, 8)
	q, err := New(Options{Store: st, Workers: 2, Send: rec.send(func(context.Context, *Event) (bool, error) {
		started <- struct{}{}
		<-gate
		return false, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	for range 3 {
		if err := q.Enqueue("k", "app", "m", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	srv.Kill()
	close(gate)
	waitFor(t, 5*time.Second, "held events delivered with Redis down", func() bool { return rec.count.Load() == 3 })
	for range 2 {
		if err := q.Enqueue("k", "app", "m", []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := st.Spilled(); n != 2 {
		t.Fatalf("%d spilled, want 2", n)
	}
	testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: port, AOF: true})
	waitFor(t, 10*time.Second, "spill delivered", func() bool { return rec.count.Load() == 5 })
	rec.check(t, map[string]int{"k": 5})
	waitFor(t, 5*time.Second, "Redis drained", func() bool {
		n, _ := c.Get(context.Background(), "rtcgate:hooks:bytes").Int64()
		return n == 0 && c.Exists(context.Background(), "rtcgate:hooks:q:k").Val() == 0
	})
}

// TestRedisLostWritesNoUIDReuse: Redis loses what it had (killed and
// started again without its data, the whole of what appendfsync everysec
// may lose of its last writes) and counts its event numbers from 1 again:
// the events delivered before, those spilled meanwhile and those appended
// after still each have their own UID, the same on every attempt.
func TestRedisLostWritesNoUIDReuse(t *testing.T) {
	port := testpeer.FreeUDPPort(t)
	srv := testpeer.StartRedis(t, testpeer.RedisOptions{Port: port})
	c := downClient(t, port)
	st := openRedisCtx(t, c, "a", 0)
	var mu sync.Mutex
	uids := map[string]map[string]bool{} // body → UIDs it was sent under
	q, err := New(Options{Store: st, Workers: 2, Send: func(_ context.Context, e *Event) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if uids[string(e.Body)] == nil {
			uids[string(e.Body)] = map[string]bool{}
		}
		uids[string(e.Body)][e.UID()] = true
		return false, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(uids)
	}
	enqueue := func(prefix string) {
		for i := range 10 {
			if err := q.Enqueue("s"+strconv.Itoa(i%3), "app", "m", []byte(prefix+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	enqueue("before")
	waitFor(t, 5*time.Second, "delivered before the loss", func() bool { return delivered() == 10 && q.Depth() == 0 })
	srv.Kill()
	enqueue("spilled")
	if n, _ := st.Spilled(); n != 10 {
		t.Fatalf("%d spilled, want 10", n)
	}
	testpeer.StartRedis(t, testpeer.RedisOptions{Port: port}) // empty: seq starts over
	waitFor(t, 10*time.Second, "spill delivered", func() bool { return delivered() == 20 && q.Depth() == 0 })
	enqueue("after")
	waitFor(t, 5*time.Second, "delivered after", func() bool { return delivered() == 30 && q.Depth() == 0 })
	if seq, _ := c.Get(context.Background(), "rtcgate:hooks:seq").Int(); seq > 20 {
		t.Fatalf("Redis's seq %d: it did not start over, the test proves nothing", seq)
	}
	mu.Lock()
	defer mu.Unlock()
	owner := map[string]string{}
	for body, us := range uids {
		if len(us) != 1 {
			t.Errorf("%s sent under %d UIDs: %v", body, len(us), us)
		}
		for u := range us {
			if other, ok := owner[u]; ok {
				t.Errorf("UID %s for both %s and %s", u, other, body)
			}
			owner[u] = body
		}
	}
}
