package testutil

import (
	"fmt"
	"sync"
	"testing"
)

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "%d\n", i) })
	}
	wg.Wait()
	if n := len(b.String()); n != 16 {
		t.Fatalf("%d bytes, want 16", n)
	}
}

// TestCheckGoroutines: a goroutine still running at cleanup fails the test.
func TestCheckGoroutines(t *testing.T) {
	stop := make(chan struct{})
	var failed bool
	t.Run("leaky", func(t *testing.T) {
		inner := &recorder{T: t}
		CheckGoroutines(inner)
		// Several: goroutines of earlier tests still exiting (a subtest's,
		// a WaitGroup's) are counted in "before" and could hide one.
		for range 16 {
			go func() { <-stop }()
		}
		inner.runCleanups()
		failed = inner.failed
	})
	close(stop)
	if !failed {
		t.Fatal("a leaked goroutine went unnoticed")
	}
}

// recorder runs cleanups on demand and records Errorf instead of failing.
type recorder struct {
	*testing.T
	cleanups []func()
	failed   bool
}

func (r *recorder) Cleanup(f func())      { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
