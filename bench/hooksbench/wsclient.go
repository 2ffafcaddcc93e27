package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/bench/internal/loopdial"
)

// The client side speaks the Flashphoner Web SDK protocol over WebSocket,
// as e2e/hooks_test.go does: `connection` with an appKey, `getUserData`
// back with the sessionId; `sendData`, `DataStatusEvent` back.

// frame is what the benchmark reads of a server frame.
type frame struct {
	Message string            `json:"message"`
	Data    []json.RawMessage `json:"data"`
}

// httpClientFrom returns an HTTP client for WebSocket handshakes whose
// connections come from loopback source address local (nil: any), so that
// the churn's hundreds of thousands of short connections are spread over
// many addresses instead of exhausting one address's ephemeral ports.
func httpClientFrom(local *net.TCPAddr) *http.Client {
	d := loopdial.Dialer(local, 10*time.Second)
	return &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableCompression: true}}
}

// dialSession opens a WebSocket to url and connects to app key; it returns
// the connection and the sessionId from getUserData.
func dialSession(ctx context.Context, hc *http.Client, url, key string) (*websocket.Conn, string, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, "", err
	}
	msg := []byte(`{"message":"connection","data":[{"appKey":"` + key + `","clientVersion":"hooksbench"}]}`)
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		c.CloseNow()
		return nil, "", fmt.Errorf("connection: %w", err)
	}
	data, err := readNamed(ctx, c, "getUserData")
	if err != nil {
		c.CloseNow()
		return nil, "", err
	}
	var ud struct {
		SessionID string `json:"sessionId"`
	}
	if json.Unmarshal(data, &ud) != nil || ud.SessionID == "" {
		c.CloseNow()
		return nil, "", fmt.Errorf("getUserData without sessionId: %s", clip(data, 200))
	}
	return c, ud.SessionID, nil
}

// readNamed reads frames until one named name and returns its first data
// element; a `fail` is an error, anything else is skipped.
func readNamed(ctx context.Context, c *websocket.Conn, name string) (json.RawMessage, error) {
	for range 100 {
		_, b, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("bad frame %s: %v", clip(b, 200), err)
		}
		switch f.Message {
		case name:
			if len(f.Data) == 0 {
				return nil, fmt.Errorf("%s without data", name)
			}
			return f.Data[0], nil
		case "fail":
			return nil, fmt.Errorf("fail while waiting for %s: %s", name, clip(b, 200))
		}
	}
	return nil, fmt.Errorf("no %s within 100 frames", name)
}

// sendData runs one sendData → DataStatusEvent round trip for operation op
// and returns its time, written to read.
func sendData(ctx context.Context, c *websocket.Conn, op string) (time.Duration, error) {
	msg := []byte(`{"message":"sendData","data":[{"operationId":"` + op + `","payload":{"bench":"hooksbench"}}]}`)
	t0 := time.Now()
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return 0, err
	}
	data, err := readNamed(ctx, c, "DataStatusEvent")
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	var st struct {
		OperationID string `json:"operationId"`
		Status      string `json:"status"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, err
	}
	if st.OperationID != op || st.Status != "ACCEPTED" {
		return 0, fmt.Errorf("DataStatusEvent %s, want %s ACCEPTED", clip(data, 200), op)
	}
	return d, nil
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
