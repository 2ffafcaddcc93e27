package sdp

import (
	"strconv"
	"strings"
)

// mline returns the value of the m= line, or "" if the section does not
// start with one (possible only for a Media built or edited by hand).
func (m *Media) mline() string {
	if len(m.Lines) == 0 || m.Lines[0].Type != 'm' {
		return ""
	}
	return m.Lines[0].Value
}

// Type returns the media type, the first m= field: "audio", "video",
// "application", …
func (m *Media) Type() string {
	f, _, _ := field(m.mline(), 0)
	return f
}

// Port returns the media port, the second m= field without any "/count".
// It is -1 if the m= line is malformed, which Parse never lets through but
// direct edits of Lines can cause.
func (m *Media) Port() int {
	f, _, _ := field(m.mline(), 1)
	p, _, ok := parsePortCount(f)
	if !ok {
		return -1
	}
	return p
}

// PortCount returns the number of ports from the "port/count" form, 1 when
// there is no count, or -1 if the m= line is malformed.
func (m *Media) PortCount() int {
	f, _, _ := field(m.mline(), 1)
	_, c, ok := parsePortCount(f)
	if !ok {
		return -1
	}
	return c
}

// Proto returns the transport protocol, the third m= field: "RTP/AVP",
// "UDP/TLS/RTP/SAVPF", …
func (m *Media) Proto() string {
	f, _, _ := field(m.mline(), 2)
	return f
}

// Formats returns the media formats, the m= fields after the protocol
// (RTP payload types for RTP protocols), in order.
func (m *Media) Formats() []string {
	v := m.mline()
	var fs []string
	for k := 3; ; k++ {
		f, _, ok := field(v, k)
		if !ok {
			return fs
		}
		fs = append(fs, f)
	}
}

// SetPort replaces the port in the m= line, keeping any "/count" suffix and
// every other byte of the line. It panics if port is outside 0–65535, as
// that is a bug in the caller rather than a property of the input, and does
// nothing if the section has no well-formed m= line.
func (m *Media) SetPort(port int) {
	if port < 0 || port > 65535 {
		panic("sdp: SetPort: port " + strconv.Itoa(port) + " out of range")
	}
	v := m.mline()
	f, start, ok := field(v, 1)
	if !ok {
		return
	}
	end := start + len(f)
	if i := strings.IndexByte(f, '/'); i >= 0 {
		end = start + i
	}
	var b strings.Builder
	b.Grow(len(v) + 5)
	b.WriteString(v[:start])
	var num [8]byte
	b.Write(strconv.AppendInt(num[:0], int64(port), 10))
	b.WriteString(v[end:])
	m.Lines[0].Value = b.String()
}

// ClearPortCount removes a "/count" suffix from the m= port, keeping every
// other byte of the line: a relay that binds one port (pair) for the
// section must not announce consecutive ports it does not have. It does
// nothing when there is no count or no well-formed m= line.
func (m *Media) ClearPortCount() {
	v := m.mline()
	f, start, ok := field(v, 1)
	if !ok {
		return
	}
	i := strings.IndexByte(f, '/')
	if i < 0 {
		return
	}
	m.Lines[0].Value = v[:start+i] + v[start+len(f):]
}

// Connection returns the section's first c= line. ok is false when there
// is none or it does not have exactly three fields; see
// EffectiveConnection for the address media is actually sent to.
func (m *Media) Connection() (Connection, bool) {
	v, found := m.value('c')
	if !found {
		return Connection{}, false
	}
	return parseConnection(v)
}

// SetConnection replaces the section's c= line, removing any further c=
// lines (layered multicast, meaningless once the relay substitutes its own
// unicast address), or inserts one after the m= and i= lines, where RFC
// 8866 puts it.
func (m *Media) SetConnection(c Connection) {
	m.setLine('c', c.String(), 1, "i")
}

// EffectiveConnection returns the connection that applies to the section:
// its own c= line if it has one, else the session-level one of s (which
// may be nil).
func (m *Media) EffectiveConnection(s *Session) (Connection, bool) {
	if m.index('c') >= 0 {
		return m.Connection()
	}
	if s == nil {
		return Connection{}, false
	}
	return s.Connection()
}

// direction returns the first direction attribute in ls, or "".
func (ls Lines) direction() string {
	for _, l := range ls {
		if l.Type != 'a' {
			continue
		}
		switch l.Value {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return l.Value
		}
	}
	return ""
}

// Direction returns the section's media direction: its own sendrecv,
// sendonly, recvonly or inactive attribute, else the session-level one of s
// (which may be nil), else "sendrecv", the RFC 3264 default.
func (m *Media) Direction(s *Session) string {
	if d := m.Lines.direction(); d != "" {
		return d
	}
	if s != nil {
		if d := s.Lines.direction(); d != "" {
			return d
		}
	}
	return "sendrecv"
}

// RTCP returns the RFC 3605 a=rtcp attribute, "a=rtcp:PORT" or
// "a=rtcp:PORT NETTYPE ADDRTYPE ADDRESS". conn is nil when the address is
// absent, meaning the RTP connection address applies. ok is false when
// there is no a=rtcp or it is malformed (bad port, incomplete address).
func (m *Media) RTCP() (port int, conn *Connection, ok bool) {
	v, found := m.Attr("rtcp")
	if !found {
		return 0, nil, false
	}
	p, _, _ := field(v, 0)
	if port, ok = parseUint16(p); !ok {
		return 0, nil, false
	}
	switch countFields(v) {
	case 1:
		return port, nil, true
	case 4:
		_, start, _ := field(v, 1)
		c, _ := parseConnection(v[start:])
		return port, &c, true
	}
	return 0, nil, false
}

// SetRTCP sets the a=rtcp attribute (see SetAttr for placement) to port
// and, if conn is not nil, its address. It panics if port is outside
// 0–65535, like SetPort.
func (m *Media) SetRTCP(port int, conn *Connection) {
	if port < 0 || port > 65535 {
		panic("sdp: SetRTCP: port " + strconv.Itoa(port) + " out of range")
	}
	// Built in one allocation: this runs for every media section of every
	// offer and answer.
	var b strings.Builder
	n := len("rtcp:65535")
	if conn != nil {
		n += 3 + len(conn.NetType) + len(conn.AddrType) + len(conn.Address) + len(conn.Suffix)
	}
	b.Grow(n)
	b.WriteString("rtcp:")
	var num [8]byte
	b.Write(strconv.AppendInt(num[:0], int64(port), 10))
	if conn != nil {
		b.WriteByte(' ')
		b.WriteString(conn.NetType)
		b.WriteByte(' ')
		b.WriteString(conn.AddrType)
		b.WriteByte(' ')
		b.WriteString(conn.Address)
		b.WriteString(conn.Suffix)
	}
	m.setAttrLine("rtcp", Line{Type: 'a', Value: clean(b.String())})
}

// SetProto replaces the transport protocol, the third m= field, keeping
// every other byte of the line. It does nothing without a well-formed m=
// line; proto is cleaned of line breaks.
func (m *Media) SetProto(proto string) {
	v := m.mline()
	f, start, ok := field(v, 2)
	if !ok {
		return
	}
	m.Lines[0].Value = v[:start] + clean(proto) + v[start+len(f):]
}

// SetFormats replaces the formats, the m= fields after the protocol, with
// fs separated by single spaces. It does nothing without a well-formed m=
// line or when fs is empty (an m= line needs at least one format).
func (m *Media) SetFormats(fs []string) {
	v := m.mline()
	f, start, ok := field(v, 2)
	if !ok || len(fs) == 0 {
		return
	}
	m.Lines[0].Value = v[:start+len(f)] + " " + clean(strings.Join(fs, " "))
}
