package main

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSDPMediaAddr(t *testing.T) {
	cases := []struct {
		name, sdp, want string
	}{
		{"session c", makeSDP(1, 40000), "127.0.0.1:40000"},
		{"media c overrides", "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 30002 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\na=rtcp:30003\r\n", "127.0.0.1:30002"},
		{"LF only, second m= ignored", "v=0\nc=IN IP4 127.0.0.1\nm=audio 30010 RTP/AVP 0\nm=video 30020 RTP/AVP 96\nc=IN IP4 192.0.2.9\n", "127.0.0.1:30010"},
		{"ttl suffix", "v=0\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127\r\n", "224.2.1.1:5004"},
	}
	for _, tc := range cases {
		got, err := sdpMediaAddr(tc.sdp)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
	for name, sdp := range map[string]string{
		"no m=":    "v=0\r\nc=IN IP4 127.0.0.1\r\n",
		"no c=":    "v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
		"bad port": "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 70000 RTP/AVP 0\r\n",
		"bad addr": "v=0\r\nc=IN IP4 localhost\r\nm=audio 4000 RTP/AVP 0\r\n",
	} {
		if _, err := sdpMediaAddr(sdp); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMakeSDP(t *testing.T) {
	s := makeSDP(7, 12345)
	if !strings.Contains(s, "\r\nm=audio 12345 RTP/AVP 0 8 101\r\n") || !strings.HasSuffix(s, "a=sendrecv\r\n") {
		t.Fatalf("unexpected SDP:\n%s", s)
	}
}

func TestLoopbackOnly(t *testing.T) {
	if err := loopbackOnly(netip.MustParseAddrPort("127.0.0.1:4000")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"127.0.0.2:4000", "0.0.0.0:4000", "192.0.2.1:4000", "[::1]:4000"} {
		if err := loopbackOnly(netip.MustParseAddrPort(a)); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
}
