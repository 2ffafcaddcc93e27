package eventq

import (
	"slices"
	"sync"
)

// Memory is a bounded in-process Store: events survive nothing, but the
// bound still protects the daemon from an unreachable backend.
type Memory struct {
	mu     sync.Mutex
	origin string // ids start over with every Memory
	max    int
	nextID uint64
	ev     map[uint64]*Event
	closed bool
}

// NewMemory returns a Memory store holding at most maxEvents pending events
// (≤0 means 10000).
func NewMemory(maxEvents int) *Memory {
	if maxEvents <= 0 {
		maxEvents = 10000
	}
	return &Memory{origin: newOrigin(), max: maxEvents, nextID: 1, ev: make(map[uint64]*Event)}
}

// Append assigns e.ID, or returns ErrFull when maxEvents are pending.
func (m *Memory) Append(e *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(m.ev) >= m.max {
		return ErrFull
	}
	e.ID, e.Origin = m.nextID, m.origin
	m.nextID++
	m.ev[e.ID] = e
	return nil
}

// Pending returns the unacknowledged events in ID order.
func (m *Memory) Pending() ([]*Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Event, 0, len(m.ev))
	for _, e := range m.ev {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Event) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// Ack forgets id; unknown ids are ignored.
func (m *Memory) Ack(id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ev, id)
	return nil
}

// Len returns the number of pending events.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ev)
}

// Close marks the store closed; later Appends fail.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
