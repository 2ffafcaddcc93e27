package client

import (
	"testing"
	"time"
)

// TestEachSession: the status page's view of the sessions — oldest first,
// with their app and transport ("" while waiting for a resume) — and visit
// can stop early.
func TestEachSession(t *testing.T) {
	app := newEndApp()
	h, addr := wsServer(t, Options{IdleTimeout: time.Hour}, app)
	first, s1, _ := connected(t, h, addr)
	_, s2, _ := connected(t, h, addr)
	first.CloseNow() // no close frame: s1 waits for a resume
	waitFor(t, "the session to detach", 5*time.Second, func() bool {
		s1.mu.Lock()
		defer s1.mu.Unlock()
		return s1.transport == nil
	})
	var got []SessionInfo
	h.EachSession(func(si SessionInfo) bool { got = append(got, si); return true })
	if len(got) != 2 || got[0].Session.ID() != s1.id || got[1].Session.ID() != s2.id {
		t.Fatalf("sessions = %+v, want s1 then s2", got)
	}
	for i, want := range []string{"", "websocket"} {
		si := got[i]
		if si.Transport != want || si.App != "a" || !si.Established || si.RemoteIP != "127.0.0.1" || si.Created.IsZero() {
			t.Errorf("session %d = %+v, want transport %q, app a, established, from 127.0.0.1", i, si, want)
		}
	}
	n := 0
	h.EachSession(func(SessionInfo) bool { n++; return false })
	if n != 1 {
		t.Errorf("visit returning false was called %d times", n)
	}
}
