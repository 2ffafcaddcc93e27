package media

import (
	"net/netip"

	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// transport is the ICE/DTLS/SRTP end of the stream's socket: its own, or
// for an RTCP socket without one (a party that multiplexes), the RTP
// socket's.
func (s *stream) transport() *webrtcbridge.Transport {
	if x := s.xport.Load(); x != nil || !s.rtcp {
		return x
	}
	return s.side.rtp.xport.Load()
}

// secureIn is the relay's hook for a party with a transport (ICE, DTLS,
// SRTP): the datagram is a connectivity check, a DTLS record or SRTP. It
// returns the plain RTP or RTCP to relay, or false when there is nothing
// to relay (the transport consumed the datagram, or refused it: counted as
// an error). Streams with a transport stay in userspace.
func (s *stream) secureIn(x *webrtcbridge.Transport, pkt []byte, src netip.AddrPort) ([]byte, bool) {
	out, v := x.Inbound(pkt, src)
	switch v {
	case webrtcbridge.Media:
		return out, true
	case webrtcbridge.Latch:
		// A valid check: media to the party goes where it came from.
		s.ep.Store(&endpoint{addr: src, confirmed: true})
	case webrtcbridge.Dropped:
		s.errors.Add(1)
	}
	return nil, false
}
