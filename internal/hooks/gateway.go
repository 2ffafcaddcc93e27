package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

// Gateway is the client sessions' App. It admits a connection only for a
// known appKey and, for apps with a backend URL, calls the backend as Web
// Call Server does: `connect` synchronously (a refusal fails the
// connection); each client action (call, hangup, sendMessage…)
// synchronously before Next runs it, the backend's reply overwriting
// fields as the session's restClientConfig allows; client `sendData` as
// `OnDataEvent` (its answer decides DataStatusEvent); and status events —
// its own and those Next reports through Notify — through an ordered,
// at-least-once queue. Next is the SIP gateway (or the built-in app).
type Gateway struct {
	Apps   *Apps
	Next   client.App
	HTTP   *restclient.Client // nil: no backend calls (tests of the registry alone)
	Events *eventq.Queue
	NodeID string
	Log    *slog.Logger
	// SettleTimeout bounds how long a synchronous hook waits for the
	// session's queued events to be delivered first (settle).
	SettleTimeout time.Duration

	mu      sync.Mutex     // guards the hookSessions' flags
	closing sync.WaitGroup // Disconnected's reports still running

	metricsOnce sync.Once
	m           *hookMetrics
}

// hookSession is what the gateway keeps per session (as the session's
// Value, so that events after the session's end still find their app):
// its app and the restClientConfig the backend's connect reply set.
type hookSession struct {
	app         App
	rest        RestClientConfig
	established bool
	failed      bool // connect failed: DISCONNECTED follows FAILED
}

type sessionKey struct{}

// actionMethods are the client actions that are REST methods of their own
// name, called before the action runs.
var actionMethods = map[string]bool{
	"call": true, "answer": true, "hangup": true, "hold": true, "unhold": true,
	"transfer": true, "sendDtmf": true, "sendMessage": true,
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
	s.SetValue(sessionKey{}, hs)

	if g.hooked(hs, "connect") {
		body := g.body(s, key, req, nil)
		resp := g.call(ctx, app, "connect", body)
		if !ok2xx(resp) {
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

// hooked reports whether method goes to the session's backend.
func (g *Gateway) hooked(hs *hookSession, method string) bool {
	return hs != nil && g.HTTP != nil && hs.app.URL != "" && hs.app.Enabled(method) &&
		hs.rest.For(method).Policy != Disable
}

func ok2xx(r restclient.Response) bool { return r.Status >= 200 && r.Status <= 299 }

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
	if hs := session(s); hs != nil {
		g.mu.Lock()
		hs.established = true
		g.mu.Unlock()
		g.event(s, hs, "ConnectionStatusEvent", map[string]any{"status": "ESTABLISHED"})
	}
	g.Next.Established(s)
}

// Handle calls the backend for the client's action — sendData as
// OnDataEvent, answered here — and runs the others with Next.
func (g *Gateway) Handle(ctx context.Context, s *client.Session, action string, data json.RawMessage) error {
	hs := session(s)
	switch {
	case action == "sendData" && g.hooked(hs, "OnDataEvent"):
		return g.onData(ctx, s, hs, data)
	case actionMethods[action] && g.hooked(hs, action):
		var req map[string]any
		if err := json.Unmarshal(data, &req); err != nil || req == nil {
			return fmt.Errorf("%s needs an object", action)
		}
		mc := hs.rest.For(action)
		g.settle(ctx, s)
		resp := g.call(ctx, hs.app, action, g.body(s, hs.app.Key, req, mc.RestExclude))
		if !ok2xx(resp) {
			g.log().Warn("backend refused", "app", hs.app.Name, "method", action, "status", resp.Status)
			if mc.FailOnError {
				return fmt.Errorf("%s: backend answered %s", action, statusText(resp))
			}
		} else if mc.Policy == Overwrite {
			var reply map[string]any
			if json.Unmarshal(resp.Body, &reply) == nil && reply != nil {
				req = overwrite(req, reply, mc)
				data, _ = json.Marshal(req)
			}
		}
	}
	return g.Next.Handle(ctx, s, action, data)
}

// onData sends a client's sendData to the backend as OnDataEvent; the
// reply decides DataStatusEvent.
func (g *Gateway) onData(ctx context.Context, s *client.Session, hs *hookSession, data json.RawMessage) error {
	var req map[string]any
	if err := json.Unmarshal(data, &req); err != nil || req == nil {
		return errors.New("sendData needs an object with operationId and payload")
	}
	mc := hs.rest.For("OnDataEvent")
	resp := g.call(ctx, hs.app, "OnDataEvent", g.body(s, hs.app.Key, req, mc.RestExclude))
	status := map[string]any{"operationId": req["operationId"], "status": "ACCEPTED"}
	if !ok2xx(resp) {
		g.log().Warn("OnDataEvent: backend refused", "app", hs.app.Name, "status", resp.Status)
		if mc.FailOnError {
			status["status"] = "FAILED"
			status["info"] = "OnDataEvent: backend answered " + statusText(resp)
		}
	}
	s.Send("DataStatusEvent", status)
	return nil
}

// Notify sends a status event to the client (as frame, without the
// session's clientExclude fields) and to the backend (queued, in order).
func (g *Gateway) Notify(s *client.Session, event, frame string, data map[string]any) {
	hs := session(s)
	if frame != "" {
		out := data
		if hs != nil {
			if ex := hs.rest.For(event).ClientExclude; len(ex) > 0 {
				out = make(map[string]any, len(data))
				for k, v := range data {
					out[k] = v
				}
				for _, k := range ex {
					delete(out, k)
				}
			}
		}
		s.Send(frame, out)
	}
	if hs != nil {
		g.event(s, hs, event, data)
	}
}

// Ask calls a deciding hook (OnCallEvent) synchronously: a non-2xx reply
// or none is a refusal; OVERWRITE applies the reply to data.
func (g *Gateway) Ask(ctx context.Context, s *client.Session, event string, data map[string]any) (map[string]any, error) {
	hs := session(s)
	if !g.hooked(hs, event) {
		return data, nil
	}
	mc := hs.rest.For(event)
	g.settle(ctx, s)
	resp := g.call(ctx, hs.app, event, g.body(s, hs.app.Key, data, mc.RestExclude))
	if !ok2xx(resp) {
		return data, fmt.Errorf("%s: backend answered %s", event, statusText(resp))
	}
	var reply map[string]any
	if json.Unmarshal(resp.Body, &reply) == nil && reply != nil {
		data = overwrite(data, reply, mc)
	}
	return data, nil
}

// Disconnected lets Next end the session's calls and registration first —
// their events precede — then reports ConnectionStatusEvent DISCONNECTED
// for a session that was established (or failed). It runs on its own
// goroutine: ending a SIP registration takes a round trip, and the client
// layer calls this from paths that must not wait (idle sweeps). Wait
// waits for these.
func (g *Gateway) Disconnected(s *client.Session, reason string) {
	g.closing.Add(1)
	go func() {
		defer g.closing.Done()
		g.Next.Disconnected(s, reason)
		hs := session(s)
		if hs == nil {
			return
		}
		g.mu.Lock()
		report := hs.established || hs.failed
		g.mu.Unlock()
		if report {
			g.event(s, hs, "ConnectionStatusEvent", map[string]any{"status": "DISCONNECTED", "info": reason})
		}
	}()
}

// Wait waits until every Disconnected has reported (shutdown: before the
// event queue closes), or ctx ends.
func (g *Gateway) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { g.closing.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settle lets the session's queued events reach the backend before a
// synchronous hook, so that the backend hears of a session's doings in the
// order they happened (RING before the client's answer). A backend that is
// slow to take them delays the hook by one hooks-timeout at most; then the
// hook goes anyway — it must not wait out an outage.
func (g *Gateway) settle(ctx context.Context, s *client.Session) {
	if g.Events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.SettleTimeout)
	defer cancel()
	g.Events.Idle(ctx, s.ID)
}

func session(s *client.Session) *hookSession {
	hs, _ := s.Value(sessionKey{}).(*hookSession)
	return hs
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
