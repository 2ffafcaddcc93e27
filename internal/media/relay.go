package media

import (
	"net/netip"
)

// readBufSize bounds one datagram. RTP over UDP stays under the path MTU in
// practice; anything longer is counted as an error, not relayed cut short.
const readBufSize = 4096

// relay forwards one packet that arrived on s from src. It takes no locks:
// the topology it reads (peer, endpoints, options) is published atomically
// by signalling.
func (s *stream) relay(pkt []byte, src netip.AddrPort, now int64, tx sender) {
	sd := s.side
	opts := sd.opts.Load()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if x := s.transport(); x != nil {
		var ok bool
		if pkt, ok = s.secureIn(x, pkt, src); !ok {
			return
		}
	}

	// Latching: the first packet confirms (and, symmetric, sets) where this
	// party's media comes from and so where its media goes back to.
	ep := s.ep.Load()
	switch {
	case ep == nil || !ep.confirmed:
		addr := src
		if opts&optAsymmetric != 0 && ep != nil && ep.addr.IsValid() {
			addr = ep.addr
		}
		s.ep.Store(&endpoint{addr: addr, confirmed: true})
		s.k.path.sync(sd) // confirmed: the kernel can take over
	case ep.addr != src && opts&optAsymmetric == 0:
		if opts&optStrictSource != 0 {
			s.errors.Add(1)
			return
		}
		if opts&optMediaHandover != 0 {
			s.ep.Store(&endpoint{addr: src, confirmed: true})
			s.k.path.sync(sd) // the rule follows the handover
		}
	}

	s.packets.Add(1)
	s.bytes.Add(uint64(len(pkt)))
	s.lastPacket.Store(now)

	peer := sd.peer.Load()
	if peer == nil {
		s.errors.Add(1)
		return
	}
	// RTCP goes to the peer's RTCP address, which is its RTP address when
	// the peer multiplexes. A multiplexing sender's RTCP arrives on the RTP
	// port and is told apart by its packet type (RFC 5761).
	isRTCP := s.rtcp || sd.mux.Load() && looksLikeRTCP(pkt)
	if !isRTCP {
		// One atomic load for streams that never had DTMF played in.
		if j := sd.dtmf.Load(); j != nil && !j.relayed(pkt, now) {
			return // the party's audio during an event, or stale
		}
	}
	out := peer.rtp
	if isRTCP && !peer.mux.Load() {
		out = peer.rtcp
	}
	dst := out.ep.Load()
	if dst == nil || !dst.addr.IsValid() {
		s.errors.Add(1)
		return
	}
	if x := out.transport(); x != nil {
		var ok bool
		if pkt, ok = x.Outbound(pkt); !ok {
			s.errors.Add(1)
			return
		}
	}
	tx.sendFrom(s, out, pkt, dst.addr)
}

// sender puts a relayed packet on the wire from out's socket, counting a
// failure on in, the stream it came from. The packet is only valid during
// the call.
type sender interface {
	sendFrom(in, out *stream, pkt []byte, dst netip.AddrPort)
}

// looksLikeRTCP applies RFC 5761's rule: RTCP packet types 192-223 sit where
// RTP has the marker bit and payload types 64-95.
func looksLikeRTCP(pkt []byte) bool {
	return len(pkt) >= 2 && pkt[0]>>6 == 2 && pkt[1] >= 192 && pkt[1] <= 223
}
