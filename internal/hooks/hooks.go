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

// Hooks is the client sessions' Handler. It admits a connection only for a
// known appKey and, for apps with a backend URL, calls the backend as Web
// Call Server does: `connect` synchronously (a refusal fails the
// connection); each client action synchronously, as the REST method its row
// of client.Actions names, before Next runs it — the backend's reply
// overwriting fields as the session's restClientConfig allows; and events —
// its own and those Next reports through Notify — through an ordered,
// at-least-once queue. Next is the SIP gateway (or client.BuiltIn).
type Hooks struct {
	Apps   *Apps
	Next   client.Handler
	HTTP   *restclient.Client // nil: no backend calls (tests of the registry alone)
	Events *eventq.Queue
	NodeID string
	Log    *slog.Logger
	// SettleTimeout bounds how long a synchronous hook waits for the
	// session's queued events to be delivered first (settle).
	SettleTimeout time.Duration

	mu sync.Mutex // guards the hookSessions' flags and the closing count
	// closing counts Disconnected's reports still running; idle is closed
	// when it falls to zero. Not a WaitGroup: sessions may end (and
	// Disconnected start) while Wait is waiting, and a WaitGroup's Add
	// from zero must not race its Wait.
	closing int
	idle    chan struct{}

	metricsOnce sync.Once
	m           *hookMetrics
}

// hookSession is what the hooks keep per session (as the session's Value,
// so that events after the session's end still find their app): its app and
// the restClientConfig the backend's connect reply set.
type hookSession struct {
	app         App
	rest        RestClientConfig
	established bool
	failed      bool // connect failed: DISCONNECTED follows FAILED
}

type sessionKey struct{}

func (g *Hooks) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}

// Connect refuses an unknown appKey, asks the backend (connect), and hands
// the request, overwritten as the backend's restClientConfig allows, on.
func (g *Hooks) Connect(ctx context.Context, s client.Session, req map[string]any) (map[string]any, error) {
	key, _ := req["appKey"].(string)
	if key == "" {
		key = DefaultApp
		req["appKey"] = key
	}
	app, ok := g.Apps.ByKey(key)
	if !ok {
		return nil, errors.New("unknown appKey") // not echoed: client input
	}
	hs := &hookSession{app: app}
	s.SetValue(sessionKey{}, hs)

	if method := client.Connection.Method; g.hooked(hs, method) {
		body := g.body(s, key, req, nil)
		resp := g.call(ctx, app, method, body, newEventID())
		if !ok2xx(resp) {
			g.log().Warn("backend refused", "app", hs.app.Name, "method", method, "status", resp.Status, "err", resp.Err)
			g.failed(s, hs, method+": "+refusal(resp))
			return nil, errors.New(method + ": " + refusal(resp))
		}
		var reply map[string]any
		if len(resp.Body) > 0 && json.Unmarshal(resp.Body, &reply) == nil {
			if raw, ok := reply["restClientConfig"]; ok {
				b, _ := json.Marshal(raw)
				rc, err := ParseRestClientConfig(b)
				if err != nil {
					g.log().Warn("backend's restClientConfig refused", "app", hs.app.Name, "err", err)
					g.failed(s, hs, err.Error())
					return nil, errors.New(method + ": the backend's reply has an invalid restClientConfig")
				}
				hs.rest = rc
			}
			req = overwrite(req, reply, hs.rest.For(method))
		}
	}
	cfg, err := g.Next.Connect(ctx, s, req)
	if err != nil {
		g.failed(s, hs, err.Error())
	}
	return cfg, err
}

// hooked reports whether method goes to the session's backend.
func (g *Hooks) hooked(hs *hookSession, method string) bool {
	return hs != nil && g.HTTP != nil && hs.app.URL != "" && hs.app.Enabled(method) &&
		hs.rest.For(method).Policy != Disable
}

// ok2xx: a 2xx reply, read whole (a reply over the size limit is no answer
// to act on).
func ok2xx(r restclient.Response) bool { return r.Status >= 200 && r.Status <= 299 && r.Err == nil }

// failed reports ConnectionStatusEvent FAILED; DISCONNECTED follows when
// the session closes.
func (g *Hooks) failed(s client.Session, hs *hookSession, info string) {
	g.mu.Lock()
	hs.failed = true
	g.mu.Unlock()
	g.event(s, hs, client.ConnectionStatusEvent, map[string]any{"status": "FAILED", "info": info})
}

// Established reports ConnectionStatusEvent ESTABLISHED.
func (g *Hooks) Established(s client.Session) {
	if hs := session(s); hs != nil {
		g.mu.Lock()
		hs.established = true
		g.mu.Unlock()
		g.event(s, hs, client.ConnectionStatusEvent, map[string]any{"status": "ESTABLISHED"})
	}
	g.Next.Established(s)
}

// Adopt takes over a session of a lost node (cluster): the session's app
// again, ConnectionStatusEvent ESTABLISHED with info "taken over from a
// lost node" from this node, then Next adopts it (the gateway reports the
// calls that were up there ended and registers the SIP account again), or
// is told Established. The connect hook is not called again; a
// restClientConfig the backend gave at connect is not kept.
func (g *Hooks) Adopt(s client.Session) {
	if app, ok := g.Apps.ByKey(s.AppKey()); ok {
		hs := &hookSession{app: app, established: true}
		s.SetValue(sessionKey{}, hs)
		g.event(s, hs, client.ConnectionStatusEvent, map[string]any{"status": "ESTABLISHED", "info": "taken over from a lost node"})
	}
	if ad, ok := g.Next.(client.Adopter); ok {
		ad.Adopt(s)
		return
	}
	g.Next.Established(s)
}

// Handle calls the backend for the client's action — the REST method of
// its row of client.Actions — and then lets Next run it. A refusal (a
// non-2xx reply, none, or one over the size limit) stops the action under
// restOnError FAIL: the client gets `fail` naming the action and the
// status, or the event the action's row makes of a refusal.
func (g *Hooks) Handle(ctx context.Context, s client.Session, a *client.Action, data json.RawMessage) error {
	hs := session(s)
	if a.Method != "" && g.hooked(hs, a.Method) {
		var req map[string]any
		if err := json.Unmarshal(data, &req); err != nil || req == nil {
			return fmt.Errorf("%s needs an object", a.Message)
		}
		mc := hs.rest.For(a.Method)
		g.settle(ctx, s)
		resp := g.call(ctx, hs.app, a.Method, g.body(s, hs.app.Key, req, mc.RestExclude), newEventID())
		if !ok2xx(resp) {
			g.log().Warn("backend refused", "app", hs.app.Name, "method", a.Method, "status", resp.Status, "err", resp.Err)
			if mc.FailOnError {
				info := a.Method + ": " + refusal(resp)
				if a.Refused != nil {
					g.Notify(s, a.Refused(req, info))
					return nil
				}
				return errors.New(info)
			}
		} else if mc.Policy == Overwrite {
			var reply map[string]any
			if json.Unmarshal(resp.Body, &reply) == nil && reply != nil {
				req = overwrite(req, reply, mc)
				data, _ = json.Marshal(req)
			}
		}
	}
	return g.Next.Handle(ctx, s, a, data)
}

// Notify sends an event to the client (as its frame, without the session's
// clientExclude fields) and, for a REST method, to the backend (queued, in
// order). The event is queued before the frame goes out: an action the
// client takes on the frame (a call once registered, a hangup once
// talking) settles after it, so its hook cannot overtake the event — with
// Redis's queue the append is a round trip the client could otherwise win.
func (g *Hooks) Notify(s client.Session, e client.Event) {
	hs := session(s)
	if hs != nil && e.IsREST() && !e.ClientOnly {
		g.event(s, hs, e.Name, e.Data)
	}
	out := e
	if hs != nil {
		if ex := hs.rest.For(e.Name).ClientExclude; len(ex) > 0 {
			out.Data = make(map[string]any, len(e.Data))
			for k, v := range e.Data {
				out.Data[k] = v
			}
			for _, k := range ex {
				delete(out.Data, k)
			}
		}
	}
	client.SendEvent(s, out)
}

// Ask calls a deciding hook (OnCallEvent) synchronously: a non-2xx reply
// or none is a refusal; OVERWRITE applies the reply to data.
func (g *Hooks) Ask(ctx context.Context, s client.Session, e client.Event) (map[string]any, error) {
	hs := session(s)
	data := e.Data
	if !g.hooked(hs, e.Name) {
		return data, nil
	}
	mc := hs.rest.For(e.Name)
	g.settle(ctx, s)
	resp := g.call(ctx, hs.app, e.Name, g.body(s, hs.app.Key, data, mc.RestExclude), newEventID())
	if !ok2xx(resp) {
		return data, fmt.Errorf("%s: %s", e.Name, refusal(resp))
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
func (g *Hooks) Disconnected(s client.Session, reason string) {
	g.mu.Lock()
	if g.closing == 0 {
		g.idle = make(chan struct{})
	}
	g.closing++
	g.mu.Unlock()
	go func() {
		defer func() {
			g.mu.Lock()
			if g.closing--; g.closing == 0 {
				close(g.idle)
			}
			g.mu.Unlock()
		}()
		g.Next.Disconnected(s, reason)
		hs := session(s)
		if hs == nil {
			return
		}
		g.mu.Lock()
		report := hs.established || hs.failed
		g.mu.Unlock()
		if report {
			g.event(s, hs, client.ConnectionStatusEvent, map[string]any{"status": "DISCONNECTED", "info": reason})
		}
	}()
}

// Wait waits until every Disconnected has reported — those that start
// while it waits too (shutdown: before the event queue closes) — or ctx
// ends.
func (g *Hooks) Wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		n, idle := g.closing, g.idle
		g.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settle lets the session's queued events reach the backend before a
// synchronous hook, so that the backend hears of a session's doings in the
// order they happened (RING before the client's answer). A backend that is
// slow to take them delays the hook by one hooks-timeout at most; then the
// hook goes anyway — it must not wait out an outage.
func (g *Hooks) settle(ctx context.Context, s client.Session) {
	if g.Events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.SettleTimeout)
	defer cancel()
	g.Events.Idle(ctx, s.ID())
}

func session(s client.Session) *hookSession {
	hs, _ := s.Value(sessionKey{}).(*hookSession)
	return hs
}

// event queues a status event for the app's backend, in order per session.
func (g *Hooks) event(s client.Session, hs *hookSession, method string, fields map[string]any) {
	mc := hs.rest.For(method)
	if g.Events == nil || hs.app.URL == "" || !hs.app.Enabled(method) || mc.Policy == Disable {
		return
	}
	body := g.body(s, hs.app.Key, fields, mc.RestExclude)
	if err := g.Events.Enqueue(s.ID(), hs.app.Key, method, body); err != nil {
		// The queue is full or closed: say so loudly rather than lose it
		// without a trace.
		g.log().Error("hook event not queued", "app", hs.app.Name, "method", method, "err", err)
	}
}

// body is a hook's JSON: the fields plus nodeId, appKey and sessionId, as
// Web Call Server sends them, minus restExclude.
func (g *Hooks) body(s client.Session, appKey string, fields map[string]any, exclude []string) []byte {
	m := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		m[k] = v
	}
	m["nodeId"], m["appKey"], m["sessionId"] = g.NodeID, appKey, s.ID()
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

// refusal is how a client is told of a backend's refusal: the status, or
// that none came; never the backend's URL or the error's details, which
// the log keeps.
func refusal(r restclient.Response) string {
	switch {
	case r.Status == 0:
		return "backend did not answer"
	case r.Err != nil:
		return fmt.Sprintf("backend answered %d with a reply that could not be read whole", r.Status)
	}
	return fmt.Sprintf("backend answered %d", r.Status)
}

// Sender delivers queued events to their app's backend: network errors,
// timeouts and 5xx are retried, other statuses are final.
func (g *Hooks) Sender() eventq.Sender {
	return func(ctx context.Context, e *eventq.Event) (bool, error) {
		app, ok := g.Apps.ByKey(e.App)
		if !ok || app.URL == "" {
			return false, fmt.Errorf("app %q has no backend any more", e.App)
		}
		resp := g.call(ctx, app, e.Method, e.Body, e.UID())
		switch {
		case resp.Status >= 200 && resp.Status <= 299:
			return false, nil
		case resp.Status == 0 || resp.Status >= 500:
			if resp.Err != nil {
				return true, fmt.Errorf("%s: %w", e.Method, resp.Err)
			}
			return true, fmt.Errorf("%s: backend answered %d", e.Method, resp.Status)
		}
		return false, fmt.Errorf("%s: backend answered %d", e.Method, resp.Status)
	}
}
