package main

import (
	"encoding/json"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hookbackend"
)

// backend is the app's web backend (hookbackend). Status events go to the
// tracker of the running scenario, which checks their order per session;
// OnDataEvent (the synchronous hook of (b)) times its own handling and
// hands the time to the client waiting for it.
type backend struct {
	*hookbackend.Backend

	tr      atomic.Pointer[tracker] // nil: status events are counted, not checked
	waiters sync.Map                // operationId → chan time.Duration
}

func startBackend() (*backend, error) {
	b := &backend{}
	var err error
	b.Backend, err = hookbackend.Start(appName, b.hook)
	return b, err
}

// hookBody is what the backend reads of a hook's JSON.
type hookBody struct {
	SessionID   string `json:"sessionId"`
	Status      string `json:"status"`
	Seq         int    `json:"seq"` // (a) queue: the event's number in its session, from 1
	OperationID string `json:"operationId"`
}

func (b *backend) hook(method string, raw []byte) (func(time.Duration), error) {
	var body hookBody
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, err
	}
	if strings.HasSuffix(method, "StatusEvent") {
		// Noted before the reply: once rtcgate has its 2xx the event counts
		// as delivered, and so it must count here.
		if t := b.tr.Load(); t != nil {
			t.note(body.SessionID, eventSeq(body))
		}
	}
	if method != "OnDataEvent" {
		return nil, nil
	}
	// (b): the backend's own time, from the request's first line to its
	// reply written and flushed, goes to the client that waits for it.
	return func(d time.Duration) {
		if ch, ok := b.waiters.LoadAndDelete(body.OperationID); ok {
			ch.(chan time.Duration) <- d
		}
	}, nil
}

// eventSeq is an event's number within its session: the body's seq in (a)
// queue, the status's place in the connection's life in (a) churn; 0 for a
// status that should not come.
func eventSeq(b hookBody) int {
	if b.Seq > 0 {
		return b.Seq
	}
	switch b.Status {
	case "ESTABLISHED":
		return 1
	case "DISCONNECTED":
		return 2
	}
	return 0
}

// expectOp registers a waiter for operation op's backend time.
func (b *backend) expectOp(op string) chan time.Duration {
	ch := make(chan time.Duration, 1)
	b.waiters.Store(op, ch)
	return ch
}

// tracker checks the order of one scenario's events per session (key).
// Each key's events are numbered from 1; an event that arrives before its
// predecessor did is out of order, one that arrives again is a redelivery
// (at least once allows it), and an expected one that never arrives is
// lost.
type tracker struct {
	seed   maphash.Seed
	shards [64]trackShard

	received   atomic.Uint64 // events, redeliveries included
	distinct   atomic.Uint64 // first arrivals of expected and unexpected events
	outOfOrder atomic.Uint64
	redelivery atomic.Uint64
	badStatus  atomic.Uint64 // events with no place in the sequence (FAILED…)
	expected   atomic.Uint64 // events announced with expect
	first      atomic.Int64  // unix ns of the first and the last arrival
	last       atomic.Int64
}

type trackShard struct {
	mu sync.Mutex
	m  map[string]*keyTrack
}

type keyTrack struct {
	last   int      // highest number arrived
	expect int      // events the key should get; 0: not announced
	seen   []uint64 // bit n: event n arrived
}

func newTracker() *tracker {
	t := &tracker{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = map[string]*keyTrack{}
	}
	return t
}

func (t *tracker) shard(key string) *trackShard {
	return &t.shards[maphash.String(t.seed, key)%uint64(len(t.shards))]
}

func (t *tracker) get(s *trackShard, key string) *keyTrack {
	k := s.m[key]
	if k == nil {
		k = &keyTrack{}
		s.m[key] = k
	}
	return k
}

// note records the arrival of event seq of key.
func (t *tracker) note(key string, seq int) {
	now := time.Now().UnixNano()
	t.first.CompareAndSwap(0, now)
	t.last.Store(now)
	t.received.Add(1)
	if seq <= 0 || seq > 1<<24 {
		t.badStatus.Add(1)
		return
	}
	s := t.shard(key)
	s.mu.Lock()
	k := t.get(s, key)
	w, bit := seq/64, uint64(1)<<(seq%64)
	for len(k.seen) <= w {
		k.seen = append(k.seen, 0)
	}
	switch {
	case k.seen[w]&bit != 0:
		t.redelivery.Add(1)
	default:
		k.seen[w] |= bit
		t.distinct.Add(1)
		// Ahead of a predecessor that has not arrived: the order broke.
		// (The late predecessor itself is not counted again.)
		if seq > k.last+1 {
			t.outOfOrder.Add(1)
		}
		k.last = max(k.last, seq)
	}
	s.mu.Unlock()
}

// expect announces that key gets events 1..n.
func (t *tracker) expect(key string, n int) {
	s := t.shard(key)
	s.mu.Lock()
	t.get(s, key).expect = n
	s.mu.Unlock()
	t.expected.Add(uint64(n))
}

// trackSummary is a tracker's verdict.
type trackSummary struct {
	Received       uint64  `json:"received"`
	Expected       uint64  `json:"expected"`
	Delivered      uint64  `json:"delivered"` // distinct expected events that arrived
	Lost           uint64  `json:"lost"`      // expected events that never arrived
	OutOfOrder     uint64  `json:"out_of_order"`
	Redeliveries   uint64  `json:"redeliveries"`
	Unexpected     uint64  `json:"unexpected"` // events of keys never announced, or beyond their count, or of no known status
	Keys           int     `json:"keys"`
	FirstToLastSec float64 `json:"first_to_last_s"`
}

func (t *tracker) summary() trackSummary {
	r := trackSummary{
		Received: t.received.Load(), Expected: t.expected.Load(),
		OutOfOrder: t.outOfOrder.Load(), Redeliveries: t.redelivery.Load(), Unexpected: t.badStatus.Load(),
	}
	if f, l := t.first.Load(), t.last.Load(); f > 0 && l > f {
		r.FirstToLastSec = float64(l-f) / 1e9
	}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, k := range s.m {
			r.Keys++
			got := 0
			for _, w := range k.seen {
				got += bits.OnesCount64(w)
			}
			if k.expect == 0 {
				r.Unexpected += uint64(got)
				continue
			}
			in := 0 // arrived events within 1..expect
			for n := 1; n <= k.expect; n++ {
				if n/64 < len(k.seen) && k.seen[n/64]&(1<<(n%64)) != 0 {
					in++
				}
			}
			r.Delivered += uint64(in)
			r.Lost += uint64(k.expect - in)
			r.Unexpected += uint64(got - in)
		}
		s.mu.Unlock()
	}
	return r
}

// pending is how many announced events have not arrived yet, assuming no
// event of an unannounced key (cheap: for polling while draining).
func (t *tracker) pending() int64 {
	return int64(t.expected.Load()) - int64(t.distinct.Load())
}
