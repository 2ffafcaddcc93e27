package control

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// evictFloor is how long a connection must have been quiet before a
// newcomer at the cap may take its place: long enough that a client which
// has just connected and is sending its request is not the one closed.
const evictFloor = 100 * time.Millisecond

// limitListener caps the connections open on one control listener and
// keeps idle ones from holding the slots: a connection is "quiet" while it
// is not busy with a request and nothing has arrived on it. Quiet
// connections are closed
//   - after IdleTimeout, always (keep-alive HTTP, control WebSockets);
//   - after PressureIdleTimeout while more than 3/4 of the cap are open;
//   - at once, the quietest first, when the cap is reached and a new
//     connection has arrived (if quiet for evictFloor or more).
//
// A newcomer that finds the cap reached and no quiet connection waits for a
// slot, as with netutil.LimitListener.
type limitListener struct {
	net.Listener
	max          int // 0: no cap
	pressureAt   int
	idle         time.Duration // 0: none
	pressureIdle time.Duration
	evicted      func(reason string)

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	freed chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(ln net.Listener, opts Options, evicted func(reason string)) *limitListener {
	l := &limitListener{
		Listener: ln, max: opts.MaxConnections, pressureAt: opts.MaxConnections * 3 / 4,
		idle: opts.IdleTimeout, pressureIdle: opts.PressureIdleTimeout, evicted: evicted,
		conns: map[*trackedConn]struct{}{},
		freed: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if l.pressureIdle <= 0 {
		l.pressureIdle = time.Second
	}
	go l.reap()
	return l
}

// Accept takes the next connection; at the cap it makes room by closing the
// quietest connection, or waits for a slot.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		l.mu.Lock()
		if l.max <= 0 || len(l.conns) < l.max {
			tc := &trackedConn{Conn: c, l: l}
			tc.touch()
			l.conns[tc] = struct{}{}
			l.mu.Unlock()
			return tc, nil
		}
		victim := l.quietestLocked(evictFloor)
		l.mu.Unlock()
		if victim != nil {
			victim.evict("cap")
			continue
		}
		// Busy connections only: wait for one to end, or for one to
		// become quiet long enough.
		if retry == nil {
			retry = time.NewTimer(evictFloor / 2)
		} else {
			retry.Reset(evictFloor / 2)
		}
		select {
		case <-l.freed:
		case <-retry.C:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// quietestLocked returns the connection quiet the longest, if it has been
// quiet for at least min.
func (l *limitListener) quietestLocked(min time.Duration) *trackedConn {
	now := time.Now().UnixNano()
	var best *trackedConn
	var bestQuiet int64
	for c := range l.conns {
		if c.busy.Load() {
			continue
		}
		if q := now - c.last.Load(); q >= int64(min) && (best == nil || q > bestQuiet) {
			best, bestQuiet = c, q
		}
	}
	return best
}

// reap closes idle connections: after IdleTimeout always, after
// PressureIdleTimeout while the listener is near its cap.
func (l *limitListener) reap() {
	tick := l.pressureIdle / 4
	if l.idle > 0 {
		tick = min(tick, l.idle/4)
	}
	tick = min(max(tick, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	type victim struct {
		c      *trackedConn
		reason string
	}
	var victims []victim
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		victims = victims[:0]
		l.mu.Lock()
		pressure := l.max > 0 && len(l.conns) > l.pressureAt
		for c := range l.conns {
			if c.busy.Load() {
				continue
			}
			q := time.Duration(now - c.last.Load())
			switch {
			case l.idle > 0 && q >= l.idle:
				victims = append(victims, victim{c, "idle"})
			case pressure && q >= l.pressureIdle:
				victims = append(victims, victim{c, "pressure"})
			}
		}
		l.mu.Unlock()
		for _, v := range victims {
			v.c.evict(v.reason)
		}
	}
}

// Close stops accepting; open connections stay until they end.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *limitListener) remove(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// open is the number of connections open now.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// trackedConn is one connection of a limitListener.
type trackedConn struct {
	net.Conn
	l    *limitListener
	last atomic.Int64 // UnixNano of the last byte received or request finished
	busy atomic.Bool  // running a request or command: never closed as idle

	// onIdle, when set (a WebSocket), ends the connection politely when it
	// has been idle for IdleTimeout; under pressure it is closed outright.
	mu       sync.Mutex
	onIdle   func()
	evicting bool
	once     sync.Once
}

func (c *trackedConn) touch() { c.last.Store(time.Now().UnixNano()) }

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// CloseWrite half-closes a TCP connection (the CLI's answer is followed by
// a FIN before the rest of the input is drained).
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.remove(c) })
	return err
}

func (c *trackedConn) setOnIdle(f func()) {
	c.mu.Lock()
	c.onIdle = f
	c.mu.Unlock()
}

func (c *trackedConn) evict(reason string) {
	c.mu.Lock()
	polite, already := c.onIdle, c.evicting
	c.evicting = true
	c.mu.Unlock()
	if reason == "idle" && polite != nil {
		if !already {
			c.l.evicted(reason)
			go polite()
		}
		return
	}
	c.l.evicted(reason)
	c.Close()
}

// trackedOf finds the trackedConn under what net/http hands out (a
// *tls.Conn on HTTPS).
func trackedOf(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}
