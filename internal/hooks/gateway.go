package hooks

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/rtcgate/rtcgate/internal/client"
)

// Gateway is the client sessions' App: it admits a connection only for a
// known appKey, as Web Call Server does, and hands everything else to next
// (the built-in app until REST hooks are sent).
type Gateway struct {
	Apps *Apps
	Next client.App
}

// Connect refuses an unknown appKey; a request without one gets defaultApp.
func (g *Gateway) Connect(ctx context.Context, s *client.Session, req map[string]any) (map[string]any, error) {
	key, _ := req["appKey"].(string)
	if key == "" {
		key = DefaultApp
		req["appKey"] = key
	}
	if _, ok := g.Apps.ByKey(key); !ok {
		return nil, fmt.Errorf("unknown appKey %q", key)
	}
	return g.Next.Connect(ctx, s, req)
}

// Established passes on.
func (g *Gateway) Established(s *client.Session) { g.Next.Established(s) }

// Handle passes on.
func (g *Gateway) Handle(ctx context.Context, s *client.Session, action string, data json.RawMessage) error {
	return g.Next.Handle(ctx, s, action, data)
}

// Disconnected passes on.
func (g *Gateway) Disconnected(s *client.Session, reason string) { g.Next.Disconnected(s, reason) }
