package eventq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryTimeNotCount: with no MaxAttempts, an event that fails many more
// times than the old count budget (8) is still delivered, and each key's
// events in order: a backend outage is bounded by time, not attempts.
func TestRetryTimeNotCount(t *testing.T) {
	const fails = 12 // > the old default of 8 attempts
	rec := newRecorder(func(e *Event) (bool, error) {
		if e.Attempts <= fails {
			return true, errDown
		}
		return false, nil
	})
	var dead atomic.Int64
	q, err := New(Options{Store: NewMemory(0), Send: rec.send, Workers: 2, RetryTime: time.Minute,
		BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		DeadLetter: func(*Event, error) { dead.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	for i := range 3 {
		for _, k := range []string{"a", "b"} {
			if err := q.Enqueue(k, "app", "m", []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n := q.Drain(ctx); n != 0 {
		t.Fatalf("%d events left", n)
	}
	for _, k := range []string{"a", "b"} {
		if got := strings.Join(rec.got[k], " "); got != "0 1 2" {
			t.Errorf("key %s delivered %q, want in order", k, got)
		}
	}
	if s := q.Stats(); dead.Load() != 0 || s.DeadLettered != 0 || s.Retries != 6*fails {
		t.Errorf("dead %d, stats %+v; want no dead letter and %d retries", dead.Load(), s, 6*fails)
	}
}

// TestRetryTimeDeadline: an event that keeps failing is given up on once
// RetryTime has passed since it was queued, and its last attempt is made
// at the deadline even when the backoff would wait longer; the dead letter
// is kept with its reason and attempts.
func TestRetryTimeDeadline(t *testing.T) {
	const budget = 200 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	send := func(context.Context, *Event) (bool, error) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return true, errDown
	}
	dl := NewMemoryDeadLetters(0)
	gone := make(chan *Event, 1)
	q, err := New(Options{Store: NewMemory(0), Send: send, RetryTime: budget,
		// The first backoff alone is far beyond the budget.
		BackoffMin: time.Hour, BackoffMax: time.Hour,
		DeadLetters: dl, DeadLetter: func(e *Event, _ error) { gone <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	start := time.Now()
	q.Enqueue("k", "app", "CallStatusEvent", []byte("x"))
	var e *Event
	select {
	case e = <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("never dead-lettered")
	}
	took := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 || e.Attempts != 2 {
		t.Fatalf("%d attempts (event says %d), want 2: the first, and one at the deadline", len(at), e.Attempts)
	}
	if d := at[1].Sub(start); d < budget || d > budget+time.Second {
		t.Errorf("last attempt %v after queueing, want at the %v deadline", d, budget)
	}
	if took > budget+2*time.Second {
		t.Errorf("dead-lettered after %v", took)
	}
	// DeadLetter is told first; the dead letter is kept and the event
	// acknowledged after.
	mu.Unlock()
	waitFor(t, 5*time.Second, "the dead letter kept and the event acknowledged", func() bool {
		return dl.Stats().Kept == 1 && q.Depth() == 0
	})
	mu.Lock()
	kept := dl.List()
	if len(kept) != 1 || kept[0].Key != "k" || kept[0].Method != "CallStatusEvent" || kept[0].Attempts != 2 ||
		!strings.Contains(kept[0].Reason, errDown.Error()) || kept[0].Bytes != 1 || kept[0].DeadAt.IsZero() {
		t.Errorf("dead letters kept: %+v", kept)
	}
	if q.Depth() != 0 || !q.Oldest().IsZero() {
		t.Errorf("depth %d, oldest %v after the dead letter", q.Depth(), q.Oldest())
	}
}

// TestRetryTimeCountsWaitBehindKey: a session's later event waits behind
// its earliest undelivered one (order), and that wait counts against its
// own budget: when the first is given up on, the second gets one attempt,
// not a fresh RetryTime — the budget bounds the backlog's age. A 4xx is
// still given up on at its first attempt.
func TestRetryTimeCountsWaitBehindKey(t *testing.T) {
	var mu sync.Mutex
	var order []string
	send := func(_ context.Context, e *Event) (bool, error) {
		mu.Lock()
		order = append(order, string(e.Body))
		mu.Unlock()
		if string(e.Body) == "4xx" {
			return false, errors.New("backend answered 404")
		}
		return true, errDown
	}
	gone := make(chan *Event, 3)
	q, err := New(Options{Store: NewMemory(0), Send: send, Workers: 4, RetryTime: 150 * time.Millisecond,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		DeadLetter: func(e *Event, _ error) { gone <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	q.Enqueue("k", "app", "m", []byte("first"))
	q.Enqueue("k", "app", "m", []byte("second"))
	q.Enqueue("other", "app", "m", []byte("4xx"))
	var got []*Event
	for range 3 {
		select {
		case e := <-gone:
			got = append(got, e)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d dead letters", len(got))
		}
	}
	if string(got[0].Body) != "4xx" || got[0].Attempts != 1 {
		t.Errorf("the 4xx: %s after %d attempts, want first, after 1", got[0].Body, got[0].Attempts)
	}
	if string(got[1].Body) != "first" || got[1].Attempts < 3 || string(got[2].Body) != "second" || got[2].Attempts != 1 {
		t.Errorf("dead letters %s (%d attempts), %s (%d attempts); want first after several, second after 1",
			got[1].Body, got[1].Attempts, got[2].Body, got[2].Attempts)
	}
	mu.Lock()
	defer mu.Unlock()
	seenSecond := false
	for _, b := range order {
		if b == "second" {
			seenSecond = true
		} else if b == "first" && seenSecond {
			t.Fatalf("first attempted after second: %v", order)
		}
	}
}

// TestOldest: the backlog's age is that of the oldest pending event.
func TestOldest(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	q, _ := newSwitchedQueue(t, &down, nil)
	if !q.Oldest().IsZero() {
		t.Fatal("an empty queue has an oldest event")
	}
	before := time.Now()
	q.Enqueue("a", "app", "m", []byte("1"))
	after := time.Now()
	q.Enqueue("b", "app", "m", []byte("2"))
	q.Enqueue("a", "app", "m", []byte("3"))
	if o := q.Oldest(); o.Before(before) || o.After(after) {
		t.Errorf("oldest %v, want the first event's time in [%v, %v]", o, before, after)
	}
	down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q.Drain(ctx)
	if !q.Oldest().IsZero() {
		t.Error("oldest after delivery")
	}
}

// TestDeadLettersPersistAndReplay: dead letters of a Disk queue survive a
// reopen with their details; Replay of one app queues its dead letters
// again, in order per session, delivers them, and leaves the other app's;
// what is replayed stays gone after another reopen; Remove clears the rest.
func TestDeadLettersPersistAndReplay(t *testing.T) {
	dir := t.TempDir()
	var refuse atomic.Bool
	refuse.Store(true)
	rec := newRecorder(func(e *Event) (bool, error) {
		if refuse.Load() {
			return false, errors.New("backend answered 400")
		}
		return false, nil
	})
	open := func() (*Disk, *DeadLetters, *Queue) {
		t.Helper()
		st := openDisk(t, dir, 1<<20)
		dl, err := OpenDiskDeadLetters(dir, 1<<20, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		q, err := New(Options{Store: st, Send: rec.send, Workers: 4, DeadLetters: dl})
		if err != nil {
			t.Fatal(err)
		}
		return st, dl, q
	}
	shut := func(st *Disk, dl *DeadLetters, q *Queue) {
		t.Helper()
		closeQ(t, q)
		if err := errors.Join(st.Close(), dl.Close()); err != nil {
			t.Fatal(err)
		}
	}

	st, dl, q := open()
	queued := time.Now()
	for _, ev := range []string{"A/s1/a", "A/s1/b", "B/s3/e", "A/s2/d", "A/s1/c"} {
		p := strings.Split(ev, "/")
		if err := q.Enqueue(p[1], p[0], "ConnectionStatusEvent", []byte(p[2])); err != nil {
			t.Fatal(err)
		}
	}
	// A dead letter is kept before its event is acknowledged: wait for
	// both.
	waitFor(t, 5*time.Second, "5 dead letters, and the queue empty", func() bool {
		return dl.Stats().Kept == 5 && q.Depth() == 0 && len(bodies(t, st)) == 0
	})
	shut(st, dl, q)
	if segs := segFiles(t, filepath.Join(dir, DeadLetterDir)); len(segs) == 0 {
		t.Fatalf("no dead-letter segment in %s", filepath.Join(dir, DeadLetterDir))
	}

	st, dl, q = open()
	kept := dl.List()
	var keys []string
	for _, d := range kept {
		keys = append(keys, d.App+"/"+d.Key)
		if d.Method != "ConnectionStatusEvent" || d.Attempts != 1 || d.Reason != "backend answered 400" ||
			d.Bytes != 1 || d.DeadAt.Before(queued) || d.Enqueued.Before(queued.Add(-time.Second)) || d.Enqueued.After(d.DeadAt) {
			t.Errorf("dead letter after reopen: %+v", d)
		}
	}
	// In the order given up on; a session's in its queued order.
	if s := strings.Join(keys, " "); strings.Count(s, "A/s1") != 3 || strings.Count(s, "A/s2") != 1 || strings.Count(s, "B/s3") != 1 {
		t.Fatalf("dead letters after reopen: %v", keys)
	}

	refuse.Store(false)
	n, err := q.Replay(func(d DeadLetter) bool { return d.App == "A" })
	if err != nil || n != 4 {
		t.Fatalf("Replay(A) = %d, %v; want 4", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if left := q.Drain(ctx); left != 0 {
		t.Fatalf("%d replayed events undelivered", left)
	}
	rec.mu.Lock()
	s1, s2, s3 := strings.Join(rec.got["s1"], ""), strings.Join(rec.got["s2"], ""), rec.got["s3"]
	rec.mu.Unlock()
	if s1 != "abc" || s2 != "d" || len(s3) != 0 {
		t.Errorf("replayed deliveries s1 %q s2 %q s3 %q; want abc, d and none", s1, s2, s3)
	}
	if left := dl.List(); len(left) != 1 || left[0].App != "B" {
		t.Errorf("dead letters after replaying A: %+v", left)
	}
	if s := dl.Stats(); s.Replayed != 4 || s.Kept != 1 {
		t.Errorf("stats %+v", s)
	}
	shut(st, dl, q)

	st, dl, q = open()
	defer shut(st, dl, q)
	if left := dl.List(); len(left) != 1 || left[0].Key != "s3" {
		t.Fatalf("after a second reopen: %+v", left)
	}
	if n, err := dl.Remove(nil); n != 1 || err != nil || dl.Stats().Kept != 0 {
		t.Errorf("Remove = %d, %v; kept %d", n, err, dl.Stats().Kept)
	}
}

// TestDeadLettersBounded: over the bound in bytes the oldest dead letters
// are dropped and counted, on disk and in memory alike; a bound lowered
// across a restart is applied at open.
func TestDeadLettersBounded(t *testing.T) {
	body := make([]byte, 100)
	per := size(&Event{Key: "k00", App: "app", Method: "m", Body: body, Reason: "gone"})
	dir := t.TempDir()
	disk, err := OpenDiskDeadLetters(dir, 10*per, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for name, dl := range map[string]*DeadLetters{"memory": NewMemoryDeadLetters(10 * per), "disk": disk} {
		for i := range 25 {
			if err := dl.Add(&Event{Key: fmt.Sprintf("k%02d", i), App: "app", Method: "m", Body: body, Attempts: 1}, errors.New("gone")); err != nil {
				t.Fatal(err)
			}
		}
		// One larger than the whole bound is not kept.
		if err := dl.Add(&Event{Key: "huge", Body: make([]byte, 11*per)}, nil); err != nil {
			t.Fatal(err)
		}
		kept := dl.List()
		if s := dl.Stats(); len(kept) != 10 || s.Dropped != 16 || s.Bytes > 10*per {
			t.Fatalf("%s: kept %d, stats %+v; want the 10 newest kept, 16 dropped", name, len(kept), s)
		}
		if kept[0].Key != "k15" || kept[9].Key != "k24" {
			t.Errorf("%s: kept %s..%s, want k15..k24", name, kept[0].Key, kept[9].Key)
		}
	}
	disk.Close()
	small, err := OpenDiskDeadLetters(dir, 4*per, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if kept := small.List(); len(kept) != 4 || kept[0].Key != "k21" {
		t.Errorf("reopened with a lower bound: %d kept, first %+v", len(kept), kept)
	}
}

// TestDeadRecordRoundTrip: a dead record keeps every field, and a torn one
// is cut off at open like any record.
func TestDeadRecordRoundTrip(t *testing.T) {
	in := &Event{Key: "s", App: "a", Method: "m", Body: []byte("{}"), Attempts: 41,
		Enqueued: time.Unix(10, 5), DeadAt: time.Unix(20, 7), Reason: "backend answered 503"}
	out, err := decodeAppend(encodeAppend(9, in))
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != 9 || out.Key != in.Key || out.App != in.App || out.Method != in.Method || string(out.Body) != "{}" ||
		out.Attempts != 41 || !out.Enqueued.Equal(in.Enqueued) || !out.DeadAt.Equal(in.DeadAt) || out.Reason != in.Reason {
		t.Fatalf("round trip: %+v", out)
	}
	dir := t.TempDir()
	dl, err := OpenDiskDeadLetters(dir, 0, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	dl.Add(in, errors.New("one"))
	dl.Add(in, errors.New("two"))
	dl.Close()
	seg := lastWritten(t, filepath.Join(dir, DeadLetterDir))
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()-3); err != nil {
		t.Fatal(err)
	}
	dl, err = OpenDiskDeadLetters(dir, 0, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if kept := dl.List(); len(kept) != 1 || kept[0].Reason != "one" {
		t.Errorf("after a torn tail: %+v", kept)
	}
}

// TestReplayManyInOrder: a long outage ends in many dead letters at once;
// on disk they are kept by many workers in parallel (group commit), and a
// replay of thousands queues them quickly, each session's in order.
func TestReplayManyInOrder(t *testing.T) {
	const keys, per = 300, 10
	dir := t.TempDir()
	var refuse atomic.Bool
	refuse.Store(true)
	rec := newRecorder(func(e *Event) (bool, error) {
		if refuse.Load() {
			return false, errors.New("backend answered 400")
		}
		return false, nil
	})
	st := openDisk(t, dir, 64<<20)
	defer st.Close()
	dl, err := OpenDiskDeadLetters(dir, 64<<20, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	q, err := New(Options{Store: st, Send: rec.send, Workers: 32, DeadLetters: dl})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	start := time.Now()
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for i := range per {
				if err := q.Enqueue(fmt.Sprint("s", k), "app", "m", []byte(fmt.Sprint(i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "all dead-lettered and acknowledged", func() bool { return dl.Stats().Kept == keys*per && q.Depth() == 0 })
	dead := time.Since(start)
	refuse.Store(false)
	start = time.Now()
	n, err := q.Replay(nil)
	queued := time.Since(start)
	if err != nil || n != keys*per {
		t.Fatalf("Replay = %d, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if left := q.Drain(ctx); left != 0 {
		t.Fatalf("%d undelivered", left)
	}
	t.Logf("%d events: queued and dead-lettered in %v, replayed (queued) in %v, delivered %v later", keys*per, dead.Round(time.Millisecond),
		queued.Round(time.Millisecond), (time.Since(start) - queued).Round(time.Millisecond))
	want := make([]string, per)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k := range keys {
		if got := strings.Join(rec.got[fmt.Sprint("s", k)], " "); got != strings.Join(want, " ") {
			t.Fatalf("session s%d replayed as %q", k, got)
		}
	}
	if s := dl.Stats(); s.Kept != 0 || s.Replayed != keys*per || len(dl.List()) != 0 {
		t.Errorf("after the replay: %+v", s)
	}
}
