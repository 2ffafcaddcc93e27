package ng

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UDPServer is ng over UDP (listen-ng), the transport Kamailio and OpenSIPS
// use. A fixed set of workers read the socket; when all are busy the kernel
// queues further requests, which bounds both goroutines and memory.
type UDPServer struct {
	d       *Dispatcher
	log     *slog.Logger
	workers int
	cache   *cookieCache
	bad     BadInputReporter
	ctx     context.Context
	wg      sync.WaitGroup
}

// DefaultCookieCacheBytes is ng-cookie-cache-bytes' default: 64 MiB.
const DefaultCookieCacheBytes = 64 << 20

// UDPOptions are the UDP transport's limits.
type UDPOptions struct {
	Workers         int           // requests processed at once
	CookieCacheSize int           // replies remembered for retransmissions
	CookieLifetime  time.Duration // how long at least (at most twice that)

	// CookieCacheBytes bounds what those replies (with their keys) hold;
	// the oldest go first. Default DefaultCookieCacheBytes.
	CookieCacheBytes int64
	// BadInput counts and logs (rate-limited) the datagrams refused:
	// "no-cookie", "undecodable". nil: they are only dropped.
	BadInput BadInputReporter
}

// BadInputReporter counts input refused from the network, under the
// listener's key and a reason, and logs it within a budget of lines (see
// logging.Reporter).
type BadInputReporter interface {
	Report(listener, reason, from string, data []byte)
}

// listenerKey names the UDP listener in bad-input reports.
const listenerKey = "listen-ng"

// NewUDPServer builds the UDP transport over d.
func NewUDPServer(d *Dispatcher, log *slog.Logger, o UDPOptions) *UDPServer {
	if o.CookieLifetime <= 0 {
		o.CookieLifetime = 30 * time.Second
	}
	if o.CookieCacheSize <= 0 {
		o.CookieCacheSize = 100000
	}
	if o.CookieCacheBytes <= 0 {
		o.CookieCacheBytes = DefaultCookieCacheBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &UDPServer{d: d, log: log, workers: max(o.Workers, 1), cache: newCookieCache(o.CookieLifetime, o.CookieCacheSize, o.CookieCacheBytes),
		ctx: context.Background(), bad: o.BadInput}
	if s.bad != nil {
		s.ctx = withBadInput(s.ctx, func(reason, source string, data []byte) { s.bad.Report(listenerKey, reason, source, data) })
	}
	return s
}

// Collectors are the reply cache's gauges, for registration.
func (s *UDPServer) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rtcgate_ng_cookie_cache_bytes", Help: "Bytes held by the ng UDP reply cache (ng-cookie-cache-bytes bounds it).",
		}, func() float64 { return float64(s.cache.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rtcgate_ng_cookie_cache_entries", Help: "Replies held by the ng UDP reply cache (ng-cookie-cache-size bounds it).",
		}, func() float64 { return float64(s.cache.Len()) }),
	}
}

// Serve answers requests on conn until it is closed.
func (s *UDPServer) Serve(conn *net.UDPConn) {
	for range s.workers {
		s.wg.Go(func() { s.work(conn) })
	}
	done := make(chan struct{})
	go s.expire(done)
	s.wg.Wait()
	close(done)
}

// releaseAfter is how many bytes a cache expiry must drop for the memory
// to be handed back to the system at once rather than when the runtime
// gets to it (a flood of large replies would otherwise keep the process's
// RSS up long after the replies are gone).
const releaseAfter = 16 << 20

// expire drops due cache generations even when no request comes, and
// hands a large drop's memory back.
func (s *UDPServer) expire(done <-chan struct{}) {
	t := time.NewTicker(max(s.cache.generation/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if s.cache.expire() >= releaseAfter {
				debug.FreeOSMemory()
			}
		}
	}
}

func (s *UDPServer) work(conn *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		cookie, body, ok := SplitCookie(buf[:n])
		if !ok {
			// As rtpengine: without a cookie there is no way to answer in
			// a way the client could match, so the message is dropped:
			// counted, and logged within the bad-input budget (anyone who
			// reaches the port can send these at line rate).
			if s.bad != nil {
				s.bad.Report(listenerKey, "no-cookie", src.String(), buf[:n])
			}
			continue
		}
		key := src.String() + " " + string(cookie)
		state, cached := s.cache.begin(key)
		switch state {
		case cookieDone:
			s.log.Debug("ng retransmission answered from cache", "from", src.String())
			conn.WriteToUDPAddrPort(cached, src)
			continue
		case cookieRunning:
			s.log.Debug("ng retransmission of a running request dropped", "from", src.String())
			continue
		}
		out := s.d.Process(s.ctx, body, src.String(), src.Addr().Unmap().String())
		// Exactly the reply's size: the cache counts what it holds.
		reply := make([]byte, 0, len(cookie)+1+len(out))
		reply = append(append(append(reply, cookie...), ' '), out...)
		s.cache.finish(key, reply)
		if _, err := conn.WriteToUDPAddrPort(reply, src); err != nil {
			s.log.Warn("ng reply not sent", "to", src.String(), "err", err)
		}
	}
}
