package client

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"strings"
	"sync"
	"time"
)

// Transport carries a session's frames to its client: the WebSocket pushes
// them as they are queued, the HTTP fallback hands them to the client's
// syncs, which wait on the session. A session has one transport at a time,
// or none while it waits for a resume.
type Transport interface {
	// Kind names it: "websocket" or "http".
	Kind() string
	// Pending is told, with the session locked, that frames are queued or
	// the session closed: a pushing transport starts writing them.
	Pending()
	// Replaced is told, with the session locked, that the session moved
	// to another transport.
	Replaced()
}

// session is one connected app client, the session core's Session. Frames
// to the client are numbered and kept until the client has them, so that a
// transport that drops — or an HTTP sync response that is lost — loses
// nothing: whichever transport the client comes back on continues from the
// last frame it confirmed.
type session struct {
	id        string // sessionId, told to the client in getUserData
	authToken string // proves a resuming client owns the session; never logged
	created   time.Time
	hub       *Hub

	mu          sync.Mutex
	appKey      string
	config      map[string]any // the effective configuration, as getUserData sent it
	established bool
	nextSeq     uint64   // the number of the next frame queued; the first is 1
	outbox      []queued // frames after acked, in order
	outboxBytes int      // their bytes
	acked       uint64   // the client has every frame up to this one
	wake        chan struct{}
	transport   Transport // nil while detached
	attachGen   uint64
	lastActive  time.Time
	lastInbound time.Time
	closed      bool
	done        chan struct{}
	remoteIP    string
	values      []keyValue        // what the layers keep per session (Value, SetValue): one or two entries
	stored      map[string][]byte // what the layers keep for a takeover (SetStored); nil while empty
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

func newSession(h *Hub, remoteIP string, now time.Time) *session {
	id := randomID()
	return &session{id: id, authToken: id + "." + randomID(), created: now, hub: h, nextSeq: 1,
		wake: make(chan struct{}), lastActive: now, lastInbound: now, done: make(chan struct{}), remoteIP: remoteIP}
}

// tokenSession is the sessionId an authToken belongs to: a token is
// "<sessionId>.<secret>", so that the Web SDK, which comes back with the
// authToken alone (createSession's authToken option), names its session.
// The whole token is still checked, in constant time.
func tokenSession(token string) string {
	id, _, _ := strings.Cut(token, ".")
	return id
}

// ID is the sessionId.
func (s *session) ID() string { return s.id }

// AppKey is the app the session connected to.
func (s *session) AppKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appKey
}

// Config returns a copy of the session's effective configuration.
func (s *session) Config() map[string]any {
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
func (s *session) Value(key any) any {
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
func (s *session) SetValue(key, v any) {
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

// SetStored keeps a layer's state for a takeover: with the session's
// record in the session store (a cluster), in memory on a single node.
func (s *session) SetStored(key string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if v == nil {
		if _, ok := s.stored[key]; !ok {
			return
		}
		delete(s.stored, key)
	} else {
		if s.stored == nil {
			s.stored = map[string][]byte{}
		}
		v = bytes.Clone(v)
		s.stored[key] = v
	}
	if s.established {
		s.hub.persistLocked(StoreOp{Kind: "value", ID: s.id, Key: key, Data: v})
	}
}

// Stored is a copy of what SetStored kept.
func (s *session) Stored() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stored)
}

// Send queues a frame for the client. It reports false when the session is
// closed, or is closed now because the client fell too far behind.
func (s *session) Send(message string, data ...any) bool {
	b, err := EncodeFrame(message, data...)
	if err != nil {
		s.hub.log.Error("unencodable frame", "message", message, "err", err)
		return false
	}
	return s.queue(b)
}

func (s *session) queue(b []byte) bool {
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
	if s.outboxBytes+len(b) > s.hub.opts.MaxPendingBytes {
		s.mu.Unlock()
		s.Close("client too slow: over client-max-pending-bytes unread")
		return false
	}
	s.outboxBytes += len(b)
	s.outbox = append(s.outbox, queued{seq: s.nextSeq, data: b})
	if s.established {
		s.hub.persistLocked(StoreOp{Kind: "frame", ID: s.id, Seq: s.nextSeq, Data: b, MaxLen: int64(s.hub.opts.MaxPending)})
	}
	s.nextSeq++
	s.signal()
	s.kickLocked()
	s.mu.Unlock()
	s.hub.framesOut.Inc()
	return true
}

// signal wakes whoever waits for frames; s.mu is held.
func (s *session) signal() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// Fail sends the SDK's `fail` frame about apiMethod.
func (s *session) Fail(apiMethod, info string) { SendEvent(s, Fail(apiMethod, info)) }

// pending returns the frames after seq and a channel closed when more come
// (or the session closes).
func (s *session) pending(after uint64) ([]queued, <-chan struct{}, bool) {
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
func (s *session) ack(seq uint64) { s.ackTo(seq, true) }

// ackTo drops the frames up to seq; byClient is an acknowledgement from
// the client (a sync's or a resume's ack), not a WebSocket write: only
// those trim the stored frames, so that a takeover replays what a client
// never confirmed.
func (s *session) ackTo(seq uint64, byClient bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.acked {
		return
	}
	if seq >= s.nextSeq {
		seq = s.nextSeq - 1
	}
	s.acked = seq
	if s.established && byClient {
		s.hub.persistLocked(StoreOp{Kind: "ack", ID: s.id, Seq: seq})
	}
	i := 0
	for i < len(s.outbox) && s.outbox[i].seq <= seq {
		s.outboxBytes -= len(s.outbox[i].data)
		i++
	}
	n := copy(s.outbox, s.outbox[i:])
	clear(s.outbox[n:]) // let delivered frames be collected
	s.outbox = s.outbox[:n]
}

// lastSeq is the number of the newest frame queued.
func (s *session) lastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1
}

// attach makes t the session's transport; the previous one, if any, is
// told it was replaced and stops at the generation change.
func (s *session) attach(t Transport, now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport != nil {
		s.transport.Replaced()
	}
	s.attachGen++
	s.transport = t
	s.lastActive, s.lastInbound = now, now
	s.signal() // a waiting writer of the old transport notices and leaves
	s.kickLocked()
	return s.attachGen
}

// detach leaves the session waiting for a resume, unless another transport
// attached since.
func (s *session) detach(gen uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attachGen == gen {
		s.transport = nil
		s.lastActive = now
	}
}

// attached reports whether t is the session's transport.
func (s *session) attached(t Transport) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transport == t
}

// kickLocked tells the transport that frames wait (or the session
// closed); s.mu is held.
func (s *session) kickLocked() {
	if s.transport != nil && (len(s.outbox) > 0 || s.closed) {
		s.transport.Pending()
	}
}

// current reports whether gen is still the attached transport.
func (s *session) current(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attachGen == gen && !s.closed
}

func (s *session) touch(now time.Time, inbound bool) {
	s.mu.Lock()
	s.lastActive = now
	if inbound {
		s.lastInbound = now
	}
	s.mu.Unlock()
}

// Done is closed when the session ends.
func (s *session) Done() <-chan struct{} { return s.done }

// Close ends the session: the app is told, an HTTP client's next sync gets
// http.command.close, a WebSocket is closed.
func (s *session) Close(reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.established {
		s.hub.persistLocked(StoreOp{Kind: "drop", ID: s.id})
	}
	s.signal()
	close(s.done)
	s.kickLocked() // deliver what is left, then close the WebSocket
	s.mu.Unlock()
	s.hub.remove(s, reason)
}
