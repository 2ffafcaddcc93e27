package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/rtcgate/rtcgate/internal/client"
)

// fakeSession is a client.Session for the gateway alone.
type fakeSession struct {
	mu     sync.Mutex
	cfg    map[string]any
	values map[any]any
	frames []string
}

func (s *fakeSession) ID() string     { return "s1" }
func (s *fakeSession) AppKey() string { return "k" }
func (s *fakeSession) Config() map[string]any {
	return s.cfg
}
func (s *fakeSession) Value(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}
func (s *fakeSession) SetValue(key, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[key] = v
}
func (s *fakeSession) Send(message string, _ ...any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, message)
	return true
}

// fakeNotifier records the gateway's domain events.
type fakeNotifier struct {
	mu     sync.Mutex
	events []client.Event
}

func (n *fakeNotifier) Notify(_ client.Session, e client.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, e)
}

func (n *fakeNotifier) Ask(_ context.Context, _ client.Session, e client.Event) (map[string]any, error) {
	return e.Data, nil
}

// TestGatewayReportsDomainEvents: the gateway, without SIP, answers each
// table action through the Agent methods — errors for what needs SIP, the
// data's DataStatusEvent as an event through the Notifier — and writes no
// frame itself.
func TestGatewayReportsDomainEvents(t *testing.T) {
	n := &fakeNotifier{}
	g := &Gateway{Notify: n}
	s := &fakeSession{cfg: map[string]any{}, values: map[any]any{}}
	a, _ := client.ActionOf("hangup")
	if err := g.Handle(context.Background(), s, a, json.RawMessage(`{"callId":"c"}`)); err == nil || err.Error() != "not connected" {
		t.Fatalf("an action before Established: %v", err)
	}
	g.Established(s) // no sip* fields: a data-only session
	for _, c := range []struct{ message, data, want string }{
		{"hangup", `{"callId":"c"}`, "no such call"},
		{"hold", `{}`, "callId missing"},
		{"sendMessage", `{"to":"bob","body":"hi"}`, "no SIP account: connect with sipLogin and sipDomain"},
		{"sendIMMessage", `{"to":"bob","body":"hi"}`, "no SIP account: connect with sipLogin and sipDomain"},
		{"call", `{"callId":"c","callee":"bob","sdp":"v=0"}`, "no SIP account: connect with sipLogin and sipDomain"},
		{"call", `[1]`, "call needs an object (not an object)"},
		{"sendData", `{"operationId":"op"}`, ""},
	} {
		a, _ := client.ActionOf(c.message)
		err := g.Handle(context.Background(), s, a, json.RawMessage(c.data))
		if got := errText(err); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.message, c.data, got, c.want)
		}
	}
	if len(n.events) != 1 || n.events[0].Name != client.DataStatusEvent || n.events[0].Data["status"] != "ACCEPTED" {
		t.Errorf("events %+v, want DataStatusEvent ACCEPTED", n.events)
	}
	if len(s.frames) != 0 {
		t.Errorf("the gateway wrote frames itself: %v", s.frames)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
