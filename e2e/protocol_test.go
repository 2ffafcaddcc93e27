package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// TestEveryActionWaitsForItsHook iterates the client protocol's table: for
// every client action that reaches the SIP gateway, a backend answering 403
// under restOnError FAIL stops it — the client gets `fail` naming the
// action and the status, and no SIP request leaves rtcgate (Kamailio, which
// record-routes calls, logs every request it gets). Aliases run the hook of
// the method they run as (sendIMMessage: sendMessage).
func TestEveryActionWaitsForItsHook(t *testing.T) {
	echo := testpeer.StartSipp(t, "uas_echo")
	e := newSIPEnv(t, map[string]string{"echo": echo.Addr})
	var mu sync.Mutex
	refused := "" // the REST method the backend answers 403
	e.b.refuse = func(method string, _ map[string]any) int {
		mu.Lock()
		defer mu.Unlock()
		if method == refused {
			return 403
		}
		return 0
	}
	failAll := map[string]any{}
	for _, m := range hooks.Methods {
		failAll[m] = map[string]any{"restOnError": "FAIL"}
	}
	e.b.reply = func(method string, body map[string]any) map[string]any {
		if method == "connect" {
			return map[string]any{"restClientConfig": failAll}
		}
		return body
	}
	refuse := func(method string) {
		mu.Lock()
		refused = method
		mu.Unlock()
	}

	c := e.connect(t, "alice", testpeer.DefaultUsers["alice"], true)
	c.expect(t, "registered", nil)
	rtp := newRTPPeer(t)
	// A call that is up, for the in-call actions, and one ringing, for
	// answer.
	c.send(t, "call", map[string]any{"callId": "up", "callee": "echo", "sdp": rtp.offer()})
	c.expect(t, "talk", func(m map[string]any) bool { return m["callId"] == "up" && m["status"] == "ESTABLISHED" })
	uac := testpeer.StartSipp(t, "uac_call_rejected", "-s", "alice", "-m", "1", e.k.Addr)
	ringing := c.expect(t, "notifyIncomingCall", nil).obj()["callId"].(string)

	requests := map[string]map[string]any{
		"call":          {"callId": "refused-call", "callee": "echo", "sdp": rtp.offer()},
		"answer":        {"callId": ringing, "sdp": rtp.offer()},
		"hangup":        {"callId": "up"},
		"hold":          {"callId": "up"},
		"unhold":        {"callId": "up"},
		"transfer":      {"callId": "up", "target": "carol"},
		"sendDtmf":      {"callId": "up", "dtmf": "5", "type": "INFO"},
		"sendMessage":   {"id": "refused-1", "to": "alice", "body": "refused sendMessage"},
		"sendIMMessage": {"id": "refused-2", "to": "alice", "body": "refused sendIMMessage"},
	}
	tested := 0
	sentinels := map[string]bool{} // Call-IDs of the sentinel MESSAGEs
	for _, a := range client.Actions {
		if !a.SIP {
			continue
		}
		req, ok := requests[a.Message]
		if !ok {
			t.Fatalf("client.Actions has %s, which reaches SIP: give this test a request for it", a.Message)
		}
		tested++
		refuse(a.Method)
		before := len(requestsFrom(e.k.Logs(), "alice"))
		c.send(t, a.Message, req)
		f := c.expect(t, "fail", func(m map[string]any) bool { return m["apiMethod"] == a.Message }).obj()
		if want := a.Method + ": backend answered 403"; f["info"] != want {
			t.Errorf("%s: fail info %q, want %q", a.Message, f["info"], want)
		}
		// A message to herself, allowed: once it is back, any request
		// the refused action had made would have reached Kamailio first.
		refuse("")
		sentinel := "after " + a.Message
		c.send(t, "sendMessage", map[string]any{"to": "alice", "body": sentinel})
		c.expect(t, "OnMessageEvent", func(m map[string]any) bool { return m["body"] == sentinel })
		// Kamailio challenges each MESSAGE (407), so the sentinel is
		// logged twice under one Call-ID; lines of earlier sentinels may
		// still trickle into the log.
		var since []string
		waitCond(t, "Kamailio's log of the sentinel MESSAGE", func() bool {
			since = requestsFrom(e.k.Logs(), "alice")[before:]
			n := map[string]int{}
			for _, l := range since {
				if n[callIDOf(l)]++; n[callIDOf(l)] == 2 && !sentinels[callIDOf(l)] {
					sentinels[callIDOf(l)] = true
					return true
				}
			}
			return false
		})
		for _, l := range since {
			if !strings.HasPrefix(l, "MESSAGE ") || !sentinels[callIDOf(l)] {
				t.Errorf("%s refused by the backend, yet rtcgate sent %s", a.Message, l)
			}
		}
	}
	if tested < 9 {
		t.Fatalf("only %d actions reach SIP in client.Actions", tested)
	}

	// The backend heard every refused method and nothing ran: no second
	// call, no hold, no transfer, no answer, no refused message delivered.
	e.b.mu.Lock()
	for _, h := range e.b.hooks {
		body := fmt.Sprint(h.Body)
		switch {
		case h.Method == "CallStatusEvent" && (h.Body["callId"] == "refused-call" || h.Body["status"] == "HOLD" ||
			(h.Body["callId"] == ringing && h.Body["status"] == "ESTABLISHED")),
			h.Method == "TransferStatusEvent",
			h.Method == "OnMessageEvent" && strings.Contains(body, "refused "):
			t.Errorf("a refused action ran: %s %v", h.Method, h.Body)
		}
	}
	e.b.mu.Unlock()

	// Allowed, the same actions run.
	c.send(t, "hangup", map[string]any{"callId": ringing})
	c.expect(t, "finish", func(m map[string]any) bool { return m["callId"] == ringing })
	c.send(t, "hangup", map[string]any{"callId": "up"})
	c.expect(t, "finish", func(m map[string]any) bool { return m["callId"] == "up" && m["status"] == "FINISH" })
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// requestsFrom lists the requests Kamailio logged from user (its xlog
// line "req METHOD R-URI from FROM (…) cid=CALL-ID"), but REGISTERs, as
// "METHOD R-URI … cid=CALL-ID".
func requestsFrom(logs, user string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		i := strings.Index(l, "req ")
		if i < 0 || !strings.Contains(l, " from sip:"+user+"@") || strings.Contains(l, "req REGISTER ") {
			continue
		}
		out = append(out, strings.TrimSpace(l[i+4:]))
	}
	return out
}

// callIDOf is the Call-ID of a line of requestsFrom.
func callIDOf(line string) string { return line[strings.LastIndex(line, "cid=")+4:] }

// waitCond waits for ok, bounded: what it waits for is a peer's log, which
// signals nothing.
func waitCond(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
