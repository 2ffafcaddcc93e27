package webrtcbridge

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseCrypto(t *testing.T) {
	c := NewCrypto(7, Suites[2]) // AES_256_CM_HMAC_SHA1_80: 46 bytes, padded
	for _, pad := range []bool{false, true} {
		v := c.String(pad)
		if strings.HasSuffix(strings.Fields(v)[2], "=") != pad {
			t.Errorf("pad=%v: %q", pad, v)
		}
		got, err := ParseCrypto(v)
		if err != nil || got.Tag != 7 || got.Suite.Name != "AES_256_CM_HMAC_SHA1_80" || !bytes.Equal(got.Key, c.Key) || !bytes.Equal(got.Salt, c.Salt) {
			t.Fatalf("ParseCrypto(%q) = %+v, %v", v, got, err)
		}
	}
	got, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20 KDR=1")
	if err != nil || got.Lifetime != "2^20" || len(got.Params) != 1 {
		t.Fatalf("with lifetime: %+v %v", got, err)
	}
	for _, bad := range []string{
		"", "1", "1 AES_CM_128_HMAC_SHA1_80", "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
		"1 AES_192_CM_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj", // pion has no AES-192
		"1 AES_CM_128_HMAC_SHA1_80 inline:short",
		"1 AES_CM_128_HMAC_SHA1_80 uri:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
		"1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4", // MKI
		"1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj UNENCRYPTED_SRTP",
		"1000000000 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
	} {
		if _, err := ParseCrypto(bad); !errors.Is(err, ErrCrypto) {
			t.Errorf("ParseCrypto(%q) = %v, want ErrCrypto", bad, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range FingerprintHashes {
		v := cert.Fingerprint(h)
		fp, err := ParseFingerprint(v)
		if err != nil || fp.Hash != h || !fp.Matches(cert.der) {
			t.Fatalf("%s: %q → %+v %v", h, v, fp, err)
		}
	}
	if !strings.HasPrefix(cert.Fingerprint(""), "sha-256 ") || !strings.HasPrefix(cert.Fingerprint("md5"), "sha-256 ") {
		t.Error("default hash is not sha-256")
	}
	other, _ := NewCertificate()
	fp, _ := ParseFingerprint(other.Fingerprint("sha-256"))
	if fp.Matches(cert.der) {
		t.Error("another certificate matches")
	}
	for _, bad := range []string{"", "sha-256", "md5 AA:BB", "sha-256 AA:BB", "sha-1 " + strings.Repeat("ZZ:", 19) + "ZZ", "sha-1 " + strings.Repeat("AA-", 19) + "AA"} {
		if _, err := ParseFingerprint(bad); !errors.Is(err, ErrFingerprint) {
			t.Errorf("ParseFingerprint(%q) = %v", bad, err)
		}
	}
}

func TestCandidate(t *testing.T) {
	c := HostCandidate(netip.MustParseAddrPort("192.0.2.1:40000"), 1)
	if c.Priority != 2130706431 || len(c.Foundation) != 16 {
		t.Errorf("host candidate %+v", c)
	}
	got, err := ParseCandidate(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip %q: %+v %v", c.String(), got, err)
	}
	got, err = ParseCandidate("842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 network-cost 999")
	if err != nil || got.Type != "srflx" || got.Addr != netip.MustParseAddrPort("203.0.113.7:61665") {
		t.Fatalf("chrome srflx: %+v %v", got, err)
	}
	for _, bad := range []string{"", "1 1 udp 1 abc.local 5000 typ host", "1 0 udp 1 1.2.3.4 5 typ host", "1 1 udp x 1.2.3.4 5 typ host",
		"1 1 udp 1 1.2.3.4 70000 typ host", "1 1 udp 1 fe80::1%eth0 5 typ host", "1 1 udp 1 1.2.3.4 5 type host"} {
		if _, err := ParseCandidate(bad); !errors.Is(err, ErrCandidate) {
			t.Errorf("ParseCandidate(%q) = %v", bad, err)
		}
	}
	u, p := NewICECredentials()
	if !ValidICECredential(u, 4) || !ValidICECredential(p, 22) || len(u) != 8 || len(p) != 26 {
		t.Errorf("credentials %q %q", u, p)
	}
}

// FuzzAttributes: the a=crypto, a=fingerprint and a=candidate parsers take
// anything without a panic, and what they accept writes back to a value
// they accept again.
func FuzzAttributes(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4;inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVow|2^20|2:4 FEC_ORDER=FEC_SRTP",
		"2 AEAD_AES_256_GCM inline:7dOsKLmpL41QCOV8IKk+jHx7G9XRNZICnYtBtqoRlf6GzGdxKtu/IR2u7PQ",
		"sha-256 CD:8F:D3:5A:FD:89:D5:4E:83:2A:CC:A1:5D:13:01:64:76:4A:BC:8F:D4:54:9B:99:42:B8:86:14:C5:91:4A:1D",
		"YML4nj20YkhGVYDP 1 UDP 2130706431 127.0.0.1 23038 typ host",
		"1 1 udp 2122260223 ::1 51000 typ host generation 0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if c, err := ParseCrypto(v); err == nil {
			if _, err := ParseCrypto(c.String(false)); err != nil {
				t.Fatalf("%q parsed but %q does not: %v", v, c.String(false), err)
			}
		}
		if fp, err := ParseFingerprint(v); err == nil && len(fp.Digest) == 0 {
			t.Fatalf("%q: empty digest", v)
		}
		if c, err := ParseCandidate(v); err == nil {
			if _, err := ParseCandidate(c.String()); err != nil {
				t.Fatalf("%q parsed but %q does not: %v", v, c.String(), err)
			}
		}
	})
}
