package media

import (
	"net/netip"
	"time"
)

// CallInfo is a snapshot of one call, for ng query/delete replies and the
// CLI's `list sessions`.
type CallInfo struct {
	CallID     string
	Created    time.Time
	LastSignal time.Time
	Tags       []TagInfo
	RTP, RTCP  Counters // totals over all streams
}

// TagInfo is one party.
type TagInfo struct {
	Tag, Label, ViaBranch string
	Created               time.Time
	PeerTag               string
	HasPeer               bool
	Medias                []MediaInfo
}

// MediaInfo is one party's end of an m= section.
type MediaInfo struct {
	Index     int // 1-based, as rtpengine counts
	Type      string
	Protocol  string
	Direction string
	RTCPMux   bool
	Streams   []StreamInfo // RTP, then RTCP
	// Secure says what the relay speaks with the party beyond plain RTP:
	// "DTLS-SRTP", "SDES-SRTP", "ICE" (plain RTP with ICE) or "".
	Secure string
	// DTLSFailures counts failed DTLS handshakes with the party; Checks
	// the ICE connectivity checks answered; AuthFailures the SRTP/SRTCP
	// packets that did not authenticate.
	DTLSFailures, Checks, AuthFailures uint64
	// ICERestarts counts the party's offers with new ICE credentials.
	ICERestarts uint64
}

// Secured reports whether the media has the counters above to show: it
// speaks ICE, DTLS or SDES with the party, or a DTLS handshake failed.
func (m *MediaInfo) Secured() bool {
	return m.Secure != "" || m.DTLSFailures > 0 || m.Checks > 0 || m.AuthFailures > 0 || m.ICERestarts > 0
}

// StreamInfo is one relay socket.
type StreamInfo struct {
	Local      netip.AddrPort
	Endpoint   netip.AddrPort // where this party's packets go: latched or from SDP
	Advertised netip.AddrPort // what the party's SDP said
	Confirmed  bool           // a packet has arrived from the party
	RTCP       bool
	LastPacket time.Time // on either path
	Counters             // both paths
	Kernel     Counters  // the part forwarded in the kernel
	// Path is PathKernel while a kernel rule forwards the party's packets,
	// else "userspace" with the reason in brackets.
	Path     string
	NoKernel bool // the stream stays in userspace whatever (recording, WebRTC)
}

// PathKernel is StreamInfo.Path of a stream forwarded in the kernel.
const PathKernel = "kernel"

// Counters are packets, bytes and errors.
type Counters struct {
	Packets, Bytes, Errors uint64
}

func (c *Counters) add(o Counters) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	c.Errors += o.Errors
}

// Query returns a snapshot of a call.
func (e *Engine) Query(callID string) (*CallInfo, error) {
	c := e.lookup(callID)
	if c == nil {
		return nil, ErrUnknownCallID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info(time.Now()), nil
}

// info builds the snapshot; c.mu is held.
func (c *call) info(_ time.Time) *CallInfo {
	ci := &CallInfo{CallID: c.id, Created: c.created, LastSignal: c.lastSignal}
	for _, m := range c.order {
		ti := TagInfo{Tag: m.tag, Label: m.label, ViaBranch: m.viaBranch, Created: m.created}
		if m.peer != nil {
			ti.PeerTag, ti.HasPeer = m.peer.tag, true
		}
		for _, sd := range m.sides {
			if sd == nil {
				continue
			}
			mi := MediaInfo{Index: sd.index + 1, Type: sd.mediaType, Protocol: sd.proto, Direction: sd.direction, RTCPMux: sd.mux.Load()}
			mi.DTLSFailures, mi.Checks, mi.AuthFailures = sd.sec.failedDTLS, sd.sec.checks, sd.sec.authFailures
			mi.ICERestarts = sd.sec.iceRestarts
			if x := sd.rtp.xport.Load(); x != nil {
				mi.Secure = x.Kind()
			}
			for _, st := range []*stream{sd.rtp, sd.rtcp} {
				if x := st.xport.Load(); x != nil {
					mi.DTLSFailures += x.HandshakeFailures.Load()
					mi.Checks += x.Checks.Load()
					mi.AuthFailures += x.AuthFailures.Load()
				}
			}
			for _, s := range []*stream{sd.rtp, sd.rtcp} {
				all, last := s.counters()
				kc := s.kernelCounters()
				si := StreamInfo{Local: s.local, Advertised: s.advertised, RTCP: s.rtcp,
					LastPacket: time.Unix(0, last), Counters: all, Kernel: Counters{kc.Packets, kc.Bytes, kc.Errors},
					Path: s.path(), NoKernel: s.blocked()}
				if ep := s.ep.Load(); ep != nil {
					si.Endpoint, si.Confirmed = ep.addr, ep.confirmed
				}
				if s.rtcp {
					ci.RTCP.add(si.Counters)
				} else {
					ci.RTP.add(si.Counters)
				}
				mi.Streams = append(mi.Streams, si)
			}
			ti.Medias = append(ti.Medias, mi)
		}
		ci.Tags = append(ci.Tags, ti)
	}
	return ci
}
