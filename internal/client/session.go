package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Session is one connected app client. Frames to the client are numbered
// and kept until the client has them, so that a transport that drops — or
// an HTTP sync response that is lost — loses nothing: whichever transport
// the client comes back on continues from the last frame it confirmed.
type Session struct {
	ID        string // sessionId, told to the client in getUserData
	AuthToken string // proves a resuming client owns the session; never logged
	Created   time.Time
	hub       *Hub

	mu          sync.Mutex
	appKey      string
	config      map[string]any // the effective configuration, as getUserData sent it
	established bool
	nextSeq     uint64   // the number of the next frame queued; the first is 1
	outbox      []queued // frames after acked, in order
	acked       uint64   // the client has every frame up to this one
	wake        chan struct{}
	transport   string // "websocket", "http" or "" while detached
	attachGen   uint64
	lastActive  time.Time
	lastInbound time.Time
	closed      bool
	done        chan struct{}
	remoteIP    string
	values      []keyValue // what the apps keep per session (Value, SetValue): one or two entries

	// WebSocket push: the attached socket, and whether a flush goroutine
	// runs. A flush goroutine exists only while there is something to
	// write, so an idle WebSocket session costs its one reading goroutine.
	ws       *wsConn
	flushing bool
	handling bool // the reader runs a frame and flushes after it
}

type queued struct {
	seq  uint64
	data []byte
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("client: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

func newSession(h *Hub, remoteIP string, now time.Time) *Session {
	return &Session{ID: randomID(), AuthToken: randomID(), Created: now, hub: h, nextSeq: 1,
		wake: make(chan struct{}), lastActive: now, lastInbound: now, done: make(chan struct{}), remoteIP: remoteIP}
}

// AppKey is the app the session connected to.
func (s *Session) AppKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appKey
}

// Config returns a copy of the session's effective configuration.
func (s *Session) Config() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[string]any, len(s.config))
	for k, v := range s.config {
		c[k] = v
	}
	return c
}

// Value returns what an app stored under key with SetValue. It stays
// readable after the session closed, for the events that follow its end.
func (s *Session) Value(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kv := range s.values {
		if kv.key == key {
			return kv.v
		}
	}
	return nil
}

// keyValue is one app's entry; a slice of them costs an idle session less
// than a map would.
type keyValue struct{ key, v any }

// SetValue stores an app's per-session state under key (a private type of
// the app's package, as with context keys).
func (s *Session) SetValue(key, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.values {
		if s.values[i].key == key {
			s.values[i].v = v
			return
		}
	}
	s.values = append(s.values, keyValue{key, v})
}

// Send queues a frame for the client. It reports false when the session is
// closed, or is closed now because the client fell too far behind.
func (s *Session) Send(message string, data ...any) bool {
	b, err := EncodeFrame(message, data...)
	if err != nil {
		s.hub.log.Error("unencodable frame", "message", message, "err", err)
		return false
	}
	return s.queue(b)
}

func (s *Session) queue(b []byte) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.outbox) >= s.hub.opts.MaxPending {
		s.mu.Unlock()
		s.Close("client too slow: over client-max-pending frames unread")
		return false
	}
	s.outbox = append(s.outbox, queued{seq: s.nextSeq, data: b})
	s.nextSeq++
	s.signal()
	s.kickLocked()
	s.mu.Unlock()
	s.hub.framesOut.Inc()
	return true
}

// signal wakes whoever waits for frames; s.mu is held.
func (s *Session) signal() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Fail sends the SDK's `fail` frame about apiMethod.
func (s *Session) Fail(apiMethod, info string) {
	s.Send("fail", map[string]any{"apiMethod": apiMethod, "info": info})
}

// pending returns the frames after seq and a channel closed when more come
// (or the session closes).
func (s *Session) pending(after uint64) ([]queued, <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []queued
	for _, q := range s.outbox {
		if q.seq > after {
			out = append(out, q)
		}
	}
	return out, s.wake, s.closed
}

// ack drops the frames up to seq: the client has them.
func (s *Session) ack(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.acked {
		return
	}
	if seq >= s.nextSeq {
		seq = s.nextSeq - 1
	}
	s.acked = seq
	i := 0
	for i < len(s.outbox) && s.outbox[i].seq <= seq {
		i++
	}
	n := copy(s.outbox, s.outbox[i:])
	clear(s.outbox[n:]) // let delivered frames be collected
	s.outbox = s.outbox[:n]
}

// lastSeq is the number of the newest frame queued.
func (s *Session) lastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1
}

// attach makes a transport the session's; the previous one, if any, is
// told to stop by the generation change.
func (s *Session) attach(kind string, now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws != nil {
		old := s.ws
		s.ws = nil
		go old.close(closeResumedElsewhere, "session resumed on another connection")
	}
	s.attachGen++
	s.transport = kind
	s.lastActive, s.lastInbound = now, now
	s.signal() // a waiting writer of the old transport notices and leaves
	return s.attachGen
}

// detach leaves the session waiting for a resume, unless another transport
// attached since.
func (s *Session) detach(gen uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attachGen == gen {
		s.transport = ""
		s.lastActive = now
		s.ws = nil
	}
}

// attachWebSocket makes c the session's transport and starts pushing what
// is pending.
func (s *Session) attachWebSocket(c *wsConn, now time.Time) uint64 {
	gen := s.attach("websocket", now)
	s.mu.Lock()
	s.ws = c
	s.kickLocked()
	s.mu.Unlock()
	return gen
}

// kickLocked starts a flush when a WebSocket is attached, something is to
// be written (or the session closed) and no flush runs; s.mu is held.
func (s *Session) kickLocked() {
	if s.ws != nil && !s.flushing && !s.handling && (len(s.outbox) > 0 || s.closed) {
		s.flushing = true
		go s.flush(s.ws)
	}
}

// handleFrame runs a frame from the WebSocket's reader and then writes the
// replies on that same goroutine: a request/response costs no extra
// goroutine (and no stack growth of a fresh one) per frame.
func (s *Session) handleFrame(ctx context.Context, c *wsConn, data []byte) {
	s.mu.Lock()
	s.handling = true
	s.mu.Unlock()
	c.h.handle(ctx, s, data)
	s.mu.Lock()
	s.handling = false
	run := s.ws == c && !s.flushing && (len(s.outbox) > 0 || s.closed)
	if run {
		s.flushing = true
	}
	s.mu.Unlock()
	if run {
		s.flush(c)
	}
}

// flush writes pending frames to c in order until none are left. Over a
// WebSocket a frame counts as delivered once written: TCP brings it unless
// the connection dies, and then the client resumes with the ack it has.
func (s *Session) flush(c *wsConn) {
	for {
		s.mu.Lock()
		if s.ws != c {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		frames := append([]queued(nil), s.outbox...)
		closed := s.closed
		if len(frames) == 0 {
			s.flushing = false
			s.mu.Unlock()
			if closed {
				c.close(websocket.StatusNormalClosure, "session closed")
			}
			return
		}
		s.mu.Unlock()
		for _, f := range frames {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.Write(ctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				s.mu.Lock()
				s.flushing = false
				s.mu.Unlock()
				c.closeNow()
				return
			}
			s.ack(f.seq)
		}
	}
}

// current reports whether gen is still the attached transport.
func (s *Session) current(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attachGen == gen && !s.closed
}

func (s *Session) touch(now time.Time, inbound bool) {
	s.mu.Lock()
	s.lastActive = now
	if inbound {
		s.lastInbound = now
	}
	s.mu.Unlock()
}

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the session: the app is told, an HTTP client's next sync gets
// http.command.close, a WebSocket is closed.
func (s *Session) Close(reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.signal()
	close(s.done)
	s.kickLocked() // deliver what is left, then close the WebSocket
	s.mu.Unlock()
	s.hub.remove(s, reason)
}
