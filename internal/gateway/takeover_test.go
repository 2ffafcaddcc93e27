package gateway

import (
	"testing"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/client/clienttest"
	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/media"
)

// TestGatewayLostCalls: the session's stored values hold the calls that
// are up — an outgoing call from its start, an incoming one too, marked
// known to the client once offered — and not the ended ones. A node
// taking the session over (Adopt) reports each of them CallStatusEvent
// FAILED "owner node lost" with the call's fields, to the backend only
// for an incoming call the client was never offered, and forgets them:
// a second Adopt reports nothing.
func TestGatewayLostCalls(t *testing.T) {
	itf, err := config.ParseInterface("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := media.New(media.Config{Interfaces: []config.Interface{itf}, PortMin: 40000, PortMax: 40009,
		Live: config.NewLive(config.Defaults()), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	n := &fakeNotifier{}
	g := &Gateway{Notify: n, Media: eng}
	lost := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{}}
	g.Established(lost)
	ua := agentOf(lost)
	newCall := func(id string, incoming bool, info map[string]any) *call {
		c, err := ua.newCall(id, incoming, false, info)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newCall("out-1", false, map[string]any{"caller": "alice", "callee": "bob", "hasAudio": true})
	in := newCall("in-1", true, map[string]any{"caller": "carol", "callee": "alice"})
	newCall("in-2", true, map[string]any{"caller": "dave", "callee": "alice"})
	newCall("gone-1", false, map[string]any{"caller": "alice", "callee": "erin"}).end("FINISH", 200, "OK")
	in.mu.Lock()
	in.told = true // offerToClient's step, where the client learns the call
	in.keepLocked()
	in.mu.Unlock()
	kept := lost.Stored()
	if len(kept) != 3 || kept["call:gone-1"] != nil {
		t.Fatalf("stored %q, want the three calls up", kept)
	}

	// Another node: the session as the store hands it over.
	taken := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{}}
	for k, v := range kept {
		taken.SetStored(k, v)
	}
	n.mu.Lock()
	n.events = nil
	n.mu.Unlock()
	g.Adopt(taken)
	n.mu.Lock()
	got := n.events
	n.events = nil
	n.mu.Unlock()
	want := []struct {
		id, caller  string
		incoming    bool
		backendOnly bool
	}{{"out-1", "alice", false, false}, {"in-1", "carol", true, false}, {"in-2", "dave", true, true}}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %d CallStatusEvents", got, len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Name != client.CallStatusEvent || e.Data["callId"] != w.id || e.Data["status"] != "FAILED" ||
			e.Data["sipMessage"] != ownerLost || e.Data["caller"] != w.caller || e.Data["callee"] == nil ||
			e.Data["incoming"] != w.incoming || e.BackendOnly != w.backendOnly {
			t.Errorf("event %d: %+v, want %s FAILED %q (incoming %v, backend only %v)", i, e, w.id, ownerLost, w.incoming, w.backendOnly)
		}
		if name, _ := e.Frame(); (name == "finish") == w.backendOnly {
			t.Errorf("event %d: client frame %q", i, name)
		}
	}
	if got[0].Data["hasAudio"] != true {
		t.Errorf("the call's fields are lost: %v", got[0].Data)
	}
	if left := taken.Stored(); len(left) != 0 {
		t.Errorf("still stored after the report: %q", left)
	}
	if agentOf(taken) == nil {
		t.Error("Adopt did not create the session's user agent")
	}
	g.Adopt(taken)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.events) != 0 {
		t.Errorf("reported twice: %+v", n.events)
	}
}
