package client

import (
	"context"
	"encoding/json"
	"errors"
)

// App is where the session core hands every client action: the app backend
// behind REST hooks and the SIP gateway implement it (later issues); until
// then DefaultApp answers.
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

// DefaultApp accepts every connection and answers sendData with
// DataStatusEvent ACCEPTED, so the client layer works end to end before the
// REST hooks and the SIP gateway exist. Calls and messages need the SIP
// gateway and fail clearly.
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
