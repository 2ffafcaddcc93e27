package media

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// call is one Call-ID: rtpengine's struct call. Signalling holds mu; the
// packet path never takes it and reads only atomics.
type call struct {
	id      string
	created time.Time
	source  string    // who created it (the ng client's address), for listings
	poller  relayLoop // relays every socket of the call

	mu         sync.Mutex
	lastSignal time.Time
	monologues map[string]*monologue // by tag; the pending answerer has tag ""
	order      []*monologue          // creation order, for listings
	deleteAt   time.Time             // non-zero: a delayed delete is due then
	closed     bool
	done       chan struct{} // closed when the call is closed (closeCall)
}

// monologue is one party of the call, named by its SIP tag.
type monologue struct {
	tag       string
	role      string // FROM_TAG (offerer) or TO_TAG, as rtpengine lists them
	label     string
	viaBranch string
	created   time.Time
	peer      *monologue
	sides     []*side // by m= index

	// What this party was last sent, for replace=sdp-version and friends.
	lastVersion     uint64
	lastBody        string // last SDP sent, o= version masked
	sessionName     string
	originUsername  string
	haveSessionName bool
}

// side is one party's end of one m= section (rtpengine's call_media): the
// relay's port pair facing that party and what we know of the party's
// addresses.
type side struct {
	index     int
	mediaType string
	proto     string
	mon       *monologue
	itf       *iface
	pair      *socketPair
	rtp, rtcp *stream
	k         kside // kernel forwarding

	peer atomic.Pointer[side] // the other party's side of the same m= section
	mux  atomic.Bool          // the party multiplexes RTCP on the RTP port
	opts atomic.Uint32        // packet-path options, optXxx bits

	// dtmf numbers the party's RTP once digits were played into it (see
	// dtmf.go); nil until then.
	dtmf atomic.Pointer[injector]

	// Signalling-time state (under call.mu).
	sec        secState
	direction  string // the party's SDP direction attribute
	offeredMux bool   // the party's SDP carried a=rtcp-mux
	rejected   bool   // port 0 in the party's SDP
	// formats are the payload types the party's SDP lists (replaced,
	// never changed: DTMF injection reads them after call.mu).
	formats []rtpFormat
}

// Packet-path options, set from ng flags.
const (
	optAsymmetric    = 1 << iota // never latch to the source address
	optStrictSource              // drop packets from anyone but the latched address
	optMediaHandover             // re-latch when packets come from a new address
)

// endpoint is where a party's packets go, and whether it was learned from a
// packet (confirmed) or only from SDP.
type endpoint struct {
	addr      netip.AddrPort
	confirmed bool
}

// stream is one relay socket (rtpengine's packet_stream).
type stream struct {
	side  *side
	rtcp  bool
	local netip.AddrPort
	fd    int    // the nonblocking UDP socket
	slot  uint32 // in its poller

	ep         atomic.Pointer[endpoint]
	advertised netip.AddrPort // from SDP (under call.mu)

	// xport is the party's ICE/DTLS/SRTP end on this socket, nil for plain
	// RTP: the relay hands it what the party sends here and what goes to
	// the party from here. The RTCP socket has its own (its ICE component,
	// its DTLS association, RFC 5764 §4.1) when the party does not
	// multiplex; otherwise RTCP rides on the RTP socket's.
	xport atomic.Pointer[webrtcbridge.Transport]

	packets    atomic.Uint64
	bytes      atomic.Uint64
	errors     atomic.Uint64
	lastPacket atomic.Int64 // unix nanoseconds; creation time until the first packet

	k kstream // kernel forwarding; the counters above are userspace's
}

func (s *stream) setSDPEndpoint(addr netip.AddrPort) {
	s.advertised = addr
	if cur := s.ep.Load(); cur != nil && cur.confirmed && cur.addr == addr {
		return
	}
	// A new address in SDP (re-INVITE, hold) starts learning afresh.
	s.ep.Store(&endpoint{addr: addr})
}

func (c *call) monologue(tag string, now time.Time) *monologue {
	if m, ok := c.monologues[tag]; ok {
		return m
	}
	m := &monologue{tag: tag, created: now}
	c.monologues[tag] = m
	c.order = append(c.order, m)
	return m
}

// retag names the pending answerer once the answer tells its tag.
func (c *call) retag(m *monologue, tag string) {
	if m.tag == tag {
		return
	}
	if c.monologues[m.tag] == m {
		delete(c.monologues, m.tag)
	}
	m.tag = tag
	c.monologues[tag] = m
}

// sides lists every side of the call.
func (c *call) sides(fn func(*side)) {
	for _, m := range c.order {
		for _, sd := range m.sides {
			if sd != nil {
				fn(sd)
			}
		}
	}
}

// streams lists every stream of the call.
func (c *call) streams(fn func(*stream)) {
	for _, m := range c.order {
		for _, sd := range m.sides {
			if sd == nil {
				continue
			}
			fn(sd.rtp)
			fn(sd.rtcp)
		}
	}
}
