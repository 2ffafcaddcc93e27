package webrtcbridge

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// Suite is an SDES crypto suite (RFC 4568, RFC 7714) that pion's SRTP
// implements.
type Suite struct {
	Name    string
	Profile srtp.ProtectionProfile
	KeyLen  int // master key bytes
	SaltLen int // master salt bytes
}

// Suites lists the SDES suites rtcgate offers, in rtpengine's order of
// preference. rtpengine also offers AES_192_CM and F8 suites, which pion
// does not implement.
var Suites = []Suite{
	{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
	{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
	{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14},
	{"AES_256_CM_HMAC_SHA1_32", srtp.ProtectionProfileAes256CmHmacSha1_32, 32, 14},
	{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
	{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14},
	{"NULL_HMAC_SHA1_80", srtp.ProtectionProfileNullHmacSha1_80, 16, 14},
	{"NULL_HMAC_SHA1_32", srtp.ProtectionProfileNullHmacSha1_32, 16, 14},
}

// SuiteByName finds a suite by name, ignoring case and '-' for '_'.
func SuiteByName(name string) (Suite, bool) {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	for _, s := range Suites {
		if s.Name == n {
			return s, true
		}
	}
	return Suite{}, false
}

// Crypto is one a=crypto line (RFC 4568 §9.1): a tag, a suite and the
// sender's master key and salt. Only the first key-params is used;
// session parameters other than those listed in Params are refused.
type Crypto struct {
	Tag      int
	Suite    Suite
	Key      []byte // master key
	Salt     []byte // master salt
	Lifetime string // "2^31", as written; "" when absent
	MKI      string // "1:4", as written; "" when absent
	Params   []string
}

// ErrCrypto is returned for an a=crypto line rtcgate cannot use; it wraps
// the detail.
var ErrCrypto = errors.New("webrtcbridge: bad a=crypto")

// maxCryptoTag bounds the tag (RFC 4568: at most 9 digits).
const maxCryptoTag = 999999999

// ParseCrypto reads an a=crypto value: "1 AES_CM_128_HMAC_SHA1_80
// inline:KEY[|lifetime][|mki:len][;inline:…] [params]". An unknown suite is
// ErrCrypto too: the caller skips that line and looks at the next.
func ParseCrypto(v string) (Crypto, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, fmt.Errorf("%w: %q wants tag, suite and key", ErrCrypto, v)
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > maxCryptoTag {
		return Crypto{}, fmt.Errorf("%w: tag %q", ErrCrypto, f[0])
	}
	s, ok := SuiteByName(f[1])
	if !ok {
		return Crypto{}, fmt.Errorf("%w: suite %q not supported", ErrCrypto, f[1])
	}
	c := Crypto{Tag: tag, Suite: s, Params: f[3:]}
	for _, p := range c.Params {
		switch strings.ToUpper(p) {
		case "UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP":
			return Crypto{}, fmt.Errorf("%w: session parameter %s not supported", ErrCrypto, p)
		}
	}
	kp, _, _ := strings.Cut(f[2], ";") // first key only
	method, rest, ok := strings.Cut(kp, ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return Crypto{}, fmt.Errorf("%w: key method %q", ErrCrypto, method)
	}
	parts := strings.Split(rest, "|")
	if len(parts) > 3 {
		return Crypto{}, fmt.Errorf("%w: key params %q", ErrCrypto, rest)
	}
	raw, err := decodeKey(parts[0])
	if err != nil || len(raw) != s.KeyLen+s.SaltLen {
		return Crypto{}, fmt.Errorf("%w: %s wants %d bytes of key and salt", ErrCrypto, s.Name, s.KeyLen+s.SaltLen)
	}
	c.Key, c.Salt = raw[:s.KeyLen], raw[s.KeyLen:]
	for _, p := range parts[1:] {
		switch {
		case strings.Contains(p, ":"):
			if c.MKI != "" {
				return Crypto{}, fmt.Errorf("%w: two MKIs", ErrCrypto)
			}
			c.MKI = p
		case c.Lifetime == "" && p != "":
			c.Lifetime = p
		default:
			return Crypto{}, fmt.Errorf("%w: key params %q", ErrCrypto, rest)
		}
	}
	if c.MKI != "" {
		// pion matches an MKI on every packet; rtcgate does not offer
		// one, and a peer that insists gets another line chosen.
		return Crypto{}, fmt.Errorf("%w: MKI not supported", ErrCrypto)
	}
	return c, nil
}

// decodeKey reads base64 with or without '=' padding (RFC 4568 is
// ambiguous, rtpengine's SDES-pad flag exists for it).
func decodeKey(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// NewCrypto makes a crypto line with a fresh random key and salt.
func NewCrypto(tag int, s Suite) Crypto {
	raw := make([]byte, s.KeyLen+s.SaltLen)
	_, _ = rand.Read(raw)
	return Crypto{Tag: tag, Suite: s, Key: raw[:s.KeyLen], Salt: raw[s.KeyLen:]}
}

// String writes the a=crypto value; pad keeps base64 '=' padding
// (rtpengine's SDES-pad), which is left out by default as rtpengine does.
func (c Crypto) String(pad bool) string {
	enc := base64.RawStdEncoding
	if pad {
		enc = base64.StdEncoding
	}
	key := enc.EncodeToString(append(append([]byte{}, c.Key...), c.Salt...))
	if c.Lifetime != "" {
		key += "|" + c.Lifetime
	}
	s := strconv.Itoa(c.Tag) + " " + c.Suite.Name + " inline:" + key
	for _, p := range c.Params {
		s += " " + p
	}
	return s
}
