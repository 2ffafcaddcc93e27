package client

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"sync"
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
	Origins        []string      // allowed Origin patterns; empty: the listener's host and localhost
	Log            *slog.Logger
}

// ErrTooMany is a new connection over client-max-connections (reject).
var ErrTooMany = errors.New("too many connections")

// Hub owns the sessions and runs every client frame through the protocol,
// whichever transport brought it.
type Hub struct {
	opts Options
	app  App
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	fallback *bindings  // HTTP fallback connections
	ready    *readiness // idle WebSockets, read only when bytes arrive

	sessionsGauge prometheus.Gauge
	framesIn      prometheus.Counter
	framesOut     prometheus.Counter
	closedTotal   *prometheus.CounterVec
	rejected      prometheus.Counter
	invalidUTF8   prometheus.Counter
}

// NewHub builds the session core over app.
func NewHub(opts Options, app App) *Hub {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 1000
	}
	h := &Hub{opts: opts, app: app, log: opts.Log, sessions: map[string]*Session{}, fallback: newBindings(),
		sessionsGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rtcgate_client_sessions", Help: "Client sessions, attached or waiting for a resume."}),
		framesIn:      prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_frames_received_total", Help: "Frames received from clients."}),
		framesOut:     prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_frames_sent_total", Help: "Frames queued for clients."}),
		closedTotal:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rtcgate_client_sessions_closed_total", Help: "Client sessions ended, by reason."}, []string{"reason"}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_connections_rejected_total", Help: "Connections refused at client-max-connections."}),
		invalidUTF8:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rtcgate_client_frames_invalid_utf8_total", Help: "WebSocket text frames that were not UTF-8, each closing its WebSocket with 1007."}),
	}
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
	return []prometheus.Collector{h.sessionsGauge, h.framesIn, h.framesOut, h.closedTotal, h.rejected, h.invalidUTF8}
}

// Session finds a session by id.
func (h *Hub) Session(id string) *Session {
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

// open makes a session for a new connection, within max connections.
func (h *Hub) open(remoteIP string) (*Session, error) {
	now := time.Now()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrTooMany
	}
	var victim *Session
	if h.opts.MaxConnections > 0 && len(h.sessions) >= h.opts.MaxConnections {
		if h.opts.Strategy != "close" {
			h.mu.Unlock()
			h.rejected.Inc()
			return nil, ErrTooMany
		}
		victim = h.oldestIdleLocked()
		if victim == nil {
			h.mu.Unlock()
			h.rejected.Inc()
			return nil, ErrTooMany
		}
	}
	s := newSession(h, remoteIP, now)
	h.sessions[s.ID] = s
	h.mu.Unlock()
	if victim != nil {
		victim.Close("replaced at client-max-connections")
	}
	h.sessionsGauge.Inc()
	return s, nil
}

// oldestIdleLocked is the session quiet the longest: rtcgate's reading of
// jWebSocket's "close" strategy. h.mu is held.
func (h *Hub) oldestIdleLocked() *Session {
	var oldest *Session
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

func (h *Hub) remove(s *Session, reason string) {
	h.mu.Lock()
	_, ok := h.sessions[s.ID]
	delete(h.sessions, s.ID)
	h.mu.Unlock()
	if !ok {
		return
	}
	h.sessionsGauge.Dec()
	h.closedTotal.WithLabelValues(reasonLabel(reason)).Inc()
	h.log.Debug("client session closed", "reason", reason)
	h.app.Disconnected(s, reason)
}

func reasonLabel(reason string) string {
	for _, r := range []string{"idle timeout", "client too slow", "replaced", "closed by client", "shutdown", "refused"} {
		if len(reason) >= len(r) && reason[:len(r)] == r {
			return r
		}
	}
	return "other"
}

// streaming are the SDK's media-server messages; rtcgate is a SIP gateway
// and answers them with `fail`.
var streaming = map[string]bool{
	"publishStream": true, "unPublishStream": true, "playStream": true, "stopStream": true,
	"snapshot": true, "sendStreamEvent": true, "availableStream": true, "changeVideoState": true,
	"changeAudioState": true, "submitBugReport": true, "sessionDebug": true,
}

// actions are the client actions handed to the app.
var actions = map[string]bool{
	"call": true, "answer": true, "hangup": true, "hold": true, "unhold": true, "transfer": true,
	"sendDtmf": true, "sendMessage": true, "sendData": true, "sendIMMessage": true,
}

// handle runs one frame from the client.
func (h *Hub) handle(ctx context.Context, s *Session, raw []byte) {
	h.framesIn.Inc()
	s.touch(time.Now(), true)
	f, err := ParseFrame(raw, h.opts.MaxFrame)
	if err != nil {
		s.Fail("unknown", err.Error())
		return
	}
	switch {
	case f.Message == "connection":
		h.connect(ctx, s, f)
	case f.Message == "ping":
		s.Send("pong")
	case f.Message == "pong":
		// touch above is all a pong is for
	case !s.isEstablished():
		s.Fail(f.Message, "not connected: send connection first")
	case streaming[f.Message]:
		s.Fail(f.Message, "not supported: rtcgate is a SIP gateway, not a media server")
	case actions[f.Message]:
		if err := h.app.Handle(ctx, s, f.Message, f.Arg()); err != nil {
			s.Fail(f.Message, err.Error())
		}
	default:
		s.Fail(f.Message, "unknown message")
	}
}

func (s *Session) isEstablished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.established
}

func (h *Hub) connect(ctx context.Context, s *Session, f *Frame) {
	if s.isEstablished() {
		s.Fail("connection", "already connected")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(f.Arg(), &req); err != nil || req == nil {
		s.Fail("connection", "connection needs an object with appKey")
		return
	}
	cfg, err := h.app.Connect(ctx, s, req)
	if err != nil {
		s.Fail("connection", err.Error())
		s.Close("refused: " + err.Error())
		return
	}
	appKey, _ := cfg["appKey"].(string)
	cfg["sessionId"] = s.ID
	cfg["authToken"] = s.AuthToken
	s.mu.Lock()
	s.appKey, s.config, s.established = appKey, cfg, true
	s.mu.Unlock()
	s.Send("getUserData", cfg)
	h.app.Established(s)
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
	all := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		transport, idleFor, established := s.transport, now.Sub(s.lastActive), s.established
		silentFor, ws := now.Sub(s.lastInbound), s.ws
		s.mu.Unlock()
		// A WebSocket client silent for three keep-alive periods (pings
		// unanswered) is gone: drop the socket, keep the session for a
		// resume.
		if ws != nil && h.opts.Keepalive > 0 && silentFor > 3*h.opts.Keepalive {
			go ws.close(websocket.StatusGoingAway, "keep-alive timeout")
			continue
		}
		// A detached session, or an HTTP one whose client stopped asking,
		// waits idle-timeout for a resume.
		if (transport == "" || transport == "http") && idleFor >= h.opts.IdleTimeout {
			s.Close("idle timeout")
			continue
		}
		if ping && established && transport == "websocket" {
			s.Send("ping")
		}
	}
}

// Close ends every session (shutdown).
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	all := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].Created.Before(all[j].Created) })
	for _, s := range all {
		s.Close("shutdown")
	}
	if h.ready != nil {
		h.ready.close()
	}
}
