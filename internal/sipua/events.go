package sipua

import (
	"sync"
	"sync/atomic"
)

// events runs an Account's Handler and CallHandler calls one at a time, in
// the order they were posted, on its own goroutine: the Stack's goroutines
// never block on a Handler, and a Handler may call back into the Account
// (Answer, Hangup, SendMessage…) without deadlocking on a lock.
type events struct {
	mu      sync.Mutex
	q       []func()
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	// inCallback is set while a callback runs, so that Close called from a
	// Handler does not wait for the queue it is running on.
	inCallback atomic.Bool
}

func newEvents() *events {
	return &events{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// post queues f; false once stopped.
func (e *events) post(f func()) bool {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return false
	}
	e.q = append(e.q, f)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return true
}

// stop refuses further posts; what is queued still runs, then run returns.
func (e *events) stop() {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *events) run() {
	defer close(e.done)
	for {
		e.mu.Lock()
		if len(e.q) == 0 {
			stopped := e.stopped
			e.mu.Unlock()
			if stopped {
				return
			}
			<-e.wake
			continue
		}
		f := e.q[0]
		e.q[0] = nil
		e.q = e.q[1:]
		e.mu.Unlock()
		e.inCallback.Store(true)
		f()
		e.inCallback.Store(false)
	}
}
