package netguard

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flaky is a listener whose Accept fails with the errors given before it
// hands out the real listener's connections.
type flaky struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (f *flaky) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// accepted runs Accept in the background and delivers what it returns.
func accepted(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	return ch
}

func dial(t *testing.T, addr string, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer: the server closed c at once (a refusal).
func closedByPeer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestTemporaryAcceptErrorsAreWaitedOut: EMFILE, ENFILE and ECONNABORTED
// never reach the server; the next connection is accepted.
func TestTemporaryAcceptErrorsAreWaitedOut(t *testing.T) {
	inner := listen(t)
	m := NewMetrics()
	l := Listen(&flaky{Listener: inner, errs: []error{
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", unix.EMFILE)},
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", unix.ENFILE)},
		&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", unix.ECONNABORTED)},
	}}, Options{Name: "t", Metrics: m})
	got := accepted(l)
	dial(t, inner.Addr().String(), "")
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("Accept returned a temporary error")
		}
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection after the temporary errors")
	}
	// A closed listener's error is final.
	inner.Close()
	if _, ok := <-got; ok {
		t.Fatal("accepted after close")
	}
}

// TestCaps: over MaxConns, and over MaxPerIP from one address, connections
// are closed at once; another address still gets in; a slot comes back
// when a connection closes.
func TestCaps(t *testing.T) {
	inner := listen(t)
	l := Listen(inner, Options{Name: "t", MaxConns: 3, MaxPerIP: 2})
	got := accepted(l)
	addr := inner.Addr().String()
	a1, a2 := dial(t, addr, "127.0.0.1"), dial(t, addr, "127.0.0.1")
	s1, s2 := <-got, <-got
	if third := dial(t, addr, "127.0.0.1"); !closedByPeer(t, third) {
		t.Fatal("a third connection from one address was kept (MaxPerIP 2)")
	}
	dial(t, addr, "127.0.0.2")
	s3 := <-got
	if fourth := dial(t, addr, "127.0.0.3"); !closedByPeer(t, fourth) {
		t.Fatal("a fourth connection was kept (MaxConns 3)")
	}
	if l.Open() != 3 {
		t.Fatalf("open %d, want 3", l.Open())
	}
	s1.Close()
	s1.Close() // twice: one slot back, not two
	if l.Open() != 2 {
		t.Fatalf("open %d after a close, want 2", l.Open())
	}
	dial(t, addr, "127.0.0.1")
	s4 := <-got
	for _, c := range []net.Conn{s2, s3, s4, a1, a2} {
		c.Close()
	}
}

// TestIdleTimeout: a connection silent for IdleTimeout reads EOF.
func TestIdleTimeout(t *testing.T) {
	inner := listen(t)
	l := Listen(inner, Options{Name: "t", IdleTimeout: 200 * time.Millisecond})
	got := accepted(l)
	c := dial(t, inner.Addr().String(), "")
	s := <-got
	defer s.Close()
	c.Write([]byte("x"))
	buf := make([]byte, 4)
	if n, err := s.Read(buf); n != 1 || err != nil {
		t.Fatalf("first read: %d %v", n, err)
	}
	start := time.Now()
	if _, err := s.Read(buf); err != io.EOF {
		t.Fatalf("idle read: %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("idle read ended after %v, want about 200ms", d)
	}
}

// TestBudget: within Reserve of the descriptor limit, connections are
// refused; with room, accepted.
func TestBudget(t *testing.T) {
	inner := listen(t)
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// Four reserves of a quarter each: the whole limit.
	got := accepted(Listen(inner, Options{Name: "t", Budget: &Budget{Reserve: int(rl.Cur)}, Keep: 4}))
	if c := dial(t, inner.Addr().String(), ""); !closedByPeer(t, c) {
		t.Fatal("accepted within the reserve")
	}
	roomy := listen(t)
	got = accepted(Listen(roomy, Options{Name: "t", Budget: &Budget{Reserve: 16}}))
	dial(t, roomy.Addr().String(), "")
	select {
	case c := <-got:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("refused with room")
	}
}
