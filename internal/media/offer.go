package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/internal/sdp"
)

// Offer handles an SDP offer from the party FromTag: it creates the call
// (within max-sessions), binds a port pair facing each party for every m=
// section, and returns the SDP rewritten for the party it goes to.
func (e *Engine) Offer(req *Request) (*Result, error) {
	return e.negotiate(req, true)
}

// Answer handles the answer from the party ToTag to the offer FromTag made.
// It returns the SDP rewritten for the offerer.
func (e *Engine) Answer(req *Request) (*Result, error) {
	return e.negotiate(req, false)
}

func (e *Engine) negotiate(req *Request, isOffer bool) (*Result, error) {
	sess, err := sdp.Parse(req.SDP)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	// "m=audio 4000/2": consecutive port pairs (RFC 8866 §5.14). The relay
	// binds one pair per section, so, as rtpengine, a count up to
	// MaxPortCount is accepted and dropped from the rewritten SDP, and a
	// larger one is refused.
	for i, m := range sess.Media {
		if n := m.PortCount(); n > MaxPortCount {
			return nil, fmt.Errorf("%w: m= section %d asks for %d consecutive ports (at most %d; one port pair is relayed)",
				ErrBadSDP, i+1, n, MaxPortCount)
		}
	}
	// Interfaces first: a request naming an unknown one changes nothing.
	fromFamily6, toFamily6 := sdpFamily(sess)
	if req.AddressFamily == "IP4" {
		toFamily6 = false
	} else if req.AddressFamily == "IP6" {
		toFamily6 = true
	}
	fromItf, err := e.pickIface(req.Direction[0], fromFamily6)
	if err != nil {
		return nil, err
	}
	toItf, err := e.pickIface(req.Direction[1], toFamily6)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	c, created, err := e.getCall(req.CallID, isOffer, now)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed { // lost a race with a delete or timeout
		return nil, ErrUnknownCallID
	}
	c.lastSignal = now
	c.deleteAt = time.Time{} // new signalling cancels a pending delayed delete

	// from: the party whose SDP this is; to: the party that receives it.
	var from, to *monologue
	if isOffer {
		from = c.monologue(req.FromTag, now)
		switch {
		case req.ToTag != "" && req.ToTag != req.FromTag:
			to = c.monologue(req.ToTag, now)
		case from.peer != nil:
			to = from.peer
		default:
			to = c.monologue("", now) // the answerer, named when it answers
		}
	} else {
		// In an answer, from-tag is still the offerer and to-tag the
		// answerer, whose SDP this is.
		offerer, ok := c.monologues[req.FromTag]
		if !ok {
			return nil, ErrUnknownTag
		}
		if offerer.peer == nil {
			return nil, ErrNoOffer
		}
		from = offerer.peer
		if len(sess.Media) > len(from.sides) {
			return nil, ErrMoreMedia
		}
		if req.ToTag != "" {
			if existing, ok := c.monologues[req.ToTag]; ok && existing != from {
				return nil, fmt.Errorf("%w: to-tag %q already answers another offer", ErrNoOffer, req.ToTag)
			}
			c.retag(from, req.ToTag)
		}
		to = offerer
	}
	from.peer, to.peer = to, from
	if created {
		c.source = req.Source
	}
	if isOffer && from.role == "" {
		from.role = "FROM_TAG"
	}
	if to.tag != "" && to.role == "" {
		to.role = "TO_TAG"
	}
	if !isOffer {
		from.role = "TO_TAG"
	}
	if req.ViaBranch != "" {
		from.viaBranch = req.ViaBranch
	}
	if req.Label != "" {
		from.label = req.Label
	}

	res := &Result{}
	// Bind what is missing first, so that running out of ports leaves
	// nothing half-built.
	var fresh []*side
	undo := func() {
		for _, sd := range fresh {
			sd.mon.sides[sd.index] = nil
			sd.pair.closeUnregistered()
			e.stats.StreamsUser.Add(-1)
		}
		if created {
			c.closed = true
			e.mu.Lock()
			delete(e.calls, c.id)
			e.mu.Unlock()
			e.stats.SessionsOwn.Add(-1)
		}
	}
	for i, m := range sess.Media {
		for _, p := range []struct {
			mon *monologue
			itf *iface
		}{{from, fromItf}, {to, toItf}} {
			if i < len(p.mon.sides) && p.mon.sides[i] != nil {
				continue
			}
			sd, err := e.newSide(p.mon, i, m, p.itf, now)
			if err != nil {
				undo()
				return nil, err
			}
			fresh = append(fresh, sd)
		}
	}
	for _, sd := range fresh {
		if err := c.poller.add(sd); err != nil {
			// epoll refused (out of memory, fd limits): the side exists but
			// relays nothing; say so rather than fail the whole call.
			e.log.Error("relay cannot watch a socket", "call-id", c.id, "err", err)
			res.Warnings = append(res.Warnings, "media relay unavailable for a stream: "+err.Error())
		}
	}

	// The sender's addresses and wishes, then the SDP for the receiver.
	for i, m := range sess.Media {
		fs, ts := from.sides[i], to.sides[i]
		fs.peer.Store(ts)
		ts.peer.Store(fs)
		fs.mediaType, ts.mediaType = m.Type(), m.Type()
		fs.direction = m.Direction(sess)
		fs.rejected = m.Port() == 0
		fs.offeredMux = m.HasAttr("rtcp-mux")
		fs.formats = rtpFormats(m)
		fs.opts.Store(packetOpts(req.Flags))
		res.Warnings = append(res.Warnings, learnSecurity(fs, sess, m, isOffer)...)
		if isOffer {
			e.offerSecurity(ts, fs, req)
		} else {
			res.Warnings = append(res.Warnings, e.answerSecurity(ts, fs, req)...)
		}
		fs.proto, ts.proto = fs.sec.proto, ts.sec.outProto
		e.learnEndpoints(fs, sess, m, req)

		// Who multiplexes RTCP. In an offer the sender's choice stands
		// (unless told to reject it) and we decide what to offer onwards;
		// in an answer the answerer's choice settles the offerer's side.
		mux := req.RTCPMux
		if isOffer {
			fs.mux.Store(fs.offeredMux && !mux.Reject)
			ts.offeredMux = mux.Offer || mux.Require || fs.offeredMux && !mux.Demux && !mux.Reject
		} else {
			fs.mux.Store(fs.offeredMux)
			ts.mux.Store(ts.offeredMux && !mux.Reject)
		}
		toMux := ts.offeredMux
		if !isOffer {
			toMux = ts.mux.Load()
		}
		if n := m.PortCount(); n > 1 && !fs.rejected {
			res.Warnings = append(res.Warnings, fmt.Sprintf("m= section %d: port count /%d dropped, one port pair is relayed", i+1, n))
		}
		// As rtpengine: an offer that only offers rtcp-mux still tells
		// where RTCP goes without it (port+1, and an ICE component 2);
		// once required or answered, RTCP is on the RTP port.
		rtcpOnRTP := toMux && (!isOffer || mux.Require)
		rewriteMedia(m, ts, toMux, rtcpOnRTP, req, fs.rejected, fs.sec.rICE)
		if fs.rejected {
			m.RemoveAttr(sdp.ICEAttributes...)
			m.RemoveAttr("fingerprint", "setup", "crypto", "tls-id")
		} else {
			e.writeSecurity(sess, m, ts, rtcpOnRTP, req, !isOffer)
			rewriteExtras(m, ts, i, req, isOffer)
		}
		if req.Flags.RecordCall {
			fs.k.block.Or(keepRecording)
		}
		e.kernel.sync(fs)
	}
	rewriteSession(sess, to, toItf, req)
	writeSessionSecurity(sess, to)
	if !isOffer {
		// The answer settles both parties' transports.
		for i := range sess.Media {
			for _, sd := range []*side{from.sides[i], to.sides[i]} {
				if err := e.settleTransport(sd); err != nil {
					res.Warnings = append(res.Warnings, fmt.Sprintf("m= section %d: %v", i+1, err))
				}
			}
		}
	}
	res.SDP = versionSDP(sess, to, req)
	return res, nil
}

// newSide binds a port pair for a party's end of m= section i.
func (e *Engine) newSide(mon *monologue, i int, m *sdp.Media, itf *iface, now time.Time) (*side, error) {
	pair, err := itf.pool.allocate()
	if err != nil {
		e.log.Warn("no media ports left", "interface", itf.name, "address", itf.addr, "err", err)
		return nil, ErrPortsExhausted
	}
	sd := &side{index: i, mediaType: m.Type(), proto: m.Proto(), mon: mon, itf: itf, pair: pair}
	sd.rtp = &stream{side: sd, fd: pair.rtpFD, local: netip.AddrPortFrom(itf.addr, uint16(pair.port))}
	sd.rtcp = &stream{side: sd, rtcp: true, fd: pair.rtcpFD, local: netip.AddrPortFrom(itf.addr, uint16(pair.port+1))}
	sd.rtp.lastPacket.Store(now.UnixNano())
	sd.rtcp.lastPacket.Store(now.UnixNano())
	for len(mon.sides) <= i {
		mon.sides = append(mon.sides, nil)
	}
	mon.sides[i] = sd
	e.kernel.initStreams(sd)
	e.stats.StreamsUser.Add(1)
	return sd, nil
}

func packetOpts(f Flags) uint32 {
	var o uint32
	if f.Asymmetric {
		o |= optAsymmetric
	}
	if f.StrictSource {
		o |= optStrictSource
	}
	if f.MediaHandover {
		o |= optMediaHandover
	}
	return o
}

// learnEndpoints takes the sender's RTP and RTCP addresses from its SDP
// (or the SIP source address when told to).
func (e *Engine) learnEndpoints(sd *side, sess *sdp.Session, m *sdp.Media, req *Request) {
	var ip netip.Addr
	if conn, ok := m.EffectiveConnection(sess); ok {
		ip, _ = conn.Addr()
	}
	if req.Flags.SIPSourceAddress && !req.Flags.TrustAddress && req.ReceivedFrom.IsValid() {
		ip = req.ReceivedFrom
	}
	port := m.Port()
	// A party speaking ICE is reached at its candidates (c= may be the
	// 0.0.0.0 placeholder) until a connectivity check says where.
	if sd.sec.rICE && port != 0 {
		if c, ok := iceEndpoint(&sd.sec, ip.Is6() && !ip.Is4In6()); ok {
			ip, port = c.Addr(), int(c.Port())
		}
	}
	if !ip.IsValid() || port == 0 {
		sd.rtp.setSDPEndpoint(netip.AddrPort{})
		sd.rtcp.setSDPEndpoint(netip.AddrPort{})
		return
	}
	ip = ip.Unmap()
	sd.rtp.setSDPEndpoint(netip.AddrPortFrom(ip, uint16(port)))
	rtcpIP, rtcpPort := ip, port+1
	if p, conn, ok := m.RTCP(); ok {
		rtcpPort = p
		if conn != nil {
			if a, ok := conn.Addr(); ok && !req.Flags.SIPSourceAddress {
				rtcpIP = a.Unmap()
			}
		}
	}
	if sd.offeredMux {
		rtcpIP, rtcpPort = ip, port
	}
	sd.rtcp.setSDPEndpoint(netip.AddrPortFrom(rtcpIP, uint16(rtcpPort&0xffff)))
}

// sdpFamily says whether the SDP's media address is IPv6; the outgoing side
// keeps that family unless address-family says otherwise.
func sdpFamily(sess *sdp.Session) (from6, to6 bool) {
	if conn, ok := sess.Connection(); ok {
		if a, ok := conn.Addr(); ok {
			return a.Is6() && !a.Is4In6(), a.Is6() && !a.Is4In6()
		}
	}
	for _, m := range sess.Media {
		if conn, ok := m.Connection(); ok {
			if a, ok := conn.Addr(); ok {
				return a.Is6() && !a.Is4In6(), a.Is6() && !a.Is4In6()
			}
		}
	}
	return false, false
}

// sdpAddr is the address put in the SDP for a side: media-address if given,
// else the interface's advertised or local address.
func sdpAddr(sd *side, req *Request) netip.Addr {
	if req.MediaAddress.IsValid() {
		return req.MediaAddress
	}
	return sd.itf.sdpAddr()
}

// rewriteMedia points one m= section at the relay side ts.
//
// A sender speaking ICE puts a placeholder (c=0.0.0.0, port 9) in c= when
// its candidates carry the addresses; senderICE replaces it regardless.
func rewriteMedia(m *sdp.Media, ts *side, mux, rtcpOnRTP bool, req *Request, rejected, senderICE bool) {
	if rejected {
		return // port 0 stays 0: the section is refused
	}
	m.SetPort(ts.pair.port)
	m.ClearPortCount()
	addr := sdpAddr(ts, req)
	if conn, ok := m.Connection(); ok {
		if ip, ok := conn.Addr(); !ok || !ip.IsUnspecified() || req.Replace.ZeroAddress || senderICE {
			m.SetConnection(sdp.NewConnection(addr))
		}
	}
	if mux {
		m.SetAttr("rtcp-mux", "")
	} else {
		m.RemoveAttr("rtcp-mux")
	}
	if req.Flags.NoRTCPAttribute {
		m.RemoveAttr("rtcp")
		return
	}
	port := ts.pair.port + 1
	if rtcpOnRTP {
		port = ts.pair.port
	}
	val := strconv.Itoa(port)
	if req.Flags.FullRTCPAttribute {
		val += " " + sdp.NewConnection(addr).String()
	}
	m.SetAttr("rtcp", val)
}

// rewriteSession fixes the session-level lines for the receiving party.
func rewriteSession(sess *sdp.Session, to *monologue, toItf *iface, req *Request) {
	addr := toItf.sdpAddr()
	if req.MediaAddress.IsValid() {
		addr = req.MediaAddress
	}
	if conn, ok := sess.Connection(); ok {
		if ip, ok := conn.Addr(); !ok || !ip.IsUnspecified() || req.Replace.ZeroAddress {
			sess.SetConnection(sdp.NewConnection(addr))
		}
	}
	if o, ok := sess.Origin(); ok {
		changed := false
		if req.Replace.Origin {
			o.AddrType, o.Address = sdp.AddrType(addr), addr.String()
			changed = true
		}
		if req.Replace.Username {
			if to.originUsername == "" {
				to.originUsername = o.Username
			}
			o.Username = to.originUsername
			changed = true
		}
		if changed {
			sess.SetOrigin(o)
		}
	}
	if req.Replace.SessionName {
		if !to.haveSessionName {
			to.sessionName, to.haveSessionName = sess.SessionName(), true
		}
		sess.SetSessionName(to.sessionName)
	}
}

// versionSDP applies replace=sdp-version / force-increment-sdp-ver: the o=
// version the receiving party sees goes up by one when the SDP it is sent
// changed (or always, when forced), and otherwise stays what it last saw.
func versionSDP(sess *sdp.Session, to *monologue, req *Request) []byte {
	o, ok := sess.Origin()
	if !ok || !req.Replace.SDPVersion && !req.Replace.ForceIncrementSDPVer {
		return sess.Marshal()
	}
	// Compare bodies without the version itself.
	orig := o.SessionVersion
	o.SessionVersion = "0"
	sess.SetOrigin(o)
	key := string(sess.Marshal())
	switch {
	case to.lastBody == "":
		to.lastVersion, _ = strconv.ParseUint(orig, 10, 64)
	case key != to.lastBody || req.Replace.ForceIncrementSDPVer:
		to.lastVersion++
	}
	to.lastBody = key
	o.SessionVersion = strconv.FormatUint(to.lastVersion, 10)
	sess.SetOrigin(o)
	return sess.Marshal()
}
