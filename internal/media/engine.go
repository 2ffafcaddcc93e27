// Package media is rtcgate's media engine: calls, their parties and media
// sections, the relay's port pairs, SDP rewriting so that media flows through
// the relay, userspace RTP/RTCP forwarding with latching, and the call
// timeouts. The ng dispatcher drives it, and so will the SIP gateway; it knows
// nothing of either's wire format.
package media

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/stats"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// Config is what the engine needs from rtcgate's configuration.
type Config struct {
	Interfaces  []config.Interface
	PortMin     int
	PortMax     int
	DeleteDelay time.Duration // default for delete without "delete delay"
	Threads     int           // relay threads (pollers); 0: one per CPU
	// KernelForwarding is auto, off or required (see kernel.go); "" is off.
	KernelForwarding string
	// RelayIO is the relay threads' system interface: epoll, io_uring, or
	// auto (io_uring where it sets up, else epoll); "" is epoll.
	RelayIO string
	Live    *config.Live // max-sessions and the timeouts, changeable at runtime
	Stats   *stats.Stats
	Log     *slog.Logger
	// Certificate is presented in every DTLS handshake; nil makes one for
	// this engine (one per process: a restart rotates it) with a
	// CertCipher key ("" is prime256v1; "rsa" of RSAKeySize bits).
	Certificate *webrtcbridge.Certificate
	CertCipher  string
	RSAKeySize  int
	// DTLSSignature is the hash of a=fingerprint when neither the request
	// (DTLS-fingerprint) nor the peer's a=fingerprint names one; "" is
	// sha-256.
	DTLSSignature string
	// MaxDTMFQueue bounds the DTMF digits waiting to be played into one
	// party's stream (QueueDTMF); 0 is DefaultMaxDTMFQueue.
	MaxDTMFQueue int
}

// iface is one local address of a configured interface, with its ports.
type iface struct {
	name       string
	addr       netip.Addr
	advertised netip.Addr
	pool       *portPool
	slotBase   uint32 // first kernel counter slot of the pool's ports
}

func (i *iface) sdpAddr() netip.Addr {
	if i.advertised.IsValid() {
		return i.advertised
	}
	return i.addr
}

// Engine owns every call.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	stats  *stats.Stats
	live   *config.Live
	ifaces []*iface
	cert   *webrtcbridge.Certificate

	mu      sync.RWMutex
	calls   map[string]*call
	closed  bool
	created uint64 // calls ever created, to spread them over the pollers

	pollers []relayLoop
	kernel  *kernelPath // nil: userspace only
}

// New builds the engine and its port pools; nothing is bound until a call
// needs it.
func New(cfg Config) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Stats == nil {
		cfg.Stats = stats.New()
	}
	e := &Engine{cfg: cfg, log: cfg.Log, stats: cfg.Stats, live: cfg.Live, calls: map[string]*call{}, cert: cfg.Certificate}
	if e.cert == nil {
		cert, err := webrtcbridge.NewCertificateOf(cfg.CertCipher, cfg.RSAKeySize)
		if err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
		e.cert = cert
	}
	for _, itf := range cfg.Interfaces {
		for _, a := range itf.Addrs {
			adv := itf.Advertised
			if adv.IsValid() && adv.Is4() != a.Is4() {
				adv = netip.Addr{} // an advertised address only stands for its own family
			}
			e.ifaces = append(e.ifaces, &iface{name: itf.Name, addr: a.Unmap(), advertised: adv, pool: newPortPool(a.Unmap(), cfg.PortMin, cfg.PortMax)})
		}
	}
	if len(e.ifaces) == 0 {
		return nil, fmt.Errorf("media: no interface address")
	}
	k, err := openKernel(cfg, e.ifaces, e.log)
	if err != nil {
		return nil, err
	}
	e.kernel = k
	threads := cfg.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if e.pollers, err = startRelayLoops(threads, cfg.RelayIO, e.log); err != nil {
		e.kernel.close()
		return nil, err
	}
	cfg.Stats.SetLive(e.liveCounters)
	return e, nil
}

// startRelayLoops starts the relay threads over the configured interface.
func startRelayLoops(threads int, mode string, log *slog.Logger) ([]relayLoop, error) {
	var loops []relayLoop
	fail := func(err error) ([]relayLoop, error) {
		for _, l := range loops {
			l.stop()
		}
		return nil, fmt.Errorf("media: relay thread: %w", err)
	}
	for range threads {
		if mode == "io_uring" || mode == "auto" {
			p, err := newRingPoller()
			if err == nil {
				loops = append(loops, p)
				continue
			}
			if mode == "io_uring" {
				return fail(fmt.Errorf("relay-io %s: %w", mode, err))
			}
			log.Info("relay-io auto: io_uring unavailable, relaying with epoll", "err", err)
			mode = "epoll"
		}
		p, err := newPoller()
		if err != nil {
			return fail(err)
		}
		loops = append(loops, p)
	}
	if mode == "auto" {
		mode = "io_uring"
	}
	if mode == "" {
		mode = "epoll"
	}
	log.Info("relay threads", "count", len(loops), "relay-io", mode)
	return loops, nil
}

// pickIface finds the interface by name ("" = the first configured) with an
// address of the wanted family (ip6), falling back to the other family.
func (e *Engine) pickIface(name string, ip6 bool) (*iface, error) {
	var fallback *iface
	for _, i := range e.ifaces {
		if name != "" && i.name != name {
			continue
		}
		if name == "" && fallback != nil && i.name != fallback.name {
			break // the default interface is the first name only
		}
		if i.addr.Is6() == ip6 {
			return i, nil
		}
		if fallback == nil {
			fallback = i
		}
	}
	if fallback == nil {
		return nil, fmt.Errorf("%w '%s'", ErrUnknownItf, name)
	}
	return fallback, nil
}

// getCall returns the call, creating it when create is set and the session
// limit allows.
func (e *Engine) getCall(id string, create bool, now time.Time) (*call, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, false, ErrClosed
	}
	if c, ok := e.calls[id]; ok {
		return c, false, nil
	}
	if !create {
		return nil, false, ErrUnknownCallID
	}
	if max := e.live.MaxSessions(); max >= 0 && int64(len(e.calls)) >= max {
		e.stats.Rejected.Add(1)
		return nil, false, ErrSessionLimit
	}
	c := &call{id: id, created: now, lastSignal: now, monologues: map[string]*monologue{}, done: make(chan struct{}),
		poller: e.pollers[e.created%uint64(len(e.pollers))]}
	e.created++
	e.calls[id] = c
	e.stats.SessionsOwn.Add(1)
	return c, true, nil
}

// snapshot lists the calls in progress, so that work on them runs without
// holding the engine's lock.
func (e *Engine) snapshot() []*call {
	e.mu.RLock()
	defer e.mu.RUnlock()
	calls := make([]*call, 0, len(e.calls))
	for _, c := range e.calls {
		calls = append(calls, c)
	}
	return calls
}

func (e *Engine) lookup(id string) *call {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.calls[id]
}

// List returns up to limit call-ids, oldest first.
func (e *Engine) List(limit int) []string {
	calls := e.snapshot()
	sort.Slice(calls, func(i, j int) bool { return calls[i].created.Before(calls[j].created) })
	ids := make([]string, 0, min(limit, len(calls)))
	for _, c := range calls {
		if len(ids) >= limit {
			break
		}
		ids = append(ids, c.id)
	}
	return ids
}

// NumCalls is the number of calls in progress.
func (e *Engine) NumCalls() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.calls)
}

// Delete ends a call (all of it: rtpengine deletes the whole call for a
// from-tag delete of a two-party call) now, or after delay. A delayed call
// keeps relaying until then. It returns the call's final figures.
func (e *Engine) Delete(callID, fromTag, toTag string, delay time.Duration, useDefaultDelay bool) (*CallInfo, error) {
	c := e.lookup(callID)
	if c == nil {
		return nil, ErrNotFound
	}
	c.mu.Lock()
	if fromTag != "" && c.monologues[fromTag] == nil || toTag != "" && c.monologues[toTag] == nil {
		c.mu.Unlock()
		return nil, ErrNotFound
	}
	now := time.Now()
	c.lastSignal = now
	info := c.info(now)
	if useDefaultDelay {
		delay = e.cfg.DeleteDelay
	}
	if delay > 0 {
		c.deleteAt = now.Add(delay)
		c.mu.Unlock()
		return info, nil
	}
	c.mu.Unlock()
	e.closeCall(c, stats.ClosedTerminated)
	return info, nil
}

// Terminate ends a call at the operator's request.
func (e *Engine) Terminate(callID string) bool {
	c := e.lookup(callID)
	if c == nil {
		return false
	}
	e.closeCall(c, stats.ClosedForceTerminated)
	return true
}

// TerminateAll ends every call and returns how many there were.
func (e *Engine) TerminateAll() int {
	calls := e.snapshot()
	for _, c := range calls {
		e.closeCall(c, stats.ClosedForceTerminated)
	}
	return len(calls)
}

// closeCall removes a call, frees its ports and books its figures.
func (e *Engine) closeCall(c *call, reason stats.CloseReason) {
	e.mu.Lock()
	if e.calls[c.id] == c {
		delete(e.calls, c.id)
	}
	e.mu.Unlock()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	// Rules go first, so that the figures read next are final.
	c.sides(e.kernel.closeSide)
	user, kernel := c.traffic()
	for _, m := range c.order {
		for _, sd := range m.sides {
			if sd == nil {
				continue
			}
			if rtp, _ := sd.rtp.counters(); !sd.rejected && rtp.Packets == 0 {
				e.stats.ZeroWayStreams.Add(1)
			}
			e.stats.StreamsUser.Add(-1)
			e.dropTransport(sd) // before the socket it sends on closes
			c.poller.retire(sd)
		}
	}
	// A call whose only media came one way counts as a one-way call.
	if oneWay(c) {
		e.stats.OneWayStreams.Add(1)
	}
	c.mu.Unlock()

	e.stats.SessionsOwn.Add(-1)
	e.stats.Packets.Add(user.Packets)
	e.stats.Bytes.Add(user.Bytes)
	e.stats.PacketErrors.Add(user.Errors)
	e.stats.KernelPackets.Add(kernel.Packets)
	e.stats.KernelBytes.Add(kernel.Bytes)
	e.stats.KernelErrors.Add(kernel.Errors)
	e.stats.SessionClosed(reason, time.Since(c.created))
	e.log.Info("call closed", "call-id", c.id, "reason", reason.Label(), "packets", user.Packets+kernel.Packets)
}

// oneWay: some m= section relayed packets from one party but not the other.
func oneWay(c *call) bool {
	for _, m := range c.order {
		for _, sd := range m.sides {
			if sd == nil || sd.rejected {
				continue
			}
			p := sd.peer.Load()
			if p == nil {
				continue
			}
			mine, _ := sd.rtp.counters()
			theirs, _ := p.rtp.counters()
			if (mine.Packets == 0) != (theirs.Packets == 0) {
				return true
			}
		}
	}
	return false
}

// liveCounters sums the streams of the calls in progress, for rates.
func (e *Engine) liveCounters() (user, kernel stats.Traffic) {
	calls := e.snapshot()
	for _, c := range calls {
		c.mu.Lock()
		u, k := c.traffic()
		c.mu.Unlock()
		user, kernel = user.Plus(u), kernel.Plus(k)
	}
	return
}

// Run enforces delete delays and the media timeouts once a second until ctx
// ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.checkTimeouts(now)
			e.sweepKernel(e.snapshot(), now)
		}
	}
}

// Close ends every call and stops the relay threads.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.mu.Unlock()
	e.TerminateAll()
	for _, p := range e.pollers {
		p.stop()
	}
	e.kernel.close()
}
