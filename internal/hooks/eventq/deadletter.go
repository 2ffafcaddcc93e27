package eventq

import (
	"errors"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRetryTime is the retry budget of an event when Options.RetryTime
// is not set: long enough to ride out a backend's restart or deploy.
const DefaultRetryTime = 10 * time.Minute

// DeadLetterDir is the subdirectory of a Disk queue's directory that holds
// its dead letters (OpenDiskDeadLetters): segments in the queue's format
// whose events are dead records.
const DeadLetterDir = "dead"

// DeadLetter describes one kept dead letter. Its body stays in the store:
// it may carry credentials, and listing must not load every body.
type DeadLetter struct {
	ID       uint64 // the dead letter's own id, in the order given up on
	Key      string // ordering key: the session id
	App      string
	Method   string
	Bytes    int       // body size
	Enqueued time.Time // when the event was first queued
	DeadAt   time.Time // when it was given up on
	Attempts int       // attempts made by the process that gave up
	Reason   string    // the last attempt's error
}

// DeadLetters keeps the events a Queue gave up on, in the order it gave up
// on them, within a bound in bytes: over it the oldest are dropped (their
// dead-letter log line is all that remains; Dropped counts them). The store
// is a Disk (OpenDiskDeadLetters: they survive a restart) or a Memory.
// An operator lists them and replays them through Queue.Replay.
type DeadLetters struct {
	store    Store
	maxBytes int64

	replaying sync.Mutex // one Replay at a time

	mu      sync.Mutex
	list    []deadEntry // in ID order, with tombstones
	live    int         // entries not gone
	bytes   int64       // approximate bytes kept (size of each)
	closed  bool
	dropped atomic.Uint64
	removed atomic.Uint64 // removed by an operator
	replays atomic.Uint64 // replayed by an operator
}

// deadEntry is a dead letter in the list; a removed one stays as a
// tombstone until the list is compacted, so that removing many (a replay)
// does not shift the list for each.
type deadEntry struct {
	DeadLetter
	gone bool
}

// OpenDiskDeadLetters opens the dead letters of the Disk queue in dir (the
// DeadLetterDir subdirectory), repairing a torn tail as OpenDisk does.
func OpenDiskDeadLetters(dir string, maxBytes int64, syncEvery time.Duration) (*DeadLetters, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultDeadLetterBytes
	}
	// Headroom: the store counts framing, the bound here counts sizes.
	d, err := OpenDisk(filepath.Join(dir, DeadLetterDir), 2*maxBytes+1<<16, syncEvery)
	if err != nil {
		return nil, err
	}
	return NewDeadLetters(d, maxBytes)
}

// DefaultDeadLetterBytes bounds the dead letters kept when no bound is given.
const DefaultDeadLetterBytes = 16 << 20

// NewMemoryDeadLetters keeps dead letters in memory, within maxBytes.
func NewMemoryDeadLetters(maxBytes int64) *DeadLetters {
	dl, _ := NewDeadLetters(NewMemory(math.MaxInt), maxBytes) // a Memory's Pending never fails
	return dl
}

// NewDeadLetters keeps dead letters in store (which it then owns: Close
// closes it), loading those already there and dropping the oldest beyond
// maxBytes (≤0: DefaultDeadLetterBytes).
func NewDeadLetters(store Store, maxBytes int64) (*DeadLetters, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultDeadLetterBytes
	}
	pend, err := store.Pending()
	if err != nil {
		store.Close()
		return nil, err
	}
	dl := &DeadLetters{store: store, maxBytes: maxBytes}
	for _, e := range pend {
		dl.list = append(dl.list, deadEntry{DeadLetter: info(e)})
		dl.live++
		dl.bytes += size(e)
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if err := dl.evictLocked(0); err != nil {
		store.Close()
		return nil, err
	}
	return dl, nil
}

func info(e *Event) DeadLetter {
	return DeadLetter{ID: e.ID, Key: e.Key, App: e.App, Method: e.Method, Bytes: len(e.Body),
		Enqueued: e.Enqueued, DeadAt: e.DeadAt, Attempts: e.Attempts, Reason: e.Reason}
}

// size is what a dead letter counts against the bound: its fields and a
// record's fixed part.
func size(e *Event) int64 {
	return int64(64 + len(e.Key) + len(e.App) + len(e.Method) + len(e.Body) + len(e.Reason))
}

func (dl *DeadLetter) size() int64 {
	return int64(64 + len(dl.Key) + len(dl.App) + len(dl.Method) + dl.Bytes + len(dl.Reason))
}

// maxReason bounds the reason kept with a dead letter.
const maxReason = 512

// Add keeps a copy of e, given up on because of reason, dropping the
// oldest dead letters to stay within the bound. An event larger than the
// bound alone is dropped at once (and counted).
func (dl *DeadLetters) Add(e *Event, reason error) error {
	c := &Event{Key: e.Key, App: e.App, Method: e.Method, Body: e.Body, Attempts: e.Attempts,
		Enqueued: e.Enqueued, DeadAt: time.Now()}
	if reason != nil {
		c.Reason = reason.Error()
		if len(c.Reason) > maxReason {
			c.Reason = c.Reason[:maxReason]
		}
	}
	sz := size(c)
	dl.mu.Lock()
	if dl.closed {
		dl.mu.Unlock()
		return ErrClosed
	}
	if sz > dl.maxBytes {
		dl.mu.Unlock()
		dl.dropped.Add(1)
		return nil
	}
	if err := dl.evictLocked(sz); err != nil {
		dl.mu.Unlock()
		return err
	}
	dl.bytes += sz // reserved while the store appends
	dl.mu.Unlock()
	// Outside dl.mu, so that a Disk's group commit syncs the dead letters
	// of many workers at once (a long outage ends in many).
	var err error
	for {
		err = dl.store.Append(c)
		if !errors.Is(err, ErrFull) {
			break
		}
		dl.mu.Lock()
		if dl.live == 0 {
			dl.mu.Unlock()
			break
		}
		err = dl.dropOldestLocked()
		dl.mu.Unlock()
		if err != nil {
			break
		}
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if err != nil {
		dl.bytes -= sz
		return err
	}
	// Concurrent Adds may finish out of ID order: insert in place.
	i := len(dl.list)
	dl.list = append(dl.list, deadEntry{})
	for i > 0 && dl.list[i-1].ID > c.ID {
		dl.list[i] = dl.list[i-1]
		i--
	}
	dl.list[i] = deadEntry{DeadLetter: info(c)}
	dl.live++
	return nil
}

// evictLocked drops the oldest dead letters until room more bytes fit.
func (dl *DeadLetters) evictLocked(room int64) error {
	for dl.live > 0 && dl.bytes+room > dl.maxBytes {
		if err := dl.dropOldestLocked(); err != nil {
			return err
		}
	}
	return nil
}

// dropOldestLocked drops the oldest dead letter; there is one (live > 0).
func (dl *DeadLetters) dropOldestLocked() error {
	for dl.list[0].gone {
		dl.list = dl.list[1:]
	}
	old := dl.list[0]
	if err := dl.store.Ack(old.ID); err != nil {
		return err
	}
	dl.list = dl.list[1:]
	dl.live--
	dl.bytes -= old.size()
	dl.dropped.Add(1)
	return nil
}

func (dl *DeadLetters) get(id uint64) (DeadLetter, bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	i, ok := dl.indexLocked(id)
	if !ok {
		return DeadLetter{}, false
	}
	return dl.list[i].DeadLetter, true
}

func (dl *DeadLetters) indexLocked(id uint64) (int, bool) {
	lo, hi := 0, len(dl.list)
	for lo < hi {
		m := (lo + hi) / 2
		if dl.list[m].ID < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(dl.list) && dl.list[lo].ID == id && !dl.list[lo].gone
}

// remove forgets one dead letter (replayed, or removed by an operator).
func (dl *DeadLetters) remove(id uint64, replayed bool) error {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	i, ok := dl.indexLocked(id)
	if !ok {
		return nil
	}
	if err := dl.store.Ack(id); err != nil {
		return err
	}
	dl.bytes -= dl.list[i].size()
	dl.list[i].gone = true
	dl.live--
	if gone := len(dl.list) - dl.live; gone > 64 && gone > dl.live {
		kept := make([]deadEntry, 0, dl.live)
		for _, e := range dl.list {
			if !e.gone {
				kept = append(kept, e)
			}
		}
		dl.list = kept
	}
	if replayed {
		dl.replays.Add(1)
	} else {
		dl.removed.Add(1)
	}
	return nil
}

// Remove forgets the dead letters that match (nil: all) and returns how
// many.
func (dl *DeadLetters) Remove(match func(DeadLetter) bool) (int, error) {
	n := 0
	for _, d := range dl.List() {
		if match != nil && !match(d) {
			continue
		}
		if err := dl.remove(d.ID, false); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// List returns the dead letters kept, oldest first.
func (dl *DeadLetters) List() []DeadLetter {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	out := make([]DeadLetter, 0, dl.live)
	for _, e := range dl.list {
		if !e.gone {
			out = append(out, e.DeadLetter)
		}
	}
	return out
}

// DeadLetterStats are the dead letters' figures, for metrics and `list
// totals`.
type DeadLetterStats struct {
	Kept     int    // dead letters kept now
	Bytes    int64  // their approximate size
	Dropped  uint64 // dropped over the bound since start
	Replayed uint64 // replayed by an operator since start
	Removed  uint64 // removed by an operator since start
}

// Stats returns the current figures.
func (dl *DeadLetters) Stats() DeadLetterStats {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return DeadLetterStats{Kept: dl.live, Bytes: dl.bytes, Dropped: dl.dropped.Load(),
		Replayed: dl.replays.Load(), Removed: dl.removed.Load()}
}

// Close closes the store. Later Adds fail with ErrClosed.
func (dl *DeadLetters) Close() error {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.closed {
		return ErrClosed
	}
	dl.closed = true
	return dl.store.Close()
}
