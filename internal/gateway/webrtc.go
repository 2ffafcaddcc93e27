package gateway

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/sdp"
)

// A browser's call has one media path, the engine's: toward the browser it
// speaks ICE, DTLS-SRTP and rtcp-mux (internal/webrtcbridge's Transport
// inside the engine), toward SIP plain RTP/AVP — the options Kamailio
// gives rtpengine for the same bridging (README, "WebRTC: ICE, DTLS-SRTP,
// SDES-SRTP"), set here as media.Request fields.

// WebRTC configures browsers' calls.
type WebRTC struct {
	// Enabled: an outgoing call whose client SDP is WebRTC (ICE,
	// DTLS-SRTP), and an incoming call to a client whose mediaProviders
	// says WebRTC, get WebRTC media from the engine. Off, such an outgoing
	// call fails and incoming calls are offered the SIP side's SDP as the
	// engine rewrites it for a plain RTP client.
	Enabled bool
	// Address, if valid, is written toward browsers (ICE candidate, c=)
	// instead of the engine interface's address (or its advertised one):
	// the engine's media-address for the browser's side.
	Address netip.Addr
}

// request is the engine request for SDP b of the call: an offer from
// fromTag, or the answer of toTag to fromTag's offer. A browser's call gets
// the WebRTC options toward the browser and the plain ones toward SIP.
func (c *call) request(isOffer bool, fromTag, toTag, source string, b []byte) *media.Request {
	r := &media.Request{CallID: c.mediaID, FromTag: fromTag, ToTag: toTag, SDP: b, Source: source}
	if !c.browser {
		return r
	}
	sender := fromTag
	if !isOffer {
		sender = toTag
	}
	if sender == tagClient {
		towardSIP(r)
		return r
	}
	r.MediaAddress = c.ua.g.WebRTC.Address
	if isOffer {
		offerToBrowser(r)
	} else {
		answerToBrowser(r)
	}
	return r
}

// towardSIP: "ICE=remove RTP/AVP rtcp-mux-demux strip-extmap": plain RTP,
// RTCP on its own port, no RTP header extensions, for a SIP side that may
// know nothing else (webRTCOnly goes too).
func towardSIP(r *media.Request) {
	r.Secure.ICE = media.ICERemove
	r.Secure.Protocol = "RTP/AVP"
	r.RTCPMux.Demux = true
	r.ExtmapStrip = []string{"all"}
}

// webRTCOnly are the attributes of a browser's SDP that only WebRTC uses:
// stream and track ids, feedback for AVPF, reduced-size RTCP, mixed
// header extensions. A SIP side gets none of them: its RTP/AVP has no
// use for them, and a browser's SDP with them is too big for SIP over UDP
// (over 1300 bytes, RFC 3261 §18.1.1), which an INVITE or a 200 must fit.
var webRTCOnly = []string{"ssrc", "ssrc-group", "msid", "msid-semantic", "rtcp-fb", "rtcp-rsize", "extmap-allow-mixed"}

// forSIP removes webRTCOnly from the SDP the engine wrote toward the SIP
// side of a browser's call.
func forSIP(b []byte) []byte {
	s, err := sdp.Parse(b)
	if err != nil {
		return b
	}
	n := s.RemoveAttr(webRTCOnly...)
	for _, m := range s.Media {
		n += m.RemoveAttr(webRTCOnly...)
	}
	if n == 0 {
		return b
	}
	return s.Marshal()
}

// answerToBrowser: "ICE=force DTLS=passive UDP/TLS/RTP/SAVPF
// rtcp-mux-require": the browser offered (actpass) and does the DTLS
// client's part.
func answerToBrowser(r *media.Request) {
	r.Secure.ICE = media.ICEForce
	r.Secure.DTLS = media.DTLSPassive
	r.Secure.Protocol = "UDP/TLS/RTP/SAVPF"
	r.RTCPMux.Require = true
}

// offerToBrowser is rtpengine's "WebRTC" shortcut: UDP/TLS/RTP/SAVPF,
// ICE=force, trickle ICE, rtcp-mux offer and require, no a=rtcp, SDES-off,
// generate mid.
func offerToBrowser(r *media.Request) {
	r.Secure.Protocol = "UDP/TLS/RTP/SAVPF"
	r.Secure.ICE = media.ICEForce
	r.Secure.TrickleICE = true
	r.Secure.SDES.Off = true
	r.RTCPMux.Offer, r.RTCPMux.Require = true, true
	r.Flags.NoRTCPAttribute = true
	r.GenerateMid = true
}

// isRTP reports whether an m= protocol carries RTP (RTP/AVP,
// UDP/TLS/RTP/SAVPF…), which the engine relays; UDP/DTLS/SCTP (a data
// channel), udptl (T.38) and the like it does not.
func isRTP(proto string) bool { return strings.Contains(strings.ToUpper(proto), "RTP/") }

// refuseNonRTP refuses (port 0) the sections of an SDP that do not carry
// RTP before it reaches the engine: a browser's data channel would
// otherwise reach SIP as an RTP/AVP section, and a SIP side's T.38 the
// browser as a WebRTC one. A refused section keeps its m= line (and a=mid)
// only. b is returned unchanged when it has none, or does not parse (the
// engine says why).
func refuseNonRTP(b []byte) []byte {
	s, err := sdp.Parse(b)
	if err != nil {
		return b
	}
	changed := false
	for i, m := range s.Media {
		if m.Port() != 0 && !isRTP(m.Proto()) {
			refuse(m, m, i)
			changed = true
		}
	}
	if !changed {
		return b
	}
	return s.Marshal()
}

// refuse makes m, section i, a refused section (port 0) of offered's type
// and protocol with its first format (and that format's a=rtpmap): what an
// answer must carry for a section it does not take (RFC 3264 §6). Browsers
// want an a=mid in every section (RFC 8843): offered's, else i+1, the
// engine's "generate mid" numbering.
func refuse(m, offered *sdp.Media, i int) {
	mid, hasMid := offered.Attr("mid")
	if !hasMid {
		mid = strconv.Itoa(i + 1)
	}
	format := "0"
	if f := offered.Formats(); len(f) > 0 {
		format = f[0]
	}
	var rtpmap []string
	for _, v := range offered.Attrs("rtpmap") {
		if pt, _, _ := strings.Cut(v, " "); pt == format {
			rtpmap = append(rtpmap, v)
			break
		}
	}
	m.Lines = sdp.Lines{{Type: 'm', Value: offered.Type() + " 0 " + offered.Proto() + " " + format}}
	for _, v := range rtpmap {
		m.AddAttr("rtpmap", v)
	}
	m.AddAttr("mid", mid)
}

// completeAnswer completes the engine's answer to a browser's call against
// the offer it answers: a section the answerer refused (port 0) or left
// out — video or a data channel a phone does not take, the SIP side's
// section refuseNonRTP refused — is written as refused with the offerer's
// own protocol and mid, so that the answer has the offer's sections in the
// offer's order, as browsers require.
func completeAnswer(offer, answer []byte) []byte {
	o, err := sdp.Parse(offer)
	if err != nil {
		return answer
	}
	a, err := sdp.Parse(answer)
	if err != nil {
		return answer
	}
	changed := false
	for i, om := range o.Media {
		if i >= len(a.Media) {
			m := &sdp.Media{}
			refuse(m, om, i)
			a.Media = append(a.Media, m)
			changed = true
			continue
		}
		if am := a.Media[i]; am.Port() == 0 && (am.Proto() != om.Proto() || !am.HasAttr("mid") && om.HasAttr("mid")) {
			refuse(am, om, i)
			changed = true
		}
	}
	if !changed {
		return answer
	}
	return a.Marshal()
}
