// Package clienttest has a fake client.Session for testing the layers
// behind the session core (the hooks, the SIP gateway) without it.
package clienttest

import (
	"bytes"
	"maps"
	"sync"
)

// Session is a client.Session that records the frames it is sent.
type Session struct {
	SessionID string
	Key       string
	Cfg       map[string]any

	mu     sync.Mutex
	values map[any]any
	stored map[string][]byte
	frames []Frame
}

// Frame is one frame a Session was sent.
type Frame struct {
	Message string
	Data    []any
}

// ID implements client.Session.
func (s *Session) ID() string { return s.SessionID }

// AppKey implements client.Session.
func (s *Session) AppKey() string { return s.Key }

// Config implements client.Session: a copy of Cfg.
func (s *Session) Config() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.Cfg)
}

// Value implements client.Session.
func (s *Session) Value(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}

// SetValue implements client.Session.
func (s *Session) SetValue(key, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[any]any{}
	}
	s.values[key] = v
}

// SetStored implements client.Session: kept in memory.
func (s *Session) SetStored(key string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v == nil {
		delete(s.stored, key)
		return
	}
	if s.stored == nil {
		s.stored = map[string][]byte{}
	}
	s.stored[key] = bytes.Clone(v)
}

// Stored implements client.Session.
func (s *Session) Stored() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.stored)
}

// Send implements client.Session: the frame is recorded.
func (s *Session) Send(message string, data ...any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, Frame{message, data})
	return true
}

// Sent is the names of the frames sent so far, in order.
func (s *Session) Sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.frames))
	for i, f := range s.frames {
		out[i] = f.Message
	}
	return out
}
