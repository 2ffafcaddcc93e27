package kernelfwd

import (
	"net"
	"net/netip"
	"testing"
)

// TestRoute asks the real routing table: loopback addresses are this
// host's, through the loopback; an address of another interface's network
// is not (nothing is sent to it).
func TestRoute(t *testing.T) {
	r, err := newRouter()
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for _, a := range []string{"127.0.0.1", "127.0.0.9", "::1"} {
		rt, err := r.lookup(netip.MustParseAddr(a))
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if !rt.local || rt.ifindex != loopbackIf {
			t.Errorf("%s: %+v, want local through the loopback", a, rt)
		}
	}
	// Another interface's network, if this host has one.
	itfs, _ := net.Interfaces()
	for _, itf := range itfs {
		addrs, _ := itf.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || itf.Flags&net.FlagLoopback != 0 || ipn.IP.To4() == nil || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			pfx, _ := netip.AddrFromSlice(ipn.IP.To4())
			ones, _ := ipn.Mask.Size()
			if ones > 30 {
				continue
			}
			neighbour := netip.PrefixFrom(pfx, ones).Masked().Addr().Next()
			if neighbour == pfx {
				neighbour = neighbour.Next()
			}
			rt, err := r.lookup(neighbour)
			if err != nil {
				t.Fatalf("%s: %v", neighbour, err)
			}
			if rt.local || rt.ifindex != itf.Index {
				t.Errorf("%s: %+v, want through %s (%d)", neighbour, rt, itf.Name, itf.Index)
			}
			return
		}
	}
	t.Log("no interface with an IPv4 network besides the loopback: only local routes checked")
}

// FuzzParseRouteReply: whatever comes back over rtnetlink is read without
// a panic, and a route it accepts has an interface.
func FuzzParseRouteReply(f *testing.F) {
	r, err := newRouter()
	if err == nil {
		defer r.close()
		for _, a := range []string{"127.0.0.1", "::1", "192.0.2.1", "2001:db8::1"} {
			r.mu.Lock()
			req := routeRequest(netip.MustParseAddr(a), 1)
			f.Add(req)
			if sendErr := r.send(req); sendErr == nil {
				if n, err := r.recv(); err == nil {
					f.Add(append([]byte(nil), r.buf[:n]...))
				}
			}
			r.mu.Unlock()
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rt, _, err := parseRouteReply(b)
		if err == nil && rt.ifindex <= 0 {
			t.Fatalf("accepted a route without interface: %+v", rt)
		}
	})
}
