package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

// Gateway is the client sessions' App. It admits a connection only for a
// known appKey and, for apps with a backend URL, calls the backend as Web
// Call Server does: `connect` synchronously (a refusal fails the
// connection), client `sendData` as `OnDataEvent` (its answer decides
// DataStatusEvent), and status events through an ordered, at-least-once
// queue. Everything else goes to Next (the built-in app until the SIP
// gateway exists).
type Gateway struct {
	Apps   *Apps
	Next   client.App
	HTTP   *restclient.Client // nil: no backend calls (tests of the registry alone)
	Events *eventq.Queue
	NodeID string
	Log    *slog.Logger

	mu       sync.Mutex
	sessions map[string]*hookSession // by session id

	metricsOnce sync.Once
	m           *hookMetrics
}

// hookSession is what the gateway keeps per session: its app and the
// restClientConfig the backend's connect reply set.
type hookSession struct {
	app         App
	rest        RestClientConfig
	established bool
	failed      bool // connect failed: DISCONNECTED follows FAILED
}

func (g *Gateway) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}

// Connect refuses an unknown appKey, asks the backend (connect), and hands
// the request, overwritten as the backend's restClientConfig allows, on.
func (g *Gateway) Connect(ctx context.Context, s *client.Session, req map[string]any) (map[string]any, error) {
	key, _ := req["appKey"].(string)
	if key == "" {
		key = DefaultApp
		req["appKey"] = key
	}
	app, ok := g.Apps.ByKey(key)
	if !ok {
		return nil, fmt.Errorf("unknown appKey %q", key)
	}
	hs := &hookSession{app: app}
	g.mu.Lock()
	if g.sessions == nil {
		g.sessions = map[string]*hookSession{}
	}
	g.sessions[s.ID] = hs
	g.mu.Unlock()

	if g.HTTP != nil && app.URL != "" && app.Enabled("connect") {
		body := g.body(s, key, req, nil)
		resp := g.call(ctx, app, "connect", body)
		if resp.Status < 200 || resp.Status > 299 {
			g.failed(s, hs, fmt.Sprintf("connect: backend answered %d", resp.Status))
			return nil, fmt.Errorf("connect: backend answered %s", statusText(resp))
		}
		var reply map[string]any
		if len(resp.Body) > 0 && json.Unmarshal(resp.Body, &reply) == nil {
			if raw, ok := reply["restClientConfig"]; ok {
				b, _ := json.Marshal(raw)
				rc, err := ParseRestClientConfig(b)
				if err != nil {
					g.failed(s, hs, err.Error())
					return nil, fmt.Errorf("connect: backend's %v", err)
				}
				hs.rest = rc
			}
			req = overwrite(req, reply, hs.rest.For("connect"))
		}
	}
	cfg, err := g.Next.Connect(ctx, s, req)
	if err != nil {
		g.failed(s, hs, err.Error())
	}
	return cfg, err
}

// failed reports ConnectionStatusEvent FAILED; DISCONNECTED follows when
// the session closes.
func (g *Gateway) failed(s *client.Session, hs *hookSession, info string) {
	g.mu.Lock()
	hs.failed = true
	g.mu.Unlock()
	g.event(s, hs, "ConnectionStatusEvent", map[string]any{"status": "FAILED", "info": info})
}

// Established reports ConnectionStatusEvent ESTABLISHED.
func (g *Gateway) Established(s *client.Session) {
	if hs := g.session(s); hs != nil {
		g.mu.Lock()
		hs.established = true
		g.mu.Unlock()
		g.event(s, hs, "ConnectionStatusEvent", map[string]any{"status": "ESTABLISHED"})
	}
	g.Next.Established(s)
}

// Handle sends sendData to the backend as OnDataEvent, and passes the rest
// on.
func (g *Gateway) Handle(ctx context.Context, s *client.Session, action string, data json.RawMessage) error {
	hs := g.session(s)
	if action != "sendData" || hs == nil || g.HTTP == nil || hs.app.URL == "" || !hs.app.Enabled("OnDataEvent") ||
		hs.rest.For("OnDataEvent").Policy == Disable {
		return g.Next.Handle(ctx, s, action, data)
	}
	var req map[string]any
	if err := json.Unmarshal(data, &req); err != nil || req == nil {
		return errors.New("sendData needs an object with operationId and payload")
	}
	mc := hs.rest.For("OnDataEvent")
	resp := g.call(ctx, hs.app, "OnDataEvent", g.body(s, hs.app.Key, req, mc.RestExclude))
	status := map[string]any{"operationId": req["operationId"], "status": "ACCEPTED"}
	if resp.Status < 200 || resp.Status > 299 {
		g.log().Warn("OnDataEvent: backend refused", "app", hs.app.Name, "status", resp.Status)
		if mc.FailOnError {
			status["status"] = "FAILED"
			status["info"] = "OnDataEvent: backend answered " + statusText(resp)
		}
	}
	s.Send("DataStatusEvent", status)
	return nil
}

// Disconnected reports ConnectionStatusEvent DISCONNECTED for a session that
// was established.
func (g *Gateway) Disconnected(s *client.Session, reason string) {
	g.mu.Lock()
	hs := g.sessions[s.ID]
	delete(g.sessions, s.ID)
	g.mu.Unlock()
	if hs != nil && (hs.established || hs.failed) {
		g.event(s, hs, "ConnectionStatusEvent", map[string]any{"status": "DISCONNECTED", "info": reason})
	}
	g.Next.Disconnected(s, reason)
}

func (g *Gateway) session(s *client.Session) *hookSession {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sessions[s.ID]
}

// event queues a status event for the app's backend, in order per session.
func (g *Gateway) event(s *client.Session, hs *hookSession, method string, fields map[string]any) {
	mc := hs.rest.For(method)
	if g.Events == nil || hs.app.URL == "" || !hs.app.Enabled(method) || mc.Policy == Disable {
		return
	}
	body := g.body(s, hs.app.Key, fields, mc.RestExclude)
	if err := g.Events.Enqueue(s.ID, hs.app.Key, method, body); err != nil {
		// The queue is full or closed: say so loudly rather than lose it
		// without a trace.
		g.log().Error("hook event not queued", "app", hs.app.Name, "method", method, "err", err)
	}
}

// body is a hook's JSON: the fields plus nodeId, appKey and sessionId, as
// Web Call Server sends them, minus restExclude.
func (g *Gateway) body(s *client.Session, appKey string, fields map[string]any, exclude []string) []byte {
	m := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		m[k] = v
	}
	m["nodeId"], m["appKey"], m["sessionId"] = g.NodeID, appKey, s.ID
	for _, k := range exclude {
		delete(m, k)
	}
	b, _ := json.Marshal(m)
	return b
}

// overwrite applies a reply to a request as restPolicy says: OVERWRITE takes
// the restOverwrite fields from the reply, anything else keeps the request.
func overwrite(req, reply map[string]any, mc MethodConfig) map[string]any {
	if mc.Policy != Overwrite {
		return req
	}
	for _, f := range mc.RestOverwrite {
		if v, ok := reply[f]; ok {
			req[f] = v
		}
	}
	return req
}

func hookURL(a App, method string) string { return strings.TrimRight(a.URL, "/") + "/" + method }

func statusText(r restclient.Response) string {
	if r.Status == 0 {
		if r.Err != nil {
			return "nothing (" + r.Err.Error() + ")"
		}
		return "nothing"
	}
	return fmt.Sprint(r.Status)
}

// Sender delivers queued events to their app's backend: network errors,
// timeouts and 5xx are retried, other statuses are final.
func (g *Gateway) Sender() eventq.Sender {
	return func(ctx context.Context, e *eventq.Event) (bool, error) {
		app, ok := g.Apps.ByKey(e.App)
		if !ok || app.URL == "" {
			return false, fmt.Errorf("app %q has no backend any more", e.App)
		}
		resp := g.call(ctx, app, e.Method, e.Body)
		switch {
		case resp.Status >= 200 && resp.Status <= 299:
			return false, nil
		case resp.Status == 0 || resp.Status >= 500:
			return true, fmt.Errorf("%s: backend answered %s", e.Method, statusText(resp))
		}
		return false, fmt.Errorf("%s: backend answered %d", e.Method, resp.Status)
	}
}
