package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// browserCallEnv is what a browser's call needs: Debian's Chromium, node
// with e2e/browser's packages, and rtcgate in front of Kamailio, where
// "echo" is a sipp UAS echoing RTP; browsers get the media engine's
// loopback address.
func browserCallEnv(t *testing.T) (chromium, node string, e *sipEnv) {
	t.Helper()
	chromium = needTool(t, "chromium", "chromium")
	node = needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))
	uas := testpeer.StartSipp(t, "uas_echo")
	return chromium, node, newSIPEnv(t, map[string]string{"echo": uas.Addr}, "--webrtc-address", "127.0.0.1")
}

// TestWebRTCCallInChromium places a real WebRTC call: the Flashphoner Web
// SDK in Debian's headless Chromium (fake microphone) registers a Kamailio
// user through rtcgate and calls "echo", a sipp UAS that echoes RTP. The
// browser's ICE and DTLS-SRTP end in rtcgate's media relay, which sends
// sipp plain RTP. The call must reach ESTABLISHED;
// RTCPeerConnection.getStats() must then show audio sent and audio received
// (sipp's echo, back through rtcgate), in PCMU, the codec sipp answered;
// hangup must give FINISH.
func TestWebRTCCallInChromium(t *testing.T) {
	chromium, node, e := browserCallEnv(t)
	host, port := splitHostPort(t, e.k.Addr)
	cfg, _ := json.Marshal(map[string]any{
		"appKey": "echoKey",
		"callee": "echo",
		"sipOptions": map[string]any{
			"login": "alice", "authenticationName": "alice", "password": testpeer.DefaultUsers["alice"],
			"domain": e.k.Domain, "outboundProxy": host, "port": port, "registerRequired": true,
		},
	})

	addr := e.r.addr(t, "listen-client")
	script := filepath.Join(browserDir, "call.mjs")
	stdout, stderr, code := runIn(t, "", 3*time.Minute, []string{"CHROMIUM=" + chromium, "E2E_CALL=" + string(cfg)}, node, script, addr)
	fail := func(format string, args ...any) {
		t.Helper()
		// sipp's logs follow: StartSipp's cleanup logs them on failure.
		t.Fatalf("%s\ncall.mjs exit %d\nstdout:\n%s\nstderr:\n%s\nrtcgate log:\n%s",
			fmt.Sprintf(format, args...), code, stdout, stderr, e.r.Logs())
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var out struct {
		OK                             bool
		Error, Step, Status, Finish    string
		Disconnect, Chromium, IceState string
		RemoteSDP, LocalSDP            string
		CallStatuses, SessionStatuses  []string
		Stats                          struct {
			PacketsReceived, PacketsSent int
			BytesReceived, BytesSent     int
			InboundCodec, OutboundCodec  string
			RemoteCandidate              string
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
		fail("call.mjs printed no JSON outcome: %v", err)
	}
	if code != 0 || !out.OK {
		fail("WebRTC call from Chromium failed at step %q: %s", out.Step, out.Error)
	}
	if out.Status != "ESTABLISHED" || out.Finish != "FINISH" || out.Disconnect != "DISCONNECTED" {
		fail("want ESTABLISHED, FINISH, DISCONNECTED; got %+v", out)
	}
	if out.Stats.PacketsReceived < 25 || out.Stats.PacketsSent < 25 {
		fail("audio packets sent %d, received %d: want at least 25 each way", out.Stats.PacketsSent, out.Stats.PacketsReceived)
	}
	// sipp answers PCMU (and telephone-event): the browser must have been
	// answered with it alone, so both directions are PCMU.
	if out.Stats.InboundCodec != "audio/PCMU" || out.Stats.OutboundCodec != "audio/PCMU" {
		fail("codecs in/out %q/%q, want audio/PCMU both ways", out.Stats.InboundCodec, out.Stats.OutboundCodec)
	}
	// rtcgate's answer is the media relay's: ICE, DTLS-SRTP (passive: the
	// browser offered actpass), rtcp-mux, a loopback candidate
	// (webrtc-address) on one of the relay's ports, and that is where
	// media went.
	for _, want := range []string{"UDP/TLS/RTP/SAVPF", "a=fingerprint:sha-256 ", "a=setup:passive", "a=ice-ufrag:", "a=rtcp-mux", " 127.0.0.1 "} {
		if !strings.Contains(out.RemoteSDP, want) {
			fail("rtcgate's answer lacks %q:\n%s", want, out.RemoteSDP)
		}
	}
	// The relay's ports are port-min..port-max (30000–40000 by default);
	// nothing else faces the browser.
	var relayPort uint16
	for _, l := range strings.Split(out.RemoteSDP, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "a=candidate:"); ok {
			if c, err := webrtcbridge.ParseCandidate(v); err == nil && c.Component == 1 {
				relayPort = c.Addr.Port()
				break
			}
		}
	}
	if relayPort < 30000 || relayPort > 40000 {
		fail("the answer's candidate port %d is not one of the relay's (30000-40000):\n%s", relayPort, out.RemoteSDP)
	}
	if !strings.HasPrefix(out.Stats.RemoteCandidate, "127.0.0.1:") {
		fail("media went to %q, want rtcgate's 127.0.0.1 candidate", out.Stats.RemoteCandidate)
	}

	// The backend saw the call established and finished.
	e.b.waitUntil(t, "CallStatusEvent ESTABLISHED and FINISH for the call to echo", func(hs []hook) bool {
		var est, fin bool
		for _, h := range hs {
			if h.Method == "CallStatusEvent" && h.Body["callee"] == "echo" {
				est = est || h.Body["status"] == "ESTABLISHED"
				fin = fin || h.Body["status"] == "FINISH"
			}
		}
		return est && fin
	})
	t.Logf("Chromium %s: WebRTC call ESTABLISHED, audio %d packets out / %d back (%s) via %s, then FINISH",
		out.Chromium, out.Stats.PacketsSent, out.Stats.PacketsReceived, out.Stats.InboundCodec, out.Stats.RemoteCandidate)
}
