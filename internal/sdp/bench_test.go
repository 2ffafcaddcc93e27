package sdp

import (
	"net/netip"
	"testing"
)

// BenchmarkParseMarshal measures the fixed cost of passing an SDP through
// the relay untouched.
func BenchmarkParseMarshal(b *testing.B) {
	in := []byte(audioOffer)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		s, err := Parse(in)
		if err != nil {
			b.Fatal(err)
		}
		_ = s.Marshal()
	}
}

// BenchmarkRewrite measures a typical offer rewrite: relay address at
// session and media level, new media port, a=rtcp pointing at the relay.
func BenchmarkRewrite(b *testing.B) {
	in := []byte(audioOffer)
	relay := NewConnection(netip.MustParseAddr("203.0.113.10"))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		s, err := Parse(in)
		if err != nil {
			b.Fatal(err)
		}
		s.SetConnection(relay)
		for _, m := range s.Media {
			m.SetPort(30000)
			m.SetConnection(relay)
			m.SetRTCP(30001, &relay)
		}
		_ = s.Marshal()
	}
}

func TestBenchmarkInputSize(t *testing.T) {
	// The benchmarks are meant to run on a ~600-byte offer.
	if n := len(audioOffer); n < 550 || n > 700 {
		t.Errorf("audioOffer is %d bytes", n)
	}
}
