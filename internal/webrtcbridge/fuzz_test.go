package webrtcbridge

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/rtcgate/rtcgate/internal/sdp"
)

// The fuzz targets cover the SDP handling this package does itself: what it
// reads from a browser's or the engine's SDP and the plain SDPs it writes.
// pion's own parsing is pion's to fuzz. Run one with e.g.
//
//	go test -run '^$' -fuzz FuzzBrowserOffer -fuzztime 30s ./internal/webrtcbridge/

func seeds(f *testing.F) {
	for _, s := range [][]byte{chromeOffer, firefoxOffer, sippOffer, nil, []byte("v=0\r\n"),
		crlf("v=0\nm=audio 1 RTP/AVP 0 0 200 -1 x\na=rtpmap:0 PCMU/8000/0\na=rtpmap:0 opus/48000/2\na=fmtp:0\n"),
		crlf("v=0\nc=IN IP6 ::1\nm=audio 65535 RTP/AVP 96\na=rtpmap:96 telephone-event/8000\na=sendonly\n"),
	} {
		f.Add(s)
	}
}

// FuzzIsWebRTC: any input gives an answer, never a panic.
func FuzzIsWebRTC(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		IsWebRTC(b)
	})
}

// FuzzBrowserOffer: whatever browser offer is accepted yields a plain offer
// that parses, is not WebRTC, and reads back as the same codecs.
func FuzzBrowserOffer(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := parseBrowserOffer(b)
		if err != nil {
			return
		}
		if !hasVoice(o.codecs) {
			t.Fatalf("accepted an offer without a voice codec: %+v", o.codecs)
		}
		plain := plainSDP(netip.MustParseAddr("127.0.0.1"), 40000, o.codecs, o.direction, true, nil, 0, o.ptime, o.maxptime)
		checkPlain(t, plain, o.codecs, 1)
	})
}

// FuzzPlainSDP: whatever plain offer is accepted yields a plain answer
// with as many sections, which parses and reads back as the chosen codecs.
func FuzzPlainSDP(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePlain(b)
		if err != nil {
			return
		}
		if p.index < 0 || p.index >= len(p.sections) {
			t.Fatalf("audio section %d of %d", p.index, len(p.sections))
		}
		// The browser accepts whatever was offered.
		pairs := negotiate(p.codecs, p.codecs, false)
		if len(pairs) != len(p.codecs) {
			t.Fatalf("self-negotiation kept %d of %d codecs", len(pairs), len(p.codecs))
		}
		chosen := make([]codec, len(pairs))
		for i, pr := range pairs {
			chosen[i] = pr.plain
		}
		if !hasVoice(chosen) {
			return
		}
		ans := plainSDP(netip.MustParseAddr("127.0.0.1"), 40000, chosen, answerDirection(p.direction), p.rtcpMux, p.sections, p.index, "", "")
		checkPlain(t, ans, chosen, len(p.sections))
	})
}

// checkPlain checks an SDP the bridge wrote for the engine.
func checkPlain(t *testing.T, plain []byte, want []codec, sections int) {
	t.Helper()
	s, err := sdp.Parse(plain)
	if err != nil {
		t.Fatalf("plain SDP does not parse: %v\n%q", err, plain)
	}
	if len(s.Media) != sections {
		t.Fatalf("plain SDP has %d sections, want %d:\n%q", len(s.Media), sections, plain)
	}
	if IsWebRTC(plain) {
		t.Fatalf("plain SDP is WebRTC:\n%q", plain)
	}
	back, err := parsePlain(plain)
	if err != nil {
		t.Fatalf("plain SDP does not read back: %v\n%q", err, plain)
	}
	if back.peer != netip.MustParseAddrPort("127.0.0.1:40000") {
		t.Fatalf("plain SDP points at %v", back.peer)
	}
	if !slices.EqualFunc(back.codecs, want, func(a, b codec) bool { return a.pt == b.pt && a.same(b) && a.fmtp == b.fmtp }) {
		t.Fatalf("plain SDP reads back as %+v, want %+v\n%q", back.codecs, want, plain)
	}
}
