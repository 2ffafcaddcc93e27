// Package client is the public side of rtcgate, where web and mobile apps
// connect: one session core speaking the Flashphoner Web SDK's protocol,
// behind two thin transports — WebSocket and an HTTP fallback (jWebSocket's
// REST form, improved to lose nothing) — and the browser shim that makes the
// fallback look like a WebSocket.
package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Frame is one protocol message: {"message": NAME, "data": [ … ]}.
type Frame struct {
	Message string            `json:"message"`
	Data    []json.RawMessage `json:"data"`
}

// Arg returns the first data element (the SDK puts its object there), or
// JSON null.
func (f *Frame) Arg() json.RawMessage {
	if len(f.Data) == 0 {
		return json.RawMessage("null")
	}
	return f.Data[0]
}

// ErrFrameTooLarge is a frame over the configured size.
var ErrFrameTooLarge = errors.New("frame too large")

// ParseFrame reads a client frame; max bounds its size in bytes.
func ParseFrame(b []byte, max int) (*Frame, error) {
	if max > 0 && len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(b), max)
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("a frame is a JSON object {\"message\": NAME, \"data\": [...]}")
	}
	var f Frame
	if err := json.Unmarshal(trimmed, &f); err != nil {
		return nil, fmt.Errorf("bad frame: %v", err)
	}
	if f.Message == "" {
		return nil, errors.New("frame without \"message\"")
	}
	return &f, nil
}

// EncodeFrame builds a server frame with each argument as one data element.
func EncodeFrame(message string, data ...any) ([]byte, error) {
	if data == nil {
		data = []any{}
	}
	return json.Marshal(struct {
		Message string `json:"message"`
		Data    []any  `json:"data"`
	}{message, data})
}
