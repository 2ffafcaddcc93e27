package eventq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// redisClient starts a redis-server for the test and returns a client.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	srv := testpeer.StartRedis(t, testpeer.RedisOptions{})
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func openRedis(t *testing.T, c *redis.Client, consumer string, maxBytes int64) *Redis {
	t.Helper()
	r, err := OpenRedis(context.Background(), RedisOptions{Client: c, Consumer: consumer,
		ClaimAfter: 300 * time.Millisecond, MaxBytes: maxBytes, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// storeKinds are the three stores, for the tests of the Store contract as
// a Queue sees it. open returns a store over the same data each time it is
// called after the previous one was closed (durable: Disk, Redis) or a new
// one (Memory); maxBytes ≤ 0 is the default bound.
func storeKinds(t *testing.T) map[string]func(maxBytes int64) Store {
	dir := t.TempDir()
	var c *redis.Client
	n := 0
	return map[string]func(int64) Store{
		"memory": func(maxBytes int64) Store {
			if maxBytes > 0 {
				return NewMemory(int(maxBytes / 100))
			}
			return NewMemory(0)
		},
		"disk": func(maxBytes int64) Store { return openDisk(t, dir, maxBytes) },
		"redis": func(maxBytes int64) Store {
			if c == nil {
				c = redisClient(t)
			}
			n++
			return openRedis(t, c, fmt.Sprint("node", n), maxBytes)
		},
	}
}

// idRecorder records the ids delivered per key, across queues (nodes),
// and the UIDs seen per attempt.
type idRecorder struct {
	mu       sync.Mutex
	got      map[string][]uint64
	uids     map[uint64]string // id → UID of every attempt
	inflight map[string]int
	overlap  atomic.Bool
	badUID   atomic.Bool
	count    atomic.Int64
}

func newIDRecorder() *idRecorder {
	return &idRecorder{got: map[string][]uint64{}, uids: map[uint64]string{}, inflight: map[string]int{}}
}

// send wraps fail (nil: always succeed) with the recording.
func (r *idRecorder) send(fail func(context.Context, *Event) (bool, error)) Sender {
	return func(ctx context.Context, e *Event) (bool, error) {
		r.mu.Lock()
		if u, ok := r.uids[e.ID]; ok && u != e.UID() {
			r.badUID.Store(true)
		}
		r.uids[e.ID] = e.UID()
		r.inflight[e.Key]++
		if r.inflight[e.Key] > 1 {
			r.overlap.Store(true)
		}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.inflight[e.Key]--
			r.mu.Unlock()
		}()
		if fail != nil {
			if retry, err := fail(ctx, e); err != nil {
				return retry, err
			}
		}
		r.mu.Lock()
		r.got[e.Key] = append(r.got[e.Key], e.ID)
		r.mu.Unlock()
		r.count.Add(1)
		return false, nil
	}
}

// check fails unless every key got exactly its want ids, each once, in
// increasing order.
func (r *idRecorder) check(t *testing.T, want map[string]int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range want {
		got := r.got[k]
		seen := map[uint64]bool{}
		var last uint64
		for _, id := range got {
			if seen[id] {
				continue // a duplicate (same id) is allowed
			}
			seen[id] = true
			if id < last {
				t.Fatalf("key %s out of order: %v", k, got)
			}
			last = id
		}
		if len(seen) != n {
			t.Fatalf("key %s: %d distinct events delivered, want %d (%v)", k, len(seen), n, got)
		}
	}
	if r.overlap.Load() {
		t.Error("two attempts of one key were in flight at once")
	}
	if r.badUID.Load() {
		t.Error("an event's UID changed between attempts")
	}
}

// TestStoreContract: a Queue over each store delivers in order per key
// with retries, keeps an event's UID across attempts and makes UIDs
// unique, refuses over the bound, and (durable stores) resumes after a
// restart.
func TestStoreContract(t *testing.T) {
	for name, open := range storeKinds(t) {
		t.Run(name, func(t *testing.T) {
			// Order per key with retries; UIDs.
			rec := newIDRecorder()
			st := open(0)
			q, err := New(Options{Store: st, Workers: 4, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond,
				Send: rec.send(func(_ context.Context, e *Event) (bool, error) {
					if e.ID%3 == 0 && e.Attempts < 3 {
						return true, errDown
					}
					return false, nil
				})})
			if err != nil {
				t.Fatal(err)
			}
			const keys, per = 6, 20
			var wg sync.WaitGroup
			for k := range keys {
				wg.Go(func() {
					for range per {
						if err := q.Enqueue("s"+strconv.Itoa(k), "app", "m", []byte("x")); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			waitFor(t, 10*time.Second, "all delivered", func() bool { return rec.count.Load() == keys*per })
			want := map[string]int{}
			for k := range keys {
				want["s"+strconv.Itoa(k)] = per
			}
			rec.check(t, want)
			uids := map[string]bool{}
			for _, u := range rec.uids {
				uids[u] = true
			}
			if len(uids) != keys*per {
				t.Errorf("%d distinct UIDs for %d events", len(uids), keys*per)
			}
			closeQ(t, q)
			st.Close()

			// Over the bound.
			st = open(1 << 10)
			var ferr error
			for i := 0; i < 100 && ferr == nil; i++ {
				_, ferr = hold(st, &Event{Key: "full", App: "a", Method: "m", Body: make([]byte, 50)})
			}
			if !errors.Is(ferr, ErrFull) {
				t.Errorf("over the bound: %v", ferr)
			}
			st.Close()
			if name == "memory" {
				return
			}

			// A restart resumes each key in order (the Disk one is the same
			// directory, the Redis one another consumer).
			rec = newIDRecorder()
			var down atomic.Bool
			down.Store(true)
			send := rec.send(func(ctx context.Context, e *Event) (bool, error) {
				if down.Load() {
					return true, errDown
				}
				return false, nil
			})
			st = open(0)
			q, err = New(Options{Store: st, Send: send, BackoffMin: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := q.Enqueue("r"+strconv.Itoa(i%2), "app", "m", []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			closeQ(t, q)
			st.Close()
			down.Store(false)
			st = open(0)
			defer st.Close()
			q, err = New(Options{Store: st, Send: send, BackoffMin: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer closeQ(t, q)
			// ≥: the events of the bound's test are delivered too.
			waitFor(t, 10*time.Second, "resumed", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.got["r0"])+len(rec.got["r1"]) >= 10
			})
			rec.check(t, map[string]int{"r0": 5, "r1": 5})
		})
	}
}

// hold appends through the store's own path (Hold for a Shared one).
func hold(st Store, e *Event) ([]*Event, error) {
	if sh, ok := st.(Shared); ok {
		return sh.Hold(e)
	}
	return []*Event{e}, st.Append(e)
}

// TestRedisTwoNodesOrder: two queues on one Redis, both enqueueing events
// of the same keys at once, deliver each key's events one at a time and in
// the order Redis numbered them, whichever node enqueued them.
func TestRedisTwoNodesOrder(t *testing.T) {
	c := redisClient(t)
	rec := newIDRecorder()
	send := rec.send(func(_ context.Context, e *Event) (bool, error) {
		if e.ID%5 == 0 && e.Attempts < 2 {
			return true, errDown
		}
		return false, nil
	})
	var qs []*Queue
	for _, n := range []string{"a", "b"} {
		st := openRedis(t, c, n, 0)
		t.Cleanup(func() { st.Close() })
		q, err := New(Options{Store: st, Send: send, Workers: 4, BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeQ(t, q) })
		qs = append(qs, q)
	}
	const keys, per = 5, 40
	var wg sync.WaitGroup
	for k := range keys {
		for _, q := range qs {
			wg.Go(func() {
				for range per {
					if err := q.Enqueue("s"+strconv.Itoa(k), "app", "m", []byte("x")); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	waitFor(t, 15*time.Second, "all delivered", func() bool { return rec.count.Load() == keys*per*2 })
	want := map[string]int{}
	for k := range keys {
		want["s"+strconv.Itoa(k)] = 2 * per
	}
	rec.check(t, want)
	n, _ := c.Keys(context.Background(), "rtcgate:hooks:q:*").Result()
	if len(n) != 0 {
		t.Errorf("streams left after delivery: %v", n)
	}
	if b, _ := c.Get(context.Background(), "rtcgate:hooks:bytes").Int(); b != 0 {
		t.Errorf("pending bytes after delivery: %d", b)
	}
}

// TestRedisKilledMidDelivery: node A holds its sessions' events, its
// backend calls hanging, and dies without a word; node B, which enqueued
// more events for the same sessions meanwhile, takes A's over after
// ClaimAfter and delivers all of them, in order: nothing lost.
func TestRedisKilledMidDelivery(t *testing.T) {
	c := redisClient(t)
	rec := newIDRecorder()
	stA := openRedis(t, c, "a", 0)
	hung := make(chan struct{}, 16)
	qa, err := New(Options{Store: stA, Workers: 4, Send: rec.send(func(ctx context.Context, e *Event) (bool, error) {
		hung <- struct{}{}
		<-ctx.Done()
		return true, ctx.Err()
	})})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := qa.Enqueue("s"+strconv.Itoa(i%3), "app", "m", []byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		<-hung // one attempt per session in flight on A
	}
	stB := openRedis(t, c, "b", 0)
	defer stB.Close()
	qb, err := New(Options{Store: stB, Workers: 4, Send: rec.send(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, qb)
	for i := range 6 { // held by A: left to A, then to whoever takes over
		if err := qb.Enqueue("s"+strconv.Itoa(i%3), "app", "m", []byte("b")); err != nil {
			t.Fatal(err)
		}
	}
	if qb.Depth() != 0 {
		t.Fatalf("B took %d events of keys A holds", qb.Depth())
	}
	killed := time.Now()
	stA.kill() // no heartbeat, no goodbye
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	qa.Close(ctx) // A's attempts are cut short, nothing acknowledged
	waitFor(t, 10*time.Second, "B delivers everything", func() bool { return rec.count.Load() == 18 })
	// ClaimAfter (300ms) runs from A's last heartbeat, which may be up to
	// a heartbeat (ClaimAfter/4) before the kill.
	if d := time.Since(killed); d < 300*time.Millisecond*3/4 {
		t.Errorf("taken over after %v, before ClaimAfter less a heartbeat", d)
	}
	rec.check(t, map[string]int{"s0": 6, "s1": 6, "s2": 6})
	if n, _ := c.ZCard(context.Background(), "rtcgate:hooks:consumers").Result(); n != 1 {
		t.Errorf("%d consumers left, want B alone", n)
	}
}

// TestRedisDeadLetters: dead letters of a Redis queue are in Redis: a
// node started later lists them and replays them.
func TestRedisDeadLetters(t *testing.T) {
	c := redisClient(t)
	var refuse atomic.Bool
	refuse.Store(true)
	rec := newIDRecorder()
	send := rec.send(func(_ context.Context, e *Event) (bool, error) {
		if refuse.Load() {
			return false, errors.New("backend answered 400")
		}
		return false, nil
	})
	open := func(name string) (*Redis, *DeadLetters, *Queue) {
		st := openRedis(t, c, name, 0)
		dl, err := OpenRedisDeadLetters(context.Background(), c, "", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		q, err := New(Options{Store: st, Send: send, DeadLetters: dl})
		if err != nil {
			t.Fatal(err)
		}
		return st, dl, q
	}
	st, dl, q := open("a")
	for _, k := range []string{"s1", "s1", "s2"} {
		if err := q.Enqueue(k, "app", "ConnectionStatusEvent", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "3 dead letters, acknowledged", func() bool { return dl.Stats().Kept == 3 && q.Depth() == 0 })
	closeQ(t, q)
	st.Close()
	dl.Close()

	st, dl, q = open("b")
	defer st.Close()
	defer dl.Close()
	defer closeQ(t, q)
	l := dl.List()
	keys := map[string]int{}
	for _, d := range l {
		keys[d.Key]++
		if d.Reason != "backend answered 400" || d.Attempts != 1 || d.Bytes != 2 || d.Method != "ConnectionStatusEvent" {
			t.Errorf("dead letter in Redis: %+v", d)
		}
	}
	if len(l) != 3 || keys["s1"] != 2 || keys["s2"] != 1 { // sessions are given up on in parallel
		t.Fatalf("dead letters in Redis: %+v", l)
	}
	refuse.Store(false)
	if n, err := q.Replay(nil); n != 3 || err != nil {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	waitFor(t, 5*time.Second, "replayed", func() bool { return rec.count.Load() == 3 })
	if n, _ := c.XLen(context.Background(), "rtcgate:hooks:dead").Result(); n != 0 {
		t.Errorf("%d dead letters left in Redis after replay", n)
	}
}
