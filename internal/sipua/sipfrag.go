package sipua

import (
	"bytes"
	"strings"
)

// parseSipfrag reads the status line a NOTIFY for a REFER carries in its
// message/sipfrag body (RFC 3420, RFC 3515): "SIP/2.0 200 OK". ok is false
// when the body does not start with a status line.
func parseSipfrag(body []byte) (code int, reason string, ok bool) {
	body = bytes.TrimLeft(body, " \t\r\n")
	line := body
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	// SIP-Version: "SIP/" 1*DIGIT "." 1*DIGIT, case-insensitive.
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || !validVersion(line[:sp]) {
		return 0, "", false
	}
	rest := line[sp+1:]
	if len(rest) < 3 {
		return 0, "", false
	}
	for _, d := range rest[:3] {
		if d < '0' || d > '9' {
			return 0, "", false
		}
		code = code*10 + int(d-'0')
	}
	if code < 100 || code > 699 {
		return 0, "", false
	}
	rest = rest[3:]
	switch {
	case len(rest) == 0:
	case rest[0] == ' ':
		reason = strings.TrimSpace(string(rest[1:]))
	default:
		return 0, "", false
	}
	return code, reason, true
}

func validVersion(v []byte) bool {
	if len(v) < 7 || !strings.EqualFold(string(v[:4]), "SIP/") {
		return false
	}
	major, minor, found := bytes.Cut(v[4:], []byte("."))
	return found && allDigits(major) && allDigits(minor)
}

func allDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
