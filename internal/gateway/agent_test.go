package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/client/clienttest"
)

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
	s := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{}}
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
	if f := s.Sent(); len(f) != 0 {
		t.Errorf("the gateway wrote frames itself: %v", f)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
