package webrtcbridge

import "testing"

// The fuzz targets cover the SDP handling this package does itself (the
// attribute parsers: FuzzAttributes). pion's own parsing is pion's to
// fuzz. Run one with e.g.
//
//	go test -run '^$' -fuzz FuzzIsWebRTC -fuzztime 30s ./internal/webrtcbridge/

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
