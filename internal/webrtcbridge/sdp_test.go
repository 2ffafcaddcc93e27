package webrtcbridge

import (
	"strings"
	"testing"
)

// crlf turns a readable fixture into wire SDP.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.TrimLeft(s, "\n"), "\n", "\r\n"))
}

// chromeOffer is an audio+video offer as Chromium's createOffer writes it
// (no candidates yet: the Web SDK sends the offer before gathering ends).
var chromeOffer = crlf(`
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 5d3c1a0e-7b2f-4c1e-9a0e-2f1c3b4d5e6f
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Cs7a
a=ice-pwd:b8Y6lVn8N4x0oUqXPY8YcXaT
a=ice-options:trickle
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:5d3c1a0e-7b2f-4c1e-9a0e-2f1c3b4d5e6f 0b1f5a3e-9c8d-4e7f-a6b5-c4d3e2f1a0b9
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:x9Jm4pQ2rT5vW8yZ
a=ssrc:3735928559 msid:5d3c1a0e-7b2f-4c1e-9a0e-2f1c3b4d5e6f 0b1f5a3e-9c8d-4e7f-a6b5-c4d3e2f1a0b9
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Cs7a
a=ice-pwd:b8Y6lVn8N4x0oUqXPY8YcXaT
a=ice-options:trickle
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08
a=setup:actpass
a=mid:1
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=recvonly
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
`)

// firefoxOffer has session-level ICE credentials and fingerprint, as
// Firefox writes them.
var firefoxOffer = crlf(`
v=0
o=mozilla...THIS_IS_SDPARTA-99.0 7106524464433436286 0 IN IP4 0.0.0.0
s=-
t=0 0
a=fingerprint:sha-256 0D:2A:6E:33:91:7C:12:AA:BC:DE:F0:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a=sendrecv
a=ice-pwd:4d1b9e3c2a5f6e7d8c9b0a1f2e3d4c5b
a=ice-ufrag:7f3e2d1c
a=mid:0
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=setup:actpass
`)

// sippOffer is a plain SIP offer with static payload types and no rtpmap
// for them, as sipp and many phones send.
var sippOffer = crlf(`
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
m=video 6002 RTP/AVP 96
a=rtpmap:96 H264/90000
`)

func TestIsWebRTC(t *testing.T) {
	for _, tc := range []struct {
		name string
		sdp  []byte
		want bool
	}{
		{"chrome", chromeOffer, true},
		{"firefox", firefoxOffer, true},
		{"legacy RTP/SAVPF with fingerprint", crlf(`
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
t=0 0
a=fingerprint:sha-256 AA:BB
m=audio 5000 RTP/SAVPF 0
c=IN IP4 10.0.0.1
`), true},
		{"TCP/DTLS", crlf(`
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
t=0 0
m=audio 9 TCP/DTLS/RTP/SAVPF 0
`), true},
		{"sipp plain", sippOffer, false},
		{"plain answer refusing WebRTC video", crlf(`
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 5000 RTP/AVP 0
m=video 0 UDP/TLS/RTP/SAVPF 96
`), false},
		{"bundle-only", crlf(`
v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
t=0 0
m=audio 0 UDP/TLS/RTP/SAVPF 111
a=bundle-only
`), true},
		{"SDES SRTP", crlf(`
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 5000 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
`), false},
		{"ICE over plain RTP", crlf(`
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 5000 RTP/AVP 0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuv
a=candidate:1 1 UDP 2130706431 10.0.0.1 5000 typ host
`), false},
		{"empty", nil, false},
		{"garbage", []byte("hello\x00world"), false},
		{"no media", crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsWebRTC(tc.sdp); got != tc.want {
				t.Errorf("IsWebRTC = %v, want %v", got, tc.want)
			}
		})
	}
}
