package media

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// browserPC is pion standing in for a browser: ICE on 127.0.0.1, DTLS-SRTP,
// PCMU (and the extra audio codecs) only, no mDNS.
func browserPC(t *testing.T, extra ...webrtc.RTPCodecParameters) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	codecs := append([]webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}}, extra...)
	for _, c := range codecs {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// The SIP side's RTP is not declared (no a=ssrc, no mid extension):
	// browsers play such an unsignalled stream; pion must be told to.
	se.SetHandleUndeclaredSSRCWithoutAnswer(true)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, "audio", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	return pc, track
}

// gatheredOffer is pc's offer with its candidates (opts: an ICE restart).
func gatheredOffer(t *testing.T, pc *webrtc.PeerConnection, opts ...*webrtc.OfferOptions) string {
	t.Helper()
	var o *webrtc.OfferOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	offer, err := pc.CreateOffer(o)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ICE gathering did not complete")
	}
	return pc.LocalDescription().SDP
}

// connectBrowser gives pc rtcgate's answer and waits until ICE and DTLS
// through the relay connected it; what pc receives comes on the channel.
func connectBrowser(t *testing.T, pc *webrtc.PeerConnection, answer string) <-chan *rtp.Packet {
	t.Helper()
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	got := make(chan *rtp.Packet, 256)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case got <- p:
			default:
			}
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("browser never connected (ICE + DTLS through the relay)")
	}
	return got
}

// plainPeer is a SIP-side party: one RTP socket (rtcp-mux) on loopback.
type plainPeer struct{ conn *net.UDPConn }

func newPlainPeer(t *testing.T) *plainPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &plainPeer{c}
}

func (p *plainPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

var mPort = regexp.MustCompile(`(?m)^m=audio (\d+) `)

func sdpPort(t *testing.T, s string) int {
	t.Helper()
	m := mPort.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no m=audio in\n%s", s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// readRTP reads RTP (skipping anything else) until one with the wanted
// payload comes or the deadline passes.
func readUntil(t *testing.T, c *net.UDPConn, want func([]byte) bool) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		if want(buf[:n]) {
			return append([]byte(nil), buf[:n]...)
		}
	}
	t.Fatal("expected packet never arrived")
	return nil
}

// TestDTLSSRTPToPlainRTP: a pion browser offers WebRTC; the engine offers
// plain RTP/AVP to the SIP side (ICE=remove, rtcp-mux-demux as Kamailio's
// rtpengine_offer does) and answers the browser with ICE, a=setup,
// a=fingerprint (ICE=force, DTLS=passive, UDP/TLS/RTP/SAVPF). Media then
// crosses both ways: the browser's SRTP arrives plain at the SIP party,
// payload and header byte for byte; the SIP party's plain RTP arrives
// decrypted in pion's track.
func TestDTLSSRTPToPlainRTP(t *testing.T) {
	t.Run("prime256v1", func(t *testing.T) { dtlsToPlain(t, newEngine(t, "127.0.0.1")) })
	// dtls-cert-cipher rsa: the browser's handshake takes an RSA
	// certificate as well (ECDHE-RSA).
	t.Run("rsa", func(t *testing.T) {
		base := int(portBase.Add(20)) - 20
		dtlsToPlain(t, newEngineWith(t, Config{
			Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
			PortMin:    base, PortMax: base + 19, CertCipher: "rsa", RSAKeySize: 2048,
		}))
	})
}

// TestDTLSSignature: dtls-signature is a=fingerprint's hash when neither
// DTLS-fingerprint nor the peer's a=fingerprint names one — an offer
// from a plain party toward a browser.
func TestDTLSSignature(t *testing.T) {
	base := int(portBase.Add(20)) - 20
	e := newEngineWith(t, Config{
		Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		PortMin:    base, PortMax: base + 19, DTLSSignature: "sha-1",
	})
	sip := newPlainPeer(t)
	toBrowser := mustOK(t)(e.Offer(&Request{CallID: "sig", FromTag: "sip", SDP: sdpFor(sip.port(), "a=sendrecv"),
		Secure: Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: ICEForce}}))
	if !strings.Contains(toBrowser, "a=fingerprint:sha-1 ") {
		t.Errorf("offer to the browser: want a=fingerprint:sha-1\n%s", toBrowser)
	}
	withOption := mustOK(t)(e.Offer(&Request{CallID: "sig2", FromTag: "sip", SDP: sdpFor(sip.port(), "a=sendrecv"),
		Secure: Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: ICEForce, DTLSFingerprint: "sha-384"}}))
	if !strings.Contains(withOption, "a=fingerprint:sha-384 ") {
		t.Errorf("DTLS-fingerprint=sha-384 loses to dtls-signature:\n%s", withOption)
	}
}

func dtlsToPlain(t *testing.T, e *Engine) {
	pc, track := browserPC(t)
	offer := gatheredOffer(t, pc)

	toSIP := mustOK(t)(e.Offer(&Request{CallID: "w", FromTag: "browser", SDP: []byte(offer),
		Secure: Secure{Protocol: "RTP/AVP", ICE: ICERemove}, RTCPMux: RTCPMux{Demux: true}}))
	for _, bad := range []string{"a=fingerprint", "a=setup", "a=ice-", "a=candidate", "a=crypto", "a=group:BUNDLE", "a=rtcp-mux"} {
		if strings.Contains(toSIP, bad) {
			t.Errorf("plain offer keeps %s:\n%s", bad, toSIP)
		}
	}
	if !strings.Contains(toSIP, " RTP/AVP 0") || !strings.Contains(toSIP, "c=IN IP4 127.0.0.1") {
		t.Fatalf("plain offer:\n%s", toSIP)
	}
	relaySIP := sdpPort(t, toSIP)

	sip := newPlainPeer(t)
	toBrowser := mustOK(t)(e.Answer(&Request{CallID: "w", FromTag: "browser", ToTag: "sip", SDP: sdpFor(sip.port(), "a=rtcp-mux", "a=sendrecv"),
		Secure: Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: ICEForce, DTLS: DTLSPassive}, RTCPMux: RTCPMux{Require: true}}))
	for _, want := range []string{" UDP/TLS/RTP/SAVPF 0", "a=setup:passive", "a=fingerprint:sha-256 ", "a=ice-ufrag:", "a=ice-pwd:",
		" 1 UDP 2130706431 127.0.0.1 ", "typ host", "a=rtcp-mux", "a=mid:0"} {
		if !strings.Contains(toBrowser, want) {
			t.Errorf("browser answer lacks %q:\n%s", want, toBrowser)
		}
	}
	got := connectBrowser(t, pc, toBrowser)

	// Browser → SIP: pion encrypts, the relay decrypts.
	relayAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relaySIP}
	payload := []byte("browser audio \x00\x01\x02\xff")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for seq := uint16(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x1234}, Payload: payload})
			// SIP → browser, plain, from the SIP party's socket.
			pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0xabcd}, Payload: []byte("sip audio " + strconv.Itoa(int(seq)))}).Marshal()
			sip.conn.WriteToUDP(pkt, relayAddr)
		}
	}()
	in := readUntil(t, sip.conn, func(b []byte) bool {
		var p rtp.Packet
		return p.Unmarshal(b) == nil && bytes.Equal(p.Payload, payload)
	})
	var p rtp.Packet
	if err := p.Unmarshal(in); err != nil || p.PayloadType != 0 {
		t.Fatalf("SIP party got %x", in)
	}
	select {
	case bp := <-got:
		if !strings.HasPrefix(string(bp.Payload), "sip audio ") || bp.SSRC != 0xabcd {
			t.Fatalf("browser got %+v %q", bp.Header, bp.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("browser never received the SIP party's audio")
	}
	info, err := e.Query("w")
	if err != nil {
		t.Fatal(err)
	}
	if info.RTP.Packets < 2 {
		t.Errorf("query counts %d RTP packets", info.RTP.Packets)
	}
}

// sdesParty is an SRTP endpoint keyed by SDES: pion's srtp on a socket.
type sdesParty struct {
	conn   *net.UDPConn
	crypto webrtcbridge.Crypto
}

// TestSDESToPlainRTP: an SDES-SRTP party (RTP/SAVP, a=crypto) calls a plain
// one with transport-protocol=RTP/AVP; the engine answers it with its own
// a=crypto (same tag and suite). SRTP and SRTCP cross both ways, payload
// byte for byte; a packet with a bad tag is counted as an error, not
// relayed.
func TestSDESToPlainRTP(t *testing.T) {
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"} {
		t.Run(suite, func(t *testing.T) { sdesCall(t, suite) })
	}
}

func sdesCall(t *testing.T, suiteName string) {
	e := newEngine(t, "127.0.0.1")
	s, _ := webrtcbridge.SuiteByName(suiteName)
	a := &sdesParty{conn: newPlainPeer(t).conn, crypto: webrtcbridge.NewCrypto(3, s)}
	aSDP := strings.Replace(string(sdpFor(a.conn.LocalAddr().(*net.UDPAddr).Port, "a=rtcp-mux", "a=crypto:"+a.crypto.String(false))), "RTP/AVP", "RTP/SAVP", 1)
	toB := mustOK(t)(e.Offer(&Request{CallID: "s", FromTag: "a", SDP: []byte(aSDP), Secure: Secure{Protocol: "RTP/AVP"}}))
	if strings.Contains(toB, "a=crypto") || !strings.Contains(toB, " RTP/AVP 0") {
		t.Fatalf("plain offer:\n%s", toB)
	}
	b := newPlainPeer(t)
	toA := mustOK(t)(e.Answer(&Request{CallID: "s", FromTag: "a", ToTag: "b", SDP: sdpFor(b.port(), "a=rtcp-mux")}))
	sess, err := sdp.Parse([]byte(toA))
	if err != nil {
		t.Fatal(err)
	}
	m := sess.Media[0]
	if m.Proto() != "RTP/SAVP" {
		t.Fatalf("answer to the SDES party is %s:\n%s", m.Proto(), toA)
	}
	cv, ok := m.Attr("crypto")
	if !ok || len(m.Attrs("crypto")) != 1 {
		t.Fatalf("answer lacks one a=crypto:\n%s", toA)
	}
	relayCrypto, err := webrtcbridge.ParseCrypto(cv)
	if err != nil || relayCrypto.Tag != 3 || relayCrypto.Suite.Name != suiteName {
		t.Fatalf("answer crypto %q: %v", cv, err)
	}
	relayA := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpPort(t, toA)}
	relayB := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpPort(t, toB)}

	enc, err := srtp.CreateContext(a.crypto.Key, a.crypto.Salt, s.Profile)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(relayCrypto.Key, relayCrypto.Salt, s.Profile)
	if err != nil {
		t.Fatal(err)
	}
	// A → B: SRTP in, plain out, byte for byte.
	plain, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 7, Timestamp: 1120, SSRC: 0x5eed}, Payload: []byte("secret audio \x00\xff")}).Marshal()
	sealed, err := enc.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.conn.WriteToUDP(sealed, relayA)
	if got := readUntil(t, b.conn, func([]byte) bool { return true }); !bytes.Equal(got, plain) {
		t.Fatalf("B got %x, want %x", got, plain)
	}
	// A bad authentication tag: not relayed, counted.
	bad := append([]byte(nil), sealed...)
	bad[len(bad)-1] ^= 0xff
	bad[3]++ // a new sequence number, so replay protection is not why
	a.conn.WriteToUDP(bad, relayA)
	// SRTCP, A → B, on the muxed port.
	rr, _ := (&rtcp.ReceiverReport{SSRC: 0x5eed}).Marshal()
	sealedRTCP, err := enc.EncryptRTCP(nil, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.conn.WriteToUDP(sealedRTCP, relayA)
	if got := readUntil(t, b.conn, func(p []byte) bool { return len(p) > 1 && p[1] == 201 }); !bytes.Equal(got, rr) {
		t.Fatalf("B got RTCP %x, want %x", got, rr)
	}
	// B → A: plain in, SRTP out with the relay's key.
	plainB, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 40, Timestamp: 9, SSRC: 0xb0b}, Payload: []byte("reply audio")}).Marshal()
	b.conn.WriteToUDP(plainB, relayB)
	got := readUntil(t, a.conn, func(p []byte) bool { return len(p) > 1 && p[1] < 192 })
	opened, err := dec.DecryptRTP(nil, got, nil)
	if err != nil || !bytes.Equal(opened, plainB) {
		t.Fatalf("A got %x (%v), want %x sealed", opened, err, plainB)
	}
	srB, _ := (&rtcp.SenderReport{SSRC: 0xb0b}).Marshal()
	b.conn.WriteToUDP(srB, relayB)
	got = readUntil(t, a.conn, func(p []byte) bool { return len(p) > 1 && p[1] == 200 })
	if opened, err := dec.DecryptRTCP(nil, got, nil); err != nil || !bytes.Equal(opened, srB) {
		t.Fatalf("A got SRTCP %x (%v)", opened, err)
	}
	// The tampered packet was counted as an error on A's stream.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		info, _ := e.Query("s")
		var errs uint64
		for _, tg := range info.Tags {
			if tg.Tag == "a" {
				for _, md := range tg.Medias {
					errs += md.Streams[0].Errors
				}
			}
		}
		if errs >= 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("tampered SRTP not counted: %+v", info.Tags)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = netip.Addr{}
}

// TestDTLSHandshakeFailureCounted: a browser whose certificate does not
// match the a=fingerprint of its offer fails the handshake; the relay
// counts it on the browser's media (query, list sessions) and relays
// nothing to it.
func TestDTLSHandshakeFailureCounted(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	pc, _ := browserPC(t)
	offer := gatheredOffer(t, pc)
	other, err := webrtcbridge.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp := regexp.MustCompile(`(?m)^a=fingerprint:.*$`)
	if !fp.MatchString(offer) {
		t.Fatalf("no fingerprint in\n%s", offer)
	}
	forged := fp.ReplaceAllString(offer, "a=fingerprint:"+other.Fingerprint("sha-256"))
	mustOK(t)(e.Offer(&Request{CallID: "f", FromTag: "browser", SDP: []byte(forged), Secure: Secure{Protocol: "RTP/AVP", ICE: ICERemove}}))
	sip := newPlainPeer(t)
	toBrowser := mustOK(t)(e.Answer(&Request{CallID: "f", FromTag: "browser", ToTag: "sip", SDP: sdpFor(sip.port()),
		Secure: Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: ICEForce, DTLS: DTLSPassive}}))
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: toBrowser}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, err := e.Query("f")
		if err != nil {
			t.Fatal(err)
		}
		var m MediaInfo
		for _, tg := range info.Tags {
			if tg.Tag == "browser" {
				m = tg.Medias[0]
			}
		}
		if m.DTLSFailures >= 1 {
			if m.Secure != "DTLS-SRTP" || m.Checks == 0 {
				t.Errorf("browser media %+v: want DTLS-SRTP with ICE checks answered", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DTLS failure counted: %+v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dtlsParty is a DTLS-SRTP endpoint on one socket, pion's dtls and srtp
// through webrtcbridge.Transport (the ngbench browser): ICE controlling,
// DTLS client. What it decrypts comes out of got.
type dtlsParty struct {
	conn *net.UDPConn
	x    *webrtcbridge.Transport
	got  chan []byte
}

func newDTLSParty(t *testing.T, conn *net.UDPConn, cert *webrtcbridge.Certificate, ice webrtcbridge.ICEParams, relayFP webrtcbridge.Fingerprint) *dtlsParty {
	t.Helper()
	p := &dtlsParty{conn: conn, got: make(chan []byte, 64)}
	var err error
	p.x, err = webrtcbridge.NewTransport(webrtcbridge.TransportConfig{
		Send: func(pkt []byte, dst netip.AddrPort) { _, _ = conn.WriteToUDPAddrPort(pkt, dst) },
		ICE:  &ice,
		DTLS: &webrtcbridge.DTLSParams{Cert: cert, Client: true, Remote: relayFP},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, src, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if out, v := p.x.Inbound(buf[:n], src); v == webrtcbridge.Media {
				select {
				case p.got <- append([]byte(nil), out...):
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done; p.x.Close() })
	return p
}

// sendUntil sends every 20 ms until a packet that want accepts comes on
// ch (10 s at most), and returns it.
func sendUntil(t *testing.T, send func(), ch <-chan []byte, want func([]byte) bool) []byte {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	send()
	for {
		select {
		case p := <-ch:
			if want(p) {
				return p
			}
		case <-tick.C:
			send()
		case <-deadline:
			t.Fatal("expected packet never arrived")
		}
	}
}

// socketReader delivers what conn receives on a channel.
func socketReader(t *testing.T, conn *net.UDPConn) <-chan []byte {
	ch := make(chan []byte, 64)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			select {
			case ch <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}()
	return ch
}

// TestDTLSSRTCPOnSeparatePort: a DTLS-SRTP party with ICE that does not
// multiplex RTCP (UDP/TLS/RTP/SAVP, a=rtcp, candidates for components 1
// and 2) calls a plain party. Each of its sockets runs its own ICE
// component and its own DTLS handshake with rtcgate, as RFC 5764 §4.1
// and rtpengine have it: SRTP on the RTP port and SRTCP on the RTCP port
// cross both ways byte for byte, and SRTCP sealed with the RTP
// association's keys is refused on the RTCP port.
func TestDTLSSRTCPOnSeparatePort(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	aRTP, aRTCP := newPlainPeer(t).conn, newPlainPeer(t).conn
	bRTP, bRTCP := newPlainPeer(t).conn, newPlainPeer(t).conn
	port := func(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }
	cert, err := webrtcbridge.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	au, ap := webrtcbridge.NewICECredentials()
	offer := strings.Join([]string{"v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0",
		fmt.Sprintf("m=audio %d UDP/TLS/RTP/SAVP 0", port(aRTP)), "c=IN IP4 127.0.0.1",
		fmt.Sprintf("a=rtcp:%d", port(aRTCP)),
		fmt.Sprintf("a=candidate:1 1 udp 2122260223 127.0.0.1 %d typ host", port(aRTP)),
		fmt.Sprintf("a=candidate:1 2 udp 2122260222 127.0.0.1 %d typ host", port(aRTCP)),
		"a=ice-ufrag:" + au, "a=ice-pwd:" + ap, "a=fingerprint:" + cert.Fingerprint("sha-256"), "a=setup:actpass",
		"a=sendrecv", "a=rtpmap:0 PCMU/8000"}, "\r\n") + "\r\n"
	toB := mustOK(t)(e.Offer(&Request{CallID: "r", FromTag: "a", SDP: []byte(offer), Secure: Secure{Protocol: "RTP/AVP", ICE: ICERemove}}))
	relayB := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sdpPort(t, toB)))
	relayBRTCP := netip.AddrPortFrom(relayB.Addr(), relayB.Port()+1)
	toA := mustOK(t)(e.Answer(&Request{CallID: "r", FromTag: "a", ToTag: "b",
		SDP:    sdpFor(port(bRTP), fmt.Sprintf("a=rtcp:%d", port(bRTCP)), "a=sendrecv"),
		Secure: Secure{Protocol: "UDP/TLS/RTP/SAVP", ICE: ICEForce, DTLS: DTLSPassive}}))
	sess, err := sdp.Parse([]byte(toA))
	if err != nil {
		t.Fatal(err)
	}
	m := sess.Media[0]
	if m.HasAttr("rtcp-mux") || m.Proto() != "UDP/TLS/RTP/SAVP" {
		t.Fatalf("answer to A:\n%s", toA)
	}
	ru, _ := m.Attr("ice-ufrag")
	rp, _ := m.Attr("ice-pwd")
	fpv, _ := m.Attr("fingerprint")
	relayFP, err := webrtcbridge.ParseFingerprint(fpv)
	if err != nil {
		t.Fatal(err)
	}
	cands := map[int]netip.AddrPort{}
	for _, v := range m.Attrs("candidate") {
		if c, err := webrtcbridge.ParseCandidate(v); err == nil {
			cands[c.Component] = c.Addr
		}
	}
	if !cands[1].IsValid() || !cands[2].IsValid() || cands[1] == cands[2] {
		t.Fatalf("answer to A lacks candidates for components 1 and 2:\n%s", toA)
	}
	ice := func(c netip.AddrPort) webrtcbridge.ICEParams {
		return webrtcbridge.ICEParams{LocalUfrag: au, LocalPwd: ap, RemoteUfrag: ru, RemotePwd: rp, Controlling: true, Remote: []netip.AddrPort{c}}
	}
	pa := newDTLSParty(t, aRTP, cert, ice(cands[1]), relayFP)
	pac := newDTLSParty(t, aRTCP, cert, ice(cands[2]), relayFP)
	for _, p := range []*dtlsParty{pa, pac} {
		select {
		case <-p.x.HandshakeDone():
		case <-time.After(10 * time.Second):
			t.Fatal("DTLS handshake never ended")
		}
		if !p.x.Ready() {
			t.Fatal("DTLS handshake failed")
		}
	}
	fromB, fromBRTCP := socketReader(t, bRTP), socketReader(t, bRTCP)
	seal := func(x *webrtcbridge.Transport, pkt []byte) []byte {
		out, ok := x.Outbound(pkt)
		if !ok {
			t.Fatal("no keys to seal with")
		}
		return append([]byte(nil), out...)
	}
	same := func(want []byte) func([]byte) bool { return func(p []byte) bool { return bytes.Equal(p, want) } }

	// A → B: SRTP on the RTP port, SRTCP on the RTCP port, plain at B.
	rtpA, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 1, Timestamp: 160, SSRC: 0xa}, Payload: []byte("A audio")}).Marshal()
	sendUntil(t, func() { aRTP.WriteToUDPAddrPort(seal(pa.x, rtpA), cands[1]) }, fromB, same(rtpA))
	rrA, _ := (&rtcp.ReceiverReport{SSRC: 0xa}).Marshal()
	sendUntil(t, func() { aRTCP.WriteToUDPAddrPort(seal(pac.x, rrA), cands[2]) }, fromBRTCP, same(rrA))
	// B → A: plain RTCP to the relay's RTCP port comes out as SRTCP on A's
	// RTCP socket, keyed by that socket's own handshake; RTP likewise.
	srB, _ := (&rtcp.SenderReport{SSRC: 0xb}).Marshal()
	sendUntil(t, func() { bRTCP.WriteToUDPAddrPort(srB, relayBRTCP) }, pac.got, same(srB))
	rtpB, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: 9, Timestamp: 1440, SSRC: 0xb}, Payload: []byte("B audio")}).Marshal()
	sendUntil(t, func() { bRTP.WriteToUDPAddrPort(rtpB, relayB) }, pa.got, same(rtpB))

	// SRTCP sealed with the RTP association's keys fails on the RTCP port.
	before := authFailures(t, e, "r", "a")
	aRTCP.WriteToUDPAddrPort(seal(pa.x, rrA), cands[2])
	deadline := time.Now().Add(5 * time.Second)
	for authFailures(t, e, "r", "a") == before {
		if time.Now().After(deadline) {
			t.Fatal("SRTCP with the RTP keys on the RTCP port was not refused")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// authFailures is the SRTP/SRTCP packets of tag's media that did not
// authenticate.
func authFailures(t *testing.T, e *Engine, callID, tag string) uint64 {
	t.Helper()
	info, err := e.Query(callID)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, tg := range info.Tags {
		if tg.Tag == tag {
			for _, m := range tg.Medias {
				n += m.AuthFailures
			}
		}
	}
	return n
}
