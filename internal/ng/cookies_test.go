package ng

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock drives a cookieCache's time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestCache(generation time.Duration, maxEntries int) (*cookieCache, *fakeClock) {
	return newTestCacheBytes(generation, maxEntries, 1<<30)
}

func newTestCacheBytes(generation time.Duration, maxEntries int, maxBytes int64) (*cookieCache, *fakeClock) {
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newCookieCache(generation, maxEntries, maxBytes)
	c.now, c.rotated = clk.now, clk.t
	return c, clk
}

// expect checks what begin finds for key.
func expect(t *testing.T, c *cookieCache, key string, state cookieState, reply string) {
	t.Helper()
	got, cached := c.begin(key)
	if got != state || string(cached) != reply {
		t.Fatalf("begin(%q) = %v, %q; want %v, %q", key, got, cached, state, reply)
	}
	if state != cookieDone && cached != nil {
		t.Fatalf("begin(%q) = %v with a non-nil reply", key, got)
	}
}

func TestCookieStates(t *testing.T) {
	c, _ := newTestCache(30*time.Second, 100)
	if c.Len() != 0 {
		t.Fatalf("new cache Len %d", c.Len())
	}
	expect(t, c, "1.2.3.4:5 a", cookieNew, "")
	if c.Len() != 1 {
		t.Fatalf("Len %d after one begin", c.Len())
	}
	// A duplicate while the first still runs: dropped.
	expect(t, c, "1.2.3.4:5 a", cookieRunning, "")
	expect(t, c, "1.2.3.4:5 a", cookieRunning, "")
	c.finish("1.2.3.4:5 a", []byte("a d6:result4:ponge"))
	// Retransmissions: the cached reply, every time.
	expect(t, c, "1.2.3.4:5 a", cookieDone, "a d6:result4:ponge")
	expect(t, c, "1.2.3.4:5 a", cookieDone, "a d6:result4:ponge")
	// Keys are independent.
	expect(t, c, "1.2.3.4:6 a", cookieNew, "")
	expect(t, c, "1.2.3.4:5 b", cookieNew, "")
	if c.Len() != 3 {
		t.Fatalf("Len %d, want 3", c.Len())
	}
	// finish replaces the reply (not that the UDP server does so).
	c.finish("1.2.3.4:5 a", []byte("x"))
	expect(t, c, "1.2.3.4:5 a", cookieDone, "x")
	// An empty, non-nil reply is done, not running.
	c.finish("1.2.3.4:6 a", []byte{})
	expect(t, c, "1.2.3.4:6 a", cookieDone, "")
}

func TestCookieGenerations(t *testing.T) {
	const gen = 30 * time.Second
	c, clk := newTestCache(gen, 100)
	expect(t, c, "a", cookieNew, "")
	c.finish("a", []byte("A"))

	// Within the first generation.
	clk.advance(gen - time.Nanosecond)
	expect(t, c, "a", cookieDone, "A")
	if c.Len() != 1 {
		t.Fatalf("Len %d before any rotation", c.Len())
	}

	// The first rotation: "a" moves to the previous generation and is
	// still answered.
	clk.advance(time.Nanosecond)
	expect(t, c, "a", cookieDone, "A")
	expect(t, c, "b", cookieNew, "")
	c.finish("b", []byte("B"))
	if c.Len() != 2 {
		t.Fatalf("Len %d after one rotation, want 2", c.Len())
	}
	// A hit does not bring an entry back into the current generation.
	clk.advance(gen - time.Nanosecond)
	expect(t, c, "a", cookieDone, "A")

	// The second rotation: "a" is gone, "b" (one rotation old) is not.
	clk.advance(time.Nanosecond)
	expect(t, c, "a", cookieNew, "")
	expect(t, c, "b", cookieDone, "B")
	if c.Len() != 2 { // "b" in the previous generation, "a" anew
		t.Fatalf("Len %d after two rotations, want 2", c.Len())
	}
	// The third: "b" is gone too.
	clk.advance(gen)
	expect(t, c, "b", cookieNew, "")
}

// TestCookieIdle: after a quiet spell of two generations or more nothing
// survives, however few requests came in between.
func TestCookieIdle(t *testing.T) {
	const gen = 30 * time.Second
	for _, idle := range []time.Duration{2 * gen, 2*gen + time.Second, 10 * gen, 24 * time.Hour} {
		t.Run(idle.String(), func(t *testing.T) {
			c, clk := newTestCache(gen, 100)
			expect(t, c, "a", cookieNew, "")
			c.finish("a", []byte("A"))
			clk.advance(idle)
			expect(t, c, "a", cookieNew, "")
			if c.Len() != 1 {
				t.Fatalf("Len %d, want 1 (only the new entry)", c.Len())
			}
		})
	}
	// Between one and two generations of quiet, the entry is still there.
	c, clk := newTestCache(gen, 100)
	expect(t, c, "a", cookieNew, "")
	c.finish("a", []byte("A"))
	clk.advance(2*gen - time.Nanosecond)
	expect(t, c, "a", cookieDone, "A")
}

// TestCookieSizeRotation: the current generation rotates when it holds half
// the size limit, so at most maxEntries replies are kept.
func TestCookieSizeRotation(t *testing.T) {
	c, _ := newTestCache(time.Hour, 4) // rotate at 2 entries
	for _, k := range []string{"a", "b"} {
		expect(t, c, k, cookieNew, "")
		c.finish(k, []byte(k))
	}
	if c.Len() != 2 {
		t.Fatalf("Len %d, want 2", c.Len())
	}
	// A lookup rotates before it looks: "a" and "b" move to the previous
	// generation.
	expect(t, c, "a", cookieDone, "a")
	if c.Len() != 2 {
		t.Fatalf("Len %d, want 2", c.Len())
	}
	expect(t, c, "c", cookieNew, "")
	expect(t, c, "d", cookieNew, "")
	if c.Len() != 4 {
		t.Fatalf("Len %d, want 4", c.Len())
	}
	// "e" rotates again: "a" and "b" are gone, "c" and "d" kept.
	expect(t, c, "e", cookieNew, "")
	if c.Len() != 3 {
		t.Fatalf("Len %d, want 3", c.Len())
	}
	expect(t, c, "c", cookieRunning, "")
	expect(t, c, "d", cookieRunning, "")
	c.finish("c", []byte("C"))
	expect(t, c, "c", cookieDone, "C")
	expect(t, c, "a", cookieNew, "")

	// Never more than maxEntries, however many requests.
	for i := range 1000 {
		c.begin(fmt.Sprint(i))
		if c.Len() > 4 {
			t.Fatalf("Len %d > 4 after %d requests", c.Len(), i)
		}
	}
}

// TestCookieMinimumSize: a size below 2 is taken as 2, one entry a
// generation; every lookup of a new key rotates.
func TestCookieMinimumSize(t *testing.T) {
	for _, size := range []int{-1, 0, 1, 2} {
		c, _ := newTestCache(time.Hour, size)
		if c.maxEntries != 2 {
			t.Errorf("size %d: maxEntries %d, want 2", size, c.maxEntries)
		}
		expect(t, c, "a", cookieNew, "")
		c.finish("a", []byte("A"))
		expect(t, c, "a", cookieDone, "A") // rotated once by this lookup
		expect(t, c, "b", cookieNew, "")   // rotated twice
		expect(t, c, "a", cookieNew, "")
	}
}

// TestCookieFinishAfterRotation: a reply whose request was rotated out
// while it ran (a burst filled the cache) is still kept.
func TestCookieFinishAfterRotation(t *testing.T) {
	c, _ := newTestCache(time.Hour, 4) // rotate at 2 entries
	expect(t, c, "a", cookieNew, "")
	expect(t, c, "b", cookieNew, "")
	expect(t, c, "c", cookieNew, "") // "a" and "b" to the previous generation
	c.finish("a", []byte("A"))       // found there
	expect(t, c, "a", cookieDone, "A")

	expect(t, c, "d", cookieNew, "")
	expect(t, c, "e", cookieNew, "") // "c", "d" previous
	expect(t, c, "f", cookieNew, "")
	expect(t, c, "g", cookieNew, "") // "c" is gone while running
	if c.Len() != 3 {
		t.Fatalf("Len %d, want 3", c.Len())
	}
	c.finish("c", []byte("C"))
	if c.Len() != 4 { // "e", "f", then "g" and the re-added "c"
		t.Fatalf("Len %d, want 4", c.Len())
	}
	expect(t, c, "c", cookieDone, "C")
}

func TestCookieDefaults(t *testing.T) {
	before := time.Now()
	c := newCookieCache(30*time.Second, 100, 0)
	if c.generation != 30*time.Second || c.maxEntries != 100 || c.maxBytes != minCookieBytes || c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("cache %+v", c)
	}
	if c.rotated.Before(before) || c.rotated.After(time.Now()) {
		t.Errorf("rotated %v, want about now", c.rotated)
	}
	if d := time.Since(c.now()); d < 0 || d > time.Minute {
		t.Errorf("now() is %v off the clock", d)
	}
}

// TestCookieConcurrent: under the race detector, many goroutines; every
// key is new exactly once while the cache is large enough to keep it.
func TestCookieConcurrent(t *testing.T) {
	c := newCookieCache(time.Hour, 1<<20, 1<<30)
	const goroutines, keys = 8, 200
	var wg sync.WaitGroup
	news := make([][]int, goroutines)
	for g := range goroutines {
		news[g] = make([]int, keys)
		wg.Go(func() {
			for k := range keys {
				key := fmt.Sprint(k)
				switch st, reply := c.begin(key); st {
				case cookieNew:
					news[g][k]++
					c.finish(key, []byte(key))
				case cookieDone:
					if string(reply) != key {
						t.Errorf("key %s: reply %q", key, reply)
					}
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		n := 0
		for g := range goroutines {
			n += news[g][k]
		}
		if n != 1 {
			t.Errorf("key %d began as new %d times", k, n)
		}
	}
	if c.Len() != keys {
		t.Errorf("Len %d, want %d", c.Len(), keys)
	}
}

// held recounts what the cache holds, independently of its bookkeeping.
func held(c *cookieCache) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, m := range []map[string]*cookieEntry{c.cur, c.prev} {
		for k, e := range m {
			n += int64(len(k) + cap(e.reply) + entryOverhead)
		}
	}
	return n
}

// TestCookieBytesBound: a flood of large replies under new cookies never
// holds more than the byte limit, however many fit the entry limit, and
// the most recent cookies' retransmissions are still answered from the
// cache.
func TestCookieBytesBound(t *testing.T) {
	const limit = 2 << 20
	c, _ := newTestCacheBytes(time.Hour, 1<<20, limit)
	reply := func(i int) []byte {
		b := make([]byte, 60000)
		copy(b, fmt.Sprintf("reply %d ", i))
		return b
	}
	var keys []string
	for i := range 2000 {
		key := fmt.Sprintf("127.0.0.1:5060 c%d", i)
		expect(t, c, key, cookieNew, "")
		c.finish(key, reply(i))
		keys = append(keys, key)
		if b, h := c.Bytes(), held(c); b > limit || h > limit || b != h {
			t.Fatalf("after %d replies: Bytes %d, held %d, limit %d", i+1, b, h, limit)
		}
		// The last cookies, up to half the limit, are answered from the
		// cache: a retransmission never runs twice.
		for j := max(0, len(keys)-limit/2/60200); j < len(keys); j++ {
			if st, got := c.begin(keys[j]); st != cookieDone || string(got) != string(reply(j)) {
				t.Fatalf("after %d replies, recent cookie %d: state %v", i+1, j, st)
			}
		}
	}
	if c.Len() >= 2000 || c.Bytes() < limit/2 {
		t.Errorf("Len %d, Bytes %d: the oldest should be gone and at least half the limit in use", c.Len(), c.Bytes())
	}
	expect(t, c, keys[0], cookieNew, "") // the oldest went first

	// Running requests count too: a flood of new cookies whose commands
	// have not answered yet stays within the limit.
	for i := range 100000 {
		c.begin(fmt.Sprintf("10.0.0.1:1 %d", i))
	}
	if b, h := c.Bytes(), held(c); b > limit || b != h {
		t.Fatalf("running flood: Bytes %d, held %d", b, h)
	}
}

// TestCookieHugeReply: a reply over half the byte limit is not kept (a UDP
// datagram cannot carry one anyway); its retransmission runs again
// instead of being dropped as running forever.
func TestCookieHugeReply(t *testing.T) {
	c, _ := newTestCacheBytes(time.Hour, 100, minCookieBytes)
	expect(t, c, "small", cookieNew, "")
	c.finish("small", []byte("S"))
	expect(t, c, "huge", cookieNew, "")
	c.finish("huge", make([]byte, minCookieBytes/2))
	expect(t, c, "huge", cookieNew, "")
	expect(t, c, "small", cookieDone, "S")
	if b, h := c.Bytes(), held(c); b != h {
		t.Errorf("Bytes %d, held %d", b, h)
	}
}

// TestCookieExpireWithoutRequests: due generations go without a request to
// notice them, and expire says how many bytes went since it last said,
// whoever rotated them out.
func TestCookieExpireWithoutRequests(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCookieCache(30*time.Second, 1000, 1<<20)
	c.now = func() time.Time { return now }
	c.rotated = now
	c.begin("a")
	c.finish("a", make([]byte, 1000))
	if got := c.expire(); got != 0 {
		t.Fatalf("nothing due, yet %d bytes expired", got)
	}
	now = now.Add(31 * time.Second)
	c.begin("b") // rotates: a is the previous generation now
	if got := c.expire(); got != 0 {
		t.Fatalf("a rotation into the previous generation reported %d bytes", got)
	}
	now = now.Add(31 * time.Second)
	if got, want := c.expire(), entryCost("a", make([]byte, 1000)); got != want {
		t.Fatalf("expired %d bytes, want a's %d", got, want)
	}
	now = now.Add(90 * time.Second)
	if got, want := c.expire(), entryCost("b", nil); got != want {
		t.Fatalf("expired %d bytes, want b's %d", got, want)
	}
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Fatalf("after expiry: %d entries, %d bytes", c.Len(), c.Bytes())
	}
}
