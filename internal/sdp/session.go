package sdp

import (
	"net/netip"
	"strings"
)

// Origin is the value of an o= line:
// "o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>".
// The numeric fields are kept as strings because they may exceed 64 bits
// and must be written back exactly as received.
type Origin struct {
	// Username is the originator's login, "-" when there is none. It may
	// contain spaces when read from a non-conforming o= line.
	Username string
	// SessionID is the numeric session identifier.
	SessionID string
	// SessionVersion is the numeric version, increased on every change.
	SessionVersion string
	// NetType is the network type, "IN".
	NetType string
	// AddrType is "IP4" or "IP6".
	AddrType string
	// Address is the originating host's address or name.
	Address string
}

// String returns the o= value. Empty fields are written as "-" so the
// line keeps its six fields.
func (o Origin) String() string {
	var b strings.Builder
	for i, f := range [...]string{o.Username, o.SessionID, o.SessionVersion, o.NetType, o.AddrType, o.Address} {
		if i > 0 {
			b.WriteByte(' ')
		}
		if f == "" {
			f = "-"
		}
		b.WriteString(clean(f))
	}
	return b.String()
}

// Origin returns the session's first o= line. ok is false when there is no
// o= line or it has fewer than six fields. A username containing spaces,
// which some user agents send, is accepted: the last five fields are the
// fixed ones and everything before them is the username.
func (s *Session) Origin() (o Origin, ok bool) {
	v, found := s.value('o')
	if !found {
		return Origin{}, false
	}
	n := countFields(v)
	if n < 6 {
		return Origin{}, false
	}
	var f [5]string
	var idStart int
	for k := range f {
		var start int
		f[k], start, _ = field(v, n-5+k)
		if k == 0 {
			idStart = start
		}
	}
	user := strings.TrimRight(strings.TrimLeft(v[:idStart], " \t"), " \t")
	return Origin{Username: user, SessionID: f[0], SessionVersion: f[1], NetType: f[2], AddrType: f[3], Address: f[4]}, true
}

// SetOrigin replaces the o= line (removing any duplicate), or inserts one
// after v= if there is none.
func (s *Session) SetOrigin(o Origin) {
	s.setLine('o', o.String(), 0, "v")
}

// IncrementVersion adds one to the o= session version, as RFC 3264
// requires whenever a modified SDP is sent. The version is incremented as a
// decimal string rather than a uint64, because user agents send versions
// of up to 20 digits, where uint64 would overflow or wrap and a peer would
// see the version go backwards; the number grows by a digit only on carry
// ("999" → "1000") and leading zeros keep their width. Only the version field is rewritten; the rest of the
// line stays byte-identical. Nothing happens when there is no o= line or
// its version is not a decimal number.
func (s *Session) IncrementVersion() {
	i := s.index('o')
	if i < 0 {
		return
	}
	v := s.Lines[i].Value
	n := countFields(v)
	if n < 6 {
		return
	}
	ver, start, _ := field(v, n-4)
	next, ok := incDecimal(ver)
	if !ok {
		return
	}
	s.Lines[i].Value = v[:start] + next + v[start+len(ver):]
}

// incDecimal returns d+1 for a non-empty string of ASCII digits.
func incDecimal(d string) (string, bool) {
	if d == "" {
		return "", false
	}
	b := make([]byte, len(d)+1)
	copy(b[1:], d)
	carry := true
	for i := len(b) - 1; i >= 1; i-- {
		c := b[i]
		if c < '0' || c > '9' {
			return "", false
		}
		if carry {
			if c == '9' {
				b[i] = '0'
			} else {
				b[i] = c + 1
				carry = false
			}
		}
	}
	if carry {
		b[0] = '1'
		return string(b), true
	}
	return string(b[1:]), true
}

// SessionName returns the s= value exactly as received, or "" if there is
// no s= line. RFC 8866 asks for "s= " (a single space) when there is no
// meaningful name, which is returned as " ".
func (s *Session) SessionName() string {
	v, _ := s.value('s')
	return v
}

// SetSessionName replaces the s= line, or inserts one after v=/o= if there
// is none. An empty name is written as a single space, because RFC 8866
// forbids an empty s= line and prescribes "s= " when there is no name.
func (s *Session) SetSessionName(name string) {
	if name == "" {
		name = " "
	}
	s.setLine('s', clean(name), 0, "vo")
}

// Connection is the value of a c= line: "<nettype> <addrtype> <address>".
type Connection struct {
	// NetType is the network type, "IN" for the Internet.
	NetType string
	// AddrType is "IP4" or "IP6".
	AddrType string
	// Address is the connection address without any multicast suffix:
	// an IP literal or, rarely, a host name.
	Address string
	// Suffix is the multicast TTL and/or address count exactly as
	// received, including the leading '/' ("/127", "/127/3", "/3"); empty
	// for the unicast addresses a relay deals with. It is kept so that
	// SetConnection(Connection()) is lossless; a relay substituting its own
	// address should build a fresh Connection, e.g. with NewConnection.
	Suffix string
}

// NewConnection returns the unicast IN connection for ip, with the address
// type from AddrType.
func NewConnection(ip netip.Addr) Connection {
	return Connection{NetType: "IN", AddrType: AddrType(ip), Address: ip.String()}
}

// String returns the c= value.
func (c Connection) String() string {
	return clean(c.NetType + " " + c.AddrType + " " + c.Address + c.Suffix)
}

// Addr parses Address as an IP address; ok is false for host names and
// malformed addresses.
func (c Connection) Addr() (ip netip.Addr, ok bool) {
	ip, err := netip.ParseAddr(c.Address)
	return ip, err == nil
}

// parseConnection parses a c= value, or the address part of an a=rtcp
// value; both consist of exactly three fields.
func parseConnection(v string) (Connection, bool) {
	if countFields(v) != 3 {
		return Connection{}, false
	}
	nt, _, _ := field(v, 0)
	at, _, _ := field(v, 1)
	addr, _, _ := field(v, 2)
	c := Connection{NetType: nt, AddrType: at, Address: addr}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		c.Address, c.Suffix = addr[:i], addr[i:]
	}
	return c, true
}

// AddrType returns the SDP address type of ip: "IP4" for an IPv4 address
// and "IP6" otherwise ("" for the zero Addr). An IPv4-mapped IPv6 address
// is "IP6" because netip formats it in IPv6 notation; call Unmap first to
// advertise it as IPv4.
func AddrType(ip netip.Addr) string {
	switch {
	case ip.Is4():
		return "IP4"
	case ip.Is6():
		return "IP6"
	}
	return ""
}

// Connection returns the session-level c= line. ok is false when there is
// none or it does not have exactly three fields.
func (s *Session) Connection() (Connection, bool) {
	v, found := s.value('c')
	if !found {
		return Connection{}, false
	}
	return parseConnection(v)
}

// SetConnection replaces the session-level c= line (removing any
// duplicate), or inserts one where RFC 8866 puts it: after the
// v=/o=/s=/i=/u=/e=/p= lines and before b=/t= and the rest.
func (s *Session) SetConnection(c Connection) {
	s.setLine('c', c.String(), 0, "vosiuep")
}

// ICEAttributes are the attribute names RemoveICE deletes: the ICE
// attributes of RFC 8839 plus end-of-candidates from trickle ICE (RFC
// 8840). The relay strips them
// when it terminates or does not support ICE towards a peer, because
// candidates pointing at the original endpoint would bypass the relay.
// Treat it as read-only; RemoveICE reads it on every call.
var ICEAttributes = []string{
	"ice-ufrag",
	"ice-pwd",
	"ice-options",
	"ice-lite",
	"candidate",
	"remote-candidates",
	"end-of-candidates",
	"ice-mismatch",
	"ice-pacing",
}

// RemoveICE removes the ICEAttributes at session level and from every
// media section.
func (s *Session) RemoveICE() {
	s.RemoveAttr(ICEAttributes...)
	for _, m := range s.Media {
		if m != nil {
			m.RemoveAttr(ICEAttributes...)
		}
	}
}

// SetDirection makes every media section dir (sendrecv, sendonly,
// recvonly or inactive): the direction attributes of the session and of
// each section are replaced by one a=dir per section. Hold and resume
// re-offers are made this way.
func (s *Session) SetDirection(dir string) {
	directions := []string{"sendrecv", "sendonly", "recvonly", "inactive"}
	s.RemoveAttr(directions...)
	for _, m := range s.Media {
		m.RemoveAttr(directions...)
		m.AddAttr(dir, "")
	}
}
