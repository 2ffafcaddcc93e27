package webrtcbridge

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/sdp"
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

func pts(cs []codec) []uint8 {
	var out []uint8
	for _, c := range cs {
		out = append(out, c.pt)
	}
	return out
}

func TestAudioCodecs(t *testing.T) {
	o, err := parseBrowserOffer(chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	// red (63) and CN (13) are not relayed; the rest keep Chrome's order.
	if got, want := pts(o.codecs), []uint8{111, 9, 0, 8, 110, 126}; !slices.Equal(got, want) {
		t.Errorf("chrome codecs %v, want %v", got, want)
	}
	if o.codecs[0] != (codec{pt: 111, name: "opus", clock: 48000, channels: 2, fmtp: "minptime=10;useinbandfec=1"}) {
		t.Errorf("opus parsed as %+v", o.codecs[0])
	}
	if o.direction != "sendrecv" {
		t.Errorf("direction %q", o.direction)
	}

	// Static payload types without rtpmap are known.
	p, err := parsePlain(sippOffer)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pts(p.codecs), []uint8{0, 8, 101}; !slices.Equal(got, want) {
		t.Errorf("sipp codecs %v, want %v", got, want)
	}
	if p.peer != netip.MustParseAddrPort("127.0.0.1:6000") || p.index != 0 || len(p.sections) != 2 {
		t.Errorf("sipp section %+v", p)
	}
	if p.codecs[2].fmtp != "0-15" || p.codecs[0].name != "PCMU" || p.codecs[0].clock != 8000 {
		t.Errorf("sipp codecs %+v", p.codecs)
	}
}

func TestPlainOfferFromBrowser(t *testing.T) {
	o, err := parseBrowserOffer(firefoxOffer)
	if err != nil {
		t.Fatal(err)
	}
	b := plainSDP(netip.MustParseAddr("127.0.0.1"), 40000, o.codecs, o.direction, true, nil, 0, "20", "")
	s, err := sdp.Parse(b)
	if err != nil {
		t.Fatalf("plain offer does not parse: %v\n%s", err, b)
	}
	if len(s.Media) != 1 {
		t.Fatalf("plain offer has %d sections:\n%s", len(s.Media), b)
	}
	m := s.Media[0]
	if got := m.Lines[0].Value; got != "audio 40000 RTP/AVP 109 9 0 8 101" {
		t.Errorf("m= %q", got)
	}
	if c, _ := m.EffectiveConnection(s); c.String() != "IN IP4 127.0.0.1" {
		t.Errorf("c= %q", c.String())
	}
	for _, want := range []string{
		"a=rtpmap:109 opus/48000/2", "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1",
		"a=rtpmap:9 G722/8000/1", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-15", "a=ptime:20", "a=rtcp-mux", "a=sendrecv",
	} {
		if !strings.Contains(string(b), want+"\r\n") {
			t.Errorf("plain offer lacks %q:\n%s", want, b)
		}
	}
	for _, bad := range []string{"ice-", "fingerprint", "SAVPF", "setup", "candidate"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("plain offer has %q:\n%s", bad, b)
		}
	}
	if IsWebRTC(b) {
		t.Error("plain offer looks like WebRTC")
	}
}

func TestNegotiate(t *testing.T) {
	offered := []codec{
		{pt: 111, name: "opus", clock: 48000, channels: 2},
		{pt: 0, name: "PCMU", clock: 8000},
		{pt: 110, name: "telephone-event", clock: 48000},
		{pt: 126, name: "telephone-event", clock: 8000},
	}
	// The answerer kept PCMU's number but renumbered telephone-event.
	answered := []codec{
		{pt: 0, name: "PCMU", clock: 8000},
		{pt: 101, name: "telephone-event", clock: 8000},
		{pt: 18, name: "G729", clock: 8000},
	}
	got := negotiate(offered, answered, true)
	if len(got) != 2 || got[0].browser.pt != 0 || got[0].plain.pt != 0 || got[1].browser.pt != 126 || got[1].plain.pt != 101 {
		t.Fatalf("negotiate = %+v", got)
	}
	r := newRoute(got)
	if r.toPlain[126] != 101 || r.toBrowser[101] != 126 || r.toPlain[0] != 0 || r.toBrowser[0] != 0 || r.clock[126] != 8000 {
		t.Errorf("route maps 126→%d 101→%d", r.toPlain[126], r.toBrowser[101])
	}
	// Incoming: the browser (answerer) is the one that renumbered.
	got = negotiate(answered[:2], []codec{{pt: 0, name: "pcmu", clock: 8000}, {pt: 126, name: "telephone-event", clock: 8000}}, false)
	if len(got) != 2 || got[1].plain.pt != 101 || got[1].browser.pt != 126 {
		t.Fatalf("negotiate incoming = %+v", got)
	}
}

func TestPlainAnswerRefusesOtherSections(t *testing.T) {
	p, err := parsePlain(sippOffer)
	if err != nil {
		t.Fatal(err)
	}
	b := plainSDP(netip.MustParseAddr("127.0.0.1"), 41000, p.codecs[:1], answerDirection("sendrecv"), false, p.sections, p.index, "", "")
	s, err := sdp.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(s.Media) != 2 || s.Media[0].Lines[0].Value != "audio 41000 RTP/AVP 0" || s.Media[1].Lines[0].Value != "video 0 RTP/AVP 96" {
		t.Errorf("plain answer:\n%s", b)
	}
	for d, want := range map[string]string{"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "": "sendrecv"} {
		if got := answerDirection(d); got != want {
			t.Errorf("answerDirection(%q) = %q, want %q", d, got, want)
		}
	}
}

func TestBadSDPs(t *testing.T) {
	cfg := testConfig(t)
	offers := map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("\x00\x01\x02 not sdp"),
		"plain":          sippOffer,
		"no audio":       crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=ice-ufrag:a\na=ice-pwd:b\na=fingerprint:sha-256 AA\na=rtpmap:96 VP8/90000\n"),
		"only G729":      []byte(strings.Replace(string(chromeOffer), "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "m=audio 9 UDP/TLS/RTP/SAVPF 18 13 126", 1)),
		"only DTMF":      []byte(strings.Replace(string(chromeOffer), "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "m=audio 9 UDP/TLS/RTP/SAVPF 126", 1)),
		"no fingerprint": []byte(strings.ReplaceAll(string(firefoxOffer), "a=fingerprint:", "a=x-fingerprint:")),
		"bad m= line":    crlf("v=0\nm=audio x RTP/AVP 0\n"),
	}
	for name, o := range offers {
		t.Run("NewFromOffer/"+name, func(t *testing.T) {
			b, plain, err := NewFromOffer(cfg, o)
			if err == nil {
				b.Close()
				t.Fatalf("accepted, gave:\n%s", plain)
			}
			if !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrNoCodec) {
				t.Errorf("error %v is neither ErrBadSDP nor ErrNoCodec", err)
			}
		})
	}
	plains := map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("v=0\r\nfoo"),
		"no audio":  crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5000 RTP/AVP 96\n"),
		"no c=":     crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 5000 RTP/AVP 0\n"),
		"bad c=":    crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 example.com\nt=0 0\nm=audio 5000 RTP/AVP 0\n"),
		"only G729": crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5000 RTP/AVP 18 101\na=rtpmap:101 telephone-event/8000\n"),
	}
	for name, o := range plains {
		t.Run("NewForOffer/"+name, func(t *testing.T) {
			b, offer, err := NewForOffer(cfg, o)
			if err == nil {
				b.Close()
				t.Fatalf("accepted, gave:\n%s", offer)
			}
			if !errors.Is(err, ErrBadSDP) && !errors.Is(err, ErrNoCodec) {
				t.Errorf("error %v is neither ErrBadSDP nor ErrNoCodec", err)
			}
		})
	}

	// Answers the bridge cannot use leave it waiting for a usable one.
	b, _, err := NewFromOffer(cfg, chromeOffer)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for name, tc := range map[string]struct {
		sdp  []byte
		want error
	}{
		"garbage":   {[]byte("nope"), ErrBadSDP},
		"refused":   {crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 0 RTP/AVP 0\n"), ErrRejected},
		"only G729": {crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5000 RTP/AVP 18\n"), ErrNoCodec},
		"only DTMF": {crlf("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5000 RTP/AVP 126\na=rtpmap:126 telephone-event/8000\n"), ErrNoCodec},
	} {
		if ans, err := b.Answer(tc.sdp); !errors.Is(err, tc.want) {
			t.Errorf("Answer(%s) = %v, %q; want %v", name, err, ans, tc.want)
		}
	}
	if _, err := b.Accept(chromeOffer); err == nil {
		t.Error("Accept on an outgoing bridge succeeded")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no address":          {},
		"unspecified address": {Address: netip.IPv4Unspecified()},
		"empty port range":    {Address: netip.MustParseAddr("127.0.0.1"), PortMin: 5000, PortMax: 4000},
		"unspecified plain":   {Address: netip.MustParseAddr("127.0.0.1"), PlainAddress: netip.IPv6Unspecified()},
	} {
		if b, _, err := NewFromOffer(cfg, chromeOffer); err == nil {
			b.Close()
			t.Errorf("%s: NewFromOffer accepted %+v", name, cfg)
		}
	}
}
