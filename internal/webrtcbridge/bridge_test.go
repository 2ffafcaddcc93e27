package webrtcbridge

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// testConfig binds ICE to loopback and shows the bridge's debug log if the
// test fails.
func testConfig(t *testing.T) Config {
	t.Helper()
	var buf testutil.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log:\n%s", buf.String())
		}
	})
	return Config{
		Address: loopback,
		Log:     slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// closeBridge closes b, failing the test if Close errs or hangs (a
// goroutine that does not end would make it wait forever).
func closeBridge(t *testing.T, b *Bridge) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Close did not return within 10 s")
	}
}

// Codecs the test browser knows, with Chromium's payload type numbers.
var (
	opus    = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}
	pcmu    = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}
	dtmf126 = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"}, PayloadType: 126}
	dtmf101 = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"}, PayloadType: 101}
	vp8     = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}
)

// newBrowser makes the PeerConnection that plays the browser: a full ICE
// agent (as Chromium is) on loopback.
func newBrowser(t *testing.T, audio []webrtc.RTPCodecParameters, video bool) *webrtc.PeerConnection {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range audio {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	if video {
		if err := me.RegisterCodec(vp8, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	return pc
}

// received collects the RTP the test browser gets.
func received(pc *webrtc.PeerConnection) <-chan *rtp.Packet {
	ch := make(chan *rtp.Packet, 256)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case ch <- p:
			default:
			}
		}
	})
	return ch
}

// plainPeer plays the media engine: a UDP socket on loopback.
type plainPeer struct {
	conn *net.UDPConn
	got  chan plainPacket
	done chan struct{}
}

type plainPacket struct {
	p    *rtp.Packet
	from netip.AddrPort
}

func newPlainPeer(t *testing.T) *plainPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	pp := &plainPeer{conn: conn, got: make(chan plainPacket, 256), done: make(chan struct{})}
	go func() {
		defer close(pp.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			// Unmarshal keeps a slice of its input as the payload: each
			// packet needs its own bytes, or the next read rewrites it.
			p := &rtp.Packet{}
			if p.Unmarshal(bytes.Clone(buf[:n])) != nil {
				continue
			}
			select {
			case pp.got <- plainPacket{p, from}:
			default:
			}
		}
	}()
	t.Cleanup(pp.close)
	return pp
}

func (pp *plainPeer) close() {
	pp.conn.Close()
	<-pp.done
}

func (pp *plainPeer) port() int { return pp.conn.LocalAddr().(*net.UDPAddr).Port }

func (pp *plainPeer) send(t *testing.T, to netip.AddrPort, pt uint8, seq uint16, payload []byte) {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x5eed}, Payload: payload}
	b, _ := p.Marshal()
	if _, err := pp.conn.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// until calls send every 10 ms until ok accepts a value from ch; it fails
// the test after 10 s.
func until[T any](t *testing.T, what string, ch <-chan T, send func(seq uint16), ok func(T) bool) T {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var seq uint16
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v
			}
		case <-tick.C:
			seq++
			send(seq)
		case <-deadline.C:
			t.Fatalf("%s: nothing arrived within 10 s", what)
		}
	}
}

// gatheredOffer or answer: a description with its candidates.
func localSDP(t *testing.T, pc *webrtc.PeerConnection, d webrtc.SessionDescription, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	<-done
	return pc.LocalDescription().SDP
}

func mline(t *testing.T, b []byte, i int) string {
	t.Helper()
	s, err := sdp.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if i >= len(s.Media) {
		t.Fatalf("no m= section %d in\n%s", i, b)
	}
	return s.Media[i].Lines[0].Value
}

// outgoing sets up a call the browser offers (opus, PCMU, telephone-event
// and a video section) and the plain side answers with PCMU and
// telephone-event renumbered to 101.
type outgoing struct {
	browser *webrtc.PeerConnection
	track   *relayTrack // the browser's microphone: keeps each packet's type
	toPC    <-chan *rtp.Packet
	bridge  *Bridge
	plain   *plainPeer
	answer  []byte
}

func newOutgoing(t *testing.T) *outgoing {
	t.Helper()
	o := &outgoing{browser: newBrowser(t, []webrtc.RTPCodecParameters{opus, pcmu, dtmf126}, true)}
	o.toPC = received(o.browser)
	o.track = &relayTrack{}
	if _, err := o.browser.AddTrack(o.track); err != nil {
		t.Fatal(err)
	}
	if _, err := o.browser.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	// Like the Web SDK, send the offer as createOffer made it, before any
	// candidate: the bridge is ICE-lite and needs none.
	offer, err := o.browser.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.browser.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if !IsWebRTC([]byte(offer.SDP)) {
		t.Fatalf("pion's offer is not WebRTC:\n%s", offer.SDP)
	}
	b, plainOffer, err := NewFromOffer(testConfig(t), []byte(offer.SDP))
	if err != nil {
		t.Fatal(err)
	}
	o.bridge = b
	t.Cleanup(func() { closeBridge(t, b) })
	if got, want := mline(t, plainOffer, 0), "audio "+strconv.Itoa(int(b.PlainAddr().Port()))+" RTP/AVP 111 0 126"; got != want {
		t.Errorf("plain offer m= %q, want %q:\n%s", got, want, plainOffer)
	}
	if !strings.Contains(string(plainOffer), "c=IN IP4 127.0.0.1\r\n") || IsWebRTC(plainOffer) {
		t.Errorf("plain offer:\n%s", plainOffer)
	}

	o.plain = newPlainPeer(t)
	plainAnswer := crlf(`
v=0
o=far 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio ` + strconv.Itoa(o.plain.port()) + ` RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
`)
	o.answer, err = b.Answer(plainAnswer)
	if err != nil {
		t.Fatal(err)
	}
	// Only what the plain side chose, with the browser's numbers; video
	// refused.
	if got := mline(t, o.answer, 0); !strings.HasSuffix(got, " UDP/TLS/RTP/SAVPF 0 126") || strings.HasPrefix(got, "audio 0 ") {
		t.Errorf("browser answer audio m= %q:\n%s", got, o.answer)
	}
	if got := mline(t, o.answer, 1); !strings.HasPrefix(got, "video 0 ") {
		t.Errorf("browser answer video m= %q, want it refused:\n%s", got, o.answer)
	}
	for _, want := range []string{"a=ice-lite", "a=fingerprint:", "a=ice-ufrag:", "127.0.0.1"} {
		if !strings.Contains(string(o.answer), want) {
			t.Errorf("browser answer lacks %q:\n%s", want, o.answer)
		}
	}
	if strings.Contains(string(o.answer), "opus") {
		t.Errorf("browser answer offers opus, which the plain side did not choose:\n%s", o.answer)
	}
	// A repeated answer (183 then 200) gives the same SDP.
	if again, err := b.Answer(plainAnswer); err != nil || !bytes.Equal(again, o.answer) {
		t.Errorf("second Answer = %v, changed: %v", err, !bytes.Equal(again, o.answer))
	}
	if err := o.browser.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(o.answer)}); err != nil {
		t.Fatalf("browser refused the answer: %v\n%s", err, o.answer)
	}
	return o
}

// browserSends writes one packet from the test browser's track.
func (o *outgoing) browserSends(pt uint8, seq uint16, payload []byte) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 1}, Payload: payload}
	b, _ := p.Marshal()
	o.track.write(b, newRoute(nil))
}

func TestOutgoingCallMedia(t *testing.T) {
	o := newOutgoing(t)
	voice := []byte("browser voice")
	// Browser → plain: PCMU as sent, from the bridge's plain socket.
	got := until(t, "browser PCMU at the plain peer", o.plain.got,
		func(seq uint16) { o.browserSends(0, seq, voice) },
		func(p plainPacket) bool { return p.p.PayloadType == 0 })
	if !bytes.Equal(got.p.Payload, voice) || got.from != o.bridge.PlainAddr() {
		t.Errorf("plain peer got %q from %v, want %q from %v", got.p.Payload, got.from, voice, o.bridge.PlainAddr())
	}
	// telephone-event: the browser's 126 is the plain side's 101.
	dtmf := []byte{5, 0x0a, 0, 160}
	got = until(t, "browser DTMF at the plain peer", o.plain.got,
		func(seq uint16) { o.browserSends(126, 1000+seq, dtmf) },
		func(p plainPacket) bool { return p.p.PayloadType != 0 })
	if got.p.PayloadType != 101 || !bytes.Equal(got.p.Payload, dtmf) {
		t.Errorf("plain peer got DTMF as PT %d %x, want PT 101 %x", got.p.PayloadType, got.p.Payload, dtmf)
	}

	// Plain → browser: PCMU as sent, telephone-event back to 126.
	to := o.bridge.PlainAddr()
	p := until(t, "plain PCMU at the browser", o.toPC,
		func(seq uint16) { o.plain.send(t, to, 0, seq, []byte("far voice")) },
		func(p *rtp.Packet) bool { return p.PayloadType == 0 })
	if string(p.Payload) != "far voice" {
		t.Errorf("browser got %q", p.Payload)
	}
	// Padding is dropped, the payload kept.
	p = until(t, "padded plain RTP at the browser", o.toPC,
		func(seq uint16) {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 4, PayloadType: 0, SequenceNumber: 1500 + seq, Timestamp: uint32(seq) * 160, SSRC: 0x5eed}, Payload: []byte("padded")}
			b, err := pkt.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			o.plain.conn.WriteToUDPAddrPort(b, to)
		},
		func(p *rtp.Packet) bool { return string(p.Payload) == "padded" })
	if p.Padding {
		t.Errorf("browser got a padded packet")
	}
	p = until(t, "plain DTMF at the browser", o.toPC,
		func(seq uint16) { o.plain.send(t, to, 101, 2000+seq, dtmf) },
		func(p *rtp.Packet) bool { return p.PayloadType != 0 })
	if p.PayloadType != 126 || !bytes.Equal(p.Payload, dtmf) {
		t.Errorf("browser got DTMF as PT %d %x, want PT 126 %x", p.PayloadType, p.Payload, dtmf)
	}
}

func TestLatchesPlainPeer(t *testing.T) {
	o := newOutgoing(t)
	// Until the plain side sends, RTP goes where its answer said.
	until(t, "browser RTP at the answer's address", o.plain.got,
		func(seq uint16) { o.browserSends(0, seq, []byte("a")) },
		func(plainPacket) bool { return true })

	// The engine really sends from elsewhere: the first packet moves the
	// peer there, and from then on the answer's address is a stranger.
	real := newPlainPeer(t)
	to := o.bridge.PlainAddr()
	until(t, "plain RTP from the real peer at the browser", o.toPC,
		func(seq uint16) { real.send(t, to, 0, seq, []byte("real")) },
		func(p *rtp.Packet) bool { return string(p.Payload) == "real" })
	until(t, "browser RTP at the latched peer", real.got,
		func(seq uint16) { o.browserSends(0, 100+seq, []byte("b")) },
		func(p plainPacket) bool { return string(p.p.Payload) == "b" })

	// Packets from the SDP's address are no longer relayed.
	for i := range 20 {
		o.plain.send(t, to, 0, uint16(500+i), []byte("stranger"))
		real.send(t, to, 0, uint16(600+i), []byte("real2"))
		time.Sleep(5 * time.Millisecond)
	}
	deadline := time.After(2 * time.Second)
	for seen := 0; seen < 20; {
		select {
		case p := <-o.toPC:
			if string(p.Payload) == "stranger" {
				t.Fatal("a packet from a non-latched address reached the browser")
			}
			if string(p.Payload) == "real2" {
				seen++
			}
		case <-deadline:
			if seen == 0 {
				t.Fatal("no packet from the latched peer reached the browser")
			}
			return
		}
	}
}

func TestIncomingCallMedia(t *testing.T) {
	engine := newPlainPeer(t)
	// sipp-style: static types without rtpmap, telephone-event 101, and a
	// video section the bridge refuses.
	plainOffer := crlf(`
v=0
o=sipp 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio ` + strconv.Itoa(engine.port()) + ` RTP/AVP 8 0 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
m=video ` + strconv.Itoa(engine.port()+2) + ` RTP/AVP 96
a=rtpmap:96 VP8/90000
`)
	b, offer, err := NewForOffer(testConfig(t), plainOffer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBridge(t, b) })
	if !IsWebRTC(offer) {
		t.Errorf("browser offer is not WebRTC:\n%s", offer)
	}
	if got := mline(t, offer, 0); !strings.HasSuffix(got, " UDP/TLS/RTP/SAVPF 8 0 101") {
		t.Errorf("browser offer m= %q:\n%s", got, offer)
	}
	s, _ := sdp.Parse(offer)
	if len(s.Media) != 1 {
		t.Errorf("browser offer has %d sections, want audio only:\n%s", len(s.Media), offer)
	}
	for _, want := range []string{"a=ice-lite", "a=fingerprint:", "a=ice-ufrag:", "a=setup:actpass", "a=candidate:", "127.0.0.1"} {
		if !strings.Contains(string(offer), want) {
			t.Errorf("browser offer lacks %q:\n%s", want, offer)
		}
	}

	// The browser speaks PCMU (not PCMA) and telephone-event.
	browser := newBrowser(t, []webrtc.RTPCodecParameters{pcmu, dtmf101}, false)
	toPC := received(browser)
	if err := browser.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		t.Fatal(err)
	}
	mic, err := webrtc.NewTrackLocalStaticRTP(pcmu.RTPCodecCapability, "mic", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := browser.AddTrack(mic); err != nil {
		t.Fatal(err)
	}
	ans, err := browser.CreateAnswer(nil)
	answer := localSDP(t, browser, ans, err)

	plainAnswer, err := b.Accept([]byte(answer))
	if err != nil {
		t.Fatalf("Accept: %v\n%s", err, answer)
	}
	if got, want := mline(t, plainAnswer, 0), "audio "+strconv.Itoa(int(b.PlainAddr().Port()))+" RTP/AVP 0 101"; got != want {
		t.Errorf("plain answer m= %q, want %q:\n%s", got, want, plainAnswer)
	}
	if got := mline(t, plainAnswer, 1); got != "video 0 RTP/AVP 96" {
		t.Errorf("plain answer video m= %q:\n%s", got, plainAnswer)
	}
	for _, want := range []string{"c=IN IP4 127.0.0.1\r\n", "a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:101 telephone-event/8000\r\n", "a=sendrecv\r\n"} {
		if !strings.Contains(string(plainAnswer), want) {
			t.Errorf("plain answer lacks %q:\n%s", want, plainAnswer)
		}
	}
	if again, err := b.Accept([]byte(answer)); err != nil || !bytes.Equal(again, plainAnswer) {
		t.Errorf("second Accept = %v, changed: %v", err, !bytes.Equal(again, plainAnswer))
	}
	if _, err := b.Answer(plainOffer); err == nil {
		t.Error("Answer on an incoming bridge succeeded")
	}

	// Browser → plain, to the address of the plain offer.
	got := until(t, "browser PCMU at the engine", engine.got,
		func(seq uint16) {
			_ = mic.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160}, Payload: []byte("hello sip")})
		},
		func(plainPacket) bool { return true })
	if got.p.PayloadType != 0 || string(got.p.Payload) != "hello sip" || got.from != b.PlainAddr() {
		t.Errorf("engine got PT %d %q from %v", got.p.PayloadType, got.p.Payload, got.from)
	}
	// Plain → browser, with DTMF.
	to := b.PlainAddr()
	p := until(t, "engine PCMU at the browser", toPC,
		func(seq uint16) { engine.send(t, to, 0, seq, []byte("hello web")) },
		func(*rtp.Packet) bool { return true })
	if p.PayloadType != 0 || string(p.Payload) != "hello web" {
		t.Errorf("browser got PT %d %q", p.PayloadType, p.Payload)
	}
	until(t, "engine DTMF at the browser", toPC,
		func(seq uint16) { engine.send(t, to, 101, 100+seq, []byte{1, 0x8a, 0, 160}) },
		func(p *rtp.Packet) bool { return p.PayloadType == 101 })
}

func TestChromeOffer(t *testing.T) {
	// pion must accept Chromium's real offer (BUNDLE, extmap, red, CN,
	// rtcp-fb, video) and answer only what the plain side chose.
	b, plainOffer, err := NewFromOffer(testConfig(t), chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBridge(t, b)
	if got := mline(t, plainOffer, 0); !strings.HasSuffix(got, " RTP/AVP 111 9 0 8 110 126") {
		t.Errorf("plain offer m= %q", got)
	}
	ans, err := b.Answer(crlf(`
v=0
o=far 1 1 IN IP4 192.0.2.10
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 9 RTP/AVP 8 126
a=rtpmap:8 PCMA/8000
a=rtpmap:126 telephone-event/8000
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := mline(t, ans, 0); !strings.HasSuffix(got, " UDP/TLS/RTP/SAVPF 8 126") {
		t.Errorf("answer audio m= %q:\n%s", got, ans)
	}
	if got := mline(t, ans, 1); !strings.HasPrefix(got, "video 0 ") {
		t.Errorf("answer video m= %q:\n%s", got, ans)
	}
	for _, bad := range []string{"a=extmap:", "transport-cc", "a=ssrc-group"} {
		if strings.Contains(string(ans), bad) {
			t.Errorf("answer has %q:\n%s", bad, ans)
		}
	}
	if !strings.Contains(string(ans), "a=mid:0") {
		t.Errorf("answer has no a=mid:0:\n%s", ans)
	}
}

func TestNonLocalAddress(t *testing.T) {
	// 192.0.2.1 (TEST-NET-1) is on no interface: the bridge must say so
	// rather than answer without a candidate. Nothing is sent to it.
	cfg := testConfig(t)
	cfg.Address = netip.MustParseAddr("192.0.2.1")
	b, _, err := NewFromOffer(cfg, chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBridge(t, b)
	_, err = b.Answer(crlf("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 9 RTP/AVP 0\n"))
	if err == nil || !strings.Contains(err.Error(), "no ICE candidate") {
		t.Errorf("Answer = %v, want no ICE candidate", err)
	}
}

func TestPortRange(t *testing.T) {
	cfg := testConfig(t)
	cfg.PortMin, cfg.PortMax = 23000, 23100
	b, _, err := NewFromOffer(cfg, chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBridge(t, b)
	ans, err := b.Answer(crlf("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 9 RTP/AVP 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := sdp.Parse(ans)
	cands := s.Media[0].Attrs("candidate")
	if len(cands) == 0 {
		t.Fatalf("no candidate:\n%s", ans)
	}
	for _, c := range cands {
		f := strings.Fields(c)
		if len(f) < 8 || f[4] != "127.0.0.1" || f[5] < "23000" || f[5] > "23100" || len(f[5]) != 5 {
			t.Errorf("candidate %q not on 127.0.0.1:23000-23100", c)
		}
	}
}

func TestCloseIdempotent(t *testing.T) {
	b, _, err := NewFromOffer(testConfig(t), chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	closeBridge(t, b)
	closeBridge(t, b)
	if _, err := b.Answer(sippOffer); !errors.Is(err, ErrClosed) {
		t.Errorf("Answer after Close = %v, want ErrClosed", err)
	}
}

// TestCloseLeavesNoGoroutines runs calls with media both ways, closes
// everything and waits (bounded) for the goroutine count to come back.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	testutil.CheckGoroutines(t)
	t.Run("outgoing with media", func(t *testing.T) { TestOutgoingCallMedia(t) })
	t.Run("incoming with media", func(t *testing.T) { TestIncomingCallMedia(t) })
	t.Run("answer failed", func(t *testing.T) { TestNonLocalAddress(t) })
	t.Run("never answered", func(t *testing.T) {
		b, _, err := NewFromOffer(testConfig(t), chromeOffer)
		if err != nil {
			t.Fatal(err)
		}
		closeBridge(t, b)
	})
	t.Run("incoming never accepted", func(t *testing.T) {
		b, _, err := NewForOffer(testConfig(t), sippOffer)
		if err != nil {
			t.Fatal(err)
		}
		closeBridge(t, b)
	})
}
