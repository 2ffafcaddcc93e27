package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// wireFrame is one frame the page's SDK sent or received (helpers.js
// recordWire), or a socket's close.
type wireFrame struct {
	Socket      int
	Dir         string // "in", "out", "close"
	Message     string
	OperationID string
	Status      string
	CallID      string
	SessionID   string
	Info        string
	Resume      bool
	Code        int
	Payload     struct{ I *int }
}

// wireCheck checks what a page's SDK saw: each frame of the session's story
// once — one getUserData per socket, each DataStatusEvent once and in the
// order of the sendData that asked for it, ACCEPTED, each call status once
// — and returns the DataStatusEvents' payload indexes in order and the call
// statuses.
func wireCheck(t *testing.T, wire []wireFrame) (data []int, calls []string) {
	t.Helper()
	sent := map[string]int{} // operationId → payload index
	seen := map[string]bool{}
	for _, f := range wire {
		switch {
		case f.Dir == "out" && f.Message == "sendData":
			if f.Payload.I == nil {
				t.Fatalf("sendData without its index: %+v", f)
			}
			sent[f.OperationID] = *f.Payload.I
		case f.Dir != "in":
		case f.Message == "DataStatusEvent":
			i, ok := sent[f.OperationID]
			if !ok || f.Status != "ACCEPTED" {
				t.Fatalf("DataStatusEvent %+v: not for a sendData of the page, or not ACCEPTED", f)
			}
			data = append(data, i)
		case f.CallID != "" && f.Status != "":
			calls = append(calls, f.Status)
		}
		if f.Dir == "in" && f.Message != "ping" {
			k := fmt.Sprintf("%d/%s/%s/%s/%s", f.Socket, f.Message, f.OperationID, f.CallID, f.Status)
			if seen[k] {
				t.Fatalf("the page got a frame twice: %+v\nwire: %+v", f, wire)
			}
			seen[k] = true
		}
	}
	for i, d := range data {
		if i > 0 && d <= data[i-1] {
			t.Fatalf("DataStatusEvents out of order: %v", data)
		}
	}
	return data, calls
}

// TestClusterWebSDKThroughHAProxy: the Flashphoner Web SDK in headless
// Chromium, over rtcgate's HTTP fallback shim, through HAProxy (round
// robin, no stickiness) in front of three nodes on one Redis. The session
// registers alice with Kamailio, sends data six times (the backend
// answering each), calls "echo" (a sipp UAS behind Kamailio) with WebRTC
// audio both ways, hangs up and disconnects. The page sees every frame
// once and in order; the backend gets the session's whole story once and
// in order; the fallback's requests were answered by all three nodes and
// the two that do not own the session forwarded theirs
// (rtcgate_client_requests_routed_total). The media goes straight to the
// owner: its ICE candidate is in the answer it made (webrtc-address).
func TestClusterWebSDKThroughHAProxy(t *testing.T) {
	chromium := needTool(t, "chromium", "chromium")
	node := needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))

	uas := testpeer.StartSipp(t, "uas_echo")
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{Routes: map[string]string{"echo": uas.Addr}})
	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	b := newBackend(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: EchoApp\n    key: echoKey\n    url: "+b.srv.URL+"/EchoApp\n"+
		"    methods: ["+strings.Join(hooks.Methods, ", ")+"]\n"), 0o600)
	var nodes []*rtcgate
	var addrs []string
	for i := range 3 {
		id := "n" + strconv.Itoa(i)
		r := start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--client-trusted-proxies", "127.0.0.1/32",
			"--webrtc-address", "127.0.0.1")...)
		nodes = append(nodes, r)
		addrs = append(addrs, r.addr(t, "listen-client"))
	}
	lb := testpeer.StartHAProxy(t, addrs...)

	const sends = 6
	host, port := splitHostPort(t, k.Addr)
	cfg, _ := json.Marshal(map[string]any{
		"appKey": "echoKey", "callee": "echo", "shim": true, "sendData": sends,
		"sipOptions": map[string]any{
			"login": "alice", "authenticationName": "alice", "password": testpeer.DefaultUsers["alice"],
			"domain": k.Domain, "outboundProxy": host, "port": port, "registerRequired": true,
		},
	})
	began := time.Now()
	stdout, stderr, code := runIn(t, "", 2*time.Minute, []string{"CHROMIUM=" + chromium, "E2E_CALL=" + string(cfg)},
		node, filepath.Join(browserDir, "call.mjs"), lb.Addr)
	fail := func(format string, args ...any) {
		t.Helper()
		var logs strings.Builder
		for i, n := range nodes {
			fmt.Fprintf(&logs, "--- node n%d:\n%s", i, n.Logs())
		}
		t.Fatalf("%s\ncall.mjs exit %d\nstdout:\n%s\nstderr:\n%s\n%s\nkamailio:\n%s\nsipp:\n%s",
			fmt.Sprintf(format, args...), code, stdout, stderr, logs.String(), k.Logs(), uas.Logs())
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var out struct {
		OK                  bool
		Error, Step, Finish string
		Disconnect          string
		CallStatuses        []string
		Wire                []wireFrame
		ServedBy            map[string]int
		RemoteSDP           string
		Stats               struct{ PacketsReceived, PacketsSent int }
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		fail("call.mjs printed no JSON outcome: %v", err)
	}
	if code != 0 || !out.OK {
		fail("the Web SDK through HAProxy failed at step %q: %s", out.Step, out.Error)
	}
	if out.Finish != "FINISH" || out.Disconnect != "DISCONNECTED" || out.Stats.PacketsReceived < 25 || out.Stats.PacketsSent < 25 {
		fail("want FINISH, DISCONNECTED and audio both ways; got %+v", out)
	}
	data, calls := wireCheck(t, out.Wire)
	if len(data) != sends {
		fail("the page got DataStatusEvents for %v, want 0..%d", data, sends-1)
	}
	var sid string
	for _, f := range out.Wire {
		if f.Dir == "in" && f.Message == "getUserData" {
			sid = f.SessionID
		}
	}

	// The backend: the session's story, each event once, in order.
	flow := []string{"connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED"}
	for range sends {
		flow = append(flow, "OnDataEvent", "DataStatusEvent:ACCEPTED")
	}
	flow = append(flow, "call", "CallStatusEvent:TRYING", "CallStatusEvent:RING", "CallStatusEvent:ESTABLISHED",
		"hangup", "CallStatusEvent:FINISH", "RegistrationStatusEvent:UNREGISTERED", "ConnectionStatusEvent:DISCONNECTED")
	b.waitFor(t, sid, flow...)
	// The client's call frames are the backend's call statuses, once each.
	if got := strings.Join(calls, ","); got != "TRYING,RING,ESTABLISHED,FINISH" {
		fail("the page's call frames had statuses %s, want TRYING,RING,ESTABLISHED,FINISH", got)
	}

	// Round robin, no stickiness: all three nodes answered the page's
	// requests; the owner served its own, the two others forwarded theirs.
	if len(out.ServedBy) != 3 {
		fail("HAProxy's servers that answered the fallback: %v, want s0, s1 and s2", out.ServedBy)
	}
	forwarders := 0
	for _, n := range nodes {
		if metricValue(scrape(t, "http://"+n.addr(t, "listen-http")), `rtcgate_client_requests_routed_total{result="forwarded"}`) > 0 {
			forwarders++
		}
	}
	if forwarders != 2 {
		fail("%d nodes forwarded requests to the session's owner, want 2", forwarders)
	}
	// The answer's ICE candidate is on loopback (webrtc-address): the
	// browser's media went to the node that made it, the owner.
	if !strings.Contains(out.RemoteSDP, " 127.0.0.1 ") {
		fail("the owner's answer has no 127.0.0.1 candidate:\n%s", out.RemoteSDP)
	}
	t.Logf("%d fallback requests (%v), %d sendData, call %s, audio %d/%d packets, in %v",
		sumValues(out.ServedBy), out.ServedBy, len(data), strings.Join(calls, ","), out.Stats.PacketsSent, out.Stats.PacketsReceived,
		time.Since(began).Round(time.Millisecond))
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
