package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/ng"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// rtpStream sends a 172-byte RTP packet every 20 ms from conn to port on
// loopback until stop is called (at most 60 s): the "RTP flowing" of a
// running call.
func rtpStream(t *testing.T, conn *net.UDPConn, port int) (stop func()) {
	t.Helper()
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		limit := time.After(60 * time.Second)
		for seq := uint16(0); ; seq++ {
			conn.WriteToUDP(rtpPacket(seq, strings.Repeat("x", 160)), to)
			select {
			case <-done:
				return
			case <-limit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(done); <-finished }) }
	t.Cleanup(stop)
	return stop
}

// statusPage runs browser/status.mjs: the dialogue of its stdout lines and
// its stdin.
type statusPage struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	err   strings.Builder
}

func openStatusPage(t *testing.T, chromium, node, url, outDir string, expect map[string]string, env ...string) *statusPage {
	t.Helper()
	exp, _ := json.Marshal(expect)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	p := &statusPage{cmd: exec.CommandContext(ctx, node, filepath.Join(browserDir, "status.mjs"), url, outDir, string(exp)),
		lines: make(chan string, 8)}
	p.cmd.Env = append(append(p.cmd.Environ(), "CHROMIUM="+chromium), env...)
	p.cmd.Stderr = &p.err
	p.cmd.WaitDelay = 10 * time.Second
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { p.in.Close(); p.cmd.Wait() })
	return p
}

// pageStep is one line of status.mjs.
type pageStep struct {
	Step        string
	OK          bool
	Error       string
	Packets     []int
	Rate        string
	Updates     json.RawMessage
	CallRow     string
	Screenshots []string
	Problems    []string
	Notes       []string
}

// step waits for the next line, which must be want.
func (p *statusPage) step(t *testing.T, want string) pageStep {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		var s pageStep
		if !ok || json.Unmarshal([]byte(line), &s) != nil {
			t.Fatalf("status.mjs ended or printed %q; stderr:\n%s", line, p.err.String())
		}
		if s.Step != want || s.Error != "" || len(s.Problems) > 0 {
			t.Fatalf("status page, waiting for %q: step %q, error %q, problems %q\nconsole:\n%s\nstderr:\n%s",
				want, s.Step, s.Error, s.Problems, strings.Join(s.Notes, "\n"), p.err.String())
		}
		return s
	case <-time.After(60 * time.Second):
		t.Fatalf("status.mjs printed no %q step within 60 s; stderr:\n%s", want, p.err.String())
	}
	return pageStep{}
}

// TestStatusPage: while a client session of a cluster node has a SIP call
// through Kamailio to a sipp echo, and an ng offer/answer call relays RTP
// both ways, headless Chromium opens /status on listen-http: the page
// shows the session, the REGISTERED account, the call ESTABLISHED, the
// relay call with its packets and rate going up (no reload), the backend
// and the node; with the calls ended it takes them away, still live. No
// console error, failed request or HTTP error on the way. Screenshots at
// 1280×800 and 390×844 are written to the test's artifact directory (go
// test -artifacts keeps them). The page's figures are /metrics' and the
// CLI's.
func TestStatusPage(t *testing.T) {
	chromium := needTool(t, "chromium", "chromium")
	node := needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))
	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	uas := testpeer.StartSipp(t, "uas_echo")
	e := newSIPEnv(t, map[string]string{"echo": uas.Addr}, "--cluster-redis", red.URL, "--status-interval", "250ms")
	base := "http://" + e.r.addr(t, "listen-http")

	// The client side: a session registered as alice, calling the echo.
	c := e.connect(t, "alice", testpeer.DefaultUsers["alice"], true)
	c.expect(t, "registered", nil)
	peer := newRTPPeer(t)
	c.send(t, "call", map[string]any{"callId": "status-1", "callee": "echo", "sdp": peer.offer(), "caller": "alice"})
	var sdp string
	json.Unmarshal(c.expect(t, "setRemoteSDP", nil).Data[1], &sdp)
	c.expect(t, "talk", status("ESTABLISHED"))
	gwPort, _ := strconv.Atoi(mLine.FindStringSubmatch(sdp)[1])
	stopGW := rtpStream(t, peer.conn, gwPort)

	// The relay side: an ng call, RTP both ways.
	ngc := httpNG{base, false, ng.Bencode}
	a, b := newParty(t), newParty(t)
	offer := ngc.Do(t, map[string]any{"command": "offer", "call-id": "status-ng-1", "from-tag": "tagA", "sdp": a.sdp()})
	requireOK(t, offer)
	relayB, _ := relayPorts(t, str(t, offer, "sdp"))
	answer := ngc.Do(t, map[string]any{"command": "answer", "call-id": "status-ng-1", "from-tag": "tagA", "to-tag": "tagB", "sdp": b.sdp()})
	requireOK(t, answer)
	relayA, _ := relayPorts(t, str(t, answer, "sdp"))
	stopA, stopB := rtpStream(t, a.rtp, relayA), rtpStream(t, b.rtp, relayB)

	out := t.ArtifactDir()
	page := openStatusPage(t, chromium, node, base+"/status", out, map[string]string{
		"session": c.id[:8], "account": "alice@" + e.k.Domain, "call": "status-1", "relayCall": "status-ng-1",
		"backend": "EchoApp", "node": nodeID(t, e.r),
	})
	shown := page.step(t, "shown")
	if len(shown.Packets) != 2 || shown.Packets[1] <= shown.Packets[0] {
		t.Errorf("the page's packet count did not rise: %v", shown.Packets)
	}
	if !strings.Contains(shown.CallRow, "echo") || !strings.Contains(shown.CallRow, "ESTABLISHED") {
		t.Errorf("the call's row = %q", shown.CallRow)
	}
	for _, p := range shown.Screenshots {
		t.Logf("screenshot: %s", p)
	}
	t.Logf("live: packets %v, rate %s, updates %s", shown.Packets, shown.Rate, shown.Updates)

	// The same figures as /metrics and the CLI.
	checkStatusFigures(t, base)

	// The calls end: the page follows.
	c.send(t, "hangup", map[string]any{"callId": "status-1"})
	c.expect(t, "finish", status("FINISH"))
	stopGW()
	requireOK(t, ngc.Do(t, map[string]any{"command": "delete", "call-id": "status-ng-1", "from-tag": "tagA", "delete delay": int64(0)}))
	stopA()
	stopB()
	io.WriteString(page.in, "ended\n")
	done := page.step(t, "done")
	if !done.OK {
		t.Errorf("status page: %+v", done)
	}
}

// checkStatusFigures compares /status/snapshot with /metrics and the CLI
// while nothing changes them.
func checkStatusFigures(t *testing.T, base string) {
	t.Helper()
	var snap struct {
		Clients struct{ Sessions int }
		SIP     struct{ Accounts, ActiveCalls int }
		Relay   struct {
			Sessions int
			Calls    []struct{ ID string }
		}
		Cluster struct {
			RedisUp bool
			Nodes   []struct{ ID string }
		}
	}
	resp, err := http.Get(base + "/status/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m := scrape(t, base)
	for name, got := range map[string]int{"rtcgate_client_sessions": snap.Clients.Sessions, "rtcgate_sip_accounts": snap.SIP.Accounts,
		"rtcgate_sip_calls_active": snap.SIP.ActiveCalls, `rtpengine_sessions{type="own"}`: snap.Relay.Sessions,
		"rtcgate_cluster_nodes": len(snap.Cluster.Nodes)} {
		if want := metricValue(m, name); float64(got) != want || want == 0 {
			t.Errorf("/status/snapshot has %s = %d, /metrics %v", name, got, want)
		}
	}
	if !snap.Cluster.RedisUp {
		t.Error("/status/snapshot: Redis not up")
	}
	list := cliText(t, base, "list sessions all")
	for _, c := range snap.Relay.Calls {
		if !strings.Contains(list, c.ID) {
			t.Errorf("relay call %s on the page, not in list sessions:\n%s", c.ID, list)
		}
	}
	if n := strings.Count(list, "callid:"); n != len(snap.Relay.Calls) {
		t.Errorf("list sessions has %d calls, the page %d", n, len(snap.Relay.Calls))
	}
}

// TestStatusRefusedCrossOrigin: /status is the control plane's — a page on
// another origin, a cross-site request or a rebound name gets none of it
// (nor its event stream); on a listener that needs the control-token, a
// browser gives the token as the Basic password, which opens the page and
// nothing else.
func TestStatusRefusedCrossOrigin(t *testing.T) {
	r := start(t, "--listen-http", "0.0.0.0:0", "--control-token", controlToken, "--listen-cli", "127.0.0.1:0",
		"--listen-ng", "127.0.0.1:0", "--listen-client", "127.0.0.1:0", "--listen-sip", "")
	_, port := splitHostPort(t, r.addr(t, "listen-http"))
	addr := "127.0.0.1:" + port
	auth := "Authorization: Basic " + basicAuth("operator", controlToken) + "\r\n"
	for _, c := range []struct {
		name, request string
		want          int
	}{
		{"no credentials", "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n", 401},
		{"the token as Basic password", "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth, 200},
		{"the page's own request", "GET /status/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\n" + auth, 200},
		{"Basic does not open the CLI", "GET /cli/list+totals HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth, 401},
		{"Basic does not open /metrics", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth, 401},
		{"a foreign Origin", "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n" + auth, 403},
		{"a foreign Origin, events", "GET /status/events HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n" + auth, 403},
		{"a foreign Origin, snapshot", "GET /status/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n" + auth, 403},
		{"cross-site without Origin", "GET /status/snapshot HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n" + auth, 403},
		{"a rebound name", "GET /status HTTP/1.1\r\nHost: rebind.attacker.example\r\n" + auth, 421},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, body := rawHTTP(t, addr, c.request+"Connection: close\r\n\r\n"); code != c.want {
				t.Errorf("= %d %q, want %d", code, truncated(body), c.want)
			} else if strings.Contains(body, controlToken) {
				t.Error("the answer shows the token")
			}
		})
	}

	// A real browser given the token for rtcgate's Basic challenge opens
	// the page and follows its events.
	chromium := needTool(t, "chromium", "chromium")
	node := needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))
	challenges := func() float64 {
		_, m := rawHTTP(t, addr, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "+controlToken+"\r\nConnection: close\r\n\r\n")
		return metricValue(m, `rtcgate_control_refused_total{reason="token"}`)
	}
	before := challenges()
	page := openStatusPage(t, chromium, node, "http://"+addr+"/status", t.TempDir(), map[string]string{"liveOnly": "yes"},
		"STATUS_PASSWORD="+controlToken)
	if done := page.step(t, "done"); !done.OK {
		t.Errorf("status page with the token: %+v", done)
	}
	if n := challenges() - before; n < 1 {
		t.Errorf("rtcgate_control_refused_total{reason=token} rose by %v: the browser was never challenged", n)
	}
	if strings.Contains(r.Logs(), controlToken) {
		t.Error("the token is in the log")
	}
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}
