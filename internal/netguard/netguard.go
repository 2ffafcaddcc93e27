// Package netguard bounds what a TCP listener facing the network can hold:
// connections in all and per peer address, descriptors against the
// process's limit, idle time. A guarded listener never returns a temporary
// accept error (EMFILE, ENFILE, ECONNABORTED…): it backs off and goes on, as
// net/http does, so one host holding descriptors cannot stop it. Over a
// cap a connection is accepted and closed at once (refused), so that it
// does not wait in the backlog holding the client.
package netguard

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Options configure one guarded listener.
type Options struct {
	Name     string // the listener's key, for metrics and logs
	MaxConns int    // open connections at once; 0: no cap
	MaxPerIP int    // open connections from one peer address; 0: no cap
	// Exempt peers (trusted proxies, a load balancer) have no per-address
	// cap.
	Exempt func(netip.Addr) bool
	// IdleTimeout closes a connection on which nothing was read for that
	// long (its reads end with io.EOF); 0: never.
	IdleTimeout time.Duration
	Budget      *Budget // nil: descriptors are not checked
	// Keep is how many of the budget's reserves this listener leaves free
	// (default 1): a listener of lower priority keeps more, so that it is
	// refused first and the others still get theirs.
	Keep    int
	Metrics *Metrics
	Log     *slog.Logger
}

// Metrics are the guarded listeners' counters, one set for all of them.
type Metrics struct {
	open     *prometheus.GaugeVec   // by listener
	refused  *prometheus.CounterVec // by listener, reason
	errors   *prometheus.CounterVec // temporary accept errors, by listener
	idleShut *prometheus.CounterVec // connections closed idle, by listener
}

// NewMetrics builds the counters; register Collectors once.
func NewMetrics() *Metrics {
	return &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rtcgate_listener_connections",
			Help: "Open connections per listener."}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_listener_refused_total",
			Help: "Connections closed at accept, by listener and reason (max-connections, per-address, descriptors)."}, []string{"listener", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_listener_accept_errors_total",
			Help: "Temporary accept errors (EMFILE, ENFILE, ECONNABORTED…) a listener backed off from."}, []string{"listener"}),
		idleShut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_listener_idle_closed_total",
			Help: "Connections closed after their listener's idle timeout."}, []string{"listener"}),
	}
}

// Collectors are the metrics.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.open, m.refused, m.errors, m.idleShut}
}

// Listener is a guarded net.Listener.
type Listener struct {
	net.Listener
	o Options

	open  atomic.Int64
	mu    sync.Mutex
	perIP map[netip.Addr]int

	lastLog    time.Time // rate limit of the accept-error log
	suppressed int
}

// Listen guards ln.
func Listen(ln net.Listener, o Options) *Listener {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return &Listener{Listener: ln, o: o, perIP: map[netip.Addr]int{}}
}

// maxBackoff bounds the wait after a temporary accept error (net/http's).
const maxBackoff = time.Second

// Accept returns the next connection within the caps; temporary errors are
// waited out, never returned.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			l.o.Metrics.errors.WithLabelValues(l.o.Name).Inc()
			l.logAcceptError(err)
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else {
				delay = min(2*delay, maxBackoff)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		gc, reason := l.admit(c)
		if reason != "" {
			l.o.Metrics.refused.WithLabelValues(l.o.Name, reason).Inc()
			c.Close()
			continue
		}
		return gc, nil
	}
}

// temporary: errors after which accepting again can succeed.
func temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []syscall.Errno{unix.EMFILE, unix.ENFILE, unix.ECONNABORTED, unix.ENOBUFS, unix.ENOMEM, unix.EAGAIN, unix.EINTR, unix.EPROTO, unix.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logAcceptError logs at most one line per 10 s, saying how many it left
// out.
func (l *Listener) logAcceptError(err error) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog) < 10*time.Second {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.lastLog, l.suppressed = now, 0
	l.mu.Unlock()
	l.o.Log.Warn("accept failed; backing off", "listener", l.o.Name, "err", err, "suppressed", n)
}

// admit takes c within the caps, or says why not.
func (l *Listener) admit(c net.Conn) (net.Conn, string) {
	if l.o.Budget != nil && l.o.Budget.Near(max(l.o.Keep, 1)) {
		return nil, "descriptors"
	}
	if l.o.MaxConns > 0 && l.open.Load() >= int64(l.o.MaxConns) {
		return nil, "max-connections"
	}
	ip := peer(c)
	counted := l.o.MaxPerIP > 0 && ip.IsValid() && (l.o.Exempt == nil || !l.o.Exempt(ip))
	if counted {
		l.mu.Lock()
		if l.perIP[ip] >= l.o.MaxPerIP {
			l.mu.Unlock()
			return nil, "per-address"
		}
		l.perIP[ip]++
		l.mu.Unlock()
	}
	l.open.Add(1)
	l.o.Metrics.open.WithLabelValues(l.o.Name).Inc()
	if l.o.Budget != nil {
		l.o.Budget.took()
	}
	gc := &conn{Conn: c, l: l}
	if counted {
		gc.ip = ip
	}
	return gc, ""
}

// Open is the number of connections the listener holds.
func (l *Listener) Open() int { return int(l.open.Load()) }

func peer(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// conn is an accepted connection: it gives its slot back when closed and
// ends reads idle longer than the listener's IdleTimeout.
type conn struct {
	net.Conn
	l      *Listener
	ip     netip.Addr // counted against MaxPerIP; zero when not
	closed atomic.Bool
}

func (c *conn) Read(b []byte) (int, error) {
	d := c.l.o.IdleTimeout
	if d <= 0 {
		return c.Conn.Read(b)
	}
	c.Conn.SetReadDeadline(time.Now().Add(d))
	n, err := c.Conn.Read(b)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		// An idle peer is gone as far as the protocol goes: EOF, which
		// readers take as an orderly end, not as an error to log.
		c.l.o.Metrics.idleShut.WithLabelValues(c.l.o.Name).Inc()
		return n, io.EOF
	}
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		l := c.l
		l.open.Add(-1)
		l.o.Metrics.open.WithLabelValues(l.o.Name).Dec()
		if c.ip.IsValid() {
			l.mu.Lock()
			if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
				delete(l.perIP, c.ip)
			}
			l.mu.Unlock()
		}
	}
	return err
}

// SyscallConn exposes the socket (readiness sets register it).
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("netguard: no socket under the connection")
}

// Budget keeps a reserve of descriptors for what must never fail for want
// of one (media ports, ng, the hook client): guarded listeners refuse new
// connections once the process's open descriptors come within Keep
// reserves of its limit. A reserve is Reserve descriptors, at most a
// quarter of the limit.
type Budget struct {
	Reserve int

	mu      sync.Mutex
	checked time.Time
	open    int
	limit   int
}

// refresh is how long a descriptor count is trusted.
const refresh = 100 * time.Millisecond

// Near reports whether open descriptors are within keep reserves of the
// limit.
func (b *Budget) Near(keep int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if now.Sub(b.checked) >= refresh {
		b.checked = now
		b.open = countFDs()
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			b.limit = int(min(rl.Cur, 1<<30))
		}
	}
	reserve := min(b.Reserve, b.limit/4)
	return b.limit > 0 && b.open >= b.limit-keep*reserve
}

// took counts a connection accepted since the last count.
func (b *Budget) took() {
	b.mu.Lock()
	b.open++
	b.mu.Unlock()
}

// countFDs counts the process's open descriptors.
func countFDs() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(4096)
		n += len(names)
		if err != nil {
			break
		}
	}
	return n
}
