package sdp

import "strings"

// crlf turns a readable LF-separated fixture into RFC 8866 CRLF text.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// phoneOffer is an offer as a SIP phone sends it through Kamailio: several
// codecs with fmtp, ptime, an RFC 3605 a=rtcp, bandwidth lines, SDES crypto
// and vendor x- attributes with odd spacing that must survive untouched.
var phoneOffer = crlf(`v=0
o=- 3912345678 3912345679 IN IP4 192.168.1.20
s=pjmedia
b=AS:84
t=0 0
a=X-nat:0
m=audio 4000 RTP/SAVP 0 8 9 101 96
c=IN IP4 192.168.1.20
b=TIAS:64000
a=rtcp:4001 IN IP4 192.168.1.20
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1;maxplaybackrate=16000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyBzaWduYXR1cmU=|2^20|1:32
a=ptime:20
a=maxptime:150
a=sendrecv
a=x-custom-attr:foo  bar	baz 
a=x-flag
`)

// chromeOffer is a WebRTC offer from Chrome: BUNDLE group, ICE at media
// level, DTLS fingerprint and setup, mid, extmap, rtcp-mux, ssrc lines and
// two m= sections.
var chromeOffer = crlf(`v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 5yVgRTUcb8vZP3r3mOmzBIcjHSUnMR0mMYLF
m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 203.0.113.7
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 192.168.0.196 54400 typ host generation 0 network-id 1
a=candidate:2169523083 1 udp 1686052607 203.0.113.7 54400 typ srflx raddr 192.168.0.196 rport 54400 generation 0 network-id 1
a=candidate:435653019 1 tcp 1518280447 192.168.0.196 9 typ host tcptype active generation 0 network-id 1
a=ice-ufrag:EsAw
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
a=ice-options:trickle
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:5yVgRTUcb8vZP3r3mOmzBIcjHSUnMR0mMYLF 2e2a8bd0-8ad4-4b6a-9bff-0b5e4d0e2fa1
a=rtcp-mux
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
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6
a=ssrc:3570614608 msid:5yVgRTUcb8vZP3r3mOmzBIcjHSUnMR0mMYLF 2e2a8bd0-8ad4-4b6a-9bff-0b5e4d0e2fa1
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
a=ice-options:trickle
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
a=setup:actpass
a=mid:1
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
a=sendrecv
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=ssrc-group:FID 1120565164 2718541228
a=ssrc:1120565164 cname:4TOk42mSjXCkVIa6
a=ssrc:2718541228 cname:4TOk42mSjXCkVIa6
`)

// holdOffer puts a call on hold the RFC 2543 way (c=0.0.0.0) and with a
// direction attribute at session level.
var holdOffer = crlf(`v=0
o=alice 2890844526 2890844527 IN IP4 host.atlanta.example.com
s= 
c=IN IP4 0.0.0.0
t=0 0
a=sendonly
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
`)

// ipv6Offer uses IPv6 connection and origin addresses.
var ipv6Offer = crlf(`v=0
o=- 1 1 IN IP6 ::1
s=-
c=IN IP6 ::1
t=0 0
m=audio 5004 RTP/AVP 8
a=recvonly
`)

// portCountOffer uses the m= "port/count" form and a multicast address
// with TTL and count (RFC 8866 §5.7 and §5.14).
var portCountOffer = crlf(`v=0
o=- 1 1 IN IP4 198.51.100.1
s=layered
c=IN IP4 233.252.0.1/127/3
t=0 0
m=video 49170/2 RTP/AVP 31
`)

// audioOffer is the ~600-byte offer the benchmarks rewrite.
var audioOffer = crlf(`v=0
o=- 3912345678 3912345678 IN IP4 10.0.0.15
s=Kamailio Call
c=IN IP4 10.0.0.15
t=0 0
m=audio 16384 RTP/AVP 9 0 8 18 101 96
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1;usedtx=0;maxplaybackrate=24000;sprop-maxcapturerate=24000
a=ptime:20
a=maxptime:40
a=rtcp:16385 IN IP4 10.0.0.15
a=sendrecv
a=x-rtp-session-id:8E1F7CA5C1A44AF2B1E1DC0AE0A7C0F4
a=label:main-audio
a=ssrc:2147483647 cname:kamailio@10.0.0.15
a=silenceSupp:off - - - -
a=x-plc:on
`)
