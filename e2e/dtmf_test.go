package e2e

import (
	be "encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/ng"
)

// TestPlayDTMFNgClient: Debian's rtpengine-ng-client sends `play DTMF`
// (bencode and JSON) for a call with RTP flowing from the caller; the
// callee receives the RFC 4733 event in the caller's stream, with
// rtpengine's default duration and the asked volume. An unknown call gets
// rtpengine's reason.
func TestPlayDTMFNgClient(t *testing.T) {
	client := needTool(t, "rtpengine-ng-client", "rtpengine-utils")
	r := start(t, append(ephemeral, "--port-min", "12800", "--port-max", "12899")...)
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	host, port := splitHostPort(t, r.addr(t, "listen-ng"))
	a, b := newParty(t), newParty(t)
	requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": "dtmf", "from-tag": "tagA", "sdp": a.sdp()}))
	answer := c.Do(t, map[string]any{"command": "answer", "call-id": "dtmf", "from-tag": "tagA", "to-tag": "tagB", "sdp": b.sdp()})
	requireOK(t, answer)
	toA, _ := relayPorts(t, str(t, answer, "sdp"))

	// The caller talks: PCMU every 20 ms, for at most 10 s.
	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: toA}
		for i := range 500 {
			pkt := rtpPacket(uint16(i), strings.Repeat("\xff", 160))
			be.BigEndian.PutUint32(pkt[4:], uint32(i*160))
			a.rtp.WriteToUDP(pkt, dst)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	buf := make([]byte, 2048)
	// receive returns the first packet at b that want accepts.
	receive := func(want func([]byte) bool) []byte {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			b.rtp.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := b.rtp.Read(buf)
			if err == nil && want(buf[:n]) {
				return buf[:n]
			}
		}
		t.Fatal("expected packet never reached the callee")
		return nil
	}
	receive(func(p []byte) bool { return len(p) > 12 && p[1]&0x7f == 0 })

	// rtpengine-ng-client prints an ok reply's other keys (none here) and
	// dies with the error reason of an error reply.
	run := func(args ...string) (string, int) {
		t.Helper()
		out, stderr, code := runCmd(t, 20*time.Second, client, append([]string{"--proxy-address=" + host, "--proxy-port=" + port}, args...)...)
		return out + stderr, code
	}
	for _, tc := range []struct {
		args   []string
		code   byte
		volume byte
	}{
		{[]string{"--call-id=dtmf", "--from-tag=tagA", "--code=5"}, 5, 8},
		{[]string{"--json", "--call-id=dtmf", "--from-tag=tagA", "--code=#", "--volume=-20"}, 11, 20},
	} {
		if out, code := run(append(tc.args, "play DTMF")...); code != 0 || !strings.Contains(out, "{}") {
			t.Fatalf("play DTMF %v: exit %d\n%s", tc.args, code, out)
		}
		// (The first event's repeated end packets may still be waiting.)
		end := receive(func(p []byte) bool { return len(p) == 16 && p[1]&0x7f == 101 && p[13]&0x80 != 0 && p[12] == tc.code })
		if end[13]&0x3f != tc.volume || be.BigEndian.Uint16(end[14:]) != 2000 || be.BigEndian.Uint32(end[8:]) != 0xdeadbeef {
			t.Errorf("end of event %v: %x, want event %d, volume %d, 250 ms, the caller's SSRC", tc.args, end, tc.code, tc.volume)
		}
	}
	if out, code := run("--call-id=nope", "--from-tag=tagA", "--code=1", "play DTMF"); code == 0 || !strings.Contains(out, `Error reason: "Unknown call-ID"`) {
		t.Errorf("play DTMF for an unknown call: exit %d\n%s", code, out)
	}
}
