package client

import (
	"context"
	"maps"
	"time"
)

// persistQueue bounds the store's writes waiting for Redis; beyond it a
// write is dropped (and counted): a takeover may then miss frames, the
// session on its owner loses nothing.
const persistQueue = 65536

// storeOf is the hub's session store, nil on a single node.
func (h *Hub) storeOf() SessionStore {
	if bb := h.broker.Load(); bb != nil {
		return bb.store
	}
	return nil
}

// persistLocked queues op for the store, in the order the session's lock
// gives; s.mu is held.
func (h *Hub) persistLocked(op StoreOp) {
	bb := h.broker.Load()
	if bb == nil || bb.store == nil {
		return
	}
	select {
	case bb.ops <- op:
	default:
		h.persistDropped.Inc()
	}
}

// persist writes the queued ops, batched, in order.
func (h *Hub) persist(st SessionStore, ops chan StoreOp) {
	batch := make([]StoreOp, 0, 256)
	for op := range ops {
		batch = append(batch[:0], op)
	drain:
		for len(batch) < cap(batch) {
			select {
			case op := <-ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := st.Persist(ctx, batch)
			cancel()
			if err == nil {
				break
			}
			if attempt == 2 {
				h.persistDropped.Add(float64(len(batch)))
				h.log.Warn("client: cannot store sessions in cluster-redis; a takeover may miss frames", "err", err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// record is the session as stored; s.mu is held.
func (s *session) recordLocked() *SessionRecord {
	return &SessionRecord{ID: s.id, AuthToken: s.authToken, AppKey: s.appKey, Config: s.config, RemoteIP: s.remoteIP,
		Stored: maps.Clone(s.stored)}
}

// takeOver re-creates, on this node, a session whose node died: the same
// sessionId and authToken, its configuration, the frames its client had
// not acknowledged, numbered as before, and what the layers kept with it
// (SetStored). The app adopts it (Adopter), or
// is told Established as for a new session (the gateway registers the
// SIP account again). clientAck is the last frame the resuming client
// says it has (0: none said); sent is the last frame the dead node wrote
// to the client's WebSocket.
func (h *Hub) takeOver(id, token string, clientAck uint64) (s *session, sent uint64) {
	st := h.storeOf()
	if st == nil || id == "" || token == "" {
		return nil, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rec, frames, err := st.TakeOver(ctx, id, token)
	if err != nil {
		if err != ErrUnbound {
			h.log.Warn("client: cannot look up a session in cluster-redis", "err", err)
		}
		return nil, 0
	}
	// The lost node stored its frames after sending them: its client may
	// have had some that never reached Redis. The frames queued here come
	// after those, or the client's ack would drop them as frames it has.
	// An ack beyond what the node could have had waiting to be stored is
	// not believed (ackTo clamps it).
	if clientAck >= rec.NextSeq && clientAck-rec.NextSeq < persistQueue {
		rec.NextSeq = clientAck + 1
	}
	now := time.Now()
	s = newSession(h, rec.RemoteIP, now)
	s.id, s.authToken = rec.ID, rec.AuthToken
	s.appKey, s.config, s.established, s.stored = rec.AppKey, rec.Config, true, rec.Stored
	s.config["sessionId"], s.config["authToken"] = s.id, s.authToken
	s.nextSeq = rec.NextSeq
	s.acked = rec.NextSeq - 1
	for _, f := range frames {
		if s.acked >= f.Seq {
			s.acked = f.Seq - 1
		}
		s.outbox = append(s.outbox, queued{seq: f.Seq, data: f.Data})
		s.outboxBytes += len(f.Data)
	}
	h.mu.Lock()
	if old := h.sessions[s.id]; old != nil || h.closed {
		h.mu.Unlock()
		if old == nil {
			return nil, 0
		}
		return old, old.ackedSeq()
	}
	h.sessions[s.id] = s
	h.mu.Unlock()
	h.peers.adopt(s.remoteIP, now)
	h.sessionsGauge.Inc()
	h.takeovers.Inc()
	s.mu.Lock()
	h.persistLocked(StoreOp{Kind: "renew", ID: s.id})
	s.mu.Unlock()
	h.log.Info("client: session taken over from a lost node", "frames", len(frames))
	if ad, ok := h.handler.(Adopter); ok {
		ad.Adopt(s)
	} else {
		h.handler.Established(s)
	}
	return s, rec.Sent
}
