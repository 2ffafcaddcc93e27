package epoll

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWaitParksUntilReady: Wait returns the registered data once a
// descriptor becomes readable, and fails after Close.
func TestWaitParksUntilReady(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	const data = uint64(0xdeadbeef_00000007)
	if err := s.Ctl(unix.EPOLL_CTL_ADD, efd, unix.EPOLLIN, data); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint64, 1)
	go func() {
		events := make([]unix.EpollEvent, 4)
		n, err := s.Wait(events)
		if err != nil || n != 1 {
			got <- 0
			return
		}
		got <- Data(&events[0])
	}()
	select {
	case v := <-got:
		t.Fatalf("Wait returned %x before anything was ready", v)
	case <-time.After(50 * time.Millisecond): // the one bounded wait: proving Wait parks
	}
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	unix.Write(efd, one)
	select {
	case v := <-got:
		if v != data {
			t.Fatalf("data = %x, want %x", v, data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return once the eventfd was readable")
	}
	done := make(chan error, 1)
	go func() {
		var b [8]byte
		unix.Read(efd, b[:]) // drain, so the next Wait parks
		_, err := s.Wait(make([]unix.EpollEvent, 1))
		done <- err
	}()
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Wait after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a parked Wait")
	}
}
