package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// sipjsOutcome is what browser/sipjs.html reports.
type sipjsOutcome struct {
	OK                  bool
	Error               string
	Status, Chromium    string
	Steps               []string
	LocalSDP, RemoteSDP string
	Ice                 string
	DTMF                bool
	First, AfterHold    struct {
		PacketsSent, BytesSent, PacketsReceived, BytesReceived int
		InboundCodec, OutboundCodec                            string
	}
}

// runSIPjs runs browser/sipjs.mjs with cfg and returns its outcome,
// failing the test with every log at hand.
func runSIPjs(t *testing.T, k *testpeer.Kamailio, cfg map[string]any, logs func() string) sipjsOutcome {
	t.Helper()
	needTool(t, "chromium", "chromium")
	needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))
	out := runSIPjsAsync(k, cfg)
	if !out.OK {
		t.Fatalf("SIP.js in Chromium: %s\nsteps: %s\n%s", out.Error, strings.Join(out.Steps, "\n"), logs())
	}
	return out
}

// TestSIPjsThroughKamailio is the deployment rtpengine is most often run
// for: SIP.js in headless Chromium registers with Kamailio over WebSocket
// and calls a sipp UAS that echoes RTP; Kamailio's rtpengine module, with
// the usual WebRTC flags (ICE=force DTLS=passive UDP/TLS/RTP/SAVPF toward
// the browser, ICE=remove RTP/AVP rtcp-mux-demux toward SIP), drives
// rtcgate's ng relay, which terminates ICE and DTLS-SRTP itself. Audio
// must flow both ways (getStats: packets and bytes sent and received), in
// PCMU; the call survives hold and unhold (re-INVITEs through the relay),
// DTMF goes out as RFC 4733, and hangup deletes the call in rtcgate.
func TestSIPjsThroughKamailio(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "8800", "--port-max", "8899", "--delete-delay", "0")...)
	uas := testpeer.StartSipp(t, "uas_echo")
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{WebSocket: true, Rtpengine: "udp:" + r.addr(t, "listen-ng"),
		Routes: map[string]string{"echo": uas.Addr}})
	logs := func() string {
		return fmt.Sprintf("rtcgate log:\n%s\nkamailio:\n%s\nsipp:\n%s", r.Logs(), k.Logs(), uas.Logs())
	}
	out := runSIPjs(t, k, map[string]any{
		"wsURL": "ws://" + k.WSAddr, "aor": "sip:alice@" + k.Domain, "user": "alice", "password": testpeer.DefaultUsers["alice"],
		"mode": "call", "target": "sip:echo@" + k.Domain,
	}, logs)
	if out.First.PacketsReceived < 5 || out.First.BytesReceived == 0 || out.First.PacketsSent < 5 || out.First.BytesSent == 0 {
		t.Errorf("audio before hold: %+v", out.First)
	}
	if out.First.InboundCodec != "audio/PCMU" || out.First.OutboundCodec != "audio/PCMU" {
		t.Errorf("codecs in/out %q/%q, want audio/PCMU (sipp's answer)", out.First.InboundCodec, out.First.OutboundCodec)
	}
	if out.AfterHold.PacketsReceived <= out.First.PacketsReceived {
		t.Errorf("no audio back after hold/unhold: %+v then %+v", out.First, out.AfterHold)
	}
	if !out.DTMF {
		t.Error("RTCDTMFSender refused the digit: telephone-event not negotiated through the relay")
	}
	// The browser was answered by rtcgate's ng relay: DTLS passive, its
	// host candidate on 127.0.0.1 in the relay's port range (Chrome
	// reports the description it parsed: "udp" in lower case).
	for _, want := range []string{"UDP/TLS/RTP/SAVPF", "a=setup:passive", "a=fingerprint:sha-256 ", "a=ice-ufrag:", " 2130706431 127.0.0.1 88"} {
		if !strings.Contains(out.RemoteSDP, want) {
			t.Errorf("answer to the browser lacks %q:\n%s", want, out.RemoteSDP)
		}
	}
	// Hangup deleted the call (BYE → rtpengine_delete).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		listed, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r.addr(t, "listen-http"), "list", "sessions", "all")
		if listed == "No sessions on this media relay.\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call still listed after hangup:\n%s\n%s", listed, logs())
		}
	}
	t.Logf("Chromium %s via SIP.js: %d/%d packets out/in before hold, %d/%d after", out.Chromium,
		out.First.PacketsSent, out.First.PacketsReceived, out.AfterHold.PacketsSent, out.AfterHold.PacketsReceived)
}

// TestSipsCallsSIPjs: the other way round: SIP.js registers as bob over
// WebSocket, sipp calls bob through Kamailio with plain RTP/AVP (and echoes
// whatever RTP reaches it), Kamailio asks rtcgate for WebRTC toward the
// browser (ICE=force, UDP/TLS/RTP/SAVPF, rtcp-mux, generate mid, SDES-off);
// the browser answers, audio flows both ways, sipp hangs up.
func TestSippCallsSIPjs(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "8900", "--port-max", "8999", "--delete-delay", "0")...)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{WebSocket: true, Rtpengine: "udp:" + r.addr(t, "listen-ng")})
	var uac *testpeer.Sipp
	logs := func() string {
		s := fmt.Sprintf("rtcgate log:\n%s\nkamailio:\n%s", r.Logs(), k.Logs())
		if uac != nil {
			s += "\nsipp:\n" + uac.Logs()
		}
		return s
	}
	needTool(t, "chromium", "chromium")
	needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))
	done := make(chan sipjsOutcome, 1)
	go func() {
		done <- runSIPjsAsync(k, map[string]any{
			"wsURL": "ws://" + k.WSAddr, "aor": "sip:bob@" + k.Domain, "user": "bob", "password": testpeer.DefaultUsers["bob"],
			"mode": "answer",
		})
	}()
	// sipp calls until bob is registered (404 before), for at most 20 s.
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		uac = testpeer.StartSipp(t, "uac_call", append(k.SippArgs(), "-s", "bob", "-m", "1", "-d", "4000", "-rtp_echo")...)
		if err = uac.Wait(30 * time.Second); err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "404") {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("sipp call to the browser: %v\n%s", err, logs())
	}
	var out sipjsOutcome
	select {
	case out = <-done:
	case <-time.After(90 * time.Second):
		t.Fatalf("SIP.js did not finish\n%s", logs())
	}
	if !out.OK {
		t.Fatalf("SIP.js: %s\nsteps: %s\n%s", out.Error, strings.Join(out.Steps, "\n"), logs())
	}
	if out.First.PacketsReceived < 5 || out.First.PacketsSent < 5 || out.First.BytesReceived == 0 || out.First.BytesSent == 0 {
		t.Errorf("audio: %+v", out.First)
	}
	for _, want := range []string{"UDP/TLS/RTP/SAVPF", "a=setup:actpass", "a=fingerprint:sha-256 ", "a=mid:1", "a=rtcp-mux"} {
		if !strings.Contains(out.RemoteSDP, want) {
			t.Errorf("offer to the browser lacks %q:\n%s", want, out.RemoteSDP)
		}
	}
	t.Logf("sipp → SIP.js (%s): %d/%d packets out/in", out.Chromium, out.First.PacketsSent, out.First.PacketsReceived)
}

// runSIPjsAsync runs browser/sipjs.mjs; it may run on another goroutine
// than the test's: failures are in the outcome (OK false, Error).
func runSIPjsAsync(k *testpeer.Kamailio, cfg map[string]any) sipjsOutcome {
	chromium, err1 := exec.LookPath("chromium")
	node, err2 := exec.LookPath("node")
	if err := errors.Join(err1, err2); err != nil {
		return sipjsOutcome{Error: err.Error()}
	}
	b, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(browserDir, "sipjs.mjs"), k.WSAddr)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "E2E_CALL="+string(b))
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	var out sipjsOutcome
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		return sipjsOutcome{Error: fmt.Sprintf("no outcome: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())}
	}
	if !out.OK {
		out.Error += "\nstderr:\n" + stderr.String()
	}
	return out
}
