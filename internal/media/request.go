package media

import (
	"errors"
	"net/netip"
)

// Errors carry rtpengine's error-reason texts, which ng clients log and some
// match on.
var (
	ErrUnknownCallID  = errors.New("Unknown call-id")
	ErrNotFound       = errors.New("Call-ID not found or tags didn't match")
	ErrPortsExhausted = errors.New("Ran out of ports")
	ErrSessionLimit   = errors.New("Parallel session limit reached")
	ErrBadSDP         = errors.New("Failed to parse SDP")
	ErrUnknownTag     = errors.New("Unknown from-tag")
	ErrNoOffer        = errors.New("No offer seen for this from-tag")
	ErrUnknownItf     = errors.New("Unknown interface")
	ErrMoreMedia      = errors.New("Answer has more media sections than the offer")
	ErrClosed         = errors.New("Media engine shutting down")
)

// MaxPortCount is the largest m= port count ("m=audio 4000/N") an offer or
// answer may carry, as in rtpengine; the count is dropped from the
// rewritten SDP since one port pair is relayed per section.
const MaxPortCount = 10

// Request is one offer or answer: the parts of an ng message, or of the SIP
// gateway's own call handling, that the engine acts on.
type Request struct {
	CallID, FromTag, ToTag string
	ViaBranch, Label       string
	SDP                    []byte
	// Source names who sent the request (an ng client's address), shown by
	// `list sessions`.
	Source string

	Flags   Flags
	Replace Replace
	// Interfaces by name: Direction[0] faces the party that sent this SDP,
	// Direction[1] the party it goes to. "" picks the default interface.
	Direction [2]string
	RTCPMux   RTCPMux
	// ReceivedFrom is the SIP message's source address, used instead of the
	// SDP's address with Flags.SIPSourceAddress.
	ReceivedFrom netip.Addr
	// MediaAddress, if set, is put in the SDP instead of the interface's.
	MediaAddress netip.Addr
	// AddressFamily "IP4" or "IP6" picks the outgoing side's family; "" keeps
	// the family of the incoming SDP.
	AddressFamily string
}

// Flags are rtpengine's boolean ng flags that change media handling.
type Flags struct {
	TrustAddress      bool // use the SDP's address (the default)
	SIPSourceAddress  bool // use ReceivedFrom instead of the SDP's address
	Symmetric         bool // latch to the first source (the default)
	Asymmetric        bool // never latch; always send where the SDP says
	StrictSource      bool // drop packets from other sources once latched
	PortLatching      bool // latch once, never re-learn (the default)
	MediaHandover     bool // re-latch whenever packets come from a new source
	NoRTCPAttribute   bool // do not add a=rtcp
	FullRTCPAttribute bool // a=rtcp with the address, not just the port
	RecordCall        bool // accepted; recording comes later
}

// Replace lists the SDP session fields to rewrite (rtpengine's "replace").
type Replace struct {
	Origin               bool // o= address
	SessionConnection    bool // session-level c= (always done when present)
	SessionName          bool // keep s= as first seen from this party
	Username             bool // keep o= username as first seen
	SDPVersion           bool // o= version goes up only when the SDP changes
	ForceIncrementSDPVer bool // o= version goes up on every SDP
	ZeroAddress          bool // replace c=0.0.0.0 (old-style hold) too
}

// RTCPMux carries rtpengine's rtcp-mux options.
type RTCPMux struct {
	Offer, Require, Demux, Accept, Reject bool
}

// Result is the rewritten SDP and any warnings for the reply.
type Result struct {
	SDP      []byte
	Warnings []string
}
