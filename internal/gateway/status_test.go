package gateway

import (
	"testing"

	"github.com/rtcgate/rtcgate/internal/client/clienttest"
	"github.com/rtcgate/rtcgate/internal/sipua"
)

// TestStatus: a session's SIP side as the status page reads it — its
// account, the last REGISTER outcome, its calls with the last status and
// when they were answered; nothing for a session the gateway does not know.
func TestStatus(t *testing.T) {
	g := &Gateway{Notify: &fakeNotifier{}}
	if _, ok := g.Status(&clienttest.Session{SessionID: "unknown"}); ok {
		t.Fatal("a session never established has a SIP status")
	}
	s := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{"sipLogin": "alice", "sipDomain": "example.com", "sipTransport": "TCP"}}
	g.Established(s) // no SIP stack: the account is not created, the identity is known
	st, ok := g.Status(s)
	if !ok || st.Account != "alice@example.com" || st.Transport != "tcp" || st.Registration != "" || len(st.Calls) != 0 {
		t.Fatalf("status = %+v %v", st, ok)
	}
	ua := agentOf(s)
	ua.registration(sipua.Registered, 200, "OK")
	first, err := ua.newCall("c1", false, false, map[string]any{"caller": "alice", "callee": "bob"})
	if err != nil {
		t.Fatal(err)
	}
	second, _ := ua.newCall("c2", true, false, map[string]any{"caller": "carol", "callee": "alice"})
	first.report("RING", 180, "Ringing")
	second.report("ESTABLISHED", 200, "OK")
	st, _ = g.Status(s)
	if st.Registration != "REGISTERED" || st.RegistrationCode != 200 || st.RegistrationAt.IsZero() || len(st.Calls) != 2 {
		t.Fatalf("status = %+v", st)
	}
	c1, c2 := st.Calls[0], st.Calls[1]
	if c1.ID != "c1" || c1.Incoming || c1.Caller != "alice" || c1.Callee != "bob" || c1.Status != "RING" || !c1.Answered.IsZero() || c1.MediaID == "" {
		t.Errorf("first call = %+v", c1)
	}
	if c2.ID != "c2" || !c2.Incoming || c2.Status != "ESTABLISHED" || c2.Answered.IsZero() || c2.Started.Before(c1.Started) {
		t.Errorf("second call = %+v", c2)
	}
}
