package gateway

import (
	"testing"

	"github.com/rtcgate/rtcgate/internal/sdp"
)

// FuzzBrowserSDP: the gateway's own SDP edits for a browser's call
// (refuseNonRTP, completeAnswer, forSIP) take any offer and answer: no
// panic; an edited SDP parses again; a completed answer has at least the
// offer's sections, its refused ones with the offer's protocol.
//
//	go test -run '^$' -fuzz FuzzBrowserSDP -fuzztime 30s ./internal/gateway/
func FuzzBrowserSDP(f *testing.F) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=msid-semantic: WMS x\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\na=ssrc:1 cname:x\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtcp-fb:96 nack\r\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n"
	answer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n"
	f.Add([]byte(offer), []byte(answer))
	f.Add([]byte(answer), []byte(offer))
	f.Add([]byte("v=0\r\nm=image 5 udptl t38\r\n"), []byte("v=0\r\n"))
	f.Add([]byte(""), []byte("x"))
	f.Fuzz(func(t *testing.T, o, a []byte) {
		for _, b := range [][]byte{refuseNonRTP(o), forSIP(o)} {
			if _, err := sdp.Parse(o); err == nil {
				if _, err := sdp.Parse(b); err != nil {
					t.Fatalf("edited SDP does not parse: %v\n%q", err, b)
				}
			}
		}
		out := completeAnswer(o, a)
		os, oerr := sdp.Parse(o)
		_, aerr := sdp.Parse(a)
		if oerr != nil || aerr != nil {
			if string(out) != string(a) {
				t.Fatalf("an unparsable pair changed the answer: %q", out)
			}
			return
		}
		as, err := sdp.Parse(out)
		if err != nil {
			t.Fatalf("completed answer does not parse: %v\n%q", err, out)
		}
		if len(as.Media) < len(os.Media) {
			t.Fatalf("completed answer has %d sections, the offer %d", len(as.Media), len(os.Media))
		}
		for i, om := range os.Media {
			if am := as.Media[i]; am.Port() == 0 && am.Proto() != om.Proto() {
				t.Fatalf("refused section %d has protocol %q, the offer %q", i, am.Proto(), om.Proto())
			}
		}
	})
}
