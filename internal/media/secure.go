package media

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// The secure side of the relay: ICE, DTLS-SRTP and SDES-SRTP toward a party
// that speaks them, with internal/webrtcbridge's Transport doing the packet
// work. Signalling decides, per side, what rtcgate offers or answers toward
// the party (secState, under call.mu); once an answer settles both halves,
// a Transport is published on the side for the relay thread.

// secState is what rtcgate and one party agreed, or are agreeing, on.
type secState struct {
	// Toward the party (what rtcgate writes in the SDP the party gets).
	outProto     string
	ice          bool // rtcgate's ICE attributes are in it
	ufrag, pwd   string
	lite         bool // rtcgate is ICE-lite toward the party
	liteSet      bool // ICE-lite was settled by a flag
	trickle      bool
	dtls         bool   // a=fingerprint and a=setup are in it
	setup        string // rtcgate's a=setup
	cryptos      []webrtcbridge.Crypto
	offered      bool // rtcgate offered to the party (it answers)
	iceRejected  bool // "reject ICE": the party's ICE is refused
	fingerprintH string

	// From the party's SDP.
	proto     string
	rICE      bool
	rUfrag    string
	rPwd      string
	rCands    []netip.AddrPort // component 1 (RTP)
	rCands2   []netip.AddrPort // component 2 (RTCP without rtcp-mux)
	rLite     bool
	rTrickle  bool
	rFP       *webrtcbridge.Fingerprint
	rSetup    string
	rCryptos  []webrtcbridge.Crypto
	answered  *webrtcbridge.Crypto // the party's crypto line rtcgate's answer accepted
	rMid      string
	transport string // signature of the running transport's parameters
	// Counters of replaced transports: the media's count on.
	failedDTLS, checks, authFailures uint64
	iceRestarts                      uint64 // re-offers with new ICE credentials
}

// attribute returns a media-level attribute, else the session-level one.
func attribute(sess *sdp.Session, m *sdp.Media, name string) (string, bool) {
	if v, ok := m.Attr(name); ok {
		return v, true
	}
	return sess.Attr(name)
}

// maxCandidates bounds the candidates and crypto lines read from one
// section; more are ignored.
const maxCandidates = 32

// learnSecurity reads the party's ICE, DTLS and SDES attributes. An offer
// with new ICE credentials is an ICE restart (RFC 8445 §9.1.1.1): as
// rtpengine's agent does, rtcgate forgets its own credentials toward the
// party, so that its answer carries new ones.
func learnSecurity(sd *side, sess *sdp.Session, m *sdp.Media, isOffer bool) []string {
	var warnings []string
	s := &sd.sec
	s.proto = m.Proto()
	prevICE, prevUfrag, prevPwd := s.rICE, s.rUfrag, s.rPwd
	s.rUfrag, _ = attribute(sess, m, "ice-ufrag")
	s.rPwd, _ = attribute(sess, m, "ice-pwd")
	s.rICE = s.rUfrag != "" && s.rPwd != ""
	if s.rICE && (!webrtcbridge.ValidICECredential(s.rUfrag, 4) || !webrtcbridge.ValidICECredential(s.rPwd, 22)) {
		warnings = append(warnings, fmt.Sprintf("m= section %d: ICE credentials unusable; ICE ignored", sd.index+1))
		s.rICE = false
	}
	if isOffer && prevICE && s.rICE && (s.rUfrag != prevUfrag || s.rPwd != prevPwd) {
		s.ufrag, s.pwd = "", ""
		s.iceRestarts++
	}
	_, s.rLite = sess.Attr("ice-lite")
	opts, _ := attribute(sess, m, "ice-options")
	s.rTrickle = slices.Contains(strings.Fields(opts), "trickle")
	s.rCands, s.rCands2 = s.rCands[:0], s.rCands2[:0]
	for i, v := range m.Attrs("candidate") {
		if i >= maxCandidates {
			break
		}
		c, err := webrtcbridge.ParseCandidate(v)
		if err != nil || !strings.EqualFold(c.Transport, "UDP") {
			continue
		}
		switch c.Component {
		case 1:
			s.rCands = append(s.rCands, c.Addr)
		case 2:
			s.rCands2 = append(s.rCands2, c.Addr)
		}
	}
	s.rFP = nil
	if v, ok := attribute(sess, m, "fingerprint"); ok {
		fp, err := webrtcbridge.ParseFingerprint(v)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("m= section %d: %v", sd.index+1, err))
		} else {
			s.rFP = &fp
		}
	}
	s.rSetup, _ = attribute(sess, m, "setup")
	s.rCryptos = s.rCryptos[:0]
	for i, v := range m.Attrs("crypto") {
		if i >= maxCandidates {
			break
		}
		if c, err := webrtcbridge.ParseCrypto(v); err == nil {
			s.rCryptos = append(s.rCryptos, c)
		}
	}
	s.rMid, _ = m.Attr("mid")
	return warnings
}

// isSRTP: the protocol carries SRTP (SAVP, SAVPF, UDP/TLS/…).
func isSRTP(proto string) bool { return strings.Contains(strings.ToUpper(proto), "SAVP") }

// isDTLSProto: UDP/TLS/RTP/SAVP(F).
func isDTLSProto(proto string) bool { return strings.Contains(strings.ToUpper(proto), "TLS") }

// suitesFor lists the SDES suites to offer under the SDES options.
func suitesFor(o SDES, offeredBy []webrtcbridge.Crypto) []webrtcbridge.Suite {
	has := func(list []string, name string) bool {
		for _, n := range list {
			if s, ok := webrtcbridge.SuiteByName(n); ok && s.Name == name {
				return true
			}
		}
		return false
	}
	var out []webrtcbridge.Suite
	for _, s := range webrtcbridge.Suites {
		switch {
		case len(o.Only) > 0 && !has(o.Only, s.Name):
			continue
		case len(o.Only) == 0 && has(o.No, s.Name):
			continue
		}
		if o.NoNew && !slices.ContainsFunc(offeredBy, func(c webrtcbridge.Crypto) bool { return c.Suite.Name == s.Name }) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// offerSecurity decides what rtcgate offers the receiving party ts of an
// offer from fs.
func (e *Engine) offerSecurity(ts, fs *side, req *Request) {
	sec := req.Secure
	out := &ts.sec
	out.offered = true
	out.outProto = fs.sec.proto
	if sec.Protocol != "" {
		out.outProto = sec.Protocol
	}
	switch sec.ICE {
	case ICERemove:
		out.ice = false
	case ICEForce, ICEOptional:
		out.ice = true
	default:
		out.ice = fs.sec.rICE
	}
	fs.sec.iceRejected = sec.RejectICE
	switch sec.ICELite {
	case ICELiteForward:
		out.lite, out.liteSet, fs.sec.lite, fs.sec.liteSet = true, true, false, true
	case ICELiteBackward:
		out.lite, out.liteSet, fs.sec.lite, fs.sec.liteSet = false, true, true, true
	case ICELiteBoth:
		out.lite, out.liteSet, fs.sec.lite, fs.sec.liteSet = true, true, true, true
	case ICELiteOff:
		out.lite, out.liteSet, fs.sec.lite, fs.sec.liteSet = false, true, false, true
	}
	out.trickle = sec.TrickleICE && out.ice // offered only when asked, as rtpengine
	if out.ice && out.ufrag == "" {
		out.ufrag, out.pwd = webrtcbridge.NewICECredentials()
	}
	out.fingerprintH = sec.DTLSFingerprint
	if out.fingerprintH == "" && fs.sec.rFP != nil {
		out.fingerprintH = fs.sec.rFP.Hash // rtpengine: the peer's hash by default
	}
	if out.fingerprintH == "" {
		out.fingerprintH = e.cfg.DTLSSignature
	}
	srtp := isSRTP(out.outProto)
	out.dtls = srtp && sec.DTLS != DTLSOff
	out.setup = "actpass"
	prev := out.cryptos
	out.cryptos = nil
	if (srtp || sec.OSRTP.Offer) && !sec.SDES.Off {
		for i, s := range suitesFor(sec.SDES, fs.sec.rCryptos) {
			// A re-offer keeps the key of a suite rtcgate offered (or
			// answered with) before, as rtpengine does.
			c := keptCrypto(prev, s, i+1)
			c.Lifetime = ""
			if sec.SDES.Lifetime {
				c.Lifetime = "2^31"
			}
			out.cryptos = append(out.cryptos, c)
		}
		orderCryptos(out.cryptos, sec.SDES.Order)
	}
}

// keptCrypto is a crypto line of suite s with tag: the key of prev's line
// of that suite when there is one, else a new key.
func keptCrypto(prev []webrtcbridge.Crypto, s webrtcbridge.Suite, tag int) webrtcbridge.Crypto {
	for _, c := range prev {
		if c.Suite.Name == s.Name {
			c.Tag = tag
			return c
		}
	}
	return webrtcbridge.NewCrypto(tag, s)
}

// orderCryptos puts the suites named in order first, in that order, the
// others after them as they were (SDES-order:, tags unchanged).
func orderCryptos(cs []webrtcbridge.Crypto, order []string) {
	if len(order) == 0 {
		return
	}
	rank := func(c webrtcbridge.Crypto) int {
		for i, n := range order {
			if s, ok := webrtcbridge.SuiteByName(n); ok && s.Name == c.Suite.Name {
				return i
			}
		}
		return len(order)
	}
	slices.SortStableFunc(cs, func(a, b webrtcbridge.Crypto) int { return rank(a) - rank(b) })
}

// answerSecurity decides what rtcgate answers the offerer ts, whose offer
// is in ts.sec, given the answer of fs; and what fs's answer settled
// toward fs. It returns warnings.
func (e *Engine) answerSecurity(ts, fs *side, req *Request) []string {
	var warnings []string
	sec := req.Secure
	// Toward the answerer fs: rtcgate offered; its answer picks.
	f := &fs.sec
	switch {
	case f.dtls && f.rFP != nil && (len(f.rCryptos) == 0 || !sec.SDES.Prefer):
		// a=setup:active in the answer makes rtcgate the server.
		f.setup = "passive"
		if f.rSetup == "passive" {
			f.setup = "active"
		}
		f.cryptos = nil
	case len(f.cryptos) > 0 && len(f.rCryptos) > 0:
		var pick []webrtcbridge.Crypto
		for _, r := range f.rCryptos {
			if i := slices.IndexFunc(f.cryptos, func(c webrtcbridge.Crypto) bool { return c.Tag == r.Tag && c.Suite.Name == r.Suite.Name }); i >= 0 {
				pick = []webrtcbridge.Crypto{f.cryptos[i]}
				break
			}
		}
		f.cryptos, f.dtls = pick, false
	default:
		f.dtls, f.cryptos = false, nil
	}
	// ICE toward the answerer only if it was offered and answered.
	f.ice = f.ice && f.rICE

	// Toward the offerer ts.
	t := &ts.sec
	t.offered = false
	t.outProto = t.proto
	if sec.AcceptProtocol {
		t.outProto = f.proto
	}
	if sec.Protocol != "" {
		t.outProto = sec.Protocol
	}
	// In an answer, candidates go only to an offerer that spoke ICE.
	t.ice = t.rICE && sec.ICE != ICERemove && !t.iceRejected
	if t.ice && t.ufrag == "" {
		t.ufrag, t.pwd = webrtcbridge.NewICECredentials()
	}
	t.trickle = t.ice && (t.rTrickle || sec.TrickleICE)
	if sec.DTLSFingerprint != "" {
		t.fingerprintH = sec.DTLSFingerprint
	} else if t.rFP != nil {
		t.fingerprintH = t.rFP.Hash
	} else if t.fingerprintH == "" {
		t.fingerprintH = e.cfg.DTLSSignature
	}
	srtp := isSRTP(t.outProto) || sec.OSRTP.Offer
	// A re-offer (an ICE restart, a hold) keeps the DTLS role rtcgate
	// took, as rtpengine does: a new role would need a new association.
	keepSetup := t.dtls && t.transport != "" && (t.setup == "active" || t.setup == "passive")
	prevCrypto, prevPeer := t.cryptos, t.answered
	t.dtls, t.cryptos, t.answered = false, nil, nil
	switch {
	case !srtp && len(t.rCryptos) == 0:
	case t.rFP != nil && sec.DTLS != DTLSOff && !(sec.SDES.Prefer && len(t.rCryptos) > 0):
		t.dtls = true
		switch t.rSetup {
		case "active":
			t.setup = "passive"
		case "passive":
			t.setup = "active"
		default: // actpass or none: rtcgate's choice
			switch {
			case sec.DTLS == DTLSPassive:
				t.setup = "passive"
			case sec.DTLS == DTLSActive || !keepSetup:
				t.setup = "active"
			}
		}
	case len(t.rCryptos) > 0 && !sec.SDES.Off:
		allowed := suitesFor(sec.SDES, t.rCryptos)
		pick := -1
		if sec.SDES.Static && len(prevCrypto) == 1 {
			// SDES-static: the suite answered before stays if offered again.
			pick = slices.IndexFunc(t.rCryptos, func(r webrtcbridge.Crypto) bool {
				return r.Tag == prevCrypto[0].Tag && r.Suite.Name == prevCrypto[0].Suite.Name
			})
		}
		if pick < 0 {
			pick = slices.IndexFunc(t.rCryptos, func(r webrtcbridge.Crypto) bool {
				return slices.ContainsFunc(allowed, func(s webrtcbridge.Suite) bool { return s.Name == r.Suite.Name })
			})
		}
		if pick >= 0 {
			r := t.rCryptos[pick]
			// A re-answer keeps rtcgate's key while the party keeps its
			// crypto and the suite stays (rtpengine keeps it too).
			c := webrtcbridge.NewCrypto(r.Tag, r.Suite)
			if len(prevCrypto) == 1 && prevPeer != nil && prevCrypto[0].Suite.Name == r.Suite.Name && sameCrypto(*prevPeer, r) {
				c = prevCrypto[0]
				c.Tag, c.Lifetime = r.Tag, ""
			}
			if sec.SDES.Lifetime {
				c.Lifetime = "2^31"
			}
			t.cryptos = []webrtcbridge.Crypto{c}
			t.answered = &r
		}
		if t.cryptos == nil {
			warnings = append(warnings, fmt.Sprintf("m= section %d: no offered crypto suite is usable", ts.index+1))
		}
	case srtp && isSRTP(t.outProto):
		warnings = append(warnings, fmt.Sprintf("m= section %d: %s offered without DTLS fingerprint or usable a=crypto", ts.index+1, t.outProto))
	}
	return warnings
}

// sameCrypto: the party's crypto line is unchanged (suite, key and salt).
func sameCrypto(a, b webrtcbridge.Crypto) bool {
	return a.Suite.Name == b.Suite.Name && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Salt, b.Salt)
}

// writeSecurity replaces the sender's ICE, DTLS and SDES attributes of the
// outgoing section m with rtcgate's toward ts.
//
// rtcpOnRTP says RTCP is on the RTP port (rtcp-mux required or answered):
// otherwise the RTCP port gets a component 2 candidate.
func (e *Engine) writeSecurity(sess *sdp.Session, m *sdp.Media, ts *side, rtcpOnRTP bool, req *Request, answer bool) {
	m.RemoveAttr(sdp.ICEAttributes...)
	m.RemoveAttr("fingerprint", "setup", "crypto", "tls-id")
	s := &ts.sec
	if s.outProto != "" && m.Proto() != s.outProto {
		m.SetProto(s.outProto)
	}
	for _, c := range s.cryptos {
		m.AddAttr("crypto", c.String(req.Secure.SDES.Pad))
	}
	if s.dtls {
		m.AddAttr("setup", s.setup)
		m.AddAttr("fingerprint", e.cert.Fingerprint(s.fingerprintH))
	}
	if s.ice {
		m.AddAttr("ice-ufrag", s.ufrag)
		m.AddAttr("ice-pwd", s.pwd)
		if s.trickle {
			m.AddAttr("ice-options", "trickle")
		}
		addr := netip.AddrPortFrom(sdpAddr(ts, req), uint16(ts.pair.port))
		m.AddAttr("candidate", webrtcbridge.HostCandidate(addr, 1).String())
		if !rtcpOnRTP {
			m.AddAttr("candidate", webrtcbridge.HostCandidate(netip.AddrPortFrom(addr.Addr(), addr.Port()+1), 2).String())
		}
		if s.trickle {
			m.AddAttr("end-of-candidates", "")
		}
	}
}

// writeSessionSecurity fixes the session level: the sender's ICE, DTLS and
// bundle attributes go (every section has its own ports); a=ice-lite is
// written when rtcgate is ICE-lite toward the receiver.
func writeSessionSecurity(sess *sdp.Session, to *monologue) {
	sess.RemoveAttr(sdp.ICEAttributes...)
	sess.RemoveAttr("fingerprint", "setup", "tls-id")
	sess.RemoveAttrFunc("group", func(v string) bool { return strings.HasPrefix(v, "BUNDLE") })
	for _, sd := range to.sides {
		if sd != nil && sd.sec.ice && sd.sec.lite {
			sess.AddAttr("ice-lite", "")
			return
		}
	}
}

// transportSignature names a transport's parameters: an answer that
// changes none keeps the running one (and its DTLS session). ICE
// credentials are not among them: an ICE restart keeps the transport.
// Multiplexing is: it decides whether RTCP has a transport of its own.
func (s *secState) transportSignature(mux bool) string {
	var b strings.Builder
	b.WriteString(s.setup + "|" + strconv.FormatBool(s.dtls) + "|" + strconv.FormatBool(s.ice) + "|" + strconv.FormatBool(s.lite) + "|" + strconv.FormatBool(mux))
	if s.rFP != nil {
		b.WriteString("|" + s.rFP.Hash + fmt.Sprintf("%x", s.rFP.Digest))
	}
	for _, c := range s.cryptos {
		b.WriteString("|" + c.String(false))
	}
	for _, c := range s.rCryptos {
		b.WriteString("|r" + c.String(false))
	}
	return b.String()
}

// settleTransport publishes the transports for a side whose negotiation
// an answer completed, replacing (and closing) those whose parameters
// changed. A side with neither ICE nor SRTP gets none: its packets take
// the plain path. A party that does not multiplex RTCP gets a second
// transport on the RTCP socket, as rtpengine gives each of its sockets
// one: ICE component 2, and with DTLS a handshake of its own whose keys
// protect SRTCP there (RFC 5764 §4.1); with SDES the same keys.
func (e *Engine) settleTransport(sd *side) error {
	s := &sd.sec
	var remoteCrypto *webrtcbridge.Crypto
	if len(s.cryptos) == 1 {
		for i := range s.rCryptos {
			if s.rCryptos[i].Suite.Name == s.cryptos[0].Suite.Name {
				remoteCrypto = &s.rCryptos[i]
				break
			}
		}
	}
	wantSDES := !s.dtls && remoteCrypto != nil
	if !s.ice && !s.dtls && !wantSDES {
		e.dropTransport(sd)
		if sd.k.block.And(^keepWebRTC)&keepWebRTC != 0 {
			e.kernel.sync(sd) // plain RTP again: the kernel may take it
		}
		return nil
	}
	mux := sd.mux.Load()
	sig := s.transportSignature(mux)
	if cur := sd.rtp.xport.Load(); cur != nil && s.transport == sig {
		if s.ice {
			cur.SetICE(s.ufrag, s.pwd, s.rUfrag, s.rPwd, s.rCands)
			if x := sd.rtcp.xport.Load(); x != nil {
				x.SetICE(s.ufrag, s.pwd, s.rUfrag, s.rPwd, s.rCands2)
			}
		}
		return nil
	}
	streams := []*stream{sd.rtp}
	if !mux {
		streams = append(streams, sd.rtcp)
	}
	xs := make([]*webrtcbridge.Transport, len(streams))
	for i, st := range streams {
		cfg := webrtcbridge.TransportConfig{
			Send: func(pkt []byte, dst netip.AddrPort) { _ = st.send(pkt, dst) },
			Log:  e.log,
		}
		if s.ice {
			lite := s.lite
			if !s.liteSet {
				lite = false
			}
			remote := s.rCands
			if st.rtcp {
				remote = s.rCands2
			}
			cfg.ICE = &webrtcbridge.ICEParams{LocalUfrag: s.ufrag, LocalPwd: s.pwd, RemoteUfrag: s.rUfrag, RemotePwd: s.rPwd,
				Lite: lite, Controlling: s.offered && !s.rLite || s.rLite, Remote: slices.Clone(remote)}
		}
		switch {
		case s.dtls && s.rFP != nil:
			cfg.DTLS = &webrtcbridge.DTLSParams{Cert: e.cert, Client: s.setup == "active", Remote: *s.rFP}
		case wantSDES:
			cfg.SDES = &webrtcbridge.SDESParams{Local: s.cryptos[0], Remote: *remoteCrypto}
		}
		x, err := webrtcbridge.NewTransport(cfg)
		if err != nil {
			for _, x := range xs[:i] {
				x.Close()
			}
			return err
		}
		xs[i] = x
	}
	e.dropTransport(sd)
	s.transport = sig
	for i, st := range streams {
		st.xport.Store(xs[i])
	}
	// The bridge works on every packet of this side and of its peer
	// towards it: no kernel rule for either.
	sd.k.block.Or(keepWebRTC)
	e.kernel.sync(sd)
	for i, st := range streams {
		if s.dtls && s.setup == "active" && !s.ice {
			// Without ICE the party's address is known from its SDP.
			if ep := st.ep.Load(); ep != nil && ep.addr.IsValid() {
				xs[i].StartDTLS(ep.addr)
			}
		}
	}
	return nil
}

// dropTransport closes a side's transports (under call.mu).
func (e *Engine) dropTransport(sd *side) {
	for _, st := range []*stream{sd.rtp, sd.rtcp} {
		if x := st.xport.Swap(nil); x != nil {
			sd.sec.failedDTLS += x.HandshakeFailures.Load()
			sd.sec.checks += x.Checks.Load()
			sd.sec.authFailures += x.AuthFailures.Load()
			x.Close()
		}
	}
	sd.sec.transport = ""
}

// iceEndpoint is where a party speaking ICE gets media until a check
// proves another address: its best host candidate of the wanted family.
func iceEndpoint(s *secState, v6 bool) (netip.AddrPort, bool) {
	for _, c := range s.rCands {
		if c.Addr().Is6() == v6 && !c.Addr().IsUnspecified() && c.Port() != 0 {
			return c, true
		}
	}
	return netip.AddrPort{}, false
}

// rewriteExtras applies generate mid, extmap stripping and the codec
// dictionary to an outgoing section.
func rewriteExtras(m *sdp.Media, ts *side, index int, req *Request, isOffer bool) {
	// An answer carries the mid the offerer gave the section (RFC 8843),
	// whether or not the answerer wrote one.
	if !isOffer && ts.sec.rMid != "" && !m.HasAttr("mid") {
		m.AddAttr("mid", ts.sec.rMid)
	}
	if req.GenerateMid && !m.HasAttr("mid") {
		m.AddAttr("mid", strconv.Itoa(index+1))
	}
	if len(req.ExtmapStrip) > 0 {
		all := slices.Contains(req.ExtmapStrip, "all")
		m.RemoveAttrFunc("extmap", func(v string) bool {
			f := strings.Fields(v)
			return all || len(f) >= 2 && slices.Contains(req.ExtmapStrip, f[1])
		})
	}
	if isOffer {
		applyCodecs(m, req.Codec)
	}
}

// codecName is "name/clock[/channels]" of a payload type, from its rtpmap
// or the static RFC 3551 table.
func codecNames(m *sdp.Media) map[string]string {
	names := map[string]string{"0": "PCMU/8000", "3": "GSM/8000", "4": "G723/8000", "8": "PCMA/8000", "9": "G722/8000", "18": "G729/8000"}
	for _, v := range m.Attrs("rtpmap") {
		pt, rest, ok := strings.Cut(v, " ")
		if ok {
			names[pt] = strings.TrimSpace(rest)
		}
	}
	return names
}

// codecMatches: a codec spec ("PCMU", "opus/48000", "opus/48000/2" or a
// payload type number) names the format pt, whose rtpmap is full.
func codecMatches(spec, pt, full string) bool {
	if spec == pt {
		return true
	}
	fp := strings.Split(full, "/")
	sp := strings.Split(spec, "/")
	if len(sp) > len(fp) || !strings.EqualFold(sp[0], fp[0]) {
		return false
	}
	for i := 1; i < len(sp); i++ {
		if sp[i] != fp[i] {
			return false
		}
	}
	return true
}

// applyCodecs applies strip, mask, except and offer (no transcoding: mask
// removes like strip, offer keeps like except). Stripping every codec leaves the list unchanged, as
// rtpengine does.
func applyCodecs(m *sdp.Media, c Codec) {
	if len(c.Strip) == 0 && len(c.Mask) == 0 {
		return
	}
	formats := m.Formats()
	names := codecNames(m)
	matchAny := func(list []string, pt string) bool {
		for _, s := range list {
			if s == "all" || s == "full" || codecMatches(s, pt, names[pt]) {
				return true
			}
		}
		return false
	}
	var kept []string
	for _, pt := range formats {
		removed := matchAny(c.Strip, pt) || matchAny(c.Mask, pt)
		if removed && (matchAny(c.Except, pt) || matchAny(c.Offer, pt)) && !slices.Contains(c.Except, "all") {
			removed = false
		}
		if !removed {
			kept = append(kept, pt)
		}
	}
	// Without transcoding, rtpengine (10.5, the anchor) keeps the offered
	// order for "offer" as for "except": so does rtcgate.
	ordered := kept
	if len(ordered) == 0 {
		return
	}
	m.SetFormats(ordered)
	for _, attr := range []string{"rtpmap", "fmtp", "rtcp-fb"} {
		m.RemoveAttrFunc(attr, func(v string) bool {
			pt, _, _ := strings.Cut(v, " ")
			return pt != "*" && !slices.Contains(ordered, pt)
		})
	}
}
