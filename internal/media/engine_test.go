package media

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/stats"
)

var portBase atomic.Int32

// 24000 up, below the kernel's ephemeral range (32768-60999 here), so no
// outgoing socket of another test takes a port a test relays on;
// webrtcbridge's TestPortRange binds 23000-23100, the e2e tests 5000-21999.
func init() { portBase.Store(24000) }

// newEngine builds an engine on addr with its own 20-port range and the
// default kernel-forwarding (auto: the kernel path when it loads).
func newEngine(t testing.TB, addr string) *Engine {
	t.Helper()
	base := int(portBase.Add(20)) - 20
	return newEngineWith(t, Config{
		Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr(addr)}}},
		PortMin:    base, PortMax: base + 19, KernelForwarding: KernelAuto,
	})
}

// newEngineWith builds an engine from cfg, with live settings and stats
// unless cfg has them.
func newEngineWith(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Live == nil {
		cfg.Live = config.NewLive(config.Defaults())
	}
	if cfg.Stats == nil {
		cfg.Stats = stats.New()
	}
	if cfg.RelayIO == "" {
		cfg.RelayIO = os.Getenv("RTCGATE_RELAY_IO") // the daemon's variable: run the suite over io_uring
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func sdpFor(port int, extra ...string) []byte {
	lines := append([]string{"v=0", "o=alice 100 7 IN IP4 127.0.0.1", "s=call", "c=IN IP4 127.0.0.1", "t=0 0",
		fmt.Sprintf("m=audio %d RTP/AVP 0", port), "a=rtpmap:0 PCMU/8000"}, extra...)
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// mustOK returns the SDP of a successful offer or answer.
func mustOK(t *testing.T) func(*Result, error) string {
	return func(res *Result, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return string(res.SDP)
	}
}

func port0(e *Engine) int { return e.ifaces[0].pool.min }

// TestRewriteKeepsEverythingElse: only c=, m= port and a=rtcp change; every
// other line stays, in order, with the input's line ending.
func TestRewriteKeepsEverythingElse(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	in := "v=0\no=alice 100 7 IN IP4 10.0.0.1\ns=call\nc=IN IP4 10.0.0.1\nb=AS:64\nt=0 0\na=x-session:1\n" +
		"m=audio 5004 RTP/AVP 0 101\ni=first\na=rtpmap:101 telephone-event/8000\na=x-weird:keep;me\na=sendrecv\na=ptime:20\n"
	got := mustOK(t)(e.Offer(&Request{CallID: "c", FromTag: "a", SDP: []byte(in)}))
	pb := port0(e) + 2 // the offerer's pair comes first
	want := "v=0\no=alice 100 7 IN IP4 10.0.0.1\ns=call\nc=IN IP4 127.0.0.1\nb=AS:64\nt=0 0\na=x-session:1\n" +
		fmt.Sprintf("m=audio %d RTP/AVP 0 101\ni=first\na=rtpmap:101 telephone-event/8000\na=x-weird:keep;me\na=sendrecv\na=ptime:20\na=rtcp:%d\n", pb, pb+1)
	if got != want {
		t.Fatalf("offer rewrite:\n%s\nwant:\n%s", got, want)
	}
	// replace=origin, with the answer going back to the offerer.
	got = mustOK(t)(e.Answer(&Request{CallID: "c", FromTag: "a", ToTag: "b", SDP: sdpFor(6000), Replace: Replace{Origin: true}}))
	if !strings.Contains(got, "o=alice 100 7 IN IP4 127.0.0.1\r\n") || !strings.Contains(got, fmt.Sprintf("m=audio %d RTP/AVP 0\r\n", port0(e))) {
		t.Fatalf("answer rewrite:\n%s", got)
	}
}

func TestRewriteOptions(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	// Old-style hold (c=0.0.0.0) is kept unless replace=zero-address.
	hold := bytes.ReplaceAll(sdpFor(5000), []byte("c=IN IP4 127.0.0.1"), []byte("c=IN IP4 0.0.0.0"))
	if got := mustOK(t)(e.Offer(&Request{CallID: "z", FromTag: "a", SDP: hold})); !strings.Contains(got, "c=IN IP4 0.0.0.0\r\n") {
		t.Errorf("zero address not kept:\n%s", got)
	}
	if got := mustOK(t)(e.Offer(&Request{CallID: "z", FromTag: "a", SDP: hold, Replace: Replace{ZeroAddress: true}})); !strings.Contains(got, "c=IN IP4 127.0.0.1\r\n") {
		t.Errorf("replace zero-address:\n%s", got)
	}
	e.TerminateAll()

	// ICE attributes go (rtcgate is the only way through); a rejected
	// section (port 0) stays rejected; no-rtcp-attribute and
	// full-rtcp-attribute shape a=rtcp.
	ice := sdpFor(5000, "a=ice-ufrag:abcd", "a=ice-pwd:secretsecretsecret", "a=candidate:1 1 UDP 2130706431 10.0.0.1 5000 typ host", "m=video 0 RTP/AVP 96")
	got := mustOK(t)(e.Offer(&Request{CallID: "i", FromTag: "a", SDP: ice, Flags: Flags{FullRTCPAttribute: true}}))
	if strings.Contains(got, "ice-") || strings.Contains(got, "candidate") {
		t.Errorf("ICE attributes left:\n%s", got)
	}
	if !strings.Contains(got, "m=video 0 RTP/AVP 96\r\n") {
		t.Errorf("rejected section reopened:\n%s", got)
	}
	if !strings.Contains(got, " IN IP4 127.0.0.1\r\n") || !strings.Contains(got, "a=rtcp:") {
		t.Errorf("full rtcp attribute:\n%s", got)
	}
	got = mustOK(t)(e.Offer(&Request{CallID: "i", FromTag: "a", SDP: sdpFor(5000), Flags: Flags{NoRTCPAttribute: true}}))
	if strings.Contains(got, "a=rtcp") {
		t.Errorf("no-rtcp-attribute:\n%s", got)
	}
}

func TestSDPVersion(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	offer := func(body []byte, rp Replace) string {
		got := mustOK(t)(e.Offer(&Request{CallID: "v", FromTag: "a", SDP: body, Replace: rp}))
		s, err := sdp.Parse([]byte(got))
		if err != nil {
			t.Fatal(err)
		}
		o, _ := s.Origin()
		return o.SessionVersion
	}
	rp := Replace{SDPVersion: true}
	if v := offer(sdpFor(5000), rp); v != "7" {
		t.Fatalf("first version = %s, want the input's 7", v)
	}
	if v := offer(sdpFor(5000), rp); v != "7" {
		t.Errorf("unchanged SDP moved the version to %s", v)
	}
	if v := offer(sdpFor(5000, "a=sendonly"), rp); v != "8" {
		t.Errorf("changed SDP: version %s, want 8", v)
	}
	if v := offer(sdpFor(5000, "a=sendonly"), Replace{ForceIncrementSDPVer: true}); v != "9" {
		t.Errorf("forced: version %s, want 9", v)
	}
}

func TestRTCPMuxNegotiation(t *testing.T) {
	// Six calls of 2 × 2 ports each, held to the end: 24 ports, more than
	// newEngine's 20 (freed ports come back only once the relay thread
	// has closed their sockets).
	base := int(portBase.Add(40)) - 40
	e := newEngineWith(t, Config{
		Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		PortMin:    base, PortMax: base + 39, KernelForwarding: KernelAuto,
	})
	muxed := sdpFor(5000, "a=rtcp-mux")
	cases := []struct {
		name               string
		offerSDP           []byte
		mux                RTCPMux
		answerSDP          []byte
		wantOfferMux       bool // B is offered rtcp-mux
		wantAnswerMux      bool // A is answered rtcp-mux
		wantOfferRTCPDelta int  // a=rtcp port minus m= port in the offer
	}{
		// Offered (not required) rtcp-mux still names port+1 for RTCP, in
		// case the answerer does not multiplex: rtpengine does so.
		{"pass through", muxed, RTCPMux{}, sdpFor(6000, "a=rtcp-mux"), true, true, 1},
		{"demux", muxed, RTCPMux{Demux: true}, sdpFor(6000), false, true, 1},
		{"offer", sdpFor(5000), RTCPMux{Offer: true}, sdpFor(6000, "a=rtcp-mux"), true, false, 1},
		{"require", sdpFor(5000), RTCPMux{Offer: true, Require: true}, sdpFor(6000, "a=rtcp-mux"), true, false, 0},
		{"reject", muxed, RTCPMux{Reject: true}, sdpFor(6000), false, false, 1},
		{"none", sdpFor(5000), RTCPMux{}, sdpFor(6000), false, false, 1},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("mux%d", i)
			got := mustOK(t)(e.Offer(&Request{CallID: id, FromTag: "a", SDP: c.offerSDP, RTCPMux: c.mux}))
			if has := strings.Contains(got, "a=rtcp-mux"); has != c.wantOfferMux {
				t.Errorf("offer rtcp-mux = %v, want %v:\n%s", has, c.wantOfferMux, got)
			}
			s, _ := sdp.Parse([]byte(got))
			rtcpPort, _, _ := s.Media[0].RTCP()
			if d := rtcpPort - s.Media[0].Port(); d != c.wantOfferRTCPDelta {
				t.Errorf("offer a=rtcp is m= port + %d, want + %d", d, c.wantOfferRTCPDelta)
			}
			got = mustOK(t)(e.Answer(&Request{CallID: id, FromTag: "a", ToTag: "b", SDP: c.answerSDP, RTCPMux: c.mux}))
			if has := strings.Contains(got, "a=rtcp-mux"); has != c.wantAnswerMux {
				t.Errorf("answer rtcp-mux = %v, want %v:\n%s", has, c.wantAnswerMux, got)
			}
			e.TerminateAll()
		})
	}
}

// peer is a UDP socket standing in for a phone.
type peer struct{ rtp, rtcp *net.UDPConn }

func newPeer(t *testing.T, addr string) *peer {
	t.Helper()
	p := &peer{}
	for _, c := range []**net.UDPConn{&p.rtp, &p.rtcp} {
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		*c = conn
	}
	return p
}

func portOf(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func (p *peer) sdp(extra ...string) []byte {
	return sdpFor(portOf(p.rtp), append([]string{fmt.Sprintf("a=rtcp:%d", portOf(p.rtcp))}, extra...)...)
}

func recvFrom(t *testing.T, c *net.UDPConn) ([]byte, netip.AddrPort, bool) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, src, false
	}
	return buf[:n], src, true
}

// relayed sends pkt from one socket to the relay until it arrives at to.
func relayed(t *testing.T, from *net.UDPConn, relay netip.AddrPort, to *net.UDPConn, pkt []byte) netip.AddrPort {
	t.Helper()
	for range 20 {
		from.WriteToUDPAddrPort(pkt, relay)
		if got, src, ok := recvFrom(t, to); ok {
			if !bytes.Equal(got, pkt) {
				t.Fatalf("got %x want %x", got, pkt)
			}
			return src
		}
	}
	t.Fatalf("packet to %v never arrived", relay)
	return netip.AddrPort{}
}

// relayAddr returns the relay address an offer or answer's SDP points at.
func relayAddr(t *testing.T) func(*Result, error) netip.AddrPort {
	return func(res *Result, err error) netip.AddrPort {
		t.Helper()
		s, perr := sdp.Parse([]byte(mustOK(t)(res, err)))
		if perr != nil {
			t.Fatal(perr)
		}
		conn, _ := s.Media[0].EffectiveConnection(s)
		ip, _ := conn.Addr()
		return netip.AddrPortFrom(ip, uint16(s.Media[0].Port()))
	}
}

func TestLatchingAndStrictSource(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	toB := relayAddr(t)(e.Offer(&Request{CallID: "l", FromTag: "a", SDP: a.sdp(), Flags: Flags{StrictSource: true}}))
	toA := relayAddr(t)(e.Answer(&Request{CallID: "l", FromTag: "a", ToTag: "b", SDP: b.sdp()}))

	// A sends from a socket other than the one its SDP named: symmetric
	// latching sends B's media back there.
	nat := newPeer(t, "127.0.0.1")
	relayed(t, nat.rtp, toA, b.rtp, []byte("\x80\x00hello from behind NAT"))
	relayed(t, b.rtp, toB, nat.rtp, []byte("\x80\x00reply to the latched address"))

	// Strict source: once latched, A's relay port drops other senders.
	stranger := newPeer(t, "127.0.0.1")
	stranger.rtp.WriteToUDPAddrPort([]byte("\x80\x00intruder"), toA)
	if got, _, ok := recvFrom(t, b.rtp); ok {
		t.Fatalf("strict source relayed a stranger's packet %q", got)
	}
	info, err := e.Query("l")
	if err != nil {
		t.Fatal(err)
	}
	if errs := info.Tags[0].Medias[0].Streams[0].Errors; errs == 0 {
		t.Errorf("dropped packet not counted as an error: %+v", info.Tags[0].Medias[0].Streams[0])
	}
}

func TestDemuxRelaysRTCPToTheRTCPPort(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	toB := relayAddr(t)(e.Offer(&Request{CallID: "d", FromTag: "a", SDP: sdpFor(portOf(a.rtp), "a=rtcp-mux"), RTCPMux: RTCPMux{Demux: true}}))
	toA := relayAddr(t)(e.Answer(&Request{CallID: "d", FromTag: "a", ToTag: "b", SDP: b.sdp(), RTCPMux: RTCPMux{Demux: true}}))
	// A multiplexes: its RTCP arrives on the RTP port and must leave on B's
	// RTCP path, from the relay's RTCP port.
	rr := []byte{0x80, 201, 0, 1, 1, 2, 3, 4}
	src := relayed(t, a.rtp, toA, b.rtcp, rr)
	if int(src.Port()) != int(toB.Port())+1 {
		t.Errorf("RTCP left from port %d, want %d", src.Port(), toB.Port()+1)
	}
	// B's RTCP (separate port) reaches A on its one multiplexed port.
	relayed(t, b.rtcp, netip.AddrPortFrom(toB.Addr(), toB.Port()+1), a.rtp, rr)
	// RTP still goes RTP to RTP.
	relayed(t, a.rtp, toA, b.rtp, []byte{0x80, 0, 0, 1})
}

func TestIPv6(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		c.Close()
	}
	e := newEngine(t, "::1")
	a, b := newPeer(t, "::1"), newPeer(t, "::1")
	in := bytes.ReplaceAll(a.sdp(), []byte("IN IP4 127.0.0.1"), []byte("IN IP6 ::1"))
	res, err := e.Offer(&Request{CallID: "six", FromTag: "a", SDP: in})
	if got := mustOK(t)(res, err); !strings.Contains(got, "c=IN IP6 ::1\r\n") {
		t.Fatalf("IPv6 offer:\n%s", got)
	}
	toB := relayAddr(t)(res, err)
	toA := relayAddr(t)(e.Answer(&Request{CallID: "six", FromTag: "a", ToTag: "b", SDP: bytes.ReplaceAll(b.sdp(), []byte("IN IP4 127.0.0.1"), []byte("IN IP6 ::1"))}))
	relayed(t, a.rtp, toA, b.rtp, []byte{0x80, 0, 0, 1})
	relayed(t, b.rtp, toB, a.rtp, []byte{0x80, 0, 0, 2})
}

func TestErrors(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	if _, err := e.Offer(&Request{CallID: "x", FromTag: "a", SDP: []byte("not sdp")}); !errors.Is(err, ErrBadSDP) {
		t.Errorf("bad SDP: %v", err)
	}
	if _, err := e.Answer(&Request{CallID: "nope", FromTag: "a", ToTag: "b", SDP: sdpFor(1)}); !errors.Is(err, ErrUnknownCallID) {
		t.Errorf("answer to nothing: %v", err)
	}
	mustOK(t)(e.Offer(&Request{CallID: "x", FromTag: "a", SDP: sdpFor(5000)}))
	if _, err := e.Answer(&Request{CallID: "x", FromTag: "zz", ToTag: "b", SDP: sdpFor(1)}); !errors.Is(err, ErrUnknownTag) {
		t.Errorf("answer with unknown from-tag: %v", err)
	}
	if _, err := e.Answer(&Request{CallID: "x", FromTag: "a", ToTag: "b", SDP: sdpFor(1, "m=video 2 RTP/AVP 96")}); !errors.Is(err, ErrMoreMedia) {
		t.Errorf("answer with more media: %v", err)
	}
	if _, err := e.Offer(&Request{CallID: "y", FromTag: "a", SDP: sdpFor(5000), Direction: [2]string{"nowhere", ""}}); !errors.Is(err, ErrUnknownItf) {
		t.Errorf("unknown interface: %v", err)
	}
	if n := e.NumCalls(); n != 1 {
		t.Errorf("failed offers left calls: %d", n)
	}
	// Exhaustion part-way through a multi-section offer frees what it took.
	before := e.ifaces[0].pool.Used()
	many := sdpFor(5000, "m=audio 5002 RTP/AVP 0", "m=audio 5004 RTP/AVP 0", "m=audio 5006 RTP/AVP 0", "m=audio 5008 RTP/AVP 0")
	if _, err := e.Offer(&Request{CallID: "big", FromTag: "a", SDP: many}); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("oversized offer: %v", err)
	}
	if used := e.ifaces[0].pool.Used(); used != before || e.NumCalls() != 1 {
		t.Errorf("exhaustion left ports %d (before %d), calls %d", used, before, e.NumCalls())
	}
}

// FuzzOffer feeds arbitrary SDP through offer and answer: no panic, and a
// successful result is SDP that parses.
func FuzzOffer(f *testing.F) {
	for _, s := range [][]byte{sdpFor(5000), sdpFor(5000, "a=rtcp-mux", "a=rtcp:5000"), sdpFor(0),
		[]byte("v=0\r\nm=audio 1 RTP/AVP 0\r\n"), []byte("v=0\nc=IN IP6 ::1\nm=audio 9/2 RTP/AVP 0\na=rtcp:99 IN IP4 1.2.3.4\n"),
		[]byte("garbage"), sdpFor(65535, "c=IN IP4 0.0.0.0", "a=inactive")} {
		f.Add(s)
	}
	e := newEngine(f, "127.0.0.1")
	f.Fuzz(func(t *testing.T, body []byte) {
		defer e.TerminateAll()
		res, err := e.Offer(&Request{CallID: "f", FromTag: "a", SDP: body, Replace: Replace{Origin: true, SDPVersion: true, SessionName: true}})
		if err != nil {
			return
		}
		if _, err := sdp.Parse(res.SDP); err != nil {
			t.Fatalf("offer output does not parse: %v\n%q", err, res.SDP)
		}
		res, err = e.Answer(&Request{CallID: "f", FromTag: "a", ToTag: "b", SDP: body})
		if err == nil {
			if _, err := sdp.Parse(res.SDP); err != nil {
				t.Fatalf("answer output does not parse: %v\n%q", err, res.SDP)
			}
		}
	})
}

// TestDirectionAndAdvertisedAddress: direction picks the interface facing
// each party; an interface's advertised address is what its SDP shows.
func TestDirectionAndAdvertisedAddress(t *testing.T) {
	base := int(portBase.Add(20)) - 20
	e, err := New(Config{
		Interfaces: []config.Interface{
			{Name: "internal", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
			{Name: "external", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, Advertised: netip.MustParseAddr("203.0.113.9")},
		},
		PortMin: base, PortMax: base + 19,
		Live: config.NewLive(config.Defaults()), Stats: stats.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	toB := mustOK(t)(e.Offer(&Request{CallID: "d", FromTag: "a", SDP: sdpFor(5000), Direction: [2]string{"internal", "external"}}))
	if !strings.Contains(toB, "c=IN IP4 203.0.113.9\r\n") {
		t.Errorf("offer towards external shows:\n%s", toB)
	}
	toA := mustOK(t)(e.Answer(&Request{CallID: "d", FromTag: "a", ToTag: "b", SDP: sdpFor(6000)}))
	if !strings.Contains(toA, "c=IN IP4 127.0.0.1\r\n") {
		t.Errorf("answer towards internal shows:\n%s", toA)
	}
	info, err := e.Query("d")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Tags[1].Medias[0].Streams[0].Local.Addr().String(); got != "127.0.0.2" {
		t.Errorf("external side bound on %s, want 127.0.0.2", got)
	}
	// The default interface is the first configured.
	if got := mustOK(t)(e.Offer(&Request{CallID: "x", FromTag: "a", SDP: sdpFor(5000)})); !strings.Contains(got, "c=IN IP4 127.0.0.1\r\n") {
		t.Errorf("default interface:\n%s", got)
	}
}

// TestPortCount: "m=audio 4000/N" binds one pair, so the rewritten SDP
// announces one port (the count dropped, with a warning) for N up to
// MaxPortCount, as rtpengine; a larger count is refused and binds nothing.
func TestPortCount(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	res, err := e.Offer(&Request{CallID: "pc", FromTag: "a", SDP: []byte(strings.Replace(string(sdpFor(4000)), "m=audio 4000 ", "m=audio 4000/2 ", 1))})
	if err != nil {
		t.Fatal(err)
	}
	pb := port0(e) + 2
	if got := string(res.SDP); !strings.Contains(got, fmt.Sprintf("m=audio %d RTP/AVP 0\r\n", pb)) || strings.Contains(got, "/2") {
		t.Errorf("offer with /2:\n%s", got)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "port count /2 dropped") {
		t.Errorf("warnings %q", res.Warnings)
	}
	// The answer's count goes too.
	got := mustOK(t)(e.Answer(&Request{CallID: "pc", FromTag: "a", ToTag: "b", SDP: []byte(strings.Replace(string(sdpFor(6000)), "m=audio 6000 ", "m=audio 6000/10 ", 1))}))
	if !strings.Contains(got, fmt.Sprintf("m=audio %d RTP/AVP 0\r\n", port0(e))) {
		t.Errorf("answer with /10:\n%s", got)
	}

	used := e.ifaces[0].pool.Used()
	_, err = e.Offer(&Request{CallID: "pc300", FromTag: "a", SDP: []byte(strings.Replace(string(sdpFor(4000)), "m=audio 4000 ", "m=audio 4000/300 ", 1))})
	if !errors.Is(err, ErrBadSDP) || !strings.Contains(err.Error(), "m= section 1 asks for 300 consecutive ports (at most 10") {
		t.Errorf("offer with /300: %v", err)
	}
	if e.NumCalls() != 1 || e.ifaces[0].pool.Used() != used {
		t.Errorf("refused offer left calls %d, ports %d (before %d)", e.NumCalls(), e.ifaces[0].pool.Used(), used)
	}
}
