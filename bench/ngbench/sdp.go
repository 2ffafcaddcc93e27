package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// makeSDP is the audio offer/answer a SIP phone would send: PCMU, PCMA and
// telephone-event at 20 ms, with the media on 127.0.0.1:port. sessID keeps
// o= lines distinct between the two sides of a call.
func makeSDP(sessID uint64, port int) string {
	return "v=0\r\n" +
		"o=- " + strconv.FormatUint(sessID, 10) + " 1 IN IP4 127.0.0.1\r\n" +
		"s=-\r\n" +
		"c=IN IP4 127.0.0.1\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(port) + " RTP/AVP 0 8 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-15\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n"
}

// sdpMediaAddr returns the address of the first m= line of a rewritten SDP:
// its port, and the c= address that applies to it (a media-level c= line
// overrides the session-level one). Lines may end in CRLF or LF.
func sdpMediaAddr(sdp string) (netip.AddrPort, error) {
	var sessC, mediaC string
	port := -1
lines:
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			if port >= 0 {
				// Second media section: the first one's lines are done.
				break lines
			}
			f := strings.Fields(line[2:])
			if len(f) < 2 {
				return netip.AddrPort{}, fmt.Errorf("sdp: bad m= line %q", line)
			}
			p, err := strconv.Atoi(f[1])
			if err != nil || p <= 0 || p > 65535 {
				return netip.AddrPort{}, fmt.Errorf("sdp: bad port in %q", line)
			}
			port = p
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) < 3 || f[0] != "IN" {
				return netip.AddrPort{}, fmt.Errorf("sdp: bad c= line %q", line)
			}
			if port >= 0 {
				mediaC = f[2]
			} else {
				sessC = f[2]
			}
		}
	}
	if port < 0 {
		return netip.AddrPort{}, fmt.Errorf("sdp: no m= line")
	}
	c := mediaC
	if c == "" {
		c = sessC
	}
	if c == "" {
		return netip.AddrPort{}, fmt.Errorf("sdp: no c= line for the first m= line")
	}
	// An address may carry a TTL or count suffix (224.2.1.1/127); drop it.
	c, _, _ = strings.Cut(c, "/")
	ip, err := netip.ParseAddr(c)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sdp: c= address: %w", err)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// loopbackOnly is the safety check before any media is sent: the benchmark
// must only ever send to 127.0.0.1, whatever the relay advertises.
func loopbackOnly(ap netip.AddrPort) error {
	if ap.Addr() != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return fmt.Errorf("relay advertised media address %s, refusing to send anywhere but 127.0.0.1", ap)
	}
	return nil
}
