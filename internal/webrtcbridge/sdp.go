package webrtcbridge

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rtcgate/rtcgate/internal/sdp"
)

// Errors for SDPs the bridge cannot work with. They wrap the detail, so
// callers match them with errors.Is.
var (
	// ErrBadSDP: the SDP does not parse or lacks what the bridge needs
	// (an audio section, ICE credentials, a DTLS fingerprint, an address).
	ErrBadSDP = errors.New("webrtcbridge: unusable SDP")
	// ErrNoCodec: no audio codec that both sides share and the bridge can
	// relay unchanged (opus, PCMU, PCMA, G722; telephone-event alone does
	// not carry a call).
	ErrNoCodec = errors.New("webrtcbridge: no common relayable audio codec")
	// ErrRejected: the answerer refused the audio section (port 0).
	ErrRejected = errors.New("webrtcbridge: audio refused by the answerer")
)

// relayable lists the codecs the bridge passes between the two legs, by
// lower-case rtpmap encoding name. The bridge never transcodes: it relays a
// payload only if both ends decode it, so it offers each side exactly what
// the other offered and both browsers and SIP phones commonly speak.
// telephone-event rides along so DTMF (RFC 4733) crosses the bridge.
var relayable = map[string]bool{
	"opus":            true,
	"pcmu":            true,
	"pcma":            true,
	"g722":            true,
	"telephone-event": true,
}

// staticCodecs are the RFC 3551 payload types a SIP peer may list without
// an a=rtpmap line; browsers always write rtpmap, phones often do not.
var staticCodecs = map[uint8]codec{
	0: {name: "PCMU", clock: 8000},
	8: {name: "PCMA", clock: 8000},
	9: {name: "G722", clock: 8000},
}

// codec is one RTP payload format of an audio section, as the SDP states it.
type codec struct {
	pt       uint8
	name     string // encoding name as written in a=rtpmap ("opus", "PCMU")
	clock    uint32 // RTP clock rate
	channels uint16 // 0 when the rtpmap gives none
	fmtp     string // a=fmtp parameters, "" if none
}

// mime is the codec's MIME type as pion names it.
func (c codec) mime() string { return "audio/" + c.name }

// isDTMF reports whether c is telephone-event, which only accompanies a
// real codec.
func (c codec) isDTMF() bool { return strings.EqualFold(c.name, "telephone-event") }

// same reports whether c and o are the same format (name, clock, channels),
// whatever their payload type numbers.
func (c codec) same(o codec) bool {
	ch := func(c uint16) uint16 { return max(c, 1) }
	return strings.EqualFold(c.name, o.name) && c.clock == o.clock && ch(c.channels) == ch(o.channels)
}

// rtpmap is the a=rtpmap value for c ("111 opus/48000/2").
func (c codec) rtpmap() string {
	s := strconv.Itoa(int(c.pt)) + " " + c.name + "/" + strconv.FormatUint(uint64(c.clock), 10)
	if c.channels > 0 {
		s += "/" + strconv.Itoa(int(c.channels))
	}
	return s
}

// IsWebRTC reports whether an SDP is a WebRTC one, that is whether its
// media is DTLS-SRTP: an m= line with a DTLS transport
// (UDP/TLS/RTP/SAVPF, TCP/DTLS/RTP/SAVPF, …), or an SRTP profile
// (RTP/SAVP, RTP/SAVPF) keyed by a=fingerprint as early browsers wrote it.
// Then the call needs a Bridge.
//
// ICE attributes alone do not make an SDP WebRTC: some SIP phones run ICE
// over plain RTP/AVP, which the media engine relays directly, whereas a
// Bridge would have nothing to do DTLS with. Refused (port 0) sections do
// not count, bundle-only ones do. An SDP that does not parse is not WebRTC
// either; whoever handles it next reports the error.
func IsWebRTC(b []byte) bool {
	s, err := sdp.Parse(b)
	if err != nil {
		return false
	}
	sessionFP := s.HasAttr("fingerprint")
	for _, m := range s.Media {
		if m.Port() == 0 && !m.HasAttr("bundle-only") {
			// A refused section carries no media, and an answer refuses
			// with the offered protocol, whatever it speaks itself.
			continue
		}
		proto := strings.ToUpper(m.Proto())
		if strings.Contains(proto, "TLS") {
			return true
		}
		if strings.Contains(proto, "SAVP") && (sessionFP || m.HasAttr("fingerprint")) {
			return true
		}
	}
	return false
}

// audioCodecs returns the formats of m that the bridge relays, in m= order.
// Formats without a usable rtpmap (unless static), with a payload type
// outside 0–127 or listed twice are skipped rather than refused: an offer
// may carry anything, the bridge only needs the part it relays.
func audioCodecs(m *sdp.Media) []codec {
	rtpmaps := map[uint8]string{}
	for _, v := range m.Attrs("rtpmap") {
		if pt, rest, ok := ptPrefix(v); ok {
			if _, dup := rtpmaps[pt]; !dup {
				rtpmaps[pt] = rest
			}
		}
	}
	fmtps := map[uint8]string{}
	for _, v := range m.Attrs("fmtp") {
		if pt, rest, ok := ptPrefix(v); ok {
			if _, dup := fmtps[pt]; !dup {
				fmtps[pt] = rest
			}
		}
	}
	var out []codec
	seen := map[uint8]bool{}
	for _, f := range m.Formats() {
		n, err := strconv.ParseUint(f, 10, 8)
		if err != nil || n > 127 || seen[uint8(n)] {
			continue
		}
		pt := uint8(n)
		seen[pt] = true
		var c codec
		if rm, ok := rtpmaps[pt]; ok {
			if c, ok = parseRtpmap(rm); !ok {
				continue
			}
		} else if sc, ok := staticCodecs[pt]; ok {
			c = sc
		} else {
			continue
		}
		if !relayable[strings.ToLower(c.name)] {
			continue
		}
		c.pt = pt
		c.fmtp = fmtps[pt]
		out = append(out, c)
	}
	return out
}

// ptPrefix splits an a=rtpmap or a=fmtp value "PT rest" into the payload
// type and the rest.
func ptPrefix(v string) (uint8, string, bool) {
	f, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.ParseUint(f, 10, 8)
	if err != nil || n > 127 {
		return 0, "", false
	}
	return uint8(n), strings.TrimSpace(rest), true
}

// parseRtpmap parses "name/clock[/channels]".
func parseRtpmap(v string) (codec, bool) {
	parts := strings.Split(strings.TrimSpace(v), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return codec{}, false
	}
	clock, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || clock == 0 {
		return codec{}, false
	}
	c := codec{name: parts[0], clock: uint32(clock)}
	if len(parts) == 3 {
		ch, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil || ch == 0 {
			return codec{}, false
		}
		c.channels = uint16(ch)
	}
	return c, true
}

// hasVoice reports whether cs has a codec that carries audio, not just
// telephone-event.
func hasVoice(cs []codec) bool {
	for _, c := range cs {
		if !c.isDTMF() {
			return true
		}
	}
	return false
}

// pair is a format both legs agreed on: the payload type each leg uses for
// it. They differ only when an answerer renumbered a dynamic type.
type pair struct {
	browser, plain codec
}

// negotiate matches the formats an answer chose against the offered ones:
// by payload type first (an RFC 3264 answerer keeps the offerer's numbers),
// else by name, clock and channels. offerIsBrowser says which leg offered.
// The result keeps the answer's order, its preference.
func negotiate(offered, answered []codec, offerIsBrowser bool) []pair {
	var out []pair
	used := map[uint8]bool{}
	for _, a := range answered {
		var match *codec
		for i := range offered {
			if o := &offered[i]; !used[o.pt] && o.pt == a.pt && o.same(a) {
				match = o
				break
			}
		}
		if match == nil {
			for i := range offered {
				if o := &offered[i]; !used[o.pt] && o.same(a) {
					match = o
					break
				}
			}
		}
		if match == nil {
			continue
		}
		used[match.pt] = true
		if offerIsBrowser {
			out = append(out, pair{browser: *match, plain: a})
		} else {
			out = append(out, pair{browser: a, plain: *match})
		}
	}
	return out
}

// firstAudio returns the index of the first audio section of s with a
// non-zero port, or -1.
func firstAudio(s *sdp.Session) int {
	for i, m := range s.Media {
		if m.Type() == "audio" && m.Port() > 0 {
			return i
		}
	}
	return -1
}

// browserOffer is what the bridge takes from a browser's offer.
type browserOffer struct {
	codecs    []codec
	direction string
	ptime     string // a=ptime / a=maxptime, passed on to the SIP side
	maxptime  string
}

// parseBrowserOffer checks a browser's offer and extracts its first audio
// section's relayable codecs. It checks what pion would otherwise refuse
// only after the SIP call is set up: ICE credentials and a DTLS
// fingerprint.
func parseBrowserOffer(b []byte) (*browserOffer, error) {
	s, err := sdp.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	i := firstAudio(s)
	if i < 0 {
		return nil, fmt.Errorf("%w: no audio section", ErrBadSDP)
	}
	m := s.Media[i]
	for _, a := range []string{"ice-ufrag", "ice-pwd", "fingerprint"} {
		if !m.HasAttr(a) && !s.HasAttr(a) {
			return nil, fmt.Errorf("%w: audio section has no a=%s", ErrBadSDP, a)
		}
	}
	cs := audioCodecs(m)
	if !hasVoice(cs) {
		return nil, fmt.Errorf("%w: browser offers %v", ErrNoCodec, m.Formats())
	}
	o := &browserOffer{codecs: cs, direction: m.Direction(s)}
	o.ptime, _ = m.Attr("ptime")
	o.maxptime, _ = m.Attr("maxptime")
	return o, nil
}

// plainSection is the audio section of a plain RTP/AVP SDP from the media
// engine (an offer for incoming calls, an answer for outgoing ones).
type plainSection struct {
	index     int // position among the SDP's m= sections
	sections  []string
	peer      netip.AddrPort // where the engine wants RTP, from c= and m=
	codecs    []codec
	direction string
	rtcpMux   bool
}

// parsePlain reads the first live audio section of a plain SDP. A refused
// (port 0) or missing audio section is ErrRejected, as that is what it
// means in an answer.
func parsePlain(b []byte) (*plainSection, error) {
	s, err := sdp.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	p := &plainSection{index: firstAudio(s)}
	for _, m := range s.Media {
		p.sections = append(p.sections, m.Lines[0].Value)
	}
	if p.index < 0 {
		return nil, ErrRejected
	}
	m := s.Media[p.index]
	conn, ok := m.EffectiveConnection(s)
	if !ok {
		return nil, fmt.Errorf("%w: audio section has no c= address", ErrBadSDP)
	}
	ip, ok := conn.Addr()
	if !ok {
		return nil, fmt.Errorf("%w: audio section has no usable c= address", ErrBadSDP)
	}
	p.peer = netip.AddrPortFrom(ip.Unmap(), uint16(m.Port()))
	p.codecs = audioCodecs(m)
	p.direction = m.Direction(s)
	p.rtcpMux = m.HasAttr("rtcp-mux")
	return p, nil
}

// plainSDP writes a plain RTP/AVP SDP: every section in sections (the
// m= values of the SDP it answers, nil for an offer) is refused with port 0
// except audio, the one at index, which points at addr:port and carries
// cs.
func plainSDP(addr netip.Addr, port int, cs []codec, direction string, rtcpMux bool, sections []string, index int, ptime, maxptime string) []byte {
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteString("\r\n") }
	var id [8]byte
	_, _ = rand.Read(id[:])
	conn := sdp.NewConnection(addr).String()
	line("v=0")
	line("o=rtcgate " + strconv.FormatUint(binary.BigEndian.Uint64(id[:])>>2, 10) + " 1 " + conn)
	line("s=rtcgate")
	line("c=" + conn)
	line("t=0 0")
	if sections == nil {
		sections, index = []string{""}, 0
	}
	for i, sec := range sections {
		if i != index {
			// Refuse with the offered type, protocol and first format,
			// as RFC 3264 §6 asks for a rejected stream.
			// Split as the SDP parser does (space and tab only), so a
			// section it let through is written back.
			f := strings.FieldsFunc(sec, func(r rune) bool { return r == ' ' || r == '\t' })
			if len(f) < 4 {
				continue // Parse never lets such an m= line through
			}
			line("m=" + f[0] + " 0 " + f[2] + " " + f[3])
			continue
		}
		pts := make([]string, len(cs))
		for j, c := range cs {
			pts[j] = strconv.Itoa(int(c.pt))
		}
		line("m=audio " + strconv.Itoa(port) + " RTP/AVP " + strings.Join(pts, " "))
		for _, c := range cs {
			line("a=rtpmap:" + c.rtpmap())
			if c.fmtp != "" {
				line("a=fmtp:" + strconv.Itoa(int(c.pt)) + " " + c.fmtp)
			}
		}
		if ptime != "" {
			line("a=ptime:" + ptime)
		}
		if maxptime != "" {
			line("a=maxptime:" + maxptime)
		}
		if rtcpMux {
			line("a=rtcp-mux")
		}
		line("a=" + direction)
	}
	return []byte(b.String())
}

// answerDirection is the direction of an answer to an offer with direction
// d, for an answerer that would send and receive (RFC 3264 §6.1).
func answerDirection(d string) string {
	switch d {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	}
	return "sendrecv"
}

// audioDirection returns the direction of the first live audio section of
// an SDP, "sendrecv" if it has none or does not parse.
func audioDirection(b string) string {
	s, err := sdp.Parse([]byte(b))
	if err != nil {
		return "sendrecv"
	}
	if i := firstAudio(s); i >= 0 {
		return s.Media[i].Direction(s)
	}
	return "sendrecv"
}

// answeredCodecs returns the relayable codecs of the first live audio
// section of an answer.
func answeredCodecs(b string) ([]codec, error) {
	s, err := sdp.Parse([]byte(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	i := firstAudio(s)
	if i < 0 {
		return nil, ErrRejected
	}
	return audioCodecs(s.Media[i]), nil
}
