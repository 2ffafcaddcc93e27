package client

import (
	"context"
	"errors"
)

// Broker is what the HTTP fallback's bindings share across nodes: which
// node owns a connectionId (by its hash), for which client address. A
// session lives on the node that opened it; a request reaching another node
// is forwarded to the owner, which serves it exactly as a single node would
// (in order, acks, utids). The memory broker is a single node's: every
// binding is local.
type Broker interface {
	// Bind records this node as the owner of the connection, opened from
	// ip; it is renewed by calling Bind again (client activity).
	Bind(ctx context.Context, hash, ip string) error
	// Unbind forgets the connection (closed, or its session ended).
	Unbind(ctx context.Context, hash string) error
	// Owner is the connection's owner; ErrUnbound when no node has it.
	Owner(ctx context.Context, hash string) (Route, error)
	// Secret authenticates a forwarded request's client address between
	// nodes ("" on a single node: nothing is forwarded).
	Secret() string
}

// Route is where a connection lives.
type Route struct {
	Node  string // the owner's node-id
	Addr  string // its advertised listen-client, host:port
	IP    string // the client address the connection was opened from
	Local bool   // the owner is this node
}

// ErrUnbound: no node owns the connectionId.
var ErrUnbound = errors.New("connection not bound")

// MemoryBroker is a single node's broker: today's behaviour, every binding
// in the hub's memory and nothing forwarded.
type MemoryBroker struct{}

// Bind implements Broker.
func (MemoryBroker) Bind(context.Context, string, string) error { return nil }

// Unbind implements Broker.
func (MemoryBroker) Unbind(context.Context, string) error { return nil }

// Owner implements Broker.
func (MemoryBroker) Owner(context.Context, string) (Route, error) { return Route{}, ErrUnbound }

// Secret implements Broker.
func (MemoryBroker) Secret() string { return "" }

// SessionStore keeps established sessions' story where another node can
// take it over: the session (its credentials hashed, its configuration —
// the connection request, SIP password included), and the frames its
// client has not acknowledged. A Broker that is one too (Redis) lets a
// client whose node died resume on another with sessionId and authToken.
type SessionStore interface {
	// Persist applies ops in order (one writer per node).
	Persist(ctx context.Context, ops []StoreOp) error
	// TakeOver claims session id, whose owner's lease ended, for this
	// node if token is its authToken: its record and the frames kept.
	// ErrUnbound when there is none, the token is wrong, or its owner
	// lives.
	TakeOver(ctx context.Context, id, token string) (*SessionRecord, []StoredFrame, error)
	// SessionOwner is the live node holding session id; ErrUnbound when
	// none (no such session, or its owner's lease ended).
	SessionOwner(ctx context.Context, id string) (Route, error)
}

// StoreOp is one change to a stored session.
type StoreOp struct {
	Kind   string         // "save", "frame", "ack", "sent", "value", "renew", "drop"
	ID     string         // sessionId
	Record *SessionRecord // save
	Seq    uint64         // frame, ack (the client has it), sent (written to its WebSocket)
	Key    string         // value: a layer's key (SetStored)
	Data   []byte         // frame; value (nil: forget Key)
	MaxLen int64          // frame: keep about this many (client-max-pending)
}

// SessionRecord is a stored session.
type SessionRecord struct {
	ID        string
	AuthToken string // plain in memory; only its SHA-256 is stored
	AppKey    string
	Config    map[string]any // the effective configuration, without authToken
	RemoteIP  string
	Stored    map[string][]byte // the layers' values (SetStored)
	NextSeq   uint64            // set by TakeOver: the number after the last frame stored
	Sent      uint64            // set by TakeOver: the last frame written to the client's WebSocket
}

// StoredFrame is a frame kept for a takeover.
type StoredFrame struct {
	Seq  uint64
	Data []byte
}

// Adopter is a Handler that re-creates its state for a session taken over
// from a lost node (the state Connect built there is gone); a Handler that
// is not one is told Established.
type Adopter interface {
	Adopt(s Session)
}
