package e2e

import (
	"context"
	be "encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// sdkClient speaks the Flashphoner Web SDK's protocol over a WebSocket, as
// the SDK's flashphoner-core.js does, and collects what rtcgate sends.
type sdkClient struct {
	ws     *websocket.Conn
	frames chan sdkFrame
	id     string       // sessionId from getUserData
	token  string       // authToken from getUserData
	got    atomic.Int64 // frames received, pings included: the number of the last (a resume's ack)
}

type sdkFrame struct {
	Message string            `json:"message"`
	Data    []json.RawMessage `json:"data"`
}

func (f sdkFrame) obj() map[string]any {
	var m map[string]any
	if len(f.Data) > 0 {
		json.Unmarshal(f.Data[0], &m)
	}
	return m
}

func newSDKClient(t *testing.T, url string) *sdkClient {
	t.Helper()
	return sdkOn(dialWS(t, url, nil))
}

// sdkOn is an sdkClient over ws; early are frames already read from it.
func sdkOn(ws *websocket.Conn, early ...[]byte) *sdkClient {
	c := &sdkClient{ws: ws, frames: make(chan sdkFrame, 256)}
	take := func(b []byte) {
		c.got.Add(1)
		var f sdkFrame
		if json.Unmarshal(b, &f) == nil {
			if f.Message == "ping" {
				c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"message":"pong","data":[null]}`))
				return
			}
			c.frames <- f
		}
	}
	for _, b := range early {
		take(b)
	}
	go func() {
		defer close(c.frames)
		for {
			_, b, err := c.ws.Read(context.Background())
			if err != nil {
				return
			}
			take(b)
		}
	}()
	return c
}

func (c *sdkClient) send(t *testing.T, message string, data any) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"message": message, "data": []any{data}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// expect waits for a frame named message whose object matches (nil: any);
// frames before it are dropped and returned for the failure message only.
func (c *sdkClient) expect(t *testing.T, message string, match func(map[string]any) bool) sdkFrame {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("connection closed waiting for %s; saw %v", message, seen)
			}
			if f.Message == message && (match == nil || match(f.obj())) {
				return f
			}
			seen = append(seen, f.Message+":"+string(firstOf(f)))
		case <-deadline:
			t.Fatalf("no %s; saw %v", message, seen)
		}
	}
}

func firstOf(f sdkFrame) []byte {
	if len(f.Data) == 0 {
		return nil
	}
	if len(f.Data[0]) > 200 {
		return f.Data[0][:200]
	}
	return f.Data[0]
}

func status(s string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["status"] == s }
}

// sipEnv is rtcgate with its SIP gateway in front of a real Kamailio, an
// app whose backend gets every REST method, and sipp peers.
type sipEnv struct {
	r   *rtcgate
	k   *testpeer.Kamailio
	b   *backend
	url string
}

func newSIPEnv(t *testing.T, routes map[string]string, extra ...string) *sipEnv {
	t.Helper()
	return startSIPEnv(t, testpeer.StartKamailio(t, testpeer.KamailioOptions{Routes: routes}), extra...)
}

// startSIPEnv starts rtcgate and the backend in front of k.
func startSIPEnv(t *testing.T, k *testpeer.Kamailio, extra ...string) *sipEnv {
	t.Helper()
	b := newBackend(t)
	r := start(t, append(append(ephemeral, "--config", sipAppConfig(t, b), "--log-level", "7"), extra...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("kamailio:\n" + k.Logs())
			t.Log("rtcgate:\n" + r.Logs())
		}
	})
	return &sipEnv{r: r, k: k, b: b, url: "ws://" + r.addr(t, "listen-client") + "/"}
}

// sipAppConfig writes a configuration file with the app EchoApp (key
// echoKey) whose backend b gets every REST method.
func sipAppConfig(t *testing.T, b *backend) string {
	cfgFile := filepath.Join(t.TempDir(), "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: EchoApp\n    key: echoKey\n    url: "+b.srv.URL+"/EchoApp\n"+
		"    methods: ["+strings.Join(hooks.Methods, ", ")+"]\n"), 0o600)
	return cfgFile
}

// connect opens a session for user (a Kamailio account), registering with
// password, and waits for getUserData.
func (e *sipEnv) connect(t *testing.T, user, password string, register bool) *sdkClient {
	t.Helper()
	return e.connectVia(t, e.k.Addr, "UDP", user, password, register)
}

// connectVia is connect through Kamailio's listener at proxy over transport.
func (e *sipEnv) connectVia(t *testing.T, proxy, transport, user, password string, register bool) *sdkClient {
	t.Helper()
	host, port := splitHostPort(t, proxy)
	c := newSDKClient(t, e.url)
	c.send(t, "connection", map[string]any{
		"appKey": "echoKey", "sipLogin": user, "sipAuthenticationName": user, "sipPassword": password,
		"sipDomain": e.k.Domain, "sipOutboundProxy": host, "sipPort": port, "sipTransport": transport,
		"sipRegisterRequired": register,
	})
	gud := c.expect(t, "getUserData", nil).obj()
	c.id, c.token = gud["sessionId"].(string), gud["authToken"].(string)
	return c
}

// rtpPeer is the client's media: a UDP socket that can send RTP to the
// address rtcgate's SDP names and read what comes back.
type rtpPeer struct{ conn *net.UDPConn }

func newRTPPeer(t *testing.T) *rtpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rtpPeer{c}
}

// offer is a plain RTP/AVP audio offer from the peer's port (rtcgate relays
// RTP; a browser's DTLS-SRTP is not bridged).
func (p *rtpPeer) offer() string {
	port := p.conn.LocalAddr().(*net.UDPAddr).Port
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n", port)
}

// echo sends RTP packets to the audio address of sdp until one comes back
// (sipp's -rtp_echo through rtcgate's relay), bounded in count and time.
func (p *rtpPeer) echo(t *testing.T, sdp string) {
	t.Helper()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpAudioPort(t, sdp)}
	pkt := make([]byte, 172)
	pkt[0], pkt[1] = 0x80, 0
	buf := make([]byte, 2048)
	for i := 0; i < 50; i++ {
		pkt[3] = byte(i)
		p.conn.WriteToUDP(pkt, to)
		p.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := p.conn.ReadFromUDP(buf); err == nil && n == len(pkt) {
			return
		}
	}
	t.Fatalf("no RTP came back through rtcgate from %s", to)
}

// sdpAudioPort is the port of sdp's audio section (ng_test's mLine).
func sdpAudioPort(t *testing.T, sdp string) int {
	t.Helper()
	m := mLine.FindStringSubmatch(sdp)
	if m == nil {
		t.Fatalf("no audio port in %q", sdp)
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

// callEcho places call (a call frame's object, without sdp) from c with a
// plain RTP offer, waits for ESTABLISHED, checks that RTP sent to rtcgate
// comes back (an echoing far end), hangs up and waits for FINISH.
func (c *sdkClient) callEcho(t *testing.T, call map[string]any) {
	t.Helper()
	rtp := newRTPPeer(t)
	call["sdp"] = rtp.offer()
	c.send(t, "call", call)
	remote := c.expect(t, "setRemoteSDP", nil)
	var sdp string
	json.Unmarshal(remote.Data[1], &sdp)
	c.expect(t, "talk", status("ESTABLISHED"))
	rtp.echo(t, sdp)
	c.send(t, "hangup", map[string]any{"callId": call["callId"]})
	c.expect(t, "finish", status("FINISH"))
}

// TestSIPSeedFlows reproduces seed 000's three flows against Kamailio and a
// sipp far end, asserting the hook sequence the backend receives:
// connect → ConnectionStatusEvent → RegistrationStatusEvent; a message to
// oneself: sendMessage → MessageStatusEvent → OnMessageEvent →
// MessageStatusEvent; an outgoing call: call → CallStatusEvent (TRYING,
// RING, ESTABLISHED) → hangup → CallStatusEvent FINISH. Media flows
// through rtcgate's relay both ways.
func TestSIPSeedFlows(t *testing.T) {
	uas := testpeer.StartSipp(t, "uas_echo")
	// client-idle-timeout stays at its 60 s: the close frame at the end must
	// end the session by itself.
	e := newSIPEnv(t, map[string]string{"echo": uas.Addr})

	c := e.connect(t, "alice", testpeer.DefaultUsers["alice"], true)
	c.expect(t, "registered", nil)
	flow := []string{"connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED"}
	e.b.waitFor(t, c.id, flow...)

	c.send(t, "sendMessage", map[string]any{"id": "m1", "to": "alice", "body": "hello me", "contentType": "text/plain"})
	in := c.expect(t, "OnMessageEvent", nil).obj()
	if in["body"] != "hello me" || in["from"] != "alice" || in["status"] != "RECEIVED" {
		t.Errorf("OnMessageEvent = %v", in)
	}
	c.expect(t, "MessageStatusEvent", status("ACCEPTED"))
	flow = append(flow, "sendMessage", "MessageStatusEvent:SENT", "OnMessageEvent", "MessageStatusEvent:ACCEPTED")
	e.b.waitFor(t, c.id, flow...)

	c.callEcho(t, map[string]any{"callId": "call-1", "callee": "echo",
		"hasAudio": true, "hasVideo": false, "incoming": false, "status": "PENDING", "caller": "alice", "visibleName": "Alice"})
	flow = append(flow, "call", "CallStatusEvent:TRYING", "CallStatusEvent:RING", "CallStatusEvent:ESTABLISHED",
		"hangup", "CallStatusEvent:FINISH")
	e.b.waitFor(t, c.id, flow...)

	// The hook bodies carry Web Call Server's fields.
	e.b.mu.Lock()
	for _, h := range e.b.hooks {
		if h.Method == "CallStatusEvent" && h.Body["status"] == "ESTABLISHED" {
			for _, k := range []string{"nodeId", "appKey", "sessionId", "callId", "caller", "callee", "incoming", "sipStatus", "hasAudio", "hasVideo"} {
				if _, ok := h.Body[k]; !ok {
					t.Errorf("CallStatusEvent lacks %s: %v", k, h.Body)
				}
			}
			if h.Body["callId"] != "call-1" || h.Body["callee"] != "echo" || h.Body["caller"] != "alice" {
				t.Errorf("CallStatusEvent = %v", h.Body)
			}
		}
	}
	e.b.mu.Unlock()

	// Disconnecting with a close frame ends the session at once (no wait
	// for a resume): it unregisters; DISCONNECTED comes last.
	c.ws.Close(websocket.StatusNormalClosure, "")
	flow = append(flow, "RegistrationStatusEvent:UNREGISTERED", "ConnectionStatusEvent:DISCONNECTED")
	e.b.waitFor(t, c.id, flow...)

	// Debug logging is on: still no session id and no SIP password.
	if logs := e.r.Logs(); strings.Contains(logs, c.id) || strings.Contains(logs, testpeer.DefaultUsers["alice"]) {
		t.Error("rtcgate's debug log shows the session id or the SIP password")
	}
}

// TestSIPCallOutcomes: busy, cancel before answer, hold and unhold, DTMF and
// a transfer against sipp far ends.
func TestSIPCallOutcomes(t *testing.T) {
	echo := testpeer.StartSipp(t, "uas_echo")
	busy := testpeer.StartSipp(t, "uas_busy")
	ring := testpeer.StartSipp(t, "uas_ring_cancel")
	e := newSIPEnv(t, map[string]string{"echo": echo.Addr, "busy": busy.Addr, "ring": ring.Addr})
	c := e.connect(t, "bob", testpeer.DefaultUsers["bob"], true)
	c.expect(t, "registered", nil)
	rtp := newRTPPeer(t)

	c.send(t, "call", map[string]any{"callId": "busy-1", "callee": "busy", "sdp": rtp.offer()})
	if f := c.expect(t, "finish", status("BUSY")).obj(); f["sipStatus"] != float64(486) {
		t.Errorf("busy = %v", f)
	}

	c.send(t, "call", map[string]any{"callId": "ring-1", "callee": "ring", "sdp": rtp.offer()})
	c.expect(t, "ring", status("RING"))
	c.send(t, "hangup", map[string]any{"callId": "ring-1"})
	c.expect(t, "finish", func(m map[string]any) bool { return m["callId"] == "ring-1" && m["status"] == "FINISH" })

	c.send(t, "call", map[string]any{"callId": "echo-1", "callee": "echo", "sdp": rtp.offer()})
	c.expect(t, "talk", status("ESTABLISHED"))
	c.send(t, "hold", map[string]any{"callId": "echo-1"})
	c.expect(t, "hold", status("HOLD"))
	c.send(t, "unhold", map[string]any{"callId": "echo-1"})
	c.expect(t, "talk", status("ESTABLISHED"))
	c.send(t, "sendDtmf", map[string]any{"callId": "echo-1", "dtmf": "1#", "type": "INFO"})
	c.send(t, "transfer", map[string]any{"callId": "echo-1", "target": "carol"})
	c.expect(t, "notifyTransferEvent", status("ACCEPTED"))
	c.expect(t, "notifyTransferEvent", status("COMPLETED"))
	c.send(t, "hangup", map[string]any{"callId": "echo-1"})
	c.expect(t, "finish", status("FINISH"))
	// The far end got each digit as an INFO, in order, before the REFER.
	logs := echo.Logs()
	one, hash, refer := strings.Index(logs, "Signal=1"), strings.Index(logs, "Signal=#"), strings.Index(logs, "REFER sip:")
	if one < 0 || hash < one || refer < hash {
		t.Errorf("sipp did not get INFO 1, INFO #, then REFER (at %d, %d, %d)", one, hash, refer)
	}

	want := []string{"busy-1:BUSY", "ring-1:RING", "ring-1:FINISH", "echo-1:HOLD", "echo-1:COMPLETED", "echo-1:FINISH"}
	e.b.waitUntil(t, fmt.Sprint("call and transfer events ", want), func(hs []hook) bool {
		var got []string
		for _, h := range hs {
			if h.Body["sessionId"] == c.id && (h.Method == "CallStatusEvent" || h.Method == "TransferStatusEvent") {
				got = append(got, fmt.Sprint(h.Body["callId"], ":", h.Body["status"]))
			}
		}
		for _, w := range want {
			if !containsStr(got, w) {
				return false
			}
		}
		return true
	})
	// The gateway's figures: /metrics and the CLI's `list sip`.
	m := scrape(t, "http://"+e.r.addr(t, "listen-http"))
	for _, want := range []string{
		`rtcgate_sip_calls_total{direction="outgoing",status="BUSY"} 1`,
		`rtcgate_sip_calls_total{direction="outgoing",status="FINISH"} 2`,
		`rtcgate_sip_registrations_total{status="REGISTERED"} 1`,
		`rtcgate_sip_calls_active 0`,
		`rtcgate_sip_accounts 1`,
		`rtcgate_sip_call_setup_seconds_count 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(m, "rtcgate_sip"))
		}
	}
	resp, err := http.Get("http://" + e.r.addr(t, "listen-http") + "/cli/list+sip")
	if err != nil {
		t.Fatal(err)
	}
	if out := readAll(t, resp.Body); !strings.Contains(out, " Calls outgoing BUSY") || !strings.Contains(out, ":1\n") {
		t.Errorf("list sip = %q", out)
	}
	if strings.Contains(e.r.Logs(), testpeer.DefaultUsers["bob"]) {
		t.Error("the SIP password is in rtcgate's log")
	}
}

// waitUntil waits until the hooks received satisfy ok.
func (b *backend) waitUntil(t *testing.T, what string, ok func([]hook) bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		b.mu.Lock()
		done := ok(b.hooks)
		b.mu.Unlock()
		if done {
			return
		}
		select {
		case <-b.arrived:
		case <-deadline:
			t.Fatalf("backend never got %s", what)
		}
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSIPIncomingCall: sipp calls a registered client through Kamailio;
// the backend hears OnCallEvent, the client gets setRemoteSDP and
// notifyIncomingCall, answers, and sipp's BYE ends the call. A second call
// the backend refuses (OnCallEvent 403) never reaches the client.
func TestSIPIncomingCall(t *testing.T) {
	e := newSIPEnv(t, nil)
	var mu sync.Mutex
	refuseCalls := false
	e.b.refuse = func(method string, body map[string]any) int {
		mu.Lock()
		defer mu.Unlock()
		if method == "OnCallEvent" && refuseCalls {
			return 403
		}
		return 0
	}
	c := e.connect(t, "carol", testpeer.DefaultUsers["carol"], true)
	c.expect(t, "registered", nil)

	uac := testpeer.StartSipp(t, "uac_call", "-s", "carol", "-m", "1", e.k.Addr)
	c.expect(t, "setRemoteSDP", nil)
	inc := c.expect(t, "notifyIncomingCall", nil).obj()
	if inc["incoming"] != true || inc["caller"] != "sipp" || inc["callee"] != "carol" {
		t.Errorf("notifyIncomingCall = %v", inc)
	}
	rtp := newRTPPeer(t)
	c.send(t, "answer", map[string]any{"callId": inc["callId"], "sdp": rtp.offer()})
	c.expect(t, "talk", status("ESTABLISHED"))
	c.expect(t, "finish", status("FINISH"))
	if err := uac.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	e.b.waitFor(t, c.id, "connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED",
		"OnCallEvent", "CallStatusEvent:RING", "answer", "CallStatusEvent:ESTABLISHED", "CallStatusEvent:FINISH")

	mu.Lock()
	refuseCalls = true
	mu.Unlock()
	rejected := testpeer.StartSipp(t, "uac_call_rejected", "-s", "carol", "-m", "1", e.k.Addr)
	if err := rejected.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	e.b.waitFor(t, c.id, "connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED",
		"OnCallEvent", "CallStatusEvent:RING", "answer", "CallStatusEvent:ESTABLISHED", "CallStatusEvent:FINISH",
		"OnCallEvent", "CallStatusEvent:FAILED")
}

// TestSIPRegistrationFailures: a wrong password and an unreachable SIP
// server both end in RegistrationStatusEvent FAILED and a `fail` to the
// client, and the session stays usable.
func TestSIPRegistrationFailures(t *testing.T) {
	e := newSIPEnv(t, nil, "--sip-timeout", "2s")
	c := e.connect(t, "alice", "wrong-password", true)
	f := c.expect(t, "fail", func(m map[string]any) bool { return m["apiMethod"] == "RegistrationStatusEvent" }).obj()
	if !strings.Contains(fmt.Sprint(f["info"]), "40") {
		t.Errorf("fail = %v", f)
	}
	e.b.waitFor(t, c.id, "connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:FAILED")

	// A port where nothing answers SIP.
	dead := testpeer.FreeUDPPort(t)
	c2 := newSDKClient(t, e.url)
	c2.send(t, "connection", map[string]any{"appKey": "echoKey", "sipLogin": "bob", "sipPassword": "x",
		"sipDomain": e.k.Domain, "sipOutboundProxy": "127.0.0.1", "sipPort": dead, "sipRegisterRequired": true})
	id := c2.expect(t, "getUserData", nil).obj()["sessionId"].(string)
	c2.expect(t, "fail", func(m map[string]any) bool { return m["apiMethod"] == "RegistrationStatusEvent" })
	e.b.waitFor(t, id, "connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:FAILED")
	c2.send(t, "sendData", map[string]any{"operationId": "op", "payload": map[string]any{}})
	c2.expect(t, "DataStatusEvent", status("ACCEPTED")) // the session still works
}

// TestSIPActionHooks: a backend's restClientConfig rules the actions —
// `call` refused with restOnError FAIL never reaches SIP and the client
// gets a `fail` naming the method and status; sendMessage with OVERWRITE
// goes where the backend says; clientExclude, restExclude and DISABLE
// shape what the client and the backend get.
func TestSIPActionHooks(t *testing.T) {
	e := newSIPEnv(t, nil)
	e.b.refuse = func(method string, _ map[string]any) int {
		if method == "call" {
			return 403
		}
		return 0
	}
	e.b.reply = func(method string, body map[string]any) map[string]any {
		switch method {
		case "connect":
			return map[string]any{"restClientConfig": map[string]any{
				"call":                    map[string]any{"restOnError": "FAIL"},
				"sendMessage":             map[string]any{"restPolicy": "OVERWRITE", "restOverwrite": "to"},
				"OnMessageEvent":          map[string]any{"clientExclude": "contentType"},
				"ConnectionStatusEvent":   map[string]any{"restPolicy": "NOTIFY"},
				"RegistrationStatusEvent": map[string]any{"restPolicy": "DISABLE"},
			}}
		case "sendMessage":
			return map[string]any{"to": "alice"}
		}
		return body
	}
	c := e.connect(t, "alice", testpeer.DefaultUsers["alice"], true)
	c.expect(t, "registered", nil)
	rtp := newRTPPeer(t)
	c.send(t, "call", map[string]any{"callId": "c-denied", "callee": "bob", "sdp": rtp.offer()})
	f := c.expect(t, "fail", func(m map[string]any) bool { return m["apiMethod"] == "call" }).obj()
	if !strings.Contains(fmt.Sprint(f["info"]), "403") {
		t.Errorf("fail = %v", f)
	}
	// Addressed to nobody, overwritten to alice herself.
	c.send(t, "sendMessage", map[string]any{"id": "m2", "to": "nobody", "body": "redirected"})
	in := c.expect(t, "OnMessageEvent", nil).obj()
	if in["body"] != "redirected" {
		t.Errorf("OnMessageEvent = %v", in)
	}
	if _, has := in["contentType"]; has {
		t.Errorf("clientExclude contentType not applied: %v", in)
	}
	c.expect(t, "MessageStatusEvent", status("ACCEPTED"))
	// RegistrationStatusEvent is DISABLEd: the client hears of it, the
	// backend does not.
	e.b.waitFor(t, c.id, "connect", "ConnectionStatusEvent:ESTABLISHED",
		"call", "sendMessage", "MessageStatusEvent:SENT", "OnMessageEvent", "MessageStatusEvent:ACCEPTED")
}

// TestSIPInBandDTMF: sendDtmf of type RFC2833 (the SDK's default) goes in
// band: the media engine injects RFC 4733 events into the client's stream
// toward the SIP side. sipp echoes them back through the relay, so the
// client's RTP peer sees events 5 and # (each with its end packet), and
// sipp got no INFO.
func TestSIPInBandDTMF(t *testing.T) {
	echo := testpeer.StartSipp(t, "uas_echo")
	e := newSIPEnv(t, map[string]string{"echo": echo.Addr})
	c := e.connect(t, "bob", testpeer.DefaultUsers["bob"], true)
	c.expect(t, "registered", nil)
	rtp := newRTPPeer(t)
	c.send(t, "call", map[string]any{"callId": "dtmf-1", "callee": "echo", "sdp": rtp.offer()})
	remote := c.expect(t, "setRemoteSDP", nil)
	var sdp string
	json.Unmarshal(remote.Data[1], &sdp)
	c.expect(t, "talk", status("ESTABLISHED"))
	rtp.echo(t, sdp)
	// The client talks on, as a phone does: the events continue its
	// stream (its SSRC, sequence numbers and timestamps).
	stop := make(chan struct{})
	talked := make(chan struct{})
	go func() {
		defer close(talked)
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpAudioPort(t, sdp)}
		pkt := make([]byte, 172)
		pkt[0], pkt[1] = 0x80, 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 1000; i++ { // 20 s at most
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			be.BigEndian.PutUint16(pkt[2:], uint16(100+i))
			be.BigEndian.PutUint32(pkt[4:], uint32(160*i))
			rtp.conn.WriteToUDP(pkt, to)
		}
	}()
	defer func() { close(stop); <-talked }()
	c.send(t, "sendDtmf", map[string]any{"callId": "dtmf-1", "dtmf": "5#"})

	ended := map[byte]bool{}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(10 * time.Second)
	for !(ended[5] && ended[11]) {
		if time.Now().After(deadline) {
			t.Fatalf("events ended: %v; want 5 and # (11) back through sipp", ended)
		}
		rtp.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := rtp.conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		if n == 16 && buf[1]&0x7f == 101 && buf[13]&0x80 != 0 {
			ended[buf[12]] = true
		}
	}
	c.send(t, "hangup", map[string]any{"callId": "dtmf-1"})
	c.expect(t, "finish", status("FINISH"))
	if strings.Contains(echo.Logs(), "INFO sip:") {
		t.Error("sipp got an INFO: the digits were not sent in band")
	}
}
