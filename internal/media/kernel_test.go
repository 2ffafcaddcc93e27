package media

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/kernelfwd"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// kernelEngine builds an engine that must forward in the kernel, on addrs,
// with its own range of ports ports. It skips only when this process
// genuinely lacks the capabilities; any other failure to load fails the
// test.
func kernelEngine(t *testing.T, ports int, addrs ...string) *Engine {
	t.Helper()
	requireKernel(t)
	cfg := Config{Interfaces: []config.Interface{{Name: "default"}}, KernelForwarding: KernelRequired}
	for _, a := range addrs {
		cfg.Interfaces[0].Addrs = append(cfg.Interfaces[0].Addrs, netip.MustParseAddr(a))
	}
	cfg.PortMin, cfg.PortMax = portRange(ports)
	return newEngineWith(t, cfg)
}

func requireKernel(t *testing.T) {
	t.Helper()
	if err := kernelfwd.Capable(); err != nil {
		t.Skipf("no kernel forwarding here: %v", err)
	}
}

// kernelPorts hands each test its own range, above the kernel's ephemeral
// ports and away from newEngine's.
var kernelPorts atomic.Int32

func init() { kernelPorts.Store(61000) }

func portRange(n int) (int, int) {
	base := int(kernelPorts.Add(int32(n))) - n
	return base, base + n - 1
}

// streamInfo finds the stream of tag's first medium (RTP or RTCP).
func streamInfo(t *testing.T, e *Engine, callID, tag string, rtcp bool) StreamInfo {
	t.Helper()
	info, err := e.Query(callID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range info.Tags {
		if ti.Tag == tag {
			for _, s := range ti.Medias[0].Streams {
				if s.RTCP == rtcp {
					return s
				}
			}
		}
	}
	t.Fatalf("no stream for tag %q in %+v", tag, info)
	return StreamInfo{}
}

// userPackets is what the relay's socket saw for tag's RTP stream.
func userPackets(e *Engine, callID, tag string, rtcp bool) uint64 {
	c := e.lookup(callID)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.monologues[tag].sides[0].rtp
	if rtcp {
		s = c.monologues[tag].sides[0].rtcp
	}
	return s.packets.Load()
}

// flow sends n packets from one socket to the relay and requires each at
// the other socket, byte for byte, from the relay's port want.
func flow(t *testing.T, from *net.UDPConn, relay netip.AddrPort, to *net.UDPConn, want netip.AddrPort, n int, tag string) {
	t.Helper()
	for i := range n {
		pkt := append([]byte{0x80, 0, byte(i >> 8), byte(i)}, tag...)
		from.WriteToUDPAddrPort(pkt, relay)
		got, src, ok := recvFrom(t, to)
		if !ok || !bytes.Equal(got, pkt) || src.Port() != want.Port() {
			t.Fatalf("packet %d of %q: got %q from %v (%v), want from %v", i, tag, got, src, ok, want)
		}
	}
}

type twoParty struct {
	a, b       *peer
	toA, toB   netip.AddrPort // the relay ports facing A (A sends there) and B
	aTag, bTag string
}

// latch sends the first RTP packet each way, through the sockets.
func (p *twoParty) latch(t *testing.T) {
	t.Helper()
	relayed(t, p.a.rtp, p.toA, p.b.rtp, []byte("\x80\x00first A"))
	relayed(t, p.b.rtp, p.toB, p.a.rtp, []byte("\x80\x00first B"))
}

func setupCall(t *testing.T, e *Engine, id, addr string, flags Flags) *twoParty {
	t.Helper()
	p := &twoParty{a: newPeer(t, addr), b: newPeer(t, addr), aTag: "a", bTag: "b"}
	sdpOf := func(x *peer) []byte {
		s := x.sdp()
		if netip.MustParseAddr(addr).Is6() {
			s = bytes.ReplaceAll(s, []byte("IN IP4 127.0.0.1"), []byte("IN IP6 "+addr))
		}
		return s
	}
	p.toB = relayAddr(t)(e.Offer(&Request{CallID: id, FromTag: "a", SDP: sdpOf(p.a), Flags: flags}))
	p.toA = relayAddr(t)(e.Answer(&Request{CallID: id, FromTag: "a", ToTag: "b", SDP: sdpOf(p.b), Flags: flags}))
	return p
}

// TestKernelPath: after the first packet each way (latched at the socket),
// RTP and RTCP go through the kernel both ways: every packet arrives, the
// counters of query grow by what was sent while the sockets' own counters
// stay still, and `list sessions` names the path. IPv4 and IPv6.
func TestKernelPath(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			e := kernelEngine(t, 20, addr)
			p := setupCall(t, e, "k", addr, Flags{})
			rtcp := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), ap.Port()+1) }

			// Latching: the first packets reach the sockets.
			p.latch(t)
			relayed(t, p.a.rtcp, rtcp(p.toA), p.b.rtcp, []byte{0x80, 201, 0, 1, 1, 1, 1, 1})
			relayed(t, p.b.rtcp, rtcp(p.toB), p.a.rtcp, []byte{0x80, 201, 0, 1, 2, 2, 2, 2})
			for _, tag := range []string{"a", "b"} {
				for _, isRTCP := range []bool{false, true} {
					if s := streamInfo(t, e, "k", tag, isRTCP); s.Path != PathKernel {
						t.Fatalf("%s (RTCP %v) path %q after latching", tag, isRTCP, s.Path)
					}
				}
			}
			userA, userB := userPackets(e, "k", "a", false), userPackets(e, "k", "b", false)
			beforeA := streamInfo(t, e, "k", "a", false)

			const n = 50
			flow(t, p.a.rtp, p.toA, p.b.rtp, p.toB, n, "A to B")
			flow(t, p.b.rtp, p.toB, p.a.rtp, p.toA, n, "B to A")
			flow(t, p.a.rtcp, rtcp(p.toA), p.b.rtcp, rtcp(p.toB), 5, "A's RTCP")

			if u := userPackets(e, "k", "a", false); u != userA {
				t.Errorf("A's relay socket saw %d packets after the rule", u-userA)
			}
			if u := userPackets(e, "k", "b", false); u != userB {
				t.Errorf("B's relay socket saw %d packets after the rule", u-userB)
			}
			afterA := streamInfo(t, e, "k", "a", false)
			if d := afterA.Packets - beforeA.Packets; d != n {
				t.Errorf("query: A's stream grew by %d packets, want %d", d, n)
			}
			if d := afterA.Kernel.Packets - beforeA.Kernel.Packets; d != n {
				t.Errorf("query: the kernel share grew by %d packets, want %d", d, n)
			}
			if d := afterA.Bytes - beforeA.Bytes; d != n*(4+6) {
				t.Errorf("query: A's stream grew by %d bytes, want %d", d, n*10)
			}
			if s := streamInfo(t, e, "k", "a", true); s.Kernel.Packets != 5 {
				t.Errorf("A's RTCP: %d packets in the kernel, want 5", s.Kernel.Packets)
			}

			var out strings.Builder
			e.writeSession(&out, "k")
			if !strings.Contains(out.String(), fmt.Sprintf(", kernel, kernel %d p", afterA.Kernel.Packets)) {
				t.Errorf("list sessions does not show the kernel path:\n%s", out.String())
			}

			// Stats: running and, after delete, ended figures by path.
			user, kernel := e.liveCounters()
			if kernel.Packets < 2*n+5 || user.Packets < 4 {
				t.Errorf("live counters: user %+v, kernel %+v", user, kernel)
			}
			if _, err := e.Delete("k", "", "", 0, false); err != nil {
				t.Fatal(err)
			}
			if k := e.stats.KernelPackets.Load(); k < 2*n+5 {
				t.Errorf("ended kernel packets %d", k)
			}
			if n, err := e.KernelRules(); err != nil || n != 0 {
				t.Errorf("rules left after delete: %d (%v)", n, err)
			}
			// The ports are free again and reach their sockets.
			p.a.rtp.WriteToUDPAddrPort([]byte("late"), p.toA)
			if got, _, ok := recvFrom(t, p.b.rtp); ok {
				t.Errorf("a packet to a deleted call's port was forwarded: %q", got)
			}
		})
	}
}

// TestKernelHandover: with media-handover, a party that moves to another
// source port is re-latched at the socket and both rules follow: its
// packets from the new port go through the kernel, and the other party's
// reach it there.
func TestKernelHandover(t *testing.T) {
	e := kernelEngine(t, 20, "127.0.0.1")
	p := setupCall(t, e, "h", "127.0.0.1", Flags{MediaHandover: true})
	p.latch(t)
	flow(t, p.a.rtp, p.toA, p.b.rtp, p.toB, 10, "A before")

	moved := newPeer(t, "127.0.0.1")
	before := userPackets(e, "h", "a", false)
	flow(t, moved.rtp, p.toA, p.b.rtp, p.toB, 1, "A moved") // through the socket: re-latched
	if got := userPackets(e, "h", "a", false) - before; got != 1 {
		t.Fatalf("the moved party's first packet: %d at the socket, want 1", got)
	}
	if s := streamInfo(t, e, "h", "a", false); s.Endpoint.Port() != uint16(portOf(moved.rtp)) || s.Path != PathKernel {
		t.Fatalf("after the handover: endpoint %v, path %q", s.Endpoint, s.Path)
	}
	flow(t, moved.rtp, p.toA, p.b.rtp, p.toB, 20, "A after")
	flow(t, p.b.rtp, p.toB, moved.rtp, p.toA, 20, "B to the moved A")
	if got := userPackets(e, "h", "a", false) - before; got != 1 {
		t.Errorf("after the handover the socket saw %d more packets", got-1)
	}
	// The old source is now a stranger: its packets go up to the socket.
	p.a.rtp.WriteToUDPAddrPort([]byte("\x80\x00old"), p.toA)
	if got, _, ok := recvFrom(t, p.b.rtp); !ok || string(got) != "\x80\x00old" {
		t.Errorf("old source's packet: %q %v", got, ok)
	}
	if got := userPackets(e, "h", "a", false) - before; got != 2 {
		t.Errorf("the old source's packet did not go through the socket (%d)", got)
	}
}

// TestKernelStrictSourceAndAsymmetric: strict source drops strangers at the
// socket (counted) while the confirmed sender stays in the kernel;
// asymmetric forwards any sender to the SDP address in the kernel.
func TestKernelStrictSourceAndAsymmetric(t *testing.T) {
	e := kernelEngine(t, 20, "127.0.0.1")

	p := setupCall(t, e, "s", "127.0.0.1", Flags{StrictSource: true})
	relayed(t, p.a.rtp, p.toA, p.b.rtp, []byte("\x80\x00A"))
	stranger := newPeer(t, "127.0.0.1")
	stranger.rtp.WriteToUDPAddrPort([]byte("\x80\x00intruder"), p.toA)
	if got, _, ok := recvFrom(t, p.b.rtp); ok {
		t.Fatalf("strict source forwarded %q", got)
	}
	if s := streamInfo(t, e, "s", "a", false); s.Errors != 1 || s.Path != PathKernel {
		t.Errorf("strict source: %d errors, path %q", s.Errors, s.Path)
	}
	flow(t, p.a.rtp, p.toA, p.b.rtp, p.toB, 10, "A")

	q := setupCall(t, e, "y", "127.0.0.1", Flags{Asymmetric: true})
	relayed(t, q.a.rtp, q.toA, q.b.rtp, []byte("\x80\x00A"))
	before := userPackets(e, "y", "a", false)
	other := newPeer(t, "127.0.0.1")
	flow(t, other.rtp, q.toA, q.b.rtp, q.toB, 5, "anyone")
	flow(t, q.a.rtp, q.toA, q.b.rtp, q.toB, 5, "A")
	if got := userPackets(e, "y", "a", false) - before; got != 0 {
		t.Errorf("asymmetric: %d packets at the socket", got)
	}
}

// TestKernelKeepsUserspace: a recorded call's streams stay in userspace
// and say why; a multiplexing sender's RTCP towards a demultiplexing peer
// goes up to the socket while its RTP stays in the kernel.
func TestKernelKeepsUserspace(t *testing.T) {
	e := kernelEngine(t, 20, "127.0.0.1")
	p := setupCall(t, e, "r", "127.0.0.1", Flags{RecordCall: true})
	relayed(t, p.a.rtp, p.toA, p.b.rtp, []byte("\x80\x00A"))
	flow(t, p.a.rtp, p.toA, p.b.rtp, p.toB, 10, "recorded")
	if s := streamInfo(t, e, "r", "a", false); s.Path != "userspace (recording)" || !s.NoKernel || s.Kernel.Packets != 0 {
		t.Errorf("recorded stream: path %q, no kernel %v, %d kernel packets", s.Path, s.NoKernel, s.Kernel.Packets)
	}

	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	toB := relayAddr(t)(e.Offer(&Request{CallID: "m", FromTag: "a", SDP: sdpFor(portOf(a.rtp), "a=rtcp-mux"), RTCPMux: RTCPMux{Demux: true}}))
	toA := relayAddr(t)(e.Answer(&Request{CallID: "m", FromTag: "a", ToTag: "b", SDP: b.sdp(), RTCPMux: RTCPMux{Demux: true}}))
	relayed(t, a.rtp, toA, b.rtp, []byte{0x80, 0, 0, 1})
	before := userPackets(e, "m", "a", false)
	rr := []byte{0x80, 201, 0, 1, 1, 2, 3, 4}
	if src := relayed(t, a.rtp, toA, b.rtcp, rr); src.Port() != toB.Port()+1 {
		t.Errorf("RTCP left from %v", src)
	}
	flow(t, a.rtp, toA, b.rtp, toB, 10, "muxed RTP")
	if got := userPackets(e, "m", "a", false) - before; got != 1 {
		t.Errorf("%d packets at the socket, want the RTCP one", got)
	}
}

// TestKernelFamilyTranslation: IPv4 on one leg and IPv6 on the other is
// relayed in userspace (a rule cannot change the header's size).
func TestKernelFamilyTranslation(t *testing.T) {
	e := kernelEngine(t, 20, "127.0.0.1", "::1")
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "::1")
	toB := relayAddr(t)(e.Offer(&Request{CallID: "x", FromTag: "a", SDP: a.sdp(), AddressFamily: "IP6"}))
	toA := relayAddr(t)(e.Answer(&Request{CallID: "x", FromTag: "a", ToTag: "b", AddressFamily: "IP4",
		SDP: bytes.ReplaceAll(b.sdp(), []byte("IN IP4 127.0.0.1"), []byte("IN IP6 ::1"))}))
	if !toB.Addr().Is6() || !toA.Addr().Is4() {
		t.Fatalf("relay addresses %v (to B), %v (to A)", toB, toA)
	}
	relayed(t, a.rtp, toA, b.rtp, []byte("\x80\x00A"))
	relayed(t, b.rtp, toB, a.rtp, []byte("\x80\x00B"))
	flow(t, a.rtp, toA, b.rtp, toB, 5, "A")
	if s := streamInfo(t, e, "x", "a", false); s.Path != "userspace (IPv4/IPv6 translation)" || s.Packets != 6 {
		t.Errorf("path %q, %d packets", s.Path, s.Packets)
	}
}

// TestKernelTimeouts: a call whose media flows only in the kernel does not
// time out, and times out once that media stops; its rules go with it.
func TestKernelTimeouts(t *testing.T) {
	e := kernelEngine(t, 20, "127.0.0.1")
	p := setupCall(t, e, "t", "127.0.0.1", Flags{})
	p.latch(t)
	userLast := streamInfo(t, e, "t", "a", false).LastPacket
	time.Sleep(20 * time.Millisecond) // the kernel's clock is coarse: let it tick
	flow(t, p.a.rtp, p.toA, p.b.rtp, p.toB, 5, "A")
	flow(t, p.b.rtp, p.toB, p.a.rtp, p.toA, 5, "B")
	s := streamInfo(t, e, "t", "a", false)
	if !s.LastPacket.After(userLast) {
		t.Errorf("last packet %v did not move past the socket's %v", s.LastPacket, userLast)
	}
	// At a moment when the kernel's last packet is d old and the socket's
	// 3d, a timeout of 2d keeps the call: the kernel's packets count.
	d := s.LastPacket.Sub(userLast) / 2
	if reason, due := e.lookup("t").due(s.LastPacket.Add(d), 2*d, 0, 0); due {
		t.Fatalf("call with kernel media timed out (%v)", reason)
	}
	e.checkTimeouts(time.Now().Add(e.live.Timeout() + time.Second))
	if e.NumCalls() != 0 || e.stats.Closed(stats.ClosedTimeout) != 1 {
		t.Fatalf("silent kernel call still there: %d calls", e.NumCalls())
	}
	if n, err := e.KernelRules(); err != nil || n != 0 {
		t.Errorf("rules left after timeout: %d (%v)", n, err)
	}
}

// TestKernelThousandCalls: 1 000 calls forwarded in the kernel, half
// deleted and half timed out, leave no rule in the kernel's map.
func TestKernelThousandCalls(t *testing.T) {
	const calls = 1000
	e := kernelEngine(t, 4*calls+4, "127.0.0.1")
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	for i := range calls {
		id := fmt.Sprintf("c%d", i)
		toB := relayAddr(t)(e.Offer(&Request{CallID: id, FromTag: "a", SDP: a.sdp()}))
		toA := relayAddr(t)(e.Answer(&Request{CallID: id, FromTag: "a", ToTag: "b", SDP: b.sdp()}))
		relayed(t, a.rtp, toA, b.rtp, []byte("\x80\x00A"))
		relayed(t, b.rtp, toB, a.rtp, []byte("\x80\x00B"))
	}
	if n, err := e.KernelRules(); err != nil || n != 2*calls {
		t.Fatalf("%d rules for %d calls (%v), want %d", n, calls, err, 2*calls)
	}
	if v := gauge(t, e, "rtcgate_kernel_rules"); v != 2*calls {
		t.Errorf("rtcgate_kernel_rules = %v", v)
	}
	for i := 0; i < calls; i += 2 {
		if _, err := e.Delete(fmt.Sprintf("c%d", i), "", "", 0, false); err != nil {
			t.Fatal(err)
		}
	}
	e.checkTimeouts(time.Now().Add(e.live.Timeout() + time.Second))
	if e.NumCalls() != 0 {
		t.Fatalf("%d calls left", e.NumCalls())
	}
	if n, err := e.KernelRules(); err != nil || n != 0 {
		t.Errorf("%d rules left in the kernel (%v)", n, err)
	}
	if v := gauge(t, e, "rtcgate_kernel_rules"); v != 0 {
		t.Errorf("rtcgate_kernel_rules = %v", v)
	}
}

// gauge reads one unlabelled gauge of the engine's metrics.
func gauge(t *testing.T, e *Engine, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestKernelModes: off relays everything in userspace, with the same
// result. (A kernel path that cannot load is tested end to end, with
// capabilities dropped: see e2e.)
func TestKernelModes(t *testing.T) {
	min, max := portRange(20)
	e := newEngineWith(t, Config{
		Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		PortMin:    min, PortMax: max, KernelForwarding: KernelOff,
	})
	if on, _ := e.KernelForwarding(); on {
		t.Fatal("kernel forwarding on with off")
	}
	p := setupCall(t, e, "o", "127.0.0.1", Flags{})
	relayed(t, p.a.rtp, p.toA, p.b.rtp, []byte("\x80\x00A"))
	flow(t, p.a.rtp, p.toA, p.b.rtp, p.toB, 20, "userspace")
	if s := streamInfo(t, e, "o", "a", false); s.Path != "userspace" || s.Packets != 21 || s.Kernel.Packets != 0 {
		t.Errorf("off: path %q, %d packets (%d kernel)", s.Path, s.Packets, s.Kernel.Packets)
	}
	if u := userPackets(e, "o", "a", false); u != 21 {
		t.Errorf("off: the socket saw %d packets, want 21", u)
	}
}
