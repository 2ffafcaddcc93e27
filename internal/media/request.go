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
	// Secure is what the receiving party is to be offered or answered in
	// transport protocol, ICE, DTLS and SDES: rtpengine's WebRTC options.
	Secure Secure
	// GenerateMid adds a=mid to sections without one ("generate mid").
	GenerateMid bool
	// ExtmapStrip names the RTP header extensions (a=extmap URIs) removed
	// from the outgoing SDP; "all" removes every one ("strip extmap").
	ExtmapStrip []string
	// Codec is the codec dictionary, without transcoding.
	Codec Codec
}

// Protocols are the transport protocols "transport-protocol" may name, as
// written on an m= line.
var Protocols = []string{"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"}

// ICEMode is rtpengine's ICE option.
type ICEMode uint8

const (
	ICEDefault  ICEMode = iota // candidates toward a party whose peer spoke ICE
	ICERemove                  // no ICE toward the receiver
	ICEForce                   // rtcgate's candidates only
	ICEOptional                // rtcgate's candidates if the SDP had none
)

// ICELite is rtpengine's ICE-lite option: toward whom rtcgate is an ICE-lite
// agent (answers checks, sends none); unset keeps what the call had.
type ICELite uint8

const (
	ICELiteUnset ICELite = iota
	ICELiteOff
	ICELiteForward  // toward the party the offer goes to
	ICELiteBackward // toward the party that sent the offer
	ICELiteBoth
)

// DTLSMode is rtpengine's DTLS option.
type DTLSMode uint8

const (
	DTLSDefault DTLSMode = iota // offer DTLS-SRTP with SRTP, active in answers
	DTLSOff                     // neither offer nor accept DTLS-SRTP
	DTLSPassive                 // take the passive (server) role
	DTLSActive                  // take the active (client) role
)

// Tri is an SDES session parameter's setting: unset (copy the offerer's),
// on or off.
type Tri int8

// Secure gathers the options about media security and ICE.
type Secure struct {
	// Protocol, if set, is the transport protocol written toward the
	// receiver (one of Protocols); AcceptProtocol ("transport-protocol=
	// accept") lets an answer's protocol change reach the offerer.
	Protocol       string
	AcceptProtocol bool
	ICE            ICEMode
	ICELite        ICELite
	TrickleICE     bool // a=ice-options:trickle
	RejectICE      bool // "reject ICE": the offerer's ICE is refused early
	DTLS           DTLSMode
	// DTLSFingerprint is the hash of a=fingerprint: "sha-256" (default),
	// "sha-1", "sha-224", "sha-384" or "sha-512".
	DTLSFingerprint string
	SDES            SDES
	OSRTP           OSRTP
}

// SDES is rtpengine's SDES option list.
type SDES struct {
	Off      bool     // offer no a=crypto
	No       []string // suites never offered
	Only     []string // suites offered, none other (wins over No)
	NoNew    bool     // offer only suites the offerer offered
	Prefer   bool     // SDES over DTLS when an offer has both
	Pad      bool     // keep base64 '=' padding in key params
	Lifetime bool     // add the key lifetime 2^31
	// Static: an answer keeps the suite (tag and key) rtcgate answered
	// before, if the offer still carries that tag and suite, rather than
	// picking the first usable one.
	Static bool
	Order  []string // suites written first in an offer, in this order (tags unchanged)
	// Session parameters (RFC 4568 §6.3): 0 copies the offerer's.
	UnencryptedSRTP, UnencryptedSRTCP, UnauthenticatedSRTP Tri
}

// OSRTP is rtpengine's OSRTP option (RFC 8643 opportunistic SRTP).
type OSRTP struct {
	Offer  bool // offer a=crypto on plain RTP/AVP
	Accept bool // accept a plain answer to an OSRTP offer
}

// Codec is rtpengine's codec dictionary, the parts that need no
// transcoding. Entries are codec names ("PCMU", "opus/48000/2") or payload
// type numbers; "all" in Strip or Mask means every codec.
type Codec struct {
	Strip  []string // removed from the outgoing SDP
	Offer  []string // kept despite Strip/Mask, and put first in this order
	Mask   []string // removed from the outgoing SDP (no transcoding: as Strip)
	Except []string // kept despite Strip/Mask
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
