package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	pionmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/client/clienttest"
	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/sipua"
	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// Ports of this file's engines: 26100–26199, a block of 20 per test.

// eventLog is a Notifier that lets a test wait for the events it records.
type eventLog struct {
	mu     sync.Mutex
	events []client.Event
	more   chan struct{} // closed and replaced on each event
}

func newEventLog() *eventLog { return &eventLog{more: make(chan struct{})} }

func (n *eventLog) Notify(_ client.Session, e client.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.events = append(n.events, e)
	close(n.more)
	n.more = make(chan struct{})
}

func (n *eventLog) Ask(_ context.Context, _ client.Session, e client.Event) (map[string]any, error) {
	return e.Data, nil
}

// wait returns the first event that ok accepts, within 10 s.
func (n *eventLog) wait(t *testing.T, what string, ok func(client.Event) bool) client.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for seen := 0; ; {
		n.mu.Lock()
		evs, more := n.events, n.more
		n.mu.Unlock()
		for ; seen < len(evs); seen++ {
			if ok(evs[seen]) {
				return evs[seen]
			}
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no %s in %d events: %+v", what, len(evs), evs)
		}
	}
}

// remoteSDP waits for the client's setRemoteSDP.
func (n *eventLog) remoteSDP(t *testing.T) string {
	t.Helper()
	e := n.wait(t, "RemoteSDP", func(e client.Event) bool { return e.Name == client.RemoteSDP })
	return e.Data["sdp"].(string)
}

// newEngine is a media engine on loopback with ports base..base+19 and a
// certificate the test knows.
func newEngine(t *testing.T, base int) (*media.Engine, *webrtcbridge.Certificate) {
	t.Helper()
	itf, err := config.ParseInterface("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := webrtcbridge.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := media.New(media.Config{Interfaces: []config.Interface{itf}, PortMin: base, PortMax: base + 19,
		Live: config.NewLive(config.Defaults()), Threads: 1, Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng, cert
}

// browser is a pion PeerConnection playing Chromium as the Web SDK sets it
// up (bundlePolicy max-compat), on loopback: it sends PCMU every 20 ms
// and counts the RTP it gets.
type browser struct {
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticSample
	received atomic.Int64
	got      chan struct{} // closed at the first packet received
	gotOnce  sync.Once
}

func newBrowser(t *testing.T, video, data bool) *browser {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
		webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
		webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A phone's RTP has neither a=ssrc nor the mid header extension:
	// Chromium plays such an unsignalled stream, pion only when told to.
	se.SetHandleUndeclaredSSRCWithoutAnswer(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).
		NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxCompat})
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{pc: pc, got: make(chan struct{})}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	b.track, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(b.track); err != nil {
		t.Fatal(err)
	}
	if video {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	if data {
		if _, err := pc.CreateDataChannel("chat", nil); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			b.received.Add(1)
			b.gotOnce.Do(func() { close(b.got) })
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() { // 20 ms of silence every 20 ms, for at most 20 s
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = b.track.WriteSample(pionmedia.Sample{Data: make([]byte, 160), Duration: 20 * time.Millisecond})
			}
		}
	}()
	return b
}

// local is the browser's SDP once ICE gathering ended, as the Web SDK
// sends it.
func (b *browser) local(t *testing.T, d webrtc.SessionDescription, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		t.Fatal("ICE gathering did not end")
	}
	return b.pc.LocalDescription().SDP
}

func (b *browser) offer(t *testing.T) string {
	t.Helper()
	o, err := b.pc.CreateOffer(nil)
	return b.local(t, o, err)
}

// waitAudio waits for audio to arrive, within 10 s.
func (b *browser) waitAudio(t *testing.T, what string) {
	t.Helper()
	select {
	case <-b.got:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the browser got no audio (ICE %s, connection %s)", what, b.pc.ICEConnectionState(), b.pc.ConnectionState())
	}
}

// more waits for at least n more packets than it saw at the call.
func (b *browser) more(t *testing.T, what string, n int64) {
	t.Helper()
	from := b.received.Load()
	deadline := time.Now().Add(10 * time.Second)
	for b.received.Load() < from+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d packets in 10 s, want %d", what, b.received.Load()-from, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// attrs lists the values of attribute name in section i of an SDP.
func attrs(t *testing.T, b string, i int, name string) []string {
	t.Helper()
	s, err := sdp.Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if i >= len(s.Media) {
		t.Fatalf("section %d of %d:\n%s", i, len(s.Media), b)
	}
	return s.Media[i].Attrs(name)
}

// hostCandidate is section i's component 1 candidate.
func hostCandidate(t *testing.T, b string, i int) netip.AddrPort {
	t.Helper()
	for _, v := range attrs(t, b, i, "candidate") {
		if c, err := webrtcbridge.ParseCandidate(v); err == nil && c.Component == 1 {
			return c.Addr
		}
	}
	t.Fatalf("section %d has no candidate:\n%s", i, b)
	return netip.AddrPort{}
}

// clientMedia is the engine's view of the client's side of section 1.
func clientMedia(t *testing.T, eng *media.Engine, c *call) media.MediaInfo {
	t.Helper()
	info, err := eng.Query(c.mediaID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range info.Tags {
		if tag.Tag == tagClient && len(tag.Medias) > 0 {
			return tag.Medias[0]
		}
	}
	t.Fatalf("no client media in %+v", info)
	return media.MediaInfo{}
}

// TestBrowserCallThroughEngine: a browser (pion, as Chromium with the Web
// SDK: audio, a receive-only video section and a data channel) calls sipp,
// which echoes RTP, through the gateway. The SDP the browser is given is
// the engine's: its candidate is the engine's relay port for the client
// (no other socket faces the browser), its fingerprint the engine's
// certificate, DTLS passive; the sections sipp does not take (video, left
// out of its answer, and the data channel, refused before SIP saw it) come
// back refused with the browser's protocol and mid. sipp got plain
// RTP/AVP without ICE or WebRTC's stream attributes. Audio flows both ways
// through the engine, which counts DTLS-SRTP with the client; hangup frees
// the engine's call.
func TestBrowserCallThroughEngine(t *testing.T) {
	eng, cert := newEngine(t, 26100)
	uas := testpeer.StartSipp(t, "uas_echo", "-t", "t1") // a browser's INVITE is too big for UDP
	stack, err := sipua.New(sipua.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stack.Close() })
	n := newEventLog()
	g := &Gateway{SIP: stack, Media: eng, Notify: n, WebRTC: WebRTC{Enabled: true}}
	host, port, _ := net.SplitHostPort(uas.Addr)
	s := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{"sipLogin": "alice", "sipDomain": "127.0.0.1",
		"sipOutboundProxy": host, "sipPort": port, "sipTransport": "TCP", "mediaProviders": []any{"WebRTC"}}}
	g.Established(s)
	t.Cleanup(func() { g.Disconnected(s, "") })

	b := newBrowser(t, true, true)
	offer := b.offer(t)
	if err := g.Call(context.Background(), s, &client.CallRequest{CallID: "c1", Callee: "echo", SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer := n.remoteSDP(t)
	c := agentOf(s).call("c1")
	if c == nil {
		t.Fatal("no call c1")
	}

	// What SIP got: plain RTP/AVP, no ICE, no DTLS, the data channel refused.
	c.mu.Lock()
	toSIP := string(c.sipSDP)
	c.mu.Unlock()
	for _, bad := range []string{"a=ice-", "a=candidate", "a=fingerprint", "a=setup", "SAVPF", "a=sctp", "a=ssrc", "a=msid", "a=rtcp-fb"} {
		if strings.Contains(toSIP, bad) {
			t.Errorf("the INVITE's SDP has %q:\n%s", bad, toSIP)
		}
	}
	// Video is relayed (a port of the engine's), the data channel refused.
	if !strings.Contains(toSIP, "m=audio 261") || !strings.Contains(toSIP, " RTP/AVP 0") || !strings.Contains(toSIP, "m=video 261") ||
		!strings.Contains(toSIP, "m=application 0 UDP/DTLS/SCTP") {
		t.Errorf("the INVITE's SDP:\n%s", toSIP)
	}

	// What the browser got: the engine's WebRTC side.
	as, err := sdp.Parse([]byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	if len(as.Media) != 3 {
		t.Fatalf("answer has %d sections, want the offer's 3:\n%s", len(as.Media), answer)
	}
	want := []string{"audio", "video", "application"}
	for i, m := range as.Media {
		if m.Type() != want[i] {
			t.Errorf("section %d is %s, want %s", i, m.Type(), want[i])
		}
		if mid := attrs(t, answer, i, "mid"); len(mid) != 1 || mid[0] != attrs(t, offer, i, "mid")[0] {
			t.Errorf("section %d mid %v, want the offer's", i, mid)
		}
	}
	if as.Media[0].Proto() != "UDP/TLS/RTP/SAVPF" || as.Media[1].Port() != 0 || as.Media[1].Proto() != "UDP/TLS/RTP/SAVPF" ||
		as.Media[2].Port() != 0 || as.Media[2].Proto() != "UDP/DTLS/SCTP" {
		t.Errorf("answer's sections:\n%s", answer)
	}
	if fp := attrs(t, answer, 0, "fingerprint"); len(fp) != 1 || fp[0] != cert.Fingerprint("sha-256") {
		t.Errorf("fingerprint %v, want the engine's %q", fp, cert.Fingerprint("sha-256"))
	}
	if setup := attrs(t, answer, 0, "setup"); len(setup) != 1 || setup[0] != "passive" {
		t.Errorf("setup %v, want passive", setup)
	}
	if len(attrs(t, answer, 0, "rtcp-mux")) != 1 {
		t.Error("no rtcp-mux in the answer")
	}
	cand := hostCandidate(t, answer, 0)
	mi := clientMedia(t, eng, c)
	if len(mi.Streams) == 0 || mi.Streams[0].Local != cand {
		t.Fatalf("the answer's candidate %v is not the engine's client socket: %+v", cand, mi.Streams)
	}
	if p := int(cand.Port()); p < 26100 || p > 26119 {
		t.Errorf("candidate port %d outside the engine's ports", p)
	}

	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "ESTABLISHED", func(e client.Event) bool {
		return e.Name == client.CallStatusEvent && e.Data["status"] == "ESTABLISHED"
	})
	b.waitAudio(t, "sipp's echo")
	b.more(t, "sipp's echo", 10)
	mi = clientMedia(t, eng, c)
	if mi.Secure != "DTLS-SRTP" || mi.Checks == 0 || mi.AuthFailures != 0 || mi.Streams[0].Packets == 0 {
		t.Errorf("the engine's client media: %+v", mi)
	}

	if err := g.Hangup(context.Background(), s, &client.CallRef{CallID: "c1"}); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "FINISH", func(e client.Event) bool { return e.Name == client.CallStatusEvent && e.Data["status"] == "FINISH" })
	if _, err := eng.Query(c.mediaID); err == nil {
		t.Error("the engine still has the call after FINISH")
	}
}

// plainPhone is a SIP phone's media: a loopback UDP socket that echoes
// the RTP it gets to where it came from and counts it.
type plainPhone struct {
	conn *net.UDPConn
	got  atomic.Int64
}

func newPlainPhone(t *testing.T) *plainPhone {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &plainPhone{conn: conn}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 12 && buf[1]&0x7f < 72 { // RTP, not RTCP
				p.got.Add(1)
				// The phone's own stream: its SSRC.
				buf[8], buf[9], buf[10], buf[11] = 0x11, 0x22, 0x33, 0x44
				_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	return p
}

func (p *plainPhone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// sdp is the phone's SDP (version v, direction dir).
func (p *plainPhone) sdp(v int, dir string) []byte {
	return fmt.Appendf(nil, "v=0\r\no=phone 1 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=%s\r\n", v, p.port(), dir)
}

// TestBrowserCallRenegotiations: an outgoing browser call answered with
// early media (183 with SDP), then 200 with another SDP (the phone moved),
// then re-INVITEd by the far end and put on hold and back by the client:
// the browser is told its answer once, and the engine keeps the ICE
// credentials, fingerprint and DTLS association it gave the browser
// through all of it — audio keeps flowing both ways without the browser
// renegotiating.
func TestBrowserCallRenegotiations(t *testing.T) {
	eng, _ := newEngine(t, 26120)
	n := newEventLog()
	g := &Gateway{Media: eng, Notify: n, WebRTC: WebRTC{Enabled: true, Address: netip.MustParseAddr("127.0.0.1")}}
	s := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{}}
	g.Established(s)
	c, err := agentOf(s).newCall("c1", false, true, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.end("FINISH", 0, "") })
	b := newBrowser(t, false, false)
	offer := []byte(b.offer(t))
	// placeCall's engine step (its INVITE needs a SIP account).
	res, err := eng.Offer(c.request(true, tagClient, "", "client", refuseNonRTP(offer)))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.offer, c.sipSDP = offer, res.SDP
	c.mu.Unlock()

	early, phone := newPlainPhone(t), newPlainPhone(t)
	c.Progress(183, "Session Progress", early.sdp(1, "sendrecv"))
	answer := n.remoteSDP(t)
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	b.waitAudio(t, "early media")
	if early.got.Load() == 0 {
		t.Fatal("early media: the phone got nothing")
	}
	before := clientMedia(t, eng, c)

	same := func(what string) {
		t.Helper()
		b.more(t, what, 10)
		mi := clientMedia(t, eng, c)
		if mi.Secure != "DTLS-SRTP" || mi.DTLSFailures != 0 || mi.AuthFailures != 0 || mi.ICERestarts != 0 ||
			mi.Streams[0].Local != before.Streams[0].Local {
			t.Fatalf("%s: the engine's client media changed: %+v, was %+v", what, mi, before)
		}
	}
	c.Answered(phone.sdp(2, "sendrecv"))
	n.wait(t, "ESTABLISHED", func(e client.Event) bool {
		return e.Name == client.CallStatusEvent && e.Data["status"] == "ESTABLISHED"
	})
	same("after 200")
	if got := phone.got.Load(); got == 0 {
		t.Fatal("after 200: the phone that answered got nothing")
	}

	// The far end re-INVITEs (a session refresh): the engine's offer
	// toward the browser, which the gateway drops, keeps what the browser
	// was given.
	if _, err := c.Reinvite(phone.sdp(3, "sendrecv")); err != nil {
		t.Fatal(err)
	}
	same("after the far end's re-INVITE")
	// The client's hold and unhold: the far end's answers go through the
	// engine toward the browser.
	for i, dir := range []string{"recvonly", "sendrecv"} {
		if _, err := eng.Answer(c.request(false, tagClient, tagSIP, "sip", phone.sdp(4+i, dir))); err != nil {
			t.Fatal(err)
		}
	}
	same("after hold and unhold")
	n.mu.Lock()
	for _, ev := range n.events {
		if ev.Name == client.RemoteSDP && ev.Data["sdp"] != answer {
			t.Errorf("the browser was told a second SDP")
		}
	}
	n.mu.Unlock()
	// What the engine would tell the browser now carries the same ICE
	// credentials and fingerprint as its first answer.
	again, err := eng.Offer(c.request(true, tagSIP, tagClient, "sip", phone.sdp(6, "sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"ice-ufrag", "ice-pwd", "fingerprint"} {
		if x, y := attrs(t, answer, 0, a), attrs(t, string(again.SDP), 0, a); len(x) != 1 || len(y) != 1 || x[0] != y[0] {
			t.Errorf("a=%s: first answer %v, re-offer %v", a, x, y)
		}
	}
}

// TestIncomingCallToBrowser: a SIP offer to a WebRTC client goes through
// the engine with rtpengine's WebRTC options (offerToClient's request):
// the browser (pion) takes the offer as is and its answer goes back
// through the engine as plain RTP/AVP; audio flows both ways between the
// browser and a plain phone. A section of the SIP offer that is not RTP
// (BFCP here, T.38 alike) is refused before the engine and reaches the
// browser with port 0.
func TestIncomingCallToBrowser(t *testing.T) {
	eng, cert := newEngine(t, 26140)
	n := newEventLog()
	g := &Gateway{Media: eng, Notify: n, WebRTC: WebRTC{Enabled: true}}
	s := &clienttest.Session{SessionID: "s1", Cfg: map[string]any{"mediaProviders": []any{"WebRTC"}}}
	g.Established(s)
	ua := agentOf(s)
	if !ua.webRTC() {
		t.Fatal("a WebRTC client with webrtc on is not taken for a browser")
	}
	c, err := ua.newCall("in-1", true, ua.webRTC(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.end("FINISH", 0, "") })
	phone := newPlainPhone(t)
	sipOffer := append(phone.sdp(1, "sendrecv"), "m=application 5006 TCP/BFCP *\r\na=floorctrl:c-s\r\n"...)
	res, err := eng.Offer(c.request(true, tagSIP, "", "sip", refuseNonRTP(sipOffer)))
	if err != nil {
		t.Fatal(err)
	}
	toBrowser := string(res.SDP)
	off, err := sdp.Parse(res.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Media) != 2 || off.Media[0].Proto() != "UDP/TLS/RTP/SAVPF" || off.Media[1].Port() != 0 || off.Media[1].Proto() != "TCP/BFCP" || strings.Contains(toBrowser, "floorctrl") {
		t.Fatalf("the offer to the browser:\n%s", toBrowser)
	}
	for _, a := range []string{"ice-ufrag", "ice-pwd", "fingerprint", "setup", "mid", "rtcp-mux"} {
		if len(attrs(t, toBrowser, 0, a)) != 1 {
			t.Errorf("the offer to the browser has no a=%s:\n%s", a, toBrowser)
		}
	}
	if fp := attrs(t, toBrowser, 0, "fingerprint"); len(fp) == 1 && fp[0] != cert.Fingerprint("sha-256") {
		t.Errorf("fingerprint %q, want the engine's", fp[0])
	}
	if strings.Contains(toBrowser, "a=crypto") || strings.Contains(toBrowser, "a=rtcp:") {
		t.Errorf("the offer to the browser has SDES or a=rtcp:\n%s", toBrowser)
	}

	b := newBrowser(t, false, false)
	// pion answers only the sections of a BUNDLE group (Chromium takes
	// an offer without one, as rtpengine's): one for the audio alone.
	bundled := strings.Replace(toBrowser, "t=0 0\r\n", "t=0 0\r\na=group:BUNDLE "+attrs(t, toBrowser, 0, "mid")[0]+"\r\n", 1)
	if err := b.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: bundled}); err != nil {
		t.Fatal(err)
	}
	a, err := b.pc.CreateAnswer(nil)
	answer := b.local(t, a, err)
	res, err = eng.Answer(c.request(false, tagSIP, tagClient, "client", []byte(answer)))
	if err != nil {
		t.Fatal(err)
	}
	// answer's step after the engine: the refused section as offered.
	toSIP := string(forSIP(completeAnswer(sipOffer, res.SDP)))
	if !strings.Contains(toSIP, "m=audio 261") || !strings.Contains(toSIP, " RTP/AVP ") || strings.Contains(toSIP, "a=ice-") ||
		strings.Contains(toSIP, "a=fingerprint") || strings.Contains(toSIP, "a=rtcp-mux") || strings.Contains(toSIP, "BUNDLE") || strings.Contains(toSIP, "a=ssrc") ||
		!strings.Contains(toSIP, "m=application 0 TCP/BFCP *\r\na=mid:2\r\n") {
		t.Errorf("the answer to SIP:\n%s", toSIP)
	}
	// The engine sends the browser's audio where the phone's SDP says;
	// the phone echoes it back.
	b.waitAudio(t, "the phone's echo")
	b.more(t, "the phone's echo", 10)
	if phone.got.Load() == 0 {
		t.Fatal("the phone got nothing from the browser")
	}
	if mi := clientMedia(t, eng, c); mi.Secure != "DTLS-SRTP" || mi.AuthFailures != 0 {
		t.Errorf("the engine's client media: %+v", mi)
	}
}

// TestCompleteAnswer: the answer a browser gets has the offer's sections
// in order; those the SIP side refused or left out are refused with the
// browser's protocol and mid.
func TestCompleteAnswer(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\na=sctp-port:5000\r\n"
	answer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 4000 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"m=video 0 RTP/AVP 96\r\n"
	got := string(completeAnswer([]byte(offer), []byte(answer)))
	want := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 4000 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=mid:1\r\n" +
		"m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(completeAnswer([]byte(offer), []byte(want))); got != want {
		t.Errorf("a complete answer changed:\n%s", got)
	}
	for _, bad := range []string{"", "x", "v=0\r\nm=audio x"} {
		if got := string(completeAnswer([]byte(offer), []byte(bad))); got != bad {
			t.Errorf("unparsable answer %q became %q", bad, got)
		}
	}
	refused := string(refuseNonRTP([]byte(offer)))
	if !strings.Contains(refused, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n") || strings.Contains(refused, "sctp-port") ||
		!strings.Contains(refused, "m=video 9 ") {
		t.Errorf("refuseNonRTP:\n%s", refused)
	}
}
