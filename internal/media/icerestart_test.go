package media

import (
	"bytes"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

var (
	reUfrag = regexp.MustCompile(`(?m)^a=ice-ufrag:(\S+)`)
	rePwd   = regexp.MustCompile(`(?m)^a=ice-pwd:(\S+)`)
	reFP    = regexp.MustCompile(`(?m)^a=fingerprint:(.+)$`)
	reSetup = regexp.MustCompile(`(?m)^a=setup:(\S+)`)
)

func sdpAttr(t *testing.T, re *regexp.Regexp, s string) string {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in\n%s", re, s)
	}
	return strings.TrimSpace(m[1])
}

// TestICERestart: a pion browser talks DTLS-SRTP through the relay to a
// plain SIP party; then it re-offers with new ICE credentials from a new
// port (an ICE restart after a network change). rtcgate answers with new
// ice-ufrag/ice-pwd, as rtpengine does, and the same fingerprint and DTLS
// role; the browser's checks with the new credentials are answered, and
// media keeps flowing both ways, payload byte for byte, to the browser's
// new address, with the same DTLS association (no new handshake: the same
// transport, no failures). With media-handover the same holds, and a
// packet that does not authenticate from a third address moves nothing.
func TestICERestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags Flags
	}{{"latching", Flags{}}, {"media-handover", Flags{MediaHandover: true}}} {
		t.Run(tc.name, func(t *testing.T) { iceRestart(t, tc.flags) })
	}
}

func iceRestart(t *testing.T, flags Flags) {
	e := newEngine(t, "127.0.0.1")
	pc, track := browserPC(t)
	sip := newPlainPeer(t)
	toSIPReq := func(offer string) *Request {
		return &Request{CallID: "r", FromTag: "browser", SDP: []byte(offer), Flags: flags,
			Secure: Secure{Protocol: "RTP/AVP", ICE: ICERemove}, RTCPMux: RTCPMux{Demux: true}}
	}
	answerReq := func(dtls DTLSMode) *Request {
		return &Request{CallID: "r", FromTag: "browser", ToTag: "sip", SDP: sdpFor(sip.port(), "a=sendrecv"), Flags: flags,
			Secure: Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: ICEForce, DTLS: dtls}, RTCPMux: RTCPMux{Require: true}}
	}
	toSIP := mustOK(t)(e.Offer(toSIPReq(gatheredOffer(t, pc))))
	relaySIP := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpPort(t, toSIP)}
	answer1 := mustOK(t)(e.Answer(answerReq(DTLSPassive)))

	got := connectBrowser(t, pc, answer1)

	// Both parties send every 20 ms, the payload naming the phase.
	var phase atomic.Value
	phase.Store("before")
	stop := make(chan struct{})
	sent := make(chan struct{})
	defer func() { close(stop); <-sent }()
	go func() {
		defer close(sent)
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			ph := phase.Load().(string)
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x1234},
				Payload: []byte("browser " + ph + " \x00\xff")})
			pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0xabcd},
				Payload: []byte("sip " + ph + " \x00\xff")}).Marshal()
			sip.conn.WriteToUDP(pkt, relaySIP)
		}
	}()
	flows := func(ph string) {
		t.Helper()
		readUntil(t, sip.conn, func(b []byte) bool {
			var p rtp.Packet
			return p.Unmarshal(b) == nil && bytes.Equal(p.Payload, []byte("browser "+ph+" \x00\xff"))
		})
		deadline := time.After(10 * time.Second)
		for {
			select {
			case p := <-got:
				if bytes.Equal(p.Payload, []byte("sip "+ph+" \x00\xff")) {
					return
				}
			case <-deadline:
				t.Fatalf("browser never received the SIP party's %q audio", ph)
			}
		}
	}
	flows("before")

	browserSide := func() *side {
		c := e.lookup("r")
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.monologues["browser"].sides[0]
	}
	bs := browserSide()
	x1 := bs.rtp.xport.Load()
	browserMedia := func() MediaInfo {
		info, err := e.Query("r")
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range info.Tags {
			if tg.Tag == "browser" {
				return tg.Medias[0]
			}
		}
		t.Fatal("no browser tag")
		return MediaInfo{}
	}
	m1 := browserMedia()
	ep1 := m1.Streams[0].Endpoint

	// The ICE restart: new credentials, new sockets.
	reoffer := gatheredOffer(t, pc, &webrtc.OfferOptions{ICERestart: true})
	mustOK(t)(e.Offer(toSIPReq(reoffer)))
	// The re-answer does not repeat DTLS=passive: the role is kept anyway.
	answer2 := mustOK(t)(e.Answer(answerReq(DTLSDefault)))
	for _, a := range []struct {
		re   *regexp.Regexp
		same bool
	}{{reUfrag, false}, {rePwd, false}, {reFP, true}, {reSetup, true}} {
		v1, v2 := sdpAttr(t, a.re, answer1), sdpAttr(t, a.re, answer2)
		if (v1 == v2) != a.same {
			t.Errorf("%s: first answer %q, after the restart %q (same wanted: %v)", a.re, v1, v2, a.same)
		}
	}
	if sdpPort(t, answer1) != sdpPort(t, answer2) {
		t.Errorf("relay port changed: %d → %d", sdpPort(t, answer1), sdpPort(t, answer2))
	}
	phase.Store("after")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer2}); err != nil {
		t.Fatal(err)
	}
	flows("after")

	m2 := browserMedia()
	ep2 := m2.Streams[0].Endpoint
	if ep2 == ep1 || !ep2.IsValid() {
		t.Errorf("browser endpoint %v before the restart, %v after: want its new address", ep1, ep2)
	}
	if !strings.Contains(reoffer, " "+strconv.Itoa(int(ep2.Port()))+" typ host") {
		t.Errorf("media goes to %v, not a candidate of the re-offer:\n%s", ep2, reoffer)
	}
	if m2.Checks <= m1.Checks {
		t.Errorf("checks answered: %d before, %d after the restart", m1.Checks, m2.Checks)
	}
	if x2 := bs.rtp.xport.Load(); x2 != x1 || m2.DTLSFailures != 0 || m2.ICERestarts != 1 {
		t.Errorf("transport replaced: %v; DTLS failures %d; ICE restarts %d", x2 != x1, m2.DTLSFailures, m2.ICERestarts)
	}

	if flags.MediaHandover {
		// Garbage SRTP from elsewhere does not authenticate: no handover.
		other := newPlainPeer(t)
		relayBrowser := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpPort(t, answer2)}
		forged, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 9, SSRC: 0x1234}, Payload: make([]byte, 30)}).Marshal()
		before := browserMedia().AuthFailures
		other.conn.WriteToUDP(forged, relayBrowser)
		deadline := time.Now().Add(5 * time.Second)
		for browserMedia().AuthFailures == before {
			if time.Now().After(deadline) {
				t.Fatal("forged SRTP not counted")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ep := browserMedia().Streams[0].Endpoint; ep != ep2 {
			t.Errorf("a forged packet from %v moved the endpoint to %v", other.conn.LocalAddr(), ep)
		}
		phase.Store("still")
		flows("still")
	}
}
