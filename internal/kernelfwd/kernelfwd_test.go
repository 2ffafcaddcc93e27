package kernelfwd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"
)

// open loads the forwarder, or skips when this process genuinely lacks
// what it needs (and fails on any other reason).
func open(t *testing.T, slots int) *Forwarder {
	t.Helper()
	if err := checkCapabilities(); err != nil {
		t.Skipf("kernel forwarding cannot run here: %v", err)
	}
	f, err := Open(Config{Slots: slots, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ap(c *net.UDPConn) netip.AddrPort {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// recv reads one datagram or fails after a while.
func recv(t *testing.T, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("nothing arrived on %v: %v", ap(c), err)
	}
	return buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
}

// quiet requires that nothing is waiting on c.
func quiet(t *testing.T, c *net.UDPConn) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, from, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("the socket %v received %d bytes from %v", ap(c), n, from)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

// relayCase is an address family: the relay's address and its peers'
// (distinct for IPv4, so that the rewrite changes addresses too; the
// loopback has only one IPv6 address).
type relayCase struct {
	name, network, addr, peerA, peerB string
}

var families = []relayCase{
	{"IPv4", "udp4", "127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0"},
	{"IPv6", "udp6", "[::1]:0", "[::1]:0", "[::1]:0"},
}

// TestForward: with a rule, packets from the confirmed source leave from the
// relay's other port to the destination, byte for byte, counted in the
// slot, and the relay's socket sees none of them; without the rule (or from
// another source) they reach the socket again. Both ways out are tried: up
// the stack (for this host, from the loopback) and bpf_redirect_neigh (any
// other case).
func TestForward(t *testing.T) {
	f := open(t, allPorts)
	eachWayOut(t, f, func(t *testing.T, fam relayCase, lk lookup) { forward(t, f, fam, lk) })
	if n, err := f.Rules(); err != nil || n != 0 {
		t.Errorf("rules left: %d (%v)", n, err)
	}
}

// allPorts is a slot per port: with the zero FastRange, port i's rule
// sits in slot i's entry when its slot is i.
const allPorts = 1 << 16

// lookup is where the program finds the rules of a test: in their port's
// slot entry (slot = port) or in the hash map (another slot).
type lookup struct {
	name   string
	slot   func(local netip.AddrPort) uint32
	hashed bool
}

var lookups = []lookup{
	{"array", func(l netip.AddrPort) uint32 { return uint32(l.Port()) }, false},
	{"hash", func(l netip.AddrPort) uint32 { return 7 }, true},
}

// eachWayOut runs fn per address family, the rule's packets sent on up
// the stack (this host, from the loopback) and then through
// bpf_redirect_neigh (as to any other host), the rules found in their
// slot entry and in the hash map.
func eachWayOut(t *testing.T, f *Forwarder, fn func(t *testing.T, fam relayCase, lk lookup)) {
	for _, lk := range lookups {
		for _, redirect := range []bool{false, true} {
			for _, fam := range families {
				name := lk.name + "/" + fam.name + "/pass"
				if redirect {
					name = lk.name + "/" + fam.name + "/redirect_neigh"
				}
				t.Run(name, func(t *testing.T) {
					f.redirectLocal = redirect
					defer func() { f.redirectLocal = false }()
					fn(t, fam, lk)
				})
			}
		}
	}
}

// hashed counts the rules in the hash map.
func hashed(t *testing.T, f *Forwarder) int {
	t.Helper()
	n, err := countEntries(f.rules)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// installAt installs r and checks, in the kernel's maps, that it went
// where lk says: its slot's entry, or the hash map.
func installAt(t *testing.T, f *Forwarder, r Rule, lk lookup) {
	t.Helper()
	if err := f.Install(r); err != nil {
		t.Fatal(err)
	}
	var v []byte
	inHash := f.rules.Lookup(key(r.Local), &v) == nil
	inEntry := false
	if i, ok := f.fastEntry(r.Local); ok {
		e := f.mem[int(i)*entrySize:]
		inEntry = binary.NativeEndian.Uint32(e[entFamily:]) != 0 && bytes.Equal(e[entLocal:entLocal+r.Local.Addr().BitLen()/8], r.Local.Addr().AsSlice())
	}
	if inHash != lk.hashed || inEntry == lk.hashed {
		t.Fatalf("rule for %v: in the hash map %v, in its slot entry %v; want it in the %s", r.Local, inHash, inEntry, lk.name)
	}
}

func forward(t *testing.T, f *Forwarder, fam relayCase, lk lookup) {
	a, b := listen(t, fam.network, fam.peerA), listen(t, fam.network, fam.peerB)
	r1, r2 := listen(t, fam.network, fam.addr), listen(t, fam.network, fam.addr)
	other := listen(t, fam.network, fam.peerB)
	slot := lk.slot(ap(r1))
	rule := Rule{Local: ap(r1), Source: ap(a), From: ap(r2), To: ap(b), Slot: slot}
	installAt(t, f, rule, lk)
	tap := newTap(t, fam, ap(b))
	before := f.Counters(slot)
	start := time.Now()
	for i := range 20 {
		pkt := append([]byte{0x80, 0, 0, byte(i)}, bytes.Repeat([]byte{byte(i)}, 160+i)...)
		if _, err := a.WriteToUDPAddrPort(pkt, ap(r1)); err != nil {
			t.Fatal(err)
		}
		got, from := recv(t, b)
		if !bytes.Equal(got, pkt) || from != ap(r2) {
			t.Fatalf("packet %d: got %d bytes from %v, want %d from %v", i, len(got), from, len(pkt), ap(r2))
		}
		tap.check(t, ap(r2), ap(b), len(pkt))
	}
	quiet(t, r1)
	c := f.Counters(slot)
	if c.Packets-before.Packets != 20 || c.Bytes-before.Bytes != 20*164+190 {
		t.Errorf("counters: %d packets, %d bytes; want 20, %d", c.Packets-before.Packets, c.Bytes-before.Bytes, 20*164+190)
	}
	if last := time.Unix(0, c.Last); last.Before(start.Add(-50*time.Millisecond)) || last.After(time.Now().Add(50*time.Millisecond)) {
		t.Errorf("last packet at %v, want between %v and now", last, start)
	}

	// Another source: up to the socket.
	other.WriteToUDPAddrPort([]byte("stranger"), ap(r1))
	if got, from := recv(t, r1); string(got) != "stranger" || from != ap(other) {
		t.Errorf("stranger's packet: %q from %v", got, from)
	}
	// RTCP sent up when the rule says so, RTP still forwarded.
	rule.RTCPToSocket = true
	installAt(t, f, rule, lk)
	rtcp := []byte{0x81, 200, 0, 1, 1, 2, 3, 4}
	a.WriteToUDPAddrPort(rtcp, ap(r1))
	if got, _ := recv(t, r1); !bytes.Equal(got, rtcp) {
		t.Errorf("RTCP reached the socket as %x", got)
	}
	a.WriteToUDPAddrPort([]byte{0x80, 8, 0, 1}, ap(r1))
	if got, _ := recv(t, b); !bytes.Equal(got, []byte{0x80, 8, 0, 1}) {
		t.Errorf("RTP after RTCP: %x", got)
	}
	// Rule removed: up to the socket.
	if err := f.Remove(ap(r1)); err != nil {
		t.Fatal(err)
	}
	a.WriteToUDPAddrPort([]byte("after"), ap(r1))
	if got, _ := recv(t, r1); string(got) != "after" {
		t.Errorf("after removal the socket got %q", got)
	}
	quiet(t, b)
}

// tap reads copies of the UDP packets delivered to dst with a raw socket,
// to check the UDP checksum field the rewrite left. Loopback packets from
// UDP sockets carry CHECKSUM_PARTIAL: the field holds the pseudo-header's
// sum, which a NIC's checksum offload completes, so a wrong one would only
// show past a real interface. IPv4 only: an IPv6 raw socket does not show
// the addresses.
type tap struct {
	fd  int
	dst netip.AddrPort
}

func newTap(t *testing.T, fam relayCase, dst netip.AddrPort) *tap {
	if fam.network != "udp4" {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &tap{fd: fd, dst: dst}
}

func (tp *tap) check(t *testing.T, src, dst netip.AddrPort, payload int) {
	t.Helper()
	if tp == nil {
		return
	}
	buf := make([]byte, 4096)
	for range 1000 { // skip other tests' UDP
		n, _, err := unix.Recvfrom(tp.fd, buf, 0)
		if err != nil {
			t.Fatalf("raw socket: %v", err)
		}
		p := buf[:n]
		if n < 28 || binary.BigEndian.Uint16(p[22:]) != dst.Port() || binary.BigEndian.Uint16(p[20:]) != src.Port() {
			continue
		}
		if s, d := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])); s != src.Addr() || d != dst.Addr() {
			t.Fatalf("IP addresses %v > %v, want %v > %v", s, d, src.Addr(), dst.Addr())
		}
		// The partial form: the pseudo-header's sum, folded, not inverted.
		pseudo := ^checksum(src, dst, nil) // the complement of a sum over the pseudo-header alone...
		udpLen := uint32(8 + payload)
		sum := uint32(pseudo) + udpLen // ...which counted a zero length; add the real one
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		if got := binary.BigEndian.Uint16(p[26:]); got != uint16(sum) {
			t.Fatalf("UDP checksum field %#04x, want the pseudo-header sum %#04x", got, sum)
		}
		return
	}
	t.Fatal("the raw socket never saw the packet")
}

// checksum is the UDP checksum of payload sent from src to dst.
func checksum(src, dst netip.AddrPort, udp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.Addr().AsSlice())
	add(dst.Addr().AsSlice())
	add([]byte{0, 17, byte(len(udp) >> 8), byte(len(udp))})
	add(udp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// rawUDP sends a UDP datagram through a raw socket with the checksum given
// (computed when sum is nil). The kernel then treats the checksum as data
// (CHECKSUM_NONE), as for a packet from a NIC without offload, and the
// receiving socket verifies it, which loopback packets from UDP sockets
// (CHECKSUM_PARTIAL) never are.
func rawUDP(t *testing.T, src, dst netip.AddrPort, payload []byte, sum *uint16) {
	t.Helper()
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	c := checksum(src, dst, udp)
	if sum != nil {
		c = *sum
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	if dst.Addr().Is4() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0}
		ip = append(append(append(ip, src.Addr().AsSlice()...), dst.Addr().AsSlice()...), udp...)
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		if err := unix.Sendto(fd, ip, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()}); err != nil {
			t.Fatal(err)
		}
		return
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.Addr().As16()}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(fd, udp, 0, &unix.SockaddrInet6{Addr: dst.Addr().As16()}); err != nil {
		t.Fatal(err)
	}
}

// TestChecksums: packets whose UDP checksum the receiver verifies arrive
// after the rewrite, through both ways out (up the stack for this host,
// bpf_redirect_neigh for others), and an IPv4 packet without checksum keeps
// none. A packet with a wrong checksum sent straight to the receiver is
// dropped, which shows the receiver does check.
func TestChecksums(t *testing.T) {
	f := open(t, allPorts)
	eachWayOut(t, f, func(t *testing.T, fam relayCase, lk lookup) {
		b, r1, r2 := listen(t, fam.network, fam.peerB), listen(t, fam.network, fam.addr), listen(t, fam.network, fam.addr)
		src := netip.AddrPortFrom(netip.MustParseAddrPort(fam.peerA).Addr(), 40000+uint16(ap(b).Port()%20000))
		installAt(t, f, Rule{Local: ap(r1), Source: src, From: ap(r2), To: ap(b), Slot: lk.slot(ap(r1))}, lk)
		defer f.Remove(ap(r1))

		bad := uint16(0x1234)
		rawUDP(t, src, ap(b), []byte("wrong checksum"), &bad)
		quiet(t, b)

		rawUDP(t, src, ap(r1), []byte("checked"), nil)
		if got, from := recv(t, b); string(got) != "checked" || from != ap(r2) {
			t.Errorf("got %q from %v", got, from)
		}
		if fam.network == "udp4" {
			zero := uint16(0)
			rawUDP(t, src, ap(r1), []byte("no checksum"), &zero)
			if got, _ := recv(t, b); string(got) != "no checksum" {
				t.Errorf("got %q", got)
			}
		}
		for i := range 3 { // many times through the same rule
			rawUDP(t, src, ap(r1), []byte{byte(i), 0xff, 0x00, byte(i * 7)}, nil)
			if got, _ := recv(t, b); len(got) != 4 || got[0] != byte(i) {
				t.Errorf("packet %d: got %x", i, got)
			}
		}
		quiet(t, r1)
	})
}

// TestSamePortTwoAddresses: the relay's port P on 127.0.0.1, 127.0.0.2 and
// ::1 at once, each rule forwarding to its own peer and counting in its own
// slot, whichever of them holds P's slot entry and whichever sits in the
// hash map; removing one leaves the others forwarding.
func TestSamePortTwoAddresses(t *testing.T) {
	if err := checkCapabilities(); err != nil {
		t.Skipf("kernel forwarding cannot run here: %v", err)
	}
	// IPv6 ports in the second half of the slots.
	f, err := Open(Config{Slots: 2 * allPorts, Fast6: FastRange{Slot: allPorts},
		Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r [3]*net.UDPConn // the relay's sockets on port P
	for try := 0; r[2] == nil; try++ {
		if try == 20 {
			t.Fatal("no port free on all three addresses")
		}
		r[0] = listen(t, "udp4", "127.0.0.1:0")
		p := ap(r[0]).Port()
		c1, err1 := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: int(p)})
		c2, err2 := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: int(p)})
		if err1 == nil && err2 == nil {
			r[1], r[2] = c1, c2
			t.Cleanup(func() { c1.Close(); c2.Close() })
			break
		}
		for _, c := range []*net.UDPConn{c1, c2} {
			if c != nil {
				c.Close()
			}
		}
	}
	port := ap(r[0]).Port()
	type leg struct {
		relay      *net.UDPConn
		src, from  *net.UDPConn
		dst        *net.UDPConn
		rule       Rule
		sent, seen uint64
	}
	mk := func(relay *net.UDPConn, network, peer, addr string, slot uint32) *leg {
		l := &leg{relay: relay, src: listen(t, network, peer), from: listen(t, network, addr), dst: listen(t, network, peer)}
		l.rule = Rule{Local: ap(relay), Source: ap(l.src), From: ap(l.from), To: ap(l.dst), Slot: slot}
		return l
	}
	legs := []*leg{
		mk(r[0], "udp4", "127.0.0.3:0", "127.0.0.1:0", uint32(port)),  // P's IPv4 entry
		mk(r[1], "udp4", "127.0.0.3:0", "127.0.0.2:0", 5),             // not its port's slot: hash map
		mk(r[2], "udp6", "[::1]:0", "[::1]:0", allPorts+uint32(port)), // P's IPv6 entry
	}
	entry, hash := lookup{name: "array"}, lookup{name: "hash", hashed: true}
	installAt(t, f, legs[0].rule, entry)
	installAt(t, f, legs[1].rule, hash)
	installAt(t, f, legs[2].rule, entry)
	// through sends a packet to each leg still forwarded and checks it
	// arrives at its peer only, from its relay address; removed legs'
	// packets reach the relay's socket.
	through := func(round int, removed ...int) {
		t.Helper()
		for i, l := range legs {
			pkt := []byte(fmt.Sprintf("leg %d round %d", i, round))
			if _, err := l.src.WriteToUDPAddrPort(pkt, ap(l.relay)); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(removed, i) {
				if got, _ := recv(t, l.relay); !bytes.Equal(got, pkt) {
					t.Fatalf("leg %d without rule: the socket got %q", i, got)
				}
				continue
			}
			l.sent++
			if got, from := recv(t, l.dst); !bytes.Equal(got, pkt) || from != l.rule.From {
				t.Fatalf("leg %d: got %q from %v, want %q from %v", i, got, from, pkt, l.rule.From)
			}
		}
		for _, l := range legs {
			quiet(t, l.relay)
			quiet(t, l.dst)
		}
	}
	for round := range 3 {
		through(round)
	}
	for i, l := range legs {
		if c := f.Counters(l.rule.Slot); c.Packets != l.sent {
			t.Errorf("leg %d: slot %d counted %d packets, want %d", i, l.rule.Slot, c.Packets, l.sent)
		}
	}
	// 127.0.0.1:P goes; 127.0.0.2:P moves into P's IPv4 entry (its slot
	// now P's) and 127.0.0.1:P, back, finds the entry taken: hash map.
	if err := f.Remove(legs[0].rule.Local); err != nil {
		t.Fatal(err)
	}
	through(3, 0)
	legs[1].rule.Slot = uint32(port)
	installAt(t, f, legs[1].rule, entry)
	through(4, 0)
	installAt(t, f, legs[0].rule, hash)
	through(5)
	// The entry's holder goes: the rule in the hash map for the same port
	// is still found.
	if err := f.Remove(legs[1].rule.Local); err != nil {
		t.Fatal(err)
	}
	through(6, 1)
	for _, l := range legs {
		if err := f.Remove(l.rule.Local); err != nil {
			t.Fatal(err)
		}
	}
	through(7, 0, 1, 2)
	if n, err := f.Rules(); err != nil || n != 0 {
		t.Errorf("rules left: %d (%v)", n, err)
	}
}

// TestInspect finds this process's program and rules map through its file
// descriptors, as tests and benchmarks do for a running rtcgate.
func TestInspect(t *testing.T) {
	f := open(t, 8)
	in, err := Inspect(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Program == nil || in.Rules == nil {
		t.Fatalf("inspection found program %v, rules %v", in.Program, in.Rules)
	}
	local := netip.MustParseAddrPort("127.0.0.1:9")
	if err := f.Install(Rule{Local: local, From: local, To: netip.MustParseAddrPort("127.0.0.1:10"), Slot: 1}); err != nil {
		t.Fatal(err)
	}
	inEntry := netip.MustParseAddrPort("127.0.0.1:3") // slot 3: port 3's entry
	if err := f.Install(Rule{Local: inEntry, From: local, To: netip.MustParseAddrPort("127.0.0.1:10"), Slot: 3}); err != nil {
		t.Fatal(err)
	}
	if n, err := in.RuleCount(); err != nil || n != 2 {
		t.Errorf("rules seen from outside: %d (%v)", n, err)
	}
	f.Remove(local)
	f.Remove(inEntry)
	if n, err := in.RuleCount(); err != nil || n != 0 {
		t.Errorf("rules seen from outside after removal: %d (%v)", n, err)
	}
}

// frame4 is an Ethernet+IPv4+UDP frame from src to dst.
func frame4(src, dst netip.AddrPort, payload int) []byte {
	b := make([]byte, 14+20+8+payload)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	ip[8], ip[9] = 64, 17
	copy(ip[12:], src.Addr().AsSlice())
	copy(ip[16:], dst.Addr().AsSlice())
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+payload))
	binary.BigEndian.PutUint16(u[6:], 0x1234)
	return b
}

// BenchmarkProgram times the program itself in the kernel
// (BPF_PROG_TEST_RUN) on a 160-byte RTP payload: a packet with a rule (the
// rule maps it onto itself, so that every run rewrites, fixes checksums and
// counts it) and one without; the rule in its port's slot entry, as most
// are, and in the hash map ("hash"), as when its port is taken on another
// address. `go test -run XXX -bench Program ./internal/kernelfwd`.
func BenchmarkProgram(b *testing.B) {
	if err := checkCapabilities(); err != nil {
		b.Skipf("kernel forwarding cannot run here: %v", err)
	}
	// noEntries keeps every port out of the slot entries: the hash map only.
	noEntries := FastRange{Port: 65535}
	a, l := netip.MustParseAddrPort("127.0.0.2:5000"), netip.MustParseAddrPort("127.0.0.1:30000")
	for _, lk := range []struct {
		name string
		fast FastRange
	}{{"", FastRange{Port: 30000 - 3}}, {"hash/", noEntries}} {
		f, err := Open(Config{Slots: 8, Fast4: lk.fast})
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := f.Install(Rule{Local: l, Source: a, From: a, To: l, Slot: 3}); err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name string
			in   []byte
			want int32
		}{{"rule", frame4(a, l, 160), tcxPass}, {"no-rule", frame4(a, netip.MustParseAddrPort("127.0.0.1:30004"), 160), tcxNext}} {
			b.Run(lk.name+c.name, func(b *testing.B) {
				ret, per, err := f.prog.Benchmark(c.in, b.N, nil)
				if err != nil || int32(ret) != c.want {
					b.Fatalf("returned %d (%v), want %d", int32(ret), err, c.want)
				}
				b.ReportMetric(float64(per.Nanoseconds()), "kernel-ns/run")
			})
		}
	}
	// As in ngbench at 2000 calls: 4000 rules among 12000 slots, each
	// packet for the next stream, one run per system call, so that the
	// rule, its slot entry or hash bucket and its counters are not in the
	// cache as they are when one packet runs over and over; with 1 rule,
	// the same way of running, for comparison.
	for _, lk := range []struct {
		name string
		fast FastRange
	}{{"", FastRange{Port: 20000}}, {"hash/", noEntries}} {
		for _, streams := range []int{1, 4000} {
			b.Run(fmt.Sprintf("one-run-per-call/%srules-%d", lk.name, streams), func(b *testing.B) {
				g, err := Open(Config{Slots: 3 * streams, Fast4: lk.fast})
				if err != nil {
					b.Fatal(err)
				}
				defer g.Close()
				frames := make([][]byte, streams)
				for i := range frames {
					l := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(20000+3*i))
					if err := g.Install(Rule{Local: l, Source: a, From: a, To: l, Slot: uint32(3 * i)}); err != nil {
						b.Fatal(err)
					}
					frames[i] = frame4(a, l, 160)
				}
				var total time.Duration
				b.ResetTimer()
				for i := range b.N {
					ret, per, err := g.prog.Benchmark(frames[i%streams], 1, nil)
					if err != nil || int32(ret) != tcxPass {
						b.Fatalf("returned %d (%v), want %d", int32(ret), err, tcxPass)
					}
					total += per
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "kernel-ns/run")
			})
		}
	}
}

// TestClosed: a closed forwarder refuses rules instead of writing into the
// slots' mapping, which is gone.
func TestClosed(t *testing.T) {
	f := open(t, 8)
	local := netip.MustParseAddrPort("127.0.0.1:3")
	f.Close()
	if err := f.Install(Rule{Local: local, From: local, To: local, Slot: 3}); !errors.Is(err, ErrClosed) {
		t.Errorf("Install after Close: %v", err)
	}
	if err := f.Remove(local); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close: %v", err)
	}
}
