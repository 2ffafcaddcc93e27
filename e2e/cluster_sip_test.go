package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// TestClusterSIPTakeover: a WebSocket client of node A registers with
// Kamailio and calls a sipp UAS through it; A is killed with SIGKILL. The
// client resumes on node B (sessionId, authToken, ack) and, as does the
// backend, hears the call ended — CallStatusEvent FAILED "owner node
// lost", from B — then B registers the account again (REGISTERED from
// B). Kamailio now reaches the user at B: a sipp UAC calling it is
// offered to the client on B, which answers; sipp's BYE ends it. B's
// /metrics count the takeover, the lost call and B's session in the
// registry. The sipp UAS keeps the dead node's leg (no BYE can come) until
// the test stops it.
func TestClusterSIPTakeover(t *testing.T) {
	uas := testpeer.StartSipp(t, "uas_echo")
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{Routes: map[string]string{"echo": uas.Addr}})
	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	b := newBackend(t)
	dir, cfgFile := t.TempDir(), sipAppConfig(t, b)
	node := func(id string) *rtcgate {
		return start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--cluster-heartbeat", "250ms", "--cluster-node-ttl", "2s",
			"--hooks-redis-claim-after", "1s")...)
	}
	a, bn := node("a"), node("b")
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("kamailio:\n" + k.Logs())
			t.Log("rtcgate b:\n" + bn.Logs())
		}
	})
	e := &sipEnv{r: a, k: k, b: b, url: "ws://" + a.addr(t, "listen-client") + "/"}
	c := e.connect(t, "alice", testpeer.DefaultUsers["alice"], true)
	c.expect(t, "registered", nil)
	flow := []string{"connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED"}
	c.send(t, "call", map[string]any{"callId": "call-1", "callee": "echo", "sdp": newRTPPeer(t).offer()})
	c.expect(t, "talk", status("ESTABLISHED"))
	flow = append(flow, "call", "CallStatusEvent:TRYING", "CallStatusEvent:RING", "CallStatusEvent:ESTABLISHED")
	b.waitFor(t, c.id, flow...)

	killed := a.kill()
	ack := c.got.Load() // every frame A sent reached the client
	url := "ws://" + bn.addr(t, "listen-client") + "/?sessionId=" + c.id + "&authToken=" + c.token + "&ack=" + strconv.FormatInt(ack, 10)
	onB := sdkOn(resumeWS(t, url))
	onB.id = c.id
	t.Logf("resumed on B %v after SIGKILL", time.Since(killed))
	// The frames after ack: the call ended, then B's registration.
	fin := onB.expect(t, "finish", nil).obj()
	if fin["callId"] != "call-1" || fin["status"] != "FAILED" || fin["sipMessage"] != "owner node lost" ||
		fin["callee"] != "echo" || fin["caller"] != "alice" {
		t.Errorf("finish on B = %v", fin)
	}
	onB.expect(t, "registered", nil)
	flow = append(flow, "ConnectionStatusEvent:ESTABLISHED", "CallStatusEvent:FAILED", "RegistrationStatusEvent:REGISTERED")
	b.waitForDistinct(t, c.id, flow...)
	b.mu.Lock()
	registeredOnB := 0
	for _, h := range b.hooks {
		if h.Body["sessionId"] != c.id {
			continue
		}
		if h.Method == "CallStatusEvent" && h.Body["status"] == "FAILED" &&
			(h.Body["nodeId"] != "b" || h.Body["callId"] != "call-1" || h.Body["sipMessage"] != "owner node lost" ||
				h.Body["callee"] != "echo" || h.Body["caller"] != "alice" || h.Body["incoming"] != false) {
			t.Errorf("CallStatusEvent FAILED = %v", h.Body)
		}
		if h.Method == "RegistrationStatusEvent" && h.Body["status"] == "REGISTERED" && h.Body["nodeId"] == "b" {
			registeredOnB++
		}
	}
	b.mu.Unlock()
	if registeredOnB != 1 {
		t.Errorf("%d RegistrationStatusEvent REGISTERED from B, want 1", registeredOnB)
	}

	// Kamailio reaches alice at B now (A's stale binding, forked to as
	// well, never answers).
	uac := testpeer.StartSipp(t, "uac_call", "-s", "alice", "-m", "1", k.Addr)
	inc := onB.expect(t, "notifyIncomingCall", nil).obj()
	if inc["caller"] != "sipp" || inc["callee"] != "alice" {
		t.Errorf("notifyIncomingCall on B = %v", inc)
	}
	onB.send(t, "answer", map[string]any{"callId": inc["callId"], "sdp": newRTPPeer(t).offer()})
	onB.expect(t, "talk", status("ESTABLISHED"))
	onB.expect(t, "finish", status("FINISH"))
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	flow = append(flow, "OnCallEvent", "CallStatusEvent:RING", "answer", "CallStatusEvent:ESTABLISHED", "CallStatusEvent:FINISH")
	b.waitForDistinct(t, c.id, flow...)

	m := scrape(t, "http://"+bn.addr(t, "listen-http"))
	for _, want := range []string{
		"rtcgate_client_sessions_taken_over_total 1",
		`rtcgate_sip_calls_total{direction="outgoing",status="FAILED"} 1`,
		`rtcgate_sip_calls_total{direction="incoming",status="FINISH"} 1`,
		`rtcgate_cluster_node_sessions{node="b"} 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("B's /metrics lack %s:\n%s", want, grepLines(m, "rtcgate_c"))
		}
	}
	if strings.Contains(m, `rtcgate_cluster_node_sessions{node="a"}`) {
		t.Errorf("B's /metrics still list A:\n%s", grepLines(m, "node_sessions"))
	}
}
