package client

import (
	"context"
	"encoding/json"
	"errors"
)

// App is where the session core hands every client action: the REST hooks
// implement it, in front of the SIP gateway (or DefaultApp).
type App interface {
	// Connect decides on a session's connection request. It returns the
	// effective configuration (the request, possibly changed) or an error
	// whose text the client gets in `fail`.
	Connect(ctx context.Context, s *Session, req map[string]any) (map[string]any, error)
	// Established is told once getUserData went out.
	Established(s *Session)
	// Handle runs a client action (call, hangup, sendData, …); data is the
	// frame's first element. An error becomes a `fail` naming the action.
	Handle(ctx context.Context, s *Session, action string, data json.RawMessage) error
	// Disconnected is told when a session ends, with why.
	Disconnected(s *Session, reason string)
}

// Notifier is how the SIP gateway reports what happens to a session. The
// hooks implement it: each event goes to the client and to the app's
// backend, and deciding hooks (an incoming call) ask the backend first.
type Notifier interface {
	// Notify reports a status event (CallStatusEvent, MessageStatusEvent…):
	// the client gets it as the frame named frame ("" for none), the app's
	// backend as the REST method named event — in order per session, at
	// least once.
	Notify(s *Session, event, frame string, data map[string]any)
	// Ask runs a deciding hook (OnCallEvent): an error is the backend's
	// refusal; the returned fields are data as the backend's reply may
	// have overwritten them.
	Ask(ctx context.Context, s *Session, event string, data map[string]any) (map[string]any, error)
}

// ClientNotifier tells the client only: for running without hooks.
type ClientNotifier struct{}

// Notify sends the frame.
func (ClientNotifier) Notify(s *Session, _, frame string, data map[string]any) {
	if frame != "" {
		s.Send(frame, data)
	}
}

// Ask allows everything.
func (ClientNotifier) Ask(_ context.Context, _ *Session, _ string, data map[string]any) (map[string]any, error) {
	return data, nil
}

// DefaultApp accepts every connection and answers sendData with
// DataStatusEvent ACCEPTED: the app behind the hooks when the SIP gateway
// is off (listen-sip ""), and the SIP gateway's answer to sendData. Calls
// and messages need the SIP gateway and fail clearly.
type DefaultApp struct{}

var errNoGateway = errors.New("not available: no SIP gateway is configured")

// Connect accepts the request as it is.
func (DefaultApp) Connect(_ context.Context, _ *Session, req map[string]any) (map[string]any, error) {
	if _, ok := req["appKey"].(string); !ok {
		req["appKey"] = "defaultApp"
	}
	return req, nil
}

// Established does nothing.
func (DefaultApp) Established(*Session) {}

// Handle acknowledges sendData; the rest needs the SIP gateway.
func (DefaultApp) Handle(_ context.Context, s *Session, action string, data json.RawMessage) error {
	if action != "sendData" {
		return errNoGateway
	}
	var req struct {
		OperationID string          `json:"operationId"`
		Payload     json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return errors.New("sendData needs an object with operationId and payload")
	}
	s.Send("DataStatusEvent", map[string]any{"operationId": req.OperationID, "status": "ACCEPTED"})
	return nil
}

// Disconnected does nothing.
func (DefaultApp) Disconnected(*Session, string) {}
