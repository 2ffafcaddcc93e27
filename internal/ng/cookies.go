package ng

import (
	"sync"
	"time"
)

// cookieCache remembers the replies to recent UDP requests, so that a
// retransmission (the proxy did not get the reply in time) is answered from
// the cache and never runs its command twice. Entries live between one and
// two generations (30–60 s by default): the current map becomes the previous
// one every generation, or sooner when it holds half the entry limit or half
// the byte limit. The byte limit (replies, keys and bookkeeping) is never
// exceeded: an entry that would go over it rotates the oldest generation out
// first, so under a flood of large replies the most recent ones stay and a
// retransmission of a recent cookie is still answered from the cache.
type cookieCache struct {
	mu         sync.Mutex
	cur, prev  map[string]*cookieEntry
	curBytes   int64 // what cur holds, as entryCost counts it
	prevBytes  int64
	rotated    time.Time
	generation time.Duration
	maxEntries int
	maxBytes   int64
	now        func() time.Time
	dropped    int64 // bytes rotated out since expire last reported
}

type cookieEntry struct {
	reply []byte // nil while the command runs
}

// entryOverhead approximates what an entry costs besides its key and reply
// bytes: the map slot, the entry and the slice and string headers.
const entryOverhead = 96

// minCookieBytes is the smallest byte limit: room for a few of the largest
// replies a UDP datagram can carry.
const minCookieBytes = 1 << 20

func entryCost(key string, reply []byte) int64 {
	return int64(len(key) + len(reply) + entryOverhead)
}

// cookieState is what a lookup found.
type cookieState int

const (
	cookieNew     cookieState = iota // first time: run the command
	cookieRunning                    // a duplicate of a request still running: drop it
	cookieDone                       // a retransmission: send the cached reply
)

func newCookieCache(generation time.Duration, maxEntries int, maxBytes int64) *cookieCache {
	return &cookieCache{cur: map[string]*cookieEntry{}, prev: map[string]*cookieEntry{},
		generation: generation, maxEntries: max(maxEntries, 2), maxBytes: max(maxBytes, minCookieBytes),
		now: time.Now, rotated: time.Now()}
}

// rotate makes the current generation the previous one, dropping the
// previous one.
func (c *cookieCache) rotate(now time.Time) {
	c.dropped += c.prevBytes
	c.prev, c.cur, c.rotated = c.cur, make(map[string]*cookieEntry, len(c.cur)), now
	c.prevBytes, c.curBytes = c.curBytes, 0
}

// makeRoom rotates the oldest entries out until n more bytes fit.
func (c *cookieCache) makeRoom(n int64) {
	for range 2 {
		if c.prevBytes+c.curBytes+n <= c.maxBytes {
			return
		}
		c.rotate(c.now())
	}
}

// rotateDue rotates what is due: both generations after an idle spell of
// two or more (both maps are stale), one after a generation or when the
// current one holds half a limit.
func (c *cookieCache) rotateDue(now time.Time) {
	switch {
	case now.Sub(c.rotated) >= 2*c.generation:
		c.rotate(now)
		c.rotate(now)
	case now.Sub(c.rotated) >= c.generation || len(c.cur) >= c.maxEntries/2 || c.curBytes >= c.maxBytes/2:
		c.rotate(now)
	}
}

// expire drops the generations that are due without waiting for a request
// to notice, and reports the bytes dropped since it last did, by it or by
// the requests' own rotations.
func (c *cookieCache) expire() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateDue(c.now())
	d := c.dropped
	c.dropped = 0
	return d
}

// begin looks a key up and, when it is new, records it as running.
func (c *cookieCache) begin(key string) (cookieState, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateDue(c.now())
	e, ok := c.cur[key]
	if !ok {
		e, ok = c.prev[key]
	}
	switch {
	case !ok:
		cost := entryCost(key, nil)
		c.makeRoom(cost)
		c.cur[key] = &cookieEntry{}
		c.curBytes += cost
		return cookieNew, nil
	case e.reply == nil:
		return cookieRunning, nil
	}
	return cookieDone, e.reply
}

// finish stores the reply of a request begun earlier. A reply too large to
// keep within the byte limit (more than half of it) is not kept: the
// request's entry goes, and a retransmission runs again.
func (c *cookieCache) finish(key string, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if entryCost(key, reply) > c.maxBytes/2 {
		if e, ok := c.cur[key]; ok {
			delete(c.cur, key)
			c.curBytes -= entryCost(key, e.reply)
		} else if e, ok := c.prev[key]; ok {
			delete(c.prev, key)
			c.prevBytes -= entryCost(key, e.reply)
		}
		return
	}
	if e := c.lookup(key); e != nil {
		c.makeRoom(int64(len(reply) - len(e.reply)))
	}
	// makeRoom may have rotated the entry to the previous generation or
	// out: look again.
	if e, ok := c.cur[key]; ok {
		c.curBytes += int64(len(reply) - len(e.reply))
		e.reply = reply
	} else if e, ok := c.prev[key]; ok {
		c.prevBytes += int64(len(reply) - len(e.reply))
		e.reply = reply
	} else {
		// Rotated out while running (a burst filled the cache): keep it
		// for another generation anyway.
		cost := entryCost(key, reply)
		c.makeRoom(cost)
		c.cur[key] = &cookieEntry{reply: reply}
		c.curBytes += cost
	}
}

func (c *cookieCache) lookup(key string) *cookieEntry {
	if e, ok := c.cur[key]; ok {
		return e
	}
	return c.prev[key]
}

// Len is the number of cached entries.
func (c *cookieCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}

// Bytes is what the cached entries cost, as the byte limit counts it.
func (c *cookieCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.curBytes + c.prevBytes
}
