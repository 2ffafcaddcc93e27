package ng

import (
	"sync"
	"time"
)

// cookieCache remembers the replies to recent UDP requests, so that a
// retransmission (the proxy did not get the reply in time) is answered from
// the cache and never runs its command twice. Entries live between one and
// two generations (30–60 s by default): the current map becomes the previous
// one every generation, or sooner when it holds half the size limit.
type cookieCache struct {
	mu         sync.Mutex
	cur, prev  map[string]*cookieEntry
	rotated    time.Time
	generation time.Duration
	maxEntries int
	now        func() time.Time
}

type cookieEntry struct {
	reply []byte // nil while the command runs
}

// cookieState is what a lookup found.
type cookieState int

const (
	cookieNew     cookieState = iota // first time: run the command
	cookieRunning                    // a duplicate of a request still running: drop it
	cookieDone                       // a retransmission: send the cached reply
)

func newCookieCache(generation time.Duration, maxEntries int) *cookieCache {
	return &cookieCache{cur: map[string]*cookieEntry{}, prev: map[string]*cookieEntry{},
		generation: generation, maxEntries: max(maxEntries, 2), now: time.Now, rotated: time.Now()}
}

// begin looks a key up and, when it is new, records it as running.
func (c *cookieCache) begin(key string) (cookieState, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch now := c.now(); {
	case now.Sub(c.rotated) >= 2*c.generation:
		// Fix: rotation is lazy, so after an idle spell of two generations
		// or more both maps are stale; rotating once kept the old current
		// map and its entries lived on indefinitely past the promised two
		// generations.
		c.prev, c.cur, c.rotated = map[string]*cookieEntry{}, map[string]*cookieEntry{}, now
	case now.Sub(c.rotated) >= c.generation || len(c.cur) >= c.maxEntries/2:
		c.prev, c.cur, c.rotated = c.cur, make(map[string]*cookieEntry, len(c.cur)), now
	}
	e, ok := c.cur[key]
	if !ok {
		e, ok = c.prev[key]
	}
	switch {
	case !ok:
		c.cur[key] = &cookieEntry{}
		return cookieNew, nil
	case e.reply == nil:
		return cookieRunning, nil
	}
	return cookieDone, e.reply
}

// finish stores the reply of a request begun earlier.
func (c *cookieCache) finish(key string, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[key]; ok {
		e.reply = reply
	} else if e, ok := c.prev[key]; ok {
		e.reply = reply
	} else {
		// Rotated out while running (a burst filled the cache): keep it for
		// another generation anyway.
		c.cur[key] = &cookieEntry{reply: reply}
	}
}

// Len is the number of cached entries.
func (c *cookieCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
