package client

import (
	"reflect"
	"testing"
)

// TestProtocolTables: each message and event is named once, every row
// has what its kind needs, and the REST methods are Web Call Server's.
func TestProtocolTables(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range Actions {
		if seen[a.Message] {
			t.Errorf("message %s twice", a.Message)
		}
		seen[a.Message] = true
		switch a.Run {
		case RunCore:
			if a.core == nil {
				t.Errorf("%s: core row without a core handler", a.Message)
			}
		case RunAgent:
			if a.call == nil || a.Method == "" {
				t.Errorf("%s: agent row without a handler or a REST method", a.Message)
			}
		case RunUnsupported:
			if a.Method != "" || a.SIP {
				t.Errorf("%s: unsupported row with a method", a.Message)
			}
		}
	}
	for _, e := range Events {
		if seen[e.Name] {
			t.Errorf("event %s twice", e.Name)
		}
		seen[e.Name] = true
		if !e.REST && e.Frame == nil {
			t.Errorf("event %s reaches nobody", e.Name)
		}
	}
	want := []string{"connect", "call", "answer", "hangup", "hold", "unhold", "transfer", "sendDtmf", "sendMessage", "OnDataEvent",
		"ConnectionStatusEvent", "RegistrationStatusEvent", "CallStatusEvent", "MessageStatusEvent",
		"OnMessageEvent", "OnCallEvent", "TransferStatusEvent", "DataStatusEvent"}
	if !reflect.DeepEqual(RESTMethods, want) {
		t.Errorf("RESTMethods = %v, want %v", RESTMethods, want)
	}
	if a, _ := ActionOf("sendIMMessage"); a.Method != "sendMessage" {
		t.Errorf("sendIMMessage runs the hook of %q, want sendMessage", a.Method)
	}
}

// TestEventFrames: the frames the SDK expects for the events.
func TestEventFrames(t *testing.T) {
	for _, c := range []struct {
		e    Event
		want string
		n    int
	}{
		{Event{Name: CallStatusEvent, Data: map[string]any{"status": "ESTABLISHED"}}, "talk", 1},
		{Event{Name: CallStatusEvent, Data: map[string]any{"status": "BUSY"}}, "finish", 1},
		{Event{Name: CallStatusEvent, Data: map[string]any{"status": "RING"}, BackendOnly: true}, "", 0},
		{Event{Name: RegistrationStatusEvent, Data: map[string]any{"status": "REGISTERED"}}, "registered", 1},
		{Event{Name: RegistrationStatusEvent, Data: map[string]any{"status": "UNREGISTERED"}}, "", 0},
		{Event{Name: RegistrationStatusEvent, Data: map[string]any{"status": "FAILED", "sipStatus": 403}}, "fail", 1},
		{Event{Name: ConnectionStatusEvent, Data: map[string]any{"status": "ESTABLISHED"}}, "", 0},
		{Event{Name: RemoteSDP, Data: map[string]any{"callId": "c", "sdp": "v=0"}}, "setRemoteSDP", 2},
		{Event{Name: TransferStatusEvent, Data: map[string]any{"status": "ACCEPTED"}}, "notifyTransferEvent", 1},
		{Fail("hold", "x"), "fail", 1},
		{Event{Name: "nonsense"}, "", 0},
	} {
		name, data := c.e.Frame()
		if name != c.want || len(data) != c.n {
			t.Errorf("%s %v: frame %q with %d elements, want %q with %d", c.e.Name, c.e.Data, name, len(data), c.want, c.n)
		}
	}
}
