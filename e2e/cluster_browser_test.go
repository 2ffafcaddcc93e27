package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// TestClusterWebSDKReconnectAfterSIGKILL: the Flashphoner Web SDK in
// headless Chromium over WebSocket, through HAProxy in front of two nodes
// on one Redis. The session sends data three times; its node is killed
// with SIGKILL; the page comes back the SDK's own way — a new
// createSession with keepAlive and the authToken getUserData gave —
// retrying while the dead node's lease lives, until the other node takes
// the session over; then it sends data twice more and disconnects. The
// page is back in the same session (sessionId); every frame reached it
// once and in order (no DataStatusEvent lost or repeated across the
// takeover); the backend sees, for the one sessionId, ESTABLISHED, the
// three DataStatusEvents, ESTABLISHED again (the takeover), the two
// others and DISCONNECTED, each once (a redelivery of the dead node's
// events keeps its X-Rtcgate-Event-Id); the survivor counts one takeover.
func TestClusterWebSDKReconnectAfterSIGKILL(t *testing.T) {
	chromium := needTool(t, "chromium", "chromium")
	nodeJS := needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))

	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	b := newClusterBackend(t)
	b.unhold()
	dir := t.TempDir()
	cfgFile := b.config(t)
	nodes := map[string]*rtcgate{}
	var addrs []string
	for _, id := range []string{"a", "b"} {
		nodes[id] = start(t, append(append([]string(nil), ephemeral...), "--config", cfgFile, "--state-file", filepath.Join(dir, id+".json"),
			"--cluster-redis", red.URL, "--node-id", id, "--client-trusted-proxies", "127.0.0.1/32",
			"--cluster-heartbeat", "250ms", "--cluster-node-ttl", "2s", "--hooks-redis-claim-after", "1s")...)
		addrs = append(addrs, nodes[id].addr(t, "listen-client"))
	}
	lb := testpeer.StartHAProxy(t, addrs...)

	const before, after = 3, 2
	cfg, _ := json.Marshal(map[string]any{"appKey": "clusterKey", "before": before, "after": after})
	page := startNode(t, []string{"CHROMIUM=" + chromium, "E2E_CALL=" + string(cfg)}, nodeJS, filepath.Join(browserDir, "resume.mjs"), lb.Addr)
	var ready struct{ SessionID string }
	page.signal(t, "ready", &ready)
	rdb := redis.NewClient(&redis.Options{Addr: red.Addr})
	defer rdb.Close()
	ownerID, err := rdb.HGet(context.Background(), "rtcgate:session:"+ready.SessionID, "owner").Result()
	owner, survivor := nodes[ownerID], nodes[map[string]string{"a": "b", "b": "a"}[ownerID]]
	if err != nil || owner == nil {
		t.Fatalf("the session's owner in Redis: %q, %v", ownerID, err)
	}
	owner.cmd.Process.Kill()
	<-owner.exited
	owner.err = nil // killed on purpose
	killed := time.Now()

	stdout, stderr, code := page.wait(t)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nresume.mjs exit %d\nstdout:\n%s\nstderr:\n%s\nsurvivor's log:\n%s",
			fmt.Sprintf(format, args...), code, stdout, stderr, survivor.Logs())
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var out struct {
		OK                          bool
		Error, Step                 string
		SessionID, ResumedSessionID string
		Attempts, ResumeMs          int
		Wire                        []wireFrame
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		fail("resume.mjs printed no JSON outcome: %v", err)
	}
	if code != 0 || !out.OK {
		fail("the Web SDK did not come back at step %q: %s", out.Step, out.Error)
	}
	if out.ResumedSessionID != ready.SessionID || out.SessionID != ready.SessionID {
		fail("the SDK came back to session %q, want %q: a new session, not a resume", out.ResumedSessionID, ready.SessionID)
	}
	data, _ := wireCheck(t, out.Wire)
	if fmt.Sprint(data) != "[0 1 2 3 4]" {
		fail("the page got DataStatusEvents for %v, want [0 1 2 3 4] once each", data)
	}
	var ops []string // the backend's name of each sendData, in order
	for _, f := range out.Wire {
		if f.Dir == "out" && f.Message == "sendData" {
			ops = append(ops, "DATA:"+f.OperationID)
		}
	}
	want := strings.Join(append(append(append(append([]string{"ESTABLISHED"}, ops[:before]...), "ESTABLISHED"), ops[before:]...), "DISCONNECTED"), ",")
	var got string
	eventually(t, 10*time.Second, "the backend has the session's story", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		var names []string
		seen := map[string]bool{}
		for _, e := range b.got[ready.SessionID] {
			if !seen[e.id] { // a redelivery of the dead node's, under the same event id
				names = append(names, e.ev)
			}
			seen[e.id] = true
		}
		got = strings.Join(names, ",")
		return got == want || len(names) > strings.Count(want, ",")+1
	})
	if got != want {
		fail("the backend got\n%s\nwant\n%s", got, want)
	}
	if n := metricValue(scrape(t, "http://"+survivor.addr(t, "listen-http")), "rtcgate_client_sessions_taken_over_total"); n != 1 {
		fail("the survivor took over %v sessions, want 1", n)
	}
	t.Logf("the SDK was back in its session %v after SIGKILL (%d attempts, %d ms after it noticed)",
		time.Since(killed).Round(time.Millisecond), out.Attempts, out.ResumeMs)
}

// nodeScript is a running driver script whose stdout is read as it comes.
type nodeScript struct {
	cmd     *exec.Cmd
	signals chan string // "NAME JSON" of each SIGNAL line
	stdout  strings.Builder
	stderr  bytes.Buffer
	done    chan struct{}
}

// startNode runs a node script (bounded at 2 minutes) with extra
// environment variables.
func startNode(t *testing.T, env []string, name string, args ...string) *nodeScript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	n := &nodeScript{cmd: exec.CommandContext(ctx, name, args...), signals: make(chan string, 16), done: make(chan struct{})}
	n.cmd.Env = append(os.Environ(), env...)
	n.cmd.Stderr = &n.stderr
	n.cmd.WaitDelay = 10 * time.Second
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(n.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "SIGNAL "); ok {
				n.signals <- s
				continue
			}
			n.stdout.WriteString(sc.Text() + "\n")
		}
	}()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.done
		n.cmd.Wait()
	})
	return n
}

// signal waits for the script's SIGNAL name and decodes its value into v.
func (n *nodeScript) signal(t *testing.T, name string, v any) {
	t.Helper()
	select {
	case s := <-n.signals:
		got, value, _ := strings.Cut(s, " ")
		if got != name {
			t.Fatalf("signal %q, want %q", s, name)
		}
		if err := json.Unmarshal([]byte(value), v); err != nil {
			t.Fatalf("signal %s: %v", s, err)
		}
	case <-n.done:
		n.cmd.Wait()
		t.Fatalf("the script ended before signalling %s:\nstdout:\n%s\nstderr:\n%s", name, n.stdout.String(), n.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no signal %s within 60s:\nstderr:\n%s", name, n.stderr.String())
	}
}

// wait waits for the script's end: its stdout (SIGNAL lines aside),
// stderr and exit status.
func (n *nodeScript) wait(t *testing.T) (string, string, int) {
	t.Helper()
	<-n.done
	err := n.cmd.Wait()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%v: %v\nstderr:\n%s", n.cmd.Args, err, n.stderr.String())
		}
		code = ee.ExitCode()
	}
	return n.stdout.String(), n.stderr.String(), code
}
