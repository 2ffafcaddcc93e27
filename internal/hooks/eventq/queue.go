// Package eventq delivers rtcgate's status events (ConnectionStatusEvent,
// CallStatusEvent, …) to app backends: in order per ordering key (the
// session id), at least once, with exponential backoff on retryable
// failures for a time budget (RetryTime), and never dropped silently: an
// event that cannot be delivered goes to a dead-letter callback and is kept
// (DeadLetters) for an operator to Replay. Pending events live in a Store so that a
// durable implementation (Disk, or Redis later) carries them across a
// restart.
//
// Scheduling: a fixed pool of Workers goroutines plus one timer goroutine.
// Each key with pending events is in exactly one place: the ready list, the
// backoff heap, or in flight on one worker. That is what makes delivery per
// key strictly sequential while different keys proceed in parallel, without
// a goroutine per event or per key.
package eventq

import (
	"container/heap"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one delivery. The queue treats it as opaque except for Key
// (ordering), Attempts and Enqueued (retry budget).
type Event struct {
	ID       uint64    // assigned by the Store on Append, increasing
	Key      string    // ordering key: the session id
	App      string    // app the event is for (lets the Sender pick the URL)
	Method   string    // event name, e.g. "ConnectionStatusEvent"
	Body     []byte    // payload, sent as is
	Attempts int       // delivery attempts so far in this process (not persisted, except in a dead letter)
	Enqueued time.Time // when Enqueue accepted it

	// A dead letter's: when it was given up on and why (DeadLetters
	// persists them; zero for a queued event).
	DeadAt time.Time
	Reason string

	// Origin names who assigned ID (a Store instance, a Disk directory, a
	// Redis): with it the id is unique across restarts and nodes (UID).
	Origin string
	// uid, when set, is the event's UID as the store named it when it was
	// first appended, kept with the event (Redis: its counter alone may
	// repeat once Redis lost its last writes).
	uid string

	since time.Time // start of the retry-time budget: Enqueued, or when this process loaded it
}

// UID is the event's id for its backend (the X-Rtcgate-Event-Id header):
// the same for every attempt, on every node, and never the id of another
// event, so that a backend can drop the rare duplicate that at-least-once
// delivery lets through.
func (e *Event) UID() string {
	if e.uid != "" {
		return e.uid
	}
	if e.Origin == "" {
		return strconv.FormatUint(e.ID, 10)
	}
	return e.Origin + "-" + strconv.FormatUint(e.ID, 10)
}

// newOrigin is a random Origin, for a store whose ids start over.
func newOrigin() string {
	var b [8]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Store keeps pending events. Implementations: Memory (bounded, lost on
// restart), Disk (durable) and Redis (durable, shared by the nodes of a
// cluster: a Shared store).
type Store interface {
	// Append assigns e.ID and keeps e until Ack. It returns ErrFull when
	// over its bound; the caller must then decide (it must not lose the
	// event silently).
	Append(e *Event) error
	// Pending returns everything not yet acknowledged, in ID order; New
	// uses it to resume after a restart.
	Pending() ([]*Event, error)
	// Ack forgets a delivered (or dead-lettered) event. Acking an unknown
	// id is not an error, so a repeated Ack is harmless.
	Ack(id uint64) error
	// Close releases the store.
	Close() error
}

// Shared is a Store that several queues — one per node — deliver from at
// once (Redis). The store decides which queue delivers a key's events, so
// that they are delivered by one queue at a time, in the order they were
// appended, whichever queue appended them; it hands a queue the keys of a
// queue that died. A Shared store's Pending returns nothing: what is not
// held by a live queue comes through Feed.
type Shared interface {
	Store
	// Hold appends e as Append does and returns the events this queue is
	// now to deliver, in order: e, behind any of its key's this queue did
	// not hold yet; none when another queue holds the key (that one
	// delivers e).
	Hold(e *Event) ([]*Event, error)
	// Release acknowledges e as Ack does and returns the key's next
	// events for this queue: those appended meanwhile, once it holds no
	// other event of the key.
	Release(e *Event) ([]*Event, error)
	// Feed starts handing the queue, through feed, the events it takes
	// over from queues that died, until the store closes.
	Feed(feed func([]*Event))
}

// Sender delivers one event. retryable reports whether err is transient
// (network error, timeout, 5xx), in which case the event is retried with
// backoff; a permanent error (4xx) sends it to the dead letter at once.
type Sender func(ctx context.Context, e *Event) (retryable bool, err error)

// Errors returned by the package.
var (
	// ErrFull is returned by a Store (and so by Enqueue) over its bound.
	ErrFull = errors.New("eventq: store full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("eventq: closed")
	// ErrTooLarge is returned for an event that could never fit the store.
	ErrTooLarge = errors.New("eventq: event too large")
	// ErrCorrupt is returned by OpenDisk for a file that is not a segment
	// at all (bad magic), as opposed to a torn tail, which is repaired.
	ErrCorrupt = errors.New("eventq: corrupt segment")
)

// Options configures a Queue. Store and Send are required.
type Options struct {
	Store Store
	Send  Sender
	// Workers is the number of keys delivered in parallel (default 8).
	Workers int
	// RetryTime is the retry budget per event in time: an event still
	// undelivered this long after it was queued (or, for one a restart
	// loaded, after the restart) is given up on at its next failed
	// attempt; the last attempt is made at that deadline, however long the
	// backoff. Time spent waiting behind the key's earlier events counts:
	// the budget bounds the age of the backlog. Default 10 minutes.
	RetryTime time.Duration
	// MaxAttempts caps the attempts per event, first attempt included, on
	// top of RetryTime; ≤0 means no cap (the default).
	MaxAttempts int
	// BackoffMin and BackoffMax bound the exponential backoff between
	// attempts (defaults 100ms and 30s).
	BackoffMin, BackoffMax time.Duration
	// DeadLetter is called once per event given up on (permanent error or
	// budget exhausted), before it is acked from the Store. The daemon
	// logs it as a JSON line and counts it. Nil logs at Error level.
	DeadLetter func(e *Event, err error)
	// DeadLetters, if set, keeps every event given up on (after
	// DeadLetter) so that an operator can list and replay them (Replay).
	DeadLetters *DeadLetters
	// Log receives operational messages (store errors). Nil discards.
	Log *slog.Logger
}

// Stats are cumulative counters since New, for metrics.
type Stats struct {
	Delivered    uint64 // events acknowledged by the backend
	Retries      uint64 // failed attempts that were scheduled again
	DeadLettered uint64 // events handed to DeadLetter
	StoreErrors  uint64 // Ack failures (the event may be redelivered after a restart)
	// Refused counts the events Enqueue did not queue, by reason (one of
	// RefuseReasons).
	Refused map[string]uint64
}

// RefuseReasons name why Enqueue refused an event (Stats.Refused): full
// (the store's bound), spill_full (Redis unreachable and the local spill
// over its bound), too_large, closed, error (any other store error).
var RefuseReasons = []string{"full", "spill_full", "too_large", "closed", "error"}

// refuseReason indexes RefuseReasons.
func refuseReason(err error) int {
	switch {
	case errors.Is(err, ErrSpillFull):
		return 1
	case errors.Is(err, ErrFull):
		return 0
	case errors.Is(err, ErrTooLarge):
		return 2
	case errors.Is(err, ErrClosed):
		return 3
	}
	return 4
}

// Spiller is a store that keeps events aside while its backend is
// unreachable (Redis).
type Spiller interface {
	// Spilled returns the events kept aside and their bytes.
	Spilled() (int, int64)
}

type keyState struct {
	q        []*Event        // pending events of the key, in ID order
	sched    bool            // in the ready list, the backoff heap or in flight
	inflight bool            // q[0] is being sent right now
	idle     []chan struct{} // closed when q empties (Idle)
}

type delayed struct {
	at  time.Time
	key string
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Queue delivers events through a fixed worker pool. Create it with New.
type Queue struct {
	o Options

	mu      sync.Mutex
	cond    *sync.Cond // workers wait here for a ready key
	keys    map[string]*keyState
	ready   []string
	backoff delayHeap
	depth   int
	closed  bool

	kick   chan struct{} // wakes the timer goroutine when the heap changes
	stop   chan struct{}
	ctx    context.Context // passed to Send; cancelled when Close's ctx expires
	cancel context.CancelFunc
	wg     sync.WaitGroup

	delivered, retries, dead, storeErrs atomic.Uint64
	refused                             [5]atomic.Uint64 // by refuseReason
}

// New starts a Queue. It loads Store.Pending() and schedules those events
// first, so that a restart resumes each key where it stopped, in order.
func New(o Options) (*Queue, error) {
	if o.Store == nil || o.Send == nil {
		return nil, errors.New("eventq: Store and Send are required")
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.RetryTime <= 0 {
		o.RetryTime = DefaultRetryTime
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.DeadLetter == nil {
		log := o.Log
		o.DeadLetter = func(e *Event, err error) {
			log.Error("eventq: dead letter", "id", e.ID, "key", e.Key, "app", e.App, "method", e.Method, "attempts", e.Attempts, "err", err)
		}
	}
	pend, err := o.Store.Pending()
	if err != nil {
		return nil, fmt.Errorf("eventq: loading pending events: %w", err)
	}
	q := &Queue{
		o:    o,
		keys: make(map[string]*keyState),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	q.cond = sync.NewCond(&q.mu)
	q.ctx, q.cancel = context.WithCancel(context.Background())
	now := time.Now()
	for _, e := range pend {
		// A restart grants a fresh budget: better late than dead, and the
		// time rtcgate was down is not the backend's fault.
		e.Attempts, e.since = 0, now
		q.add(e)
	}
	q.wg.Add(o.Workers + 1)
	for range o.Workers {
		go q.worker()
	}
	go q.timer()
	if sh, ok := o.Store.(Shared); ok {
		sh.Feed(q.feed)
	}
	return q, nil
}

// Enqueue stores an event for key and schedules it behind the key's earlier
// events. It returns once the Store has accepted it (for Disk: synced), or
// the Store's error (ErrFull), which the caller must handle: the event is
// not queued.
func (q *Queue) Enqueue(key, app, method string, body []byte) error {
	err := q.enqueue(key, app, method, body)
	if err != nil {
		q.refused[refuseReason(err)].Add(1)
	}
	return err
}

// Spilled returns the events a Spiller store keeps aside (Redis
// unreachable), and their bytes; 0 for other stores.
func (q *Queue) Spilled() (int, int64) {
	if sp, ok := q.o.Store.(Spiller); ok {
		return sp.Spilled()
	}
	return 0, 0
}

func (q *Queue) enqueue(key, app, method string, body []byte) error {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return ErrClosed
	}
	now := time.Now()
	e := &Event{Key: key, App: app, Method: method, Body: body, Enqueued: now, since: now}
	if sh, ok := q.o.Store.(Shared); ok {
		held, err := sh.Hold(e)
		if err != nil {
			return err
		}
		q.feed(held)
		return nil
	}
	// Append runs outside q.mu so that a Disk store's group commit can
	// batch concurrent enqueues into one fsync.
	if err := q.o.Store.Append(e); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	// Even when Close ran meanwhile the event is in the Store, so it is not
	// lost: it is delivered after the restart. Report success.
	q.add(e)
	return nil
}

// feed schedules events a Shared store handed this queue.
func (q *Queue) feed(evs []*Event) {
	if len(evs) == 0 {
		return
	}
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range evs {
		if e.since.IsZero() {
			// Taken over from another node: a fresh budget, as after a
			// restart.
			e.since = now
		}
		q.add(e)
	}
}

// add inserts e in its key's list, in ID order, and schedules the key if
// idle. Concurrent Enqueues of one key race for IDs; keeping the list in
// ID order makes the in-process order match the order a restart would
// resume in. The event in flight is never overtaken. Caller holds q.mu.
func (q *Queue) add(e *Event) {
	ks := q.keys[e.Key]
	if ks == nil {
		ks = &keyState{}
		q.keys[e.Key] = ks
	}
	lo := 0
	if ks.inflight {
		lo = 1
	}
	i := len(ks.q)
	ks.q = append(ks.q, e)
	for i > lo && ks.q[i-1].ID > e.ID {
		ks.q[i] = ks.q[i-1]
		i--
	}
	ks.q[i] = e
	q.depth++
	if !ks.sched && !q.closed {
		ks.sched = true
		q.ready = append(q.ready, e.Key)
		q.cond.Signal()
	}
}

// Idle waits until key has no pending events — every event queued for it
// so far delivered or given up on — or ctx ends (false). A synchronous
// call made after Idle reaches the backend after the key's events.
func (q *Queue) Idle(ctx context.Context, key string) bool {
	q.mu.Lock()
	ks := q.keys[key]
	if ks == nil || len(ks.q) == 0 {
		q.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	ks.idle = append(ks.idle, ch)
	q.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// Depth returns the number of pending events (queued, in backoff or in
// flight).
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.depth
}

// Oldest returns when the oldest pending event was queued (the zero time
// when nothing is pending), for the backlog's age.
func (q *Queue) Oldest() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var oldest time.Time
	for _, ks := range q.keys {
		// A key's events are in ID order, which is the order they were
		// queued in.
		if len(ks.q) > 0 && (oldest.IsZero() || ks.q[0].Enqueued.Before(oldest)) {
			oldest = ks.q[0].Enqueued
		}
	}
	return oldest
}

// DeadLetters returns the dead-letter store of Options (nil when none).
func (q *Queue) DeadLetters() *DeadLetters { return q.o.DeadLetters }

// Replay queues again the kept dead letters that match (nil: all), each
// with a fresh budget, and removes them from the dead letters. A session's
// are queued in the order they were given up on, which is the order they
// were first queued in; a replayed event goes behind whatever its session
// has queued since. Different sessions are queued in parallel, so that a
// Disk store's group commit syncs many at once. On the first event the
// queue refuses (full, closed) it stops and returns how many were queued,
// with that error; the rest stay dead letters. A crash midway may queue an
// event twice (at least once), never lose one.
func (q *Queue) Replay(match func(DeadLetter) bool) (int, error) {
	dl := q.o.DeadLetters
	if dl == nil {
		return 0, nil
	}
	dl.replaying.Lock()
	defer dl.replaying.Unlock()
	evs, err := dl.store.Pending()
	if err != nil {
		return 0, err
	}
	var keys []string
	byKey := map[string][]*Event{}
	for _, e := range evs {
		info, ok := dl.get(e.ID)
		if !ok || (match != nil && !match(info)) {
			continue
		}
		if byKey[e.Key] == nil {
			keys = append(keys, e.Key)
		}
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	var (
		n     atomic.Int64
		mu    sync.Mutex
		first error
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	failed := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for range min(len(keys), replayParallel) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(keys) && !stopped(); i = int(next.Add(1)) - 1 {
				for _, e := range byKey[keys[i]] {
					if err := q.Enqueue(e.Key, e.App, e.Method, e.Body); err != nil {
						failed(err)
						break
					}
					n.Add(1)
					if err := dl.remove(e.ID, true); err != nil {
						// Queued but still listed: a second replay would
						// queue it again.
						failed(err)
						break
					}
				}
			}
		})
	}
	wg.Wait()
	return int(n.Load()), first
}

// replayParallel is how many sessions Replay queues at once: as many
// appenders as trigger a Disk sync without waiting for its tick.
const replayParallel = groupWaiters

// Stats returns the cumulative counters.
func (q *Queue) Stats() Stats {
	return Stats{
		Delivered:    q.delivered.Load(),
		Retries:      q.retries.Load(),
		DeadLettered: q.dead.Load(),
		StoreErrors:  q.storeErrs.Load(),
		Refused:      q.refusedMap(),
	}
}

func (q *Queue) refusedMap() map[string]uint64 {
	m := make(map[string]uint64, len(RefuseReasons))
	for i, r := range RefuseReasons {
		m[r] = q.refused[i].Load()
	}
	return m
}

// Close stops accepting events and starting attempts, lets in-flight
// attempts finish within ctx (after which their Send context is
// cancelled), and leaves everything else in the Store for the next start.
// It does not close the Store: the caller opened it and owns it. All
// goroutines have exited when Close returns, provided the Sender honours
// its context.
// Drain waits until nothing is pending or ctx ends, and returns how many
// events are still pending. A queue in memory is drained before Close at
// shutdown: what it holds would be lost.
func (q *Queue) Drain(ctx context.Context) int {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n := q.Depth()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	close(q.stop)
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		q.cancel()
		<-done
	}
	q.cancel()
	return err
}

// spent reports whether e, which just failed, has used up its budget: its
// RetryTime since it was queued (or loaded), or MaxAttempts when set.
func (q *Queue) spent(e *Event, now time.Time) bool {
	if q.o.MaxAttempts > 0 && e.Attempts >= q.o.MaxAttempts {
		return true
	}
	return !now.Before(e.since.Add(q.o.RetryTime))
}

// backoffFor returns the wait after the n-th failed attempt: BackoffMin ·
// 2^(n-1), capped at BackoffMax, with "equal jitter" (a uniform draw in
// [d/2, d]). Equal rather than full jitter keeps the delay growing from one
// attempt to the next, while still spreading a herd of sessions that
// failed together.
func (q *Queue) backoffFor(n int) time.Duration {
	d := q.o.BackoffMin
	for i := 1; i < n && d < q.o.BackoffMax; i++ {
		d *= 2
	}
	if d > q.o.BackoffMax {
		d = q.o.BackoffMax
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (q *Queue) worker() {
	defer q.wg.Done()
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.ready) == 0 && !q.closed {
			q.cond.Wait()
		}
		if q.closed {
			return
		}
		key := q.ready[0]
		q.ready[0] = ""
		q.ready = q.ready[1:]
		ks := q.keys[key]
		e := ks.q[0]
		ks.inflight = true
		e.Attempts++
		q.mu.Unlock()

		retryable, err := q.o.Send(q.ctx, e)
		done := err == nil
		switch {
		case err == nil:
			q.delivered.Add(1)
		case q.ctx.Err() != nil:
			// Close gave up waiting: the attempt was cut short, not failed.
			// The event stays in the Store for the next start.
			q.mu.Lock()
			ks.inflight = false
			return
		case !retryable || q.spent(e, time.Now()):
			q.dead.Add(1)
			q.o.DeadLetter(e, err)
			if dl := q.o.DeadLetters; dl != nil {
				// Kept before the ack: a crash in between leaves the event
				// both dead and pending (delivered again), never neither.
				if derr := dl.Add(e, err); derr != nil {
					q.storeErrs.Add(1)
					q.o.Log.Error("eventq: dead letter not kept", "id", e.ID, "key", e.Key, "app", e.App, "method", e.Method, "err", derr)
				}
			}
			done = true
		}
		var next []*Event
		if done {
			// Ack outside q.mu: a Disk Ack writes a record.
			var aerr error
			if sh, ok := q.o.Store.(Shared); ok {
				next, aerr = sh.Release(e)
			} else {
				aerr = q.o.Store.Ack(e.ID)
			}
			if aerr != nil {
				q.storeErrs.Add(1)
				q.o.Log.Error("eventq: ack failed; event may be redelivered after restart", "id", e.ID, "err", aerr)
			}
		}

		q.mu.Lock()
		ks.inflight = false
		if !done {
			q.retries.Add(1)
			// The last attempt is made at the deadline, not after it.
			at := time.Now().Add(q.backoffFor(e.Attempts))
			if deadline := e.since.Add(q.o.RetryTime); at.After(deadline) {
				at = deadline
			}
			heap.Push(&q.backoff, delayed{at: at, key: key})
			select {
			case q.kick <- struct{}{}:
			default:
			}
			continue
		}
		ks.q[0] = nil
		ks.q = ks.q[1:]
		q.depth--
		for _, n := range next {
			n.since = time.Now()
			q.add(n) // the key is scheduled (this worker has it): no wakeup
		}
		if len(ks.q) == 0 {
			for _, ch := range ks.idle {
				close(ch)
			}
			delete(q.keys, key)
			continue
		}
		q.ready = append(q.ready, key)
		// This worker loops and may take it itself; Signal lets an idle one
		// start on another key meanwhile.
		q.cond.Signal()
	}
}

// timer moves keys whose backoff expired back to the ready list. It is the
// only goroutine besides the workers, whatever the number of keys.
func (q *Queue) timer() {
	defer q.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		q.mu.Lock()
		now := time.Now()
		for len(q.backoff) > 0 && !q.backoff[0].at.After(now) {
			d := heap.Pop(&q.backoff).(delayed)
			q.ready = append(q.ready, d.key)
			q.cond.Signal()
		}
		wait := time.Duration(-1)
		if len(q.backoff) > 0 {
			wait = q.backoff[0].at.Sub(now)
		}
		q.mu.Unlock()
		if wait >= 0 {
			t.Reset(wait) // Go ≥1.23 timers: no stale tick after Reset
		}
		select {
		case <-q.stop:
			return
		case <-q.kick:
		case <-t.C:
		}
	}
}
