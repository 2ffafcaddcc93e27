package eventq

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errDown = errors.New("backend down")

// recorder is a Sender that records successful deliveries per key and
// checks that a key never has two attempts in flight.
type recorder struct {
	mu       sync.Mutex
	got      map[string][]string
	inflight map[string]int
	fail     func(e *Event) (bool, error)
	count    atomic.Int64
	overlap  atomic.Bool
}

func newRecorder(fail func(e *Event) (bool, error)) *recorder {
	return &recorder{got: map[string][]string{}, inflight: map[string]int{}, fail: fail}
}

func (r *recorder) send(ctx context.Context, e *Event) (bool, error) {
	r.mu.Lock()
	r.inflight[e.Key]++
	if r.inflight[e.Key] > 1 {
		r.overlap.Store(true)
	}
	r.mu.Unlock()
	runtime.Gosched()
	defer func() {
		r.mu.Lock()
		r.inflight[e.Key]--
		r.mu.Unlock()
	}()
	if r.fail != nil {
		if retry, err := r.fail(e); err != nil {
			return retry, err
		}
	}
	r.mu.Lock()
	r.got[e.Key] = append(r.got[e.Key], string(e.Body))
	r.mu.Unlock()
	r.count.Add(1)
	return false, nil
}

func closeQ(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOrderPerKeyParallel(t *testing.T) {
	const keys, per = 12, 40
	rec := newRecorder(func(e *Event) (bool, error) {
		if e.ID%3 == 0 && e.Attempts < 3 { // every third event fails twice
			return true, errDown
		}
		return false, nil
	})
	var dead atomic.Int64
	q, err := New(Options{Store: NewMemory(0), Send: rec.send, Workers: 4,
		BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		DeadLetter: func(*Event, error) { dead.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			for i := range per {
				if err := q.Enqueue("s"+strconv.Itoa(k), "app", "CallStatusEvent", []byte(strconv.Itoa(i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "all delivered", func() bool { return rec.count.Load() == keys*per })
	waitFor(t, time.Second, "depth 0", func() bool { return q.Depth() == 0 })
	if rec.overlap.Load() {
		t.Error("two attempts of one key were in flight at once")
	}
	for k := range keys {
		got := rec.got["s"+strconv.Itoa(k)]
		if len(got) != per {
			t.Fatalf("key %d: %d delivered, want %d", k, len(got), per)
		}
		for i, b := range got {
			if b != strconv.Itoa(i) {
				t.Fatalf("key %d: position %d got %s", k, i, b)
			}
		}
	}
	if s := q.Stats(); s.Delivered != keys*per || s.Retries == 0 || dead.Load() != 0 {
		t.Errorf("stats %+v dead %d", s, dead.Load())
	}
}

func TestBackoffGrows(t *testing.T) {
	q := &Queue{o: Options{BackoffMin: time.Millisecond, BackoffMax: 100 * time.Millisecond}}
	prevMax := time.Duration(0)
	for n := 1; n <= 10; n++ {
		want := min(time.Millisecond<<(n-1), 100*time.Millisecond)
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 200 {
			d := q.backoffFor(n)
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo < want/2 || hi > want {
			t.Errorf("attempt %d: backoff in [%v,%v], want within [%v,%v]", n, lo, hi, want/2, want)
		}
		if want < 100*time.Millisecond && lo < prevMax/2 {
			t.Errorf("attempt %d: backoff shrank", n)
		}
		prevMax = hi
	}

	// Through the queue: the Sender sees attempts 1..5 in sequence.
	var seen []int
	var mu sync.Mutex
	done := make(chan struct{})
	send := func(_ context.Context, e *Event) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e.Attempts)
		if e.Attempts < 5 {
			return true, errDown
		}
		close(done)
		return false, nil
	}
	q2, err := New(Options{Store: NewMemory(0), Send: send, BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q2)
	if err := q2.Enqueue("k", "a", "m", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("not delivered")
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != "[1 2 3 4 5]" {
		t.Errorf("attempts %v", seen)
	}
	if s := q2.Stats(); s.Retries != 4 {
		t.Errorf("retries %d", s.Retries)
	}
}

func TestPermanentErrorDeadLetterAtOnce(t *testing.T) {
	st := NewMemory(0)
	dl := make(chan *Event, 4)
	var calls atomic.Int64
	send := func(_ context.Context, e *Event) (bool, error) {
		calls.Add(1)
		if e.Key == "bad" {
			return false, errors.New("404")
		}
		return false, nil
	}
	q, err := New(Options{Store: st, Send: send, DeadLetter: func(e *Event, err error) { dl <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	q.Enqueue("bad", "a", "m", []byte("x"))
	q.Enqueue("bad", "a", "m", []byte("y"))
	select {
	case e := <-dl:
		if e.Attempts != 1 || string(e.Body) != "x" {
			t.Errorf("dead %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter")
	}
	<-dl // the second one follows; a dead event does not block its key
	waitFor(t, time.Second, "store empty", func() bool { return st.Len() == 0 && q.Depth() == 0 })
	if calls.Load() != 2 || q.Stats().DeadLettered != 2 {
		t.Errorf("calls %d stats %+v", calls.Load(), q.Stats())
	}
}

func TestBudgetExhausted(t *testing.T) {
	st := NewMemory(0)
	dl := make(chan *Event, 1)
	var dlErr error
	send := func(context.Context, *Event) (bool, error) { return true, errDown }
	q, err := New(Options{Store: st, Send: send, MaxAttempts: 3, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		DeadLetter: func(e *Event, err error) { dlErr = err; dl <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	q.Enqueue("k", "a", "m", nil)
	select {
	case e := <-dl:
		if e.Attempts != 3 || !errors.Is(dlErr, errDown) {
			t.Errorf("attempts %d err %v", e.Attempts, dlErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter")
	}
	waitFor(t, time.Second, "acked", func() bool { return st.Len() == 0 })
	if s := q.Stats(); s.DeadLettered != 1 || s.Retries != 2 || s.Delivered != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestBackendDownThenUp(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var failures atomic.Int64
	rec := newRecorder(func(*Event) (bool, error) {
		if down.Load() {
			failures.Add(1)
			return true, errDown
		}
		return false, nil
	})
	var dead atomic.Int64
	st := NewMemory(0)
	q, err := New(Options{Store: st, Send: rec.send, Workers: 3, MaxAttempts: 1000,
		BackoffMin: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		DeadLetter: func(*Event, error) { dead.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ(t, q)
	const n = 300
	for i := range n {
		if err := q.Enqueue("s"+strconv.Itoa(i%20), "a", "m", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "failures while down", func() bool { return failures.Load() >= 100 })
	if rec.count.Load() != 0 {
		t.Fatal("delivered while down")
	}
	down.Store(false)
	waitFor(t, 10*time.Second, "all delivered", func() bool { return rec.count.Load() == n })
	waitFor(t, time.Second, "store empty", func() bool { return st.Len() == 0 })
	if dead.Load() != 0 {
		t.Errorf("%d dead", dead.Load())
	}
	for k := range 20 {
		got := rec.got["s"+strconv.Itoa(k)]
		for j, b := range got {
			if b != strconv.Itoa(k+20*j) {
				t.Fatalf("key %d order %v", k, got)
			}
		}
	}
}

func TestStoreFullAndCloseInFlight(t *testing.T) {
	st := NewMemory(2)
	started := make(chan struct{}, 1)
	send := func(ctx context.Context, e *Event) (bool, error) {
		started <- struct{}{}
		<-ctx.Done() // a backend that hangs
		return true, ctx.Err()
	}
	q, err := New(Options{Store: st, Send: send})
	if err != nil {
		t.Fatal(err)
	}
	q.Enqueue("k", "a", "m", nil)
	q.Enqueue("k", "a", "m", nil)
	if err := q.Enqueue("k", "a", "m", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("third Enqueue: %v", err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if st.Len() != 2 || q.Stats().DeadLettered != 0 {
		t.Errorf("after Close: store %d stats %+v", st.Len(), q.Stats())
	}
	if err := q.Enqueue("k", "a", "m", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close: %v", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	rec := newRecorder(func(e *Event) (bool, error) {
		if e.ID%2 == 0 {
			return true, errDown // some keys sit in backoff at Close
		}
		return false, nil
	})
	dir := t.TempDir()
	d, err := OpenDisk(dir, 1<<20, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	q, err := New(Options{Store: d, Send: rec.send, Workers: 16, BackoffMin: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		q.Enqueue(strconv.Itoa(i), "a", "m", nil)
	}
	waitFor(t, 5*time.Second, "odd ones delivered", func() bool { return rec.count.Load() == 25 })
	closeQ(t, q)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

// newSwitchedQueue is a fast-retrying queue whose backend answers 503 while
// down is set; before, if set, runs first on every attempt.
func newSwitchedQueue(t *testing.T, down *atomic.Bool, before func(*Event)) (*Queue, *recorder) {
	t.Helper()
	rec := newRecorder(func(e *Event) (bool, error) {
		if before != nil {
			before(e)
		}
		if down.Load() {
			return true, errors.New("503")
		}
		return false, nil
	})
	q, err := New(Options{Store: NewMemory(0), Send: rec.send, Workers: 2, MaxAttempts: 1000,
		BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeQ(t, q) })
	return q, rec
}

// TestDrain: Drain returns once every event is delivered, and with what is
// left when its context ends first (a backend that never answers).
func TestDrain(t *testing.T) {
	var down atomic.Bool
	q, rec := newSwitchedQueue(t, &down, nil)
	for i := range 20 {
		q.Enqueue(fmt.Sprint("k", i%3), "app", "m", []byte(fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n := q.Drain(ctx); n != 0 || rec.count.Load() != 20 {
		t.Fatalf("Drain left %d, delivered %d of 20", n, rec.count.Load())
	}
	down.Store(true)
	q.Enqueue("k", "app", "m", []byte("stuck"))
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if n := q.Drain(short); n != 1 {
		t.Fatalf("Drain with the backend down left %d, want 1", n)
	}
}

// TestIdle: Idle returns once the key's events are delivered — not another
// key's — and gives up when its context ends while the backend refuses.
func TestIdle(t *testing.T) {
	var down atomic.Bool
	release := make(chan struct{})
	q, rec := newSwitchedQueue(t, &down, func(e *Event) {
		if e.Key == "slow" {
			<-release
		}
	})
	q.Enqueue("slow", "app", "m", []byte("s"))
	for i := range 5 {
		q.Enqueue("k", "app", "m", []byte(fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !q.Idle(ctx, "k") {
		t.Fatal("Idle(k) timed out")
	}
	rec.mu.Lock()
	n := len(rec.got["k"])
	rec.mu.Unlock()
	if n != 5 {
		t.Fatalf("Idle(k) returned with %d of 5 delivered", n)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if q.Idle(short, "slow") {
		t.Fatal("Idle(slow) returned true while its event is held")
	}
	close(release)
	if !q.Idle(ctx, "slow") || !q.Idle(ctx, "never-used") {
		t.Fatal("Idle after delivery")
	}
	down.Store(true)
	q.Enqueue("k", "app", "m", []byte("stuck"))
	short2, cancel3 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel3()
	if q.Idle(short2, "k") {
		t.Fatal("Idle returned true with the backend down")
	}
	down.Store(false)
}
