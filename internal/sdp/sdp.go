// Package sdp is a lossless, line-based model of Session Description
// Protocol bodies (RFC 8866), built for a media relay that rewrites the SDP
// of ng "offer" and "answer" commands on their way through.
//
// The relay changes only a handful of fields — connection addresses, media
// ports, a=rtcp, ICE attributes, the o= version — and must hand everything
// else back exactly as it arrived: the endpoints, not the relay, own the
// codecs, fmtp, crypto, fingerprints and vendor attributes, and SIP
// proxies and phones are notoriously sensitive to reordered or reformatted
// SDP. Libraries that decode SDP into structs and re-encode it lose unknown
// lines, ordering and spacing, so this package keeps every line as received
// (type letter plus the raw value) and its typed accessors parse on demand
// from those lines. Edits rewrite only the lines they target; every other
// line stays byte-identical.
//
// # Round trip
//
// For any input that Parse accepts, Marshal reproduces it byte for byte,
// with two normalizations:
//
//   - the output always ends with a line ending after the last line, so a
//     missing final newline is added and trailing empty lines are dropped;
//   - every line ending is written as Session.EOL, which is the ending of
//     the first line of the input, so mixed CRLF/LF input comes out with one
//     style.
//
// # Strictness
//
// Parse accepts CRLF and LF line endings and is otherwise strict about the
// line structure, because its input comes from the network and everything
// downstream relies on one line being one SDP field: each line must be a
// single ASCII letter, '=', and a value; the first line must be v=; a carriage
// return may appear only as part of a line ending; and the input is bounded
// by MaxLineLength, MaxLines and MaxMediaSections. Within values it is
// lenient: apart from m= lines (whose port the relay must rewrite) values
// are not validated at parse time, and accessors report malformed values
// through their ok results instead.
//
// A Session is a plain value and is not safe for concurrent use.
package sdp

import (
	"slices"
	"strconv"
	"strings"
)

// Limits enforced by Parse. They bound the memory and time spent on hostile
// input while staying far above anything a real offer needs (a WebRTC offer
// with many candidates is a few hundred lines, its longest lines a few
// hundred bytes). Edits do not enforce them: they protect the parser, not
// the relay's own output.
const (
	// MaxLineLength is the longest line Parse accepts, in bytes, not
	// counting the line ending.
	MaxLineLength = 64 << 10
	// MaxLines is the largest number of lines Parse accepts, not counting
	// trailing empty lines.
	MaxLines = 10000
	// MaxMediaSections is the largest number of m= sections Parse accepts.
	MaxMediaSections = 256
)

// Session is a parsed SDP body: the session-level lines followed by the
// media sections, in input order.
type Session struct {
	// Lines are the session-level lines in input order (v=, o=, s=, c=,
	// t=, a=, …): everything before the first m= line. The attribute
	// methods of Lines are promoted to Session and act on this level only.
	Lines
	// Media are the media sections in input order.
	Media []*Media
	// EOL is the line ending Marshal writes: "\r\n" or "\n". Parse sets it
	// to the ending of the first input line ("\r\n" if the input is a
	// single line without one). Any value other than "\n" is written as
	// "\r\n", the RFC 8866 ending, so a zero Session marshals correctly.
	EOL string
}

// Media is one media section.
type Media struct {
	// Lines holds the section's lines in input order: Lines[0] is the m=
	// line and the rest are the lines up to the next m= line or the end.
	// The attribute methods of Lines are promoted to Media and act on this
	// section only.
	Lines
}

// Line is one SDP line, split at its first '='.
// "a=rtcp:5 IN IP4 1.2.3.4" is Line{Type: 'a', Value: "rtcp:5 IN IP4 1.2.3.4"}.
type Line struct {
	// Type is the line's type letter.
	Type byte
	// Value is everything after the '=', without the line ending, exactly
	// as received.
	Value string
}

// ParseError reports why Parse rejected its input. It is the only error
// type Parse returns, so callers can log the line number next to the
// offending SDP.
type ParseError struct {
	// Line is the 1-based number of the offending line in the input, or 0
	// when the problem concerns the input as a whole (empty input).
	Line int
	// Msg describes the problem.
	Msg string
}

// Error implements the error interface.
func (e *ParseError) Error() string {
	if e.Line == 0 {
		return "sdp: " + e.Msg
	}
	return "sdp: line " + strconv.Itoa(e.Line) + ": " + e.Msg
}

// Parse parses an SDP body. See the package documentation for what it
// accepts and how Marshal reproduces it.
//
// Parse copies b once into a string; every Line.Value is a substring of
// that copy, so the Session does not alias b and parsing costs a handful of
// allocations regardless of the number of lines.
func Parse(b []byte) (*Session, error) {
	if len(b) == 0 {
		return nil, &ParseError{Msg: "empty input"}
	}
	text := string(b)
	// One backing array for all lines; the count of '\n' bounds the number
	// of lines, and MaxLines bounds the allocation for hostile input.
	all := make([]Line, 0, min(strings.Count(text, "\n")+1, MaxLines))
	eol := ""
	blank := 0 // input line number of the first empty line, if any
	media := 0
	lineNo := 0
	for pos := 0; pos < len(text); {
		lineNo++
		var raw string
		terminated := false
		if i := strings.IndexByte(text[pos:], '\n'); i >= 0 {
			raw, pos, terminated = text[pos:pos+i], pos+i+1, true
		} else {
			raw, pos = text[pos:], len(text)
		}
		cr := len(raw) > 0 && raw[len(raw)-1] == '\r'
		if cr {
			raw = raw[:len(raw)-1]
		}
		if eol == "" && terminated {
			eol = "\n"
			if cr {
				eol = "\r\n"
			}
		}
		if raw == "" {
			// Tolerated only at the end: some SIP stacks append an
			// extra CRLF to the body.
			if blank == 0 {
				blank = lineNo
			}
			continue
		}
		if blank != 0 {
			return nil, &ParseError{Line: blank, Msg: "empty line"}
		}
		if len(raw) > MaxLineLength {
			return nil, &ParseError{Line: lineNo, Msg: "line longer than " + strconv.Itoa(MaxLineLength) + " bytes"}
		}
		if len(raw) < 2 || !isLetter(raw[0]) || raw[1] != '=' {
			return nil, &ParseError{Line: lineNo, Msg: "line is not of the form <letter>=<value>"}
		}
		if strings.IndexByte(raw, '\r') >= 0 {
			// A stray CR could not survive a round trip: Marshal would
			// write it next to the line ending, where the next Parse
			// takes it for part of a CRLF.
			return nil, &ParseError{Line: lineNo, Msg: "carriage return inside line"}
		}
		if len(all) == 0 && raw[0] != 'v' {
			return nil, &ParseError{Line: lineNo, Msg: "first line is not v="}
		}
		if len(all) == MaxLines {
			return nil, &ParseError{Line: lineNo, Msg: "more than " + strconv.Itoa(MaxLines) + " lines"}
		}
		if raw[0] == 'm' {
			media++
			if media > MaxMediaSections {
				return nil, &ParseError{Line: lineNo, Msg: "more than " + strconv.Itoa(MaxMediaSections) + " m= sections"}
			}
			if msg := checkMediaLine(raw[2:]); msg != "" {
				return nil, &ParseError{Line: lineNo, Msg: msg}
			}
		}
		all = append(all, Line{Type: raw[0], Value: raw[2:]})
	}
	if len(all) == 0 {
		return nil, &ParseError{Msg: "empty input"}
	}
	if eol == "" {
		eol = "\r\n"
	}

	s := &Session{EOL: eol}
	// Each level gets a sub-slice of the shared array whose capacity equals
	// its length, so an edit that grows one level reallocates that level
	// instead of overwriting the next one.
	first := slices.IndexFunc(all, func(l Line) bool { return l.Type == 'm' })
	if first < 0 {
		s.Lines = all
		return s, nil
	}
	s.Lines = all[:first:first]
	ms := make([]Media, media)
	s.Media = make([]*Media, media)
	start, k := first, 0
	for i := first + 1; i <= len(all); i++ {
		if i == len(all) || all[i].Type == 'm' {
			ms[k].Lines = all[start:i:i]
			s.Media[k] = &ms[k]
			start = i
			k++
		}
	}
	return s, nil
}

// checkMediaLine validates the value of an m= line, returning a non-empty
// message when it is rejected. Only the fields the relay relies on are
// checked: there must be a media type, a port, a protocol and at least one
// format, and the port (with an optional "/count") must be numeric.
func checkMediaLine(v string) string {
	if countFields(v) < 4 {
		return "m= line has fewer than 4 fields"
	}
	port, _, _ := field(v, 1)
	if _, _, ok := parsePortCount(port); !ok {
		return "m= line has an invalid port " + strconv.Quote(port)
	}
	return ""
}

// parsePortCount parses an m= port field: "PORT" or "PORT/COUNT", with PORT
// in 0–65535 and COUNT in 1–65535. count is 1 when absent.
func parsePortCount(f string) (port, count int, ok bool) {
	p, c, found := strings.Cut(f, "/")
	if port, ok = parseUint16(p); !ok {
		return 0, 0, false
	}
	if !found {
		return port, 1, true
	}
	if count, ok = parseUint16(c); !ok || count == 0 {
		return 0, 0, false
	}
	return port, count, true
}

// parseUint16 parses a non-empty string of ASCII digits with a value of at
// most 65535. Leading zeros are accepted because some endpoints pad ports.
func parseUint16(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, false
		}
	}
	return n, true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// Marshal returns the SDP text: every line followed by the line ending
// selected by EOL. It allocates exactly once.
func (s *Session) Marshal() []byte {
	return s.AppendTo(make([]byte, 0, s.size()))
}

// AppendTo appends the SDP text, as produced by Marshal, to dst and returns
// the extended slice, so callers can encode into a reused buffer.
func (s *Session) AppendTo(dst []byte) []byte {
	eol := s.eol()
	dst = slices.Grow(dst, s.size())
	dst = s.Lines.appendTo(dst, eol)
	for _, m := range s.Media {
		if m != nil {
			dst = m.Lines.appendTo(dst, eol)
		}
	}
	return dst
}

func (s *Session) eol() string {
	if s.EOL == "\n" {
		return "\n"
	}
	return "\r\n"
}

// size returns the length of the marshalled text.
func (s *Session) size() int {
	eol := len(s.eol())
	n := s.Lines.size(eol)
	for _, m := range s.Media {
		if m != nil {
			n += m.Lines.size(eol)
		}
	}
	return n
}

func (ls Lines) size(eol int) int {
	n := 0
	for _, l := range ls {
		n += 2 + len(l.Value) + eol
	}
	return n
}

func (ls Lines) appendTo(dst []byte, eol string) []byte {
	for _, l := range ls {
		dst = append(dst, l.Type, '=')
		dst = append(dst, l.Value...)
		dst = append(dst, eol...)
	}
	return dst
}

// isSpace reports whether c separates fields. RFC 8866 prescribes a single
// SP, but runs of spaces and tabs occur in the wild and are tolerated.
func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// field returns the n-th (0-based) whitespace-separated field of v and its
// byte offset in v, so edits can replace exactly that field and keep the
// rest of the value, including unusual spacing, unchanged.
func field(v string, n int) (f string, start int, ok bool) {
	i := 0
	for k := 0; ; k++ {
		for i < len(v) && isSpace(v[i]) {
			i++
		}
		if i == len(v) {
			return "", 0, false
		}
		j := i
		for j < len(v) && !isSpace(v[j]) {
			j++
		}
		if k == n {
			return v[i:j], i, true
		}
		i = j
	}
}

// countFields returns the number of whitespace-separated fields of v.
func countFields(v string) int {
	n := 0
	for i := 0; i < len(v); {
		for i < len(v) && isSpace(v[i]) {
			i++
		}
		if i == len(v) {
			break
		}
		n++
		for i < len(v) && !isSpace(v[i]) {
			i++
		}
	}
	return n
}

// clean makes a caller-supplied string safe to store in a line value by
// replacing CR and LF with spaces. Values set through the edit methods may
// come from the network (ng flags, addresses), and a line break in one
// would inject extra SDP lines.
func clean(v string) string {
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		return v
	}
	// Byte-wise rather than strings.Map, which would also rewrite invalid
	// UTF-8 that must pass through untouched.
	b := []byte(v)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}
