package client

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the client listener's limits.
type Options struct {
	MaxFrame       int           // bytes in one frame, either transport
	IdleTimeout    time.Duration // a session without a transport (or HTTP requests) lives this long
	Keepalive      time.Duration // server pings this often; a WebSocket silent for 3 of them is dropped
	SyncWait       time.Duration // longest an HTTP sync waits for a first frame
	MaxConnections int           // sessions at once
	Strategy       string        // at MaxConnections: "reject" new ones, or "close" the oldest idle
	MaxPending     int           // frames queued for one client before it counts as dead
	// MaxPendingBytes bounds the bytes of those frames (0: 8 MiB).
	MaxPendingBytes int
	// ReadTimeout bounds reading a request's headers or body (0: 10 s).
	ReadTimeout time.Duration
	// SessionsPerIP and NewSessionsPerSecond bound one client address
	// (0: no limit); TrustedProxies' X-Forwarded-For names the client.
	SessionsPerIP        int
	NewSessionsPerSecond int
	TrustedProxies       []netip.Prefix
	Origins              []string // allowed Origin patterns; empty: the listener's host and localhost
	Log                  *slog.Logger
}

// ErrTooMany is a new connection over client-max-connections (reject).
var ErrTooMany = errors.New("too many connections")

// Hub owns the sessions and runs every client frame through the protocol,
// whichever transport brought it.
type Hub struct {
	opts    Options
	handler Handler
	log     *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
	fallback *bindings  // HTTP fallback connections
	peers    *peers     // per-address limits
	ready    *readiness // idle WebSockets, read only when bytes arrive

	sessionsGauge prometheus.Gauge
	framesIn      prometheus.Counter
	framesOut     prometheus.Counter
	closedTotal   *prometheus.CounterVec
	rejected      prometheus.Counter
	invalidUTF8   prometheus.Counter

	broker    atomic.Pointer[brokerBox] // a cluster's shared bindings; nil on a single node
	forwarder *http.Client              // to the owner node of a routed request
	owners    *ownerCache               // connections' owner nodes, as Redis last named them
	routed    *prometheus.CounterVec

	takeovers      prometheus.Counter
	persistDropped prometheus.Counter
	lastRenew      time.Time // the stored sessions' TTLs were renewed (sweep)
}

// NewHub builds the session core over handler.
func NewHub(opts Options, handler Handler) *Hub {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1000
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = 8 << 20
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 10 * time.Second
	}
	h := &Hub{opts: opts, handler: handler, log: opts.Log, sessions: map[string]*session{}, fallback: newBindings(),
		peers:          newPeers(opts.SessionsPerIP, opts.NewSessionsPerSecond),
		sessionsGauge:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "rtcgate_client_sessions", Help: "Client sessions, attached or waiting for a resume."}),
		framesIn:       prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_frames_received_total", Help: "Frames received from clients."}),
		framesOut:      prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_frames_sent_total", Help: "Frames queued for clients."}),
		closedTotal:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_client_sessions_closed_total", Help: "Client sessions ended, by reason."}, []string{"reason"}),
		rejected:       prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_connections_rejected_total", Help: "Connections refused at client-max-connections."}),
		invalidUTF8:    prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_frames_invalid_utf8_total", Help: "WebSocket text frames that were not UTF-8, each closing its WebSocket with 1007."}),
		forwarder:      &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}},
		routed:         newRoutedCounter(),
		owners:         newOwnerCache(),
		takeovers:      newTakeoverCounter(),
		persistDropped: newPersistDroppedCounter(),
	}
	h.fallback.onRemove = h.unbindShared
	if rd, err := newReadiness(); err != nil {
		// Without epoll every WebSocket keeps a reading goroutine: slower
		// to scale, the same behaviour.
		h.log.Warn("client: no readiness set; one goroutine per WebSocket", "err", err)
	} else {
		h.ready = rd
		go rd.run()
	}
	return h
}

// Collectors are the hub's metrics.
func (h *Hub) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.sessionsGauge, h.framesIn, h.framesOut, h.closedTotal, h.rejected, h.invalidUTF8, h.routed, h.takeovers, h.persistDropped}
}

// session finds a session by id.
func (h *Hub) session(id string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id]
}

// Len is the number of sessions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// SessionInfo is a session as the operator's status page lists it.
type SessionInfo struct {
	Session     Session // what the layers keep per session (the SIP gateway's calls) is read through it
	App         string  // the appKey it connected with ("" before connection)
	Transport   string  // "websocket" or "http"; "" while it waits for a resume
	RemoteIP    string
	Created     time.Time
	Established bool
}

// EachSession calls visit with every session, oldest first, until visit
// returns false. The sessions are read one at a time: none is held while
// visit runs.
func (h *Hub) EachSession(visit func(SessionInfo) bool) {
	h.mu.Lock()
	all := h.listLocked()
	h.mu.Unlock()
	for _, s := range oldestFirst(all) {
		s.mu.Lock()
		info := SessionInfo{Session: s, App: s.appKey, RemoteIP: s.remoteIP, Created: s.created, Established: s.established}
		if s.transport != nil {
			info.Transport = s.transport.Kind()
		}
		closed := s.closed
		s.mu.Unlock()
		if !closed && !visit(info) {
			return
		}
	}
}

// listLocked is every session, for work that runs without h.mu, which is
// held here.
func (h *Hub) listLocked() []*session {
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	return all
}

// oldestFirst sorts sessions by when they were created.
func oldestFirst(all []*session) []*session {
	sort.Slice(all, func(i, j int) bool { return all[i].created.Before(all[j].created) })
	return all
}

// open makes a session for a new connection, within max connections.
func (h *Hub) open(remoteIP string) (*session, error) {
	now := time.Now()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrTooMany
	}
	var victim *session
	if err := h.peers.take(remoteIP, now); err != nil {
		h.mu.Unlock()
		h.rejected.Inc()
		return nil, err
	}
	if h.opts.MaxConnections > 0 && len(h.sessions) >= h.opts.MaxConnections {
		if h.opts.Strategy != "close" {
			h.mu.Unlock()
			h.peers.release(remoteIP)
			h.rejected.Inc()
			return nil, ErrTooMany
		}
		victim = h.oldestIdleLocked()
		if victim == nil {
			h.mu.Unlock()
			h.peers.release(remoteIP)
			h.rejected.Inc()
			return nil, ErrTooMany
		}
	}
	s := newSession(h, remoteIP, now)
	h.sessions[s.id] = s
	h.mu.Unlock()
	if victim != nil {
		victim.Close("replaced at client-max-connections")
	}
	h.sessionsGauge.Inc()
	return s, nil
}

// oldestIdleLocked is the session quiet the longest: rtcgate's reading of
// jWebSocket's "close" strategy. h.mu is held.
func (h *Hub) oldestIdleLocked() *session {
	var oldest *session
	var oldestAt time.Time
	for _, s := range h.sessions {
		s.mu.Lock()
		at := s.lastInbound
		s.mu.Unlock()
		if oldest == nil || at.Before(oldestAt) {
			oldest, oldestAt = s, at
		}
	}
	return oldest
}

func (h *Hub) remove(s *session, reason string) {
	h.mu.Lock()
	_, ok := h.sessions[s.id]
	delete(h.sessions, s.id)
	h.mu.Unlock()
	if !ok {
		return
	}
	h.peers.release(s.remoteIP)
	h.sessionsGauge.Dec()
	h.closedTotal.WithLabelValues(reasonLabel(reason)).Inc()
	h.log.Debug("client session closed", "reason", reason)
	h.handler.Disconnected(s, reason)
}

func reasonLabel(reason string) string {
	for _, r := range []string{"idle timeout", "client too slow", "replaced", "closed by client", "shutdown", "refused"} {
		if len(reason) >= len(r) && reason[:len(r)] == r {
			return r
		}
	}
	return "other"
}

// refusal is a frame the core refused before anything ran: the WebSocket
// answers it with `fail`, the HTTP fallback's send with 400.
type refusal struct {
	message string // the frame's message name, shortened; "unknown" when unreadable
	info    string
}

func (r *refusal) Error() string { return r.info }

// maxEchoed bounds how much of a client's message name a refusal repeats.
const maxEchoed = 64

// echoed is a client's message name as a refusal repeats it: at most
// maxEchoed bytes, so that a client never gets back (nor makes rtcgate
// keep) more than that of its own input.
func echoed(name string) string {
	if len(name) > maxEchoed {
		return name[:maxEchoed] + "…"
	}
	return name
}

// handle runs one frame from the client, by its row of Actions. A frame
// refused before it ran is returned; an action's own failure is the
// client's `fail` frame.
func (h *Hub) handle(ctx context.Context, s *session, raw []byte) *refusal {
	h.framesIn.Inc()
	s.touch(time.Now(), true)
	f, err := ParseFrame(raw, h.opts.MaxFrame)
	if err != nil {
		return &refusal{"unknown", err.Error()}
	}
	a, known := ActionOf(f.Message)
	switch {
	case !known:
		return &refusal{echoed(f.Message), "unknown message"}
	case a.Run == RunCore:
		return a.core(h, ctx, s, f)
	case !s.isEstablished():
		return &refusal{a.Message, "not connected: send connection first"}
	case a.Run == RunUnsupported:
		return &refusal{a.Message, "not supported: rtcgate is a SIP gateway, not a media server"}
	}
	if err := h.handler.Handle(ctx, s, a, f.Arg()); err != nil {
		s.Fail(a.Message, err.Error())
	}
	return nil
}

// ping is answered pong.
func (h *Hub) ping(_ context.Context, s *session, _ *Frame) *refusal {
	s.Send("pong")
	return nil
}

// pong: the touch in handle is all it is for.
func (h *Hub) pong(context.Context, *session, *Frame) *refusal { return nil }

func (s *session) isEstablished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.established
}

func (h *Hub) connect(ctx context.Context, s *session, f *Frame) *refusal {
	if s.isEstablished() {
		return &refusal{f.Message, "already connected"}
	}
	var req map[string]any
	if err := json.Unmarshal(f.Arg(), &req); err != nil || req == nil {
		return &refusal{f.Message, "connection needs an object with appKey"}
	}
	if token, _ := req["authToken"].(string); token != "" {
		return h.reconnect(s, f.Message, token)
	}
	cfg, err := h.handler.Connect(ctx, s, req)
	if err != nil {
		s.Fail(f.Message, err.Error())
		s.Close("refused: " + err.Error())
		return nil
	}
	appKey, _ := cfg["appKey"].(string)
	cfg["sessionId"] = s.id
	cfg["authToken"] = s.authToken
	s.mu.Lock()
	s.appKey, s.config, s.established = appKey, cfg, true
	h.persistLocked(StoreOp{Kind: "save", ID: s.id, Record: s.recordLocked()})
	s.mu.Unlock()
	s.Send("getUserData", cfg)
	h.handler.Established(s)
	return nil
}

// Run sends keep-alive pings and ends idle sessions until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	interval := min(h.opts.Keepalive, time.Second)
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ping := h.opts.Keepalive > 0 && now.Sub(lastPing) >= h.opts.Keepalive
			if ping {
				lastPing = now
			}
			h.sweep(now, ping)
		}
	}
}

func (h *Hub) sweep(now time.Time, ping bool) {
	h.mu.Lock()
	all := h.listLocked()
	h.mu.Unlock()
	h.peers.sweep(now)
	renew := h.storeOf() != nil && now.Sub(h.lastRenew) >= max(h.opts.IdleTimeout/4, time.Second)
	if renew {
		h.lastRenew = now
	}
	for _, s := range all {
		if renew {
			s.mu.Lock()
			if s.established && !s.closed {
				h.persistLocked(StoreOp{Kind: "renew", ID: s.id})
			}
			s.mu.Unlock()
		}
		s.mu.Lock()
		transport, idleFor, established := s.transport, now.Sub(s.lastActive), s.established
		silentFor := now.Sub(s.lastInbound)
		s.mu.Unlock()
		ws, _ := transport.(*wsConn)
		// A WebSocket client silent for three keep-alive periods (pings
		// unanswered) is gone: drop the socket, keep the session for a
		// resume.
		if ws != nil && h.opts.Keepalive > 0 && silentFor > 3*h.opts.Keepalive {
			go ws.close(websocket.StatusGoingAway, "keep-alive timeout")
			continue
		}
		// A detached session, or an HTTP one whose client stopped asking,
		// waits idle-timeout for a resume.
		if ws == nil && idleFor >= h.opts.IdleTimeout {
			s.Close("idle timeout")
			continue
		}
		if ping && established && ws != nil {
			s.Send("ping")
		}
	}
}

// Close ends every session (shutdown).
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	all := h.listLocked()
	h.mu.Unlock()
	for _, s := range oldestFirst(all) {
		s.Close("shutdown")
	}
	if h.ready != nil {
		h.ready.close()
	}
}
