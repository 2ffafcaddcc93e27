package webrtcbridge

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"strconv"
	"strings"
)

// Candidate is one a=candidate line (RFC 8839 §5.1).
type Candidate struct {
	Foundation string
	Component  int
	Transport  string // "UDP", as written
	Priority   uint32
	Addr       netip.AddrPort
	Type       string // host, srflx, prflx, relay
}

// ErrCandidate is returned for an a=candidate rtcgate cannot read.
var ErrCandidate = errors.New("webrtcbridge: bad a=candidate")

// ParseCandidate reads an a=candidate value. Candidates with a host name
// (mDNS ".local" names browsers write) are ErrCandidate: the relay needs an
// address; the peer's checks reach it anyway.
func ParseCandidate(v string) (Candidate, error) {
	f := strings.Fields(v)
	if len(f) < 8 || f[6] != "typ" {
		return Candidate{}, fmt.Errorf("%w: %q", ErrCandidate, v)
	}
	comp, err := strconv.Atoi(f[1])
	if err != nil || comp < 1 || comp > 256 {
		return Candidate{}, fmt.Errorf("%w: component %q", ErrCandidate, f[1])
	}
	prio, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: priority %q", ErrCandidate, f[3])
	}
	ip, err := netip.ParseAddr(f[4])
	if err != nil || ip.Zone() != "" {
		return Candidate{}, fmt.Errorf("%w: address %q", ErrCandidate, f[4])
	}
	port, err := strconv.ParseUint(f[5], 10, 16)
	if err != nil {
		return Candidate{}, fmt.Errorf("%w: port %q", ErrCandidate, f[5])
	}
	if len(f[0]) == 0 || len(f[0]) > 32 {
		return Candidate{}, fmt.Errorf("%w: foundation %q", ErrCandidate, f[0])
	}
	return Candidate{Foundation: f[0], Component: comp, Transport: f[2], Priority: uint32(prio),
		Addr: netip.AddrPortFrom(ip.Unmap(), uint16(port)), Type: f[7]}, nil
}

// String writes the a=candidate value.
func (c Candidate) String() string {
	return c.Foundation + " " + strconv.Itoa(c.Component) + " " + c.Transport + " " +
		strconv.FormatUint(uint64(c.Priority), 10) + " " + c.Addr.Addr().String() + " " +
		strconv.Itoa(int(c.Addr.Port())) + " typ " + c.Type
}

// HostCandidate is rtcgate's host candidate for one relay socket, with the
// priority rtpengine gives it (type preference 126, local preference
// 65535) and a foundation that stays the same for the same address.
func HostCandidate(addr netip.AddrPort, component int) Candidate {
	return Candidate{
		Foundation: foundation(addr.Addr()),
		Component:  component,
		Transport:  "UDP",
		Priority:   126<<24 | 65535<<8 | uint32(256-component),
		Addr:       addr,
		Type:       "host",
	}
}

const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// foundation is 16 characters derived from the address: RFC 8445 wants the
// same foundation for candidates of the same type and base.
func foundation(a netip.Addr) string {
	b, _ := a.MarshalBinary()
	x := uint64(crc32.ChecksumIEEE(b))<<32 | uint64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	out := make([]byte, 16)
	for i := range out {
		out[i] = iceChars[x%uint64(len(iceChars))]
		x = x/uint64(len(iceChars)) + uint64(i)*2654435761
	}
	return string(out)
}

func randomICEString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = iceChars[int(b[i])%len(iceChars)]
	}
	return string(b)
}

// NewICECredentials returns a fresh ice-ufrag (8 characters) and ice-pwd
// (26), the lengths rtpengine writes.
func NewICECredentials() (ufrag, pwd string) {
	return randomICEString(8), randomICEString(26)
}

// ValidICECredential reports whether s is a usable ice-ufrag (min 4) or
// ice-pwd (min 22) of ice-chars, up to 256 characters (RFC 8839 §5.4).
func ValidICECredential(s string, min int) bool {
	if len(s) < min || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}
