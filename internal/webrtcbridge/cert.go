package webrtcbridge

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Certificate is the DTLS certificate rtcgate presents to every peer: one
// per process, made at start (a restart rotates it), as rtpengine does.
// Its fingerprint goes into every a=fingerprint rtcgate writes.
type Certificate struct {
	tls tls.Certificate
	der []byte
}

// CertCiphers are the key types NewCertificate makes, by rtpengine's
// dtls-cert-cipher names; the first is the default.
var CertCiphers = []string{"prime256v1", "rsa"}

// NewCertificate makes a self-signed ECDSA P-256 certificate, valid for 30
// days from an hour ago (peers' clocks drift).
func NewCertificate() (*Certificate, error) { return NewCertificateOf("prime256v1", 0) }

// NewCertificateOf makes the certificate with a key of cipher (one of
// CertCiphers): ECDSA P-256, or RSA of rsaBits bits, as rtpengine's
// dtls-cert-cipher and dtls-rsa-key-size.
func NewCertificateOf(cipher string, rsaBits int) (*Certificate, error) {
	var key crypto.Signer
	var err error
	switch strings.ToLower(cipher) {
	case "prime256v1", "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return nil, fmt.Errorf("webrtcbridge: certificate cipher %q: want one of %v", cipher, CertCiphers)
	}
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "rtcgate"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: certificate: %w", err)
	}
	// The parsed leaf goes with it: pion parses a certificate without one
	// on every handshake.
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: certificate: %w", err)
	}
	return &Certificate{tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, der: der}, nil
}

// FingerprintHashes are the a=fingerprint hash functions rtcgate writes and
// checks, by their SDP names (RFC 8122), sha-256 first: the default.
var FingerprintHashes = []string{"sha-256", "sha-1", "sha-224", "sha-384", "sha-512"}

func digest(hash string, der []byte) ([]byte, bool) {
	switch strings.ToLower(hash) {
	case "sha-1":
		d := sha1.Sum(der)
		return d[:], true
	case "sha-224":
		d := sha256.Sum224(der)
		return d[:], true
	case "sha-256":
		d := sha256.Sum256(der)
		return d[:], true
	case "sha-384":
		d := sha512.Sum384(der)
		return d[:], true
	case "sha-512":
		d := sha512.Sum512(der)
		return d[:], true
	}
	return nil, false
}

// Fingerprint is the a=fingerprint value of the certificate with hash
// ("sha-256" when empty or unknown): "sha-256 AB:CD:…".
func (c *Certificate) Fingerprint(hash string) string {
	hash = strings.ToLower(hash)
	d, ok := digest(hash, c.der)
	if !ok {
		hash = "sha-256"
		d, _ = digest(hash, c.der)
	}
	return hash + " " + fingerprintHex(d)
}

func fingerprintHex(d []byte) string {
	h := strings.ToUpper(hex.EncodeToString(d))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// Fingerprint is a peer's a=fingerprint: a hash function and the digest
// of the certificate it will present.
type Fingerprint struct {
	Hash   string // lower case: "sha-256"
	Digest []byte
}

// ErrFingerprint is returned for an a=fingerprint rtcgate cannot use.
var ErrFingerprint = errors.New("webrtcbridge: bad a=fingerprint")

// ParseFingerprint reads an a=fingerprint value, "sha-256 AB:CD:…". The hash
// must be one of FingerprintHashes and the digest its length.
func ParseFingerprint(v string) (Fingerprint, error) {
	hash, hexd, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Fingerprint{}, fmt.Errorf("%w: %q has no digest", ErrFingerprint, v)
	}
	hash = strings.ToLower(hash)
	want, known := digest(hash, nil)
	if !known {
		return Fingerprint{}, fmt.Errorf("%w: hash %q not supported", ErrFingerprint, hash)
	}
	hexd = strings.TrimSpace(hexd)
	if len(hexd) != 3*len(want)-1 {
		return Fingerprint{}, fmt.Errorf("%w: %s digest of %d characters", ErrFingerprint, hash, len(hexd))
	}
	d := make([]byte, len(want))
	for i := range d {
		if i > 0 && hexd[3*i-1] != ':' {
			return Fingerprint{}, fmt.Errorf("%w: digest not colon-separated", ErrFingerprint)
		}
		b, err := hex.DecodeString(hexd[3*i : 3*i+2])
		if err != nil {
			return Fingerprint{}, fmt.Errorf("%w: digest not hexadecimal", ErrFingerprint)
		}
		d[i] = b[0]
	}
	return Fingerprint{Hash: hash, Digest: d}, nil
}

// Matches reports whether der (a certificate a peer presented) has the
// fingerprint.
func (f Fingerprint) Matches(der []byte) bool {
	d, ok := digest(f.Hash, der)
	return ok && len(d) == len(f.Digest) && string(d) == string(f.Digest)
}
