package client

import (
	"context"
	"encoding/json"
	"errors"
)

// Session is a client session as the layers behind the session core see
// it: the hooks and the SIP gateway depend on this, not on the core's
// type, so that their logic is tested with fakes.
type Session interface {
	// ID is the sessionId the client was told in getUserData.
	ID() string
	// AppKey is the app the session connected to.
	AppKey() string
	// Config is a copy of the session's effective configuration.
	Config() map[string]any
	// Value returns what a layer stored under key with SetValue; it stays
	// readable after the session closed.
	Value(key any) any
	// SetValue stores a layer's per-session state under key (a private
	// type of the layer's package, as with context keys).
	SetValue(key, v any)
	// SetStored keeps v under key with the session where a node taking
	// it over finds it (Stored): a layer's own state, opaque to the
	// session core, written to the session store in a cluster (kept in
	// memory on a single node). A nil v forgets key.
	SetStored(key string, v []byte)
	// Stored is a copy of what SetStored kept, by key; after a takeover,
	// what the lost node had kept.
	Stored() map[string][]byte
	// Send queues a frame for the client; false when the session is
	// closed.
	Send(message string, data ...any) bool
}

// Handler is where the session core hands a session's connection and
// actions: the REST hooks implement it, in front of the SIP gateway (or
// BuiltIn).
type Handler interface {
	// Connect decides on a session's connection request. It returns the
	// effective configuration (the request, possibly changed) or an error
	// whose text the client gets in `fail`.
	Connect(ctx context.Context, s Session, req map[string]any) (map[string]any, error)
	// Established is told once getUserData went out.
	Established(s Session)
	// Handle runs a client action of Actions (Run RunAgent); data is the
	// frame's first element. An error becomes a `fail` naming the action.
	Handle(ctx context.Context, s Session, a *Action, data json.RawMessage) error
	// Disconnected is told when a session ends, with why.
	Disconnected(s Session, reason string)
}

// Notifier is how the SIP gateway reports what happens to a session. The
// hooks implement it: each event goes to the client (as the frame Events
// gives it) and to the app's backend, and deciding events (an incoming
// call) ask the backend first.
type Notifier interface {
	// Notify reports an event: the client gets its frame, the app's
	// backend its REST method — in order per session, at least once.
	Notify(s Session, e Event)
	// Ask runs a deciding event (OnCallEvent): an error is the backend's
	// refusal; the returned fields are e.Data as the backend's reply may
	// have overwritten them.
	Ask(ctx context.Context, s Session, e Event) (map[string]any, error)
}

// ClientNotifier tells the client only: for running without hooks.
type ClientNotifier struct{}

// Notify sends the event's frame.
func (ClientNotifier) Notify(s Session, e Event) { SendEvent(s, e) }

// Ask allows everything.
func (ClientNotifier) Ask(_ context.Context, _ Session, e Event) (map[string]any, error) {
	return e.Data, nil
}

// SendEvent queues e's frame for the client, if it has one.
func SendEvent(s Session, e Event) {
	if name, data := e.Frame(); name != "" {
		s.Send(name, data...)
	}
}

// Fail is an action's failure after it was accepted (a re-INVITE that
// failed): the client's `fail` naming the action.
func Fail(apiMethod, info string) Event {
	return Event{Name: ActionFailed, Data: map[string]any{"apiMethod": apiMethod, "info": info}}
}

// BuiltIn is the agent without a SIP gateway (listen-sip ""): it accepts
// every connection and answers sendData with DataStatusEvent ACCEPTED;
// calls and messages fail clearly. The SIP gateway answers sendData with
// it too.
type BuiltIn struct {
	Notify Notifier // nil: the client only
}

var errNoGateway = errors.New("not available: no SIP gateway is configured")

// Connect accepts the request as it is.
func (BuiltIn) Connect(_ context.Context, _ Session, req map[string]any) (map[string]any, error) {
	return req, nil
}

// Established does nothing.
func (BuiltIn) Established(Session) {}

// Handle runs the action's Agent method.
func (b BuiltIn) Handle(ctx context.Context, s Session, a *Action, data json.RawMessage) error {
	return a.Call(ctx, b, s, data)
}

// Disconnected does nothing.
func (BuiltIn) Disconnected(Session, string) {}

// SendData acknowledges the data: DataStatusEvent ACCEPTED.
func (b BuiltIn) SendData(_ context.Context, s Session, r *DataRequest) error {
	n := b.Notify
	if n == nil {
		n = ClientNotifier{}
	}
	n.Notify(s, Event{Name: DataStatusEvent, Data: map[string]any{"operationId": r.OperationID, "status": "ACCEPTED"}})
	return nil
}

// Call needs the SIP gateway.
func (BuiltIn) Call(context.Context, Session, *CallRequest) error { return errNoGateway }

// Answer needs the SIP gateway.
func (BuiltIn) Answer(context.Context, Session, *AnswerRequest) error { return errNoGateway }

// Hangup needs the SIP gateway.
func (BuiltIn) Hangup(context.Context, Session, *CallRef) error { return errNoGateway }

// Hold needs the SIP gateway.
func (BuiltIn) Hold(context.Context, Session, *CallRef) error { return errNoGateway }

// Unhold needs the SIP gateway.
func (BuiltIn) Unhold(context.Context, Session, *CallRef) error { return errNoGateway }

// Transfer needs the SIP gateway.
func (BuiltIn) Transfer(context.Context, Session, *TransferRequest) error { return errNoGateway }

// SendDTMF needs the SIP gateway.
func (BuiltIn) SendDTMF(context.Context, Session, *DTMFRequest) error { return errNoGateway }

// SendMessage needs the SIP gateway.
func (BuiltIn) SendMessage(context.Context, Session, *MessageRequest) error { return errNoGateway }
