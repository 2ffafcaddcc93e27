package testpeer

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// Rtpengine is a running rtpengine-daemon, the anchor rtcgate's ng relay is
// compared with: userspace forwarding, loopback only.
type Rtpengine struct {
	NgAddr string // "127.0.0.1:PORT", ng over UDP
	p      *proc
}

// RtpengineArgs is rtpengine-daemon's command line for an anchor:
// userspace forwarding only (--table=-1 and --no-fallback, so a kernel
// module can never make its behaviour or numbers incomparable), loopback
// only, and --config-file=none because the Debian package's
// /etc/rtpengine/rtpengine.conf would add CLI and HTTP listeners on fixed
// ports and recording settings.
func RtpengineArgs(ngAddr string, portMin, portMax int) []string {
	return []string{
		"--config-file=none",
		"--table=-1",
		"--foreground",
		"--log-stderr",
		"--log-level=4",
		"--interface=127.0.0.1",
		"--listen-ng=" + ngAddr,
		"--port-min=" + strconv.Itoa(portMin),
		"--port-max=" + strconv.Itoa(portMax),
		"--delete-delay=0",
		"--timeout=60",
		"--no-fallback",
	}
}

// StartRtpengine runs rtpengine-daemon with media ports portMin–portMax
// (and extra arguments after RtpengineArgs, e.g. "--interface=::1" for an
// IPv6 interface too) and returns once it answers an ng ping; it is stopped
// at cleanup, and its log goes to t.Log when the test failed.
func StartRtpengine(t testing.TB, portMin, portMax int, extra ...string) *Rtpengine {
	t.Helper()
	bin := lookBin(t, "rtpengine", "/usr/bin/rtpengine", "rtpengine-daemon")
	ng := net.JoinHostPort("127.0.0.1", strconv.Itoa(FreeUDPPort(t)))
	p, err := startProc(bin, t.TempDir(), "", append(RtpengineArgs(ng, portMin, portMax), extra...)...)
	if err != nil {
		t.Fatalf("testpeer: rtpengine: %v", err)
	}
	r := &Rtpengine{NgAddr: ng, p: p}
	t.Cleanup(func() {
		p.stop(2 * time.Second)
		if t.Failed() {
			t.Logf("rtpengine log:\n%s", lastLines(p.out.String(), 30))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ngPing(ng)
		if err == nil {
			return r
		}
		if p.done() || time.Now().After(deadline) {
			t.Fatalf("testpeer: %v", failedStart("rtpengine did not start", err, p, ""))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ngPing(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("p1 d7:command4:pinge")); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "p1 d6:result4:ponge" {
		return fmt.Errorf("ping answered %q", buf[:n])
	}
	return nil
}
