package sdp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestOrigin(t *testing.T) {
	tests := []struct {
		in   string
		want Origin
		ok   bool
	}{
		{phoneOffer, Origin{"-", "3912345678", "3912345679", "IN", "IP4", "192.168.1.20"}, true},
		{holdOffer, Origin{"alice", "2890844526", "2890844527", "IN", "IP4", "host.atlanta.example.com"}, true},
		{ipv6Offer, Origin{"-", "1", "1", "IN", "IP6", "::1"}, true},
		{"v=0\no=Polycom  VVX 1 2 IN IP4 10.0.0.1\n", Origin{"Polycom  VVX", "1", "2", "IN", "IP4", "10.0.0.1"}, true},
		{"v=0\no= \t user 1 2 IN IP4 10.0.0.1 \n", Origin{"user", "1", "2", "IN", "IP4", "10.0.0.1"}, true},
		{"v=0\no=- 1 2 IN IP4\n", Origin{}, false},
		{"v=0\ns=-\n", Origin{}, false},
	}
	for _, tt := range tests {
		o, ok := mustParse(t, tt.in).Origin()
		if o != tt.want || ok != tt.ok {
			t.Errorf("Origin() = %+v, %v; want %+v, %v", o, ok, tt.want, tt.ok)
		}
	}
}

func TestSetOrigin(t *testing.T) {
	o := Origin{"rtcgate", "42", "7", "IN", "IP6", "2001:db8::1"}

	s := mustParse(t, ipv6Offer)
	s.SetOrigin(o)
	checkOutput(t, s, strings.Replace(ipv6Offer, "o=- 1 1 IN IP6 ::1", "o=rtcgate 42 7 IN IP6 2001:db8::1", 1))

	// Missing o= goes right after v=; empty fields keep the six-field shape.
	s = mustParse(t, "v=0\ns=-\nt=0 0\n")
	s.SetOrigin(Origin{SessionID: "1", SessionVersion: "2", NetType: "IN", AddrType: "IP4", Address: "192.0.2.1"})
	checkOutput(t, s, "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nt=0 0\n")

	// Duplicates are removed, and line breaks cannot be injected.
	s = mustParse(t, "v=0\no=a 1 1 IN IP4 1.1.1.1\ns=-\no=b 2 2 IN IP4 2.2.2.2\n")
	s.SetOrigin(Origin{"x\r\ny", "1", "1", "IN", "IP4", "3.3.3.3"})
	checkOutput(t, s, "v=0\no=x  y 1 1 IN IP4 3.3.3.3\ns=-\n")
	if got, _ := s.Origin(); got.Username != "x  y" {
		t.Errorf("Username = %q", got.Username)
	}
}

func TestIncrementVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"o=- 1 1 IN IP4 1.1.1.1", "o=- 1 2 IN IP4 1.1.1.1"},
		{"o=- 1 9 IN IP4 1.1.1.1", "o=- 1 10 IN IP4 1.1.1.1"},
		{"o=- 1 0 IN IP4 1.1.1.1", "o=- 1 1 IN IP4 1.1.1.1"},
		{"o=- 1 0099 IN IP4 1.1.1.1", "o=- 1 0100 IN IP4 1.1.1.1"},
		// Beyond uint64: no wraparound.
		{"o=- 1 18446744073709551615 IN IP4 1.1.1.1", "o=- 1 18446744073709551616 IN IP4 1.1.1.1"},
		{"o=- 1 99999999999999999999 IN IP4 1.1.1.1", "o=- 1 100000000000000000000 IN IP4 1.1.1.1"},
		// Session ID equal to the version: only the version changes.
		{"o=- 5 5 IN IP4 5.5.5.5", "o=- 5 6 IN IP4 5.5.5.5"},
		// Odd spacing and a username with spaces survive.
		{"o=my user  3912345678\t3912345678  IN IP4 10.0.0.1 ", "o=my user  3912345678\t3912345679  IN IP4 10.0.0.1 "},
		// Not a number, too few fields: unchanged.
		{"o=- 1 x IN IP4 1.1.1.1", "o=- 1 x IN IP4 1.1.1.1"},
		{"o=- 1 -1 IN IP4 1.1.1.1", "o=- 1 -1 IN IP4 1.1.1.1"},
		{"o=- 1 1 IN IP4", "o=- 1 1 IN IP4"},
	}
	for _, tt := range tests {
		s := mustParse(t, "v=0\n"+tt.in+"\ns=-\n")
		s.IncrementVersion()
		checkOutput(t, s, "v=0\n"+tt.want+"\ns=-\n")
	}

	s := mustParse(t, "v=0\ns=-\n")
	s.IncrementVersion()
	checkOutput(t, s, "v=0\ns=-\n")

	s = mustParse(t, phoneOffer)
	s.IncrementVersion()
	s.IncrementVersion()
	checkOutput(t, s, strings.Replace(phoneOffer, "3912345679", "3912345681", 1))
}

func TestSessionName(t *testing.T) {
	s := mustParse(t, phoneOffer)
	if got := s.SessionName(); got != "pjmedia" {
		t.Errorf("SessionName = %q", got)
	}
	s.SetSessionName("rtcgate")
	checkOutput(t, s, strings.Replace(phoneOffer, "s=pjmedia", "s=rtcgate", 1))

	s = mustParse(t, holdOffer)
	if got := s.SessionName(); got != " " {
		t.Errorf("SessionName = %q", got)
	}
	s.SetSessionName("")
	checkOutput(t, s, holdOffer)

	s = mustParse(t, "v=0\no=- 1 1 IN IP4 1.1.1.1\nt=0 0\n")
	if got := s.SessionName(); got != "" {
		t.Errorf("SessionName = %q", got)
	}
	s.SetSessionName("a\nb")
	checkOutput(t, s, "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=a b\nt=0 0\n")

	s = mustParse(t, "v=0\nt=0 0\n")
	s.SetSessionName("x")
	checkOutput(t, s, "v=0\ns=x\nt=0 0\n")
}

func TestConnectionParse(t *testing.T) {
	tests := []struct {
		in   string
		want Connection
		ok   bool
	}{
		{phoneOffer, Connection{}, false}, // media level only
		{holdOffer, Connection{"IN", "IP4", "0.0.0.0", ""}, true},
		{ipv6Offer, Connection{"IN", "IP6", "::1", ""}, true},
		{portCountOffer, Connection{"IN", "IP4", "233.252.0.1", "/127/3"}, true},
		{"v=0\nc=IN IP6 FF15::101/3\n", Connection{"IN", "IP6", "FF15::101", "/3"}, true},
		{"v=0\nc=IN  IP4\t192.0.2.1 \n", Connection{"IN", "IP4", "192.0.2.1", ""}, true},
		{"v=0\nc=IN IP4\n", Connection{}, false},
		{"v=0\nc=IN IP4 1.1.1.1 extra\n", Connection{}, false},
	}
	for _, tt := range tests {
		c, ok := mustParse(t, tt.in).Connection()
		if c != tt.want || ok != tt.ok {
			t.Errorf("Connection() = %+v, %v; want %+v, %v", c, ok, tt.want, tt.ok)
		}
	}

	c := Connection{"IN", "IP4", "233.252.0.1", "/127/3"}
	if got := c.String(); got != "IN IP4 233.252.0.1/127/3" {
		t.Errorf("String = %q", got)
	}
	if ip, ok := c.Addr(); !ok || ip != netip.MustParseAddr("233.252.0.1") {
		t.Errorf("Addr = %v, %v", ip, ok)
	}
	if _, ok := (Connection{Address: "host.example.com"}).Addr(); ok {
		t.Error("Addr accepted a host name")
	}
}

func TestSetSessionConnection(t *testing.T) {
	relay := NewConnection(netip.MustParseAddr("203.0.113.1"))

	s := mustParse(t, holdOffer)
	s.SetConnection(relay)
	checkOutput(t, s, strings.Replace(holdOffer, "c=IN IP4 0.0.0.0", "c=IN IP4 203.0.113.1", 1))

	// Round trip through the struct is lossless, suffix included.
	s = mustParse(t, portCountOffer)
	c, _ := s.Connection()
	s.SetConnection(c)
	checkOutput(t, s, portCountOffer)

	// Inserted after v/o/s/i/u/e/p, before b/t.
	s = mustParse(t, "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\ni=info\nu=http://x\ne=a@b\np=+1 555\nb=AS:64\nt=0 0\na=x\n")
	s.SetConnection(relay)
	checkOutput(t, s, "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\ni=info\nu=http://x\ne=a@b\np=+1 555\nc=IN IP4 203.0.113.1\nb=AS:64\nt=0 0\na=x\n")

	s = mustParse(t, "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\n")
	s.SetConnection(relay)
	checkOutput(t, s, "v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nc=IN IP4 203.0.113.1\nt=0 0\nm=audio 1 RTP/AVP 0\n")

	s = mustParse(t, "v=0\n")
	s.SetConnection(relay)
	checkOutput(t, s, "v=0\nc=IN IP4 203.0.113.1\n")

	// Duplicates are removed.
	s = mustParse(t, "v=0\nc=IN IP4 1.1.1.1\nt=0 0\nc=IN IP4 2.2.2.2\n")
	s.SetConnection(NewConnection(netip.MustParseAddr("2001:db8::7")))
	checkOutput(t, s, "v=0\nc=IN IP6 2001:db8::7\nt=0 0\n")
}

func TestMediaConnection(t *testing.T) {
	relay := NewConnection(netip.MustParseAddr("2001:db8::1"))

	s := mustParse(t, phoneOffer)
	m := s.Media[0]
	if c, ok := m.Connection(); !ok || c != (Connection{"IN", "IP4", "192.168.1.20", ""}) {
		t.Errorf("Connection = %+v, %v", c, ok)
	}
	if c, ok := m.EffectiveConnection(s); !ok || c.Address != "192.168.1.20" {
		t.Errorf("EffectiveConnection = %+v, %v", c, ok)
	}
	m.SetConnection(relay)
	checkOutput(t, s, strings.Replace(phoneOffer, "c=IN IP4 192.168.1.20", "c=IN IP6 2001:db8::1", 1))

	// No media c=: the session's applies, and SetConnection inserts after m=/i=.
	s = mustParse(t, holdOffer)
	m = s.Media[0]
	if _, ok := m.Connection(); ok {
		t.Error("media Connection found")
	}
	if c, ok := m.EffectiveConnection(s); !ok || c.Address != "0.0.0.0" {
		t.Errorf("EffectiveConnection = %+v, %v", c, ok)
	}
	if _, ok := m.EffectiveConnection(nil); ok {
		t.Error("EffectiveConnection(nil) found a connection")
	}
	m.SetConnection(relay)
	checkOutput(t, s, strings.Replace(holdOffer, "m=audio 49170 RTP/AVP 0\r\n", "m=audio 49170 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\n", 1))
	if c, _ := m.EffectiveConnection(s); c != relay {
		t.Errorf("EffectiveConnection = %+v", c)
	}

	s = mustParse(t, "v=0\nm=audio 1 RTP/AVP 0\ni=title\nb=AS:64\na=x\nm=video 2 RTP/AVP 31\n")
	s.Media[0].SetConnection(relay)
	s.Media[1].SetConnection(relay)
	checkOutput(t, s, "v=0\nm=audio 1 RTP/AVP 0\ni=title\nc=IN IP6 2001:db8::1\nb=AS:64\na=x\nm=video 2 RTP/AVP 31\nc=IN IP6 2001:db8::1\n")

	// A malformed media c= is reported as such, not replaced by the session's.
	s = mustParse(t, "v=0\nc=IN IP4 1.1.1.1\nm=audio 1 RTP/AVP 0\nc=IN IP4\n")
	if _, ok := s.Media[0].EffectiveConnection(s); ok {
		t.Error("malformed media c= accepted")
	}

	// Layered multicast: every c= collapses into one.
	s = mustParse(t, "v=0\nm=video 1/2 RTP/AVP 31\nc=IN IP4 233.252.0.1/127\nc=IN IP4 233.252.0.2/127\n")
	s.Media[0].SetConnection(relay)
	checkOutput(t, s, "v=0\nm=video 1/2 RTP/AVP 31\nc=IN IP6 2001:db8::1\n")
}

func TestMediaLine(t *testing.T) {
	tests := []struct {
		in           string
		typ, proto   string
		port, count  int
		formats      []string
		setPort      int
		wantSetValue string
	}{
		{"m=audio 4000 RTP/SAVP 0 8 9 101 96", "audio", "RTP/SAVP", 4000, 1, []string{"0", "8", "9", "101", "96"}, 30000, "audio 30000 RTP/SAVP 0 8 9 101 96"},
		{"m=video 49170/2 RTP/AVP 31", "video", "RTP/AVP", 49170, 2, []string{"31"}, 5, "video 5/2 RTP/AVP 31"},
		{"m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "application", "UDP/DTLS/SCTP", 9, 1, []string{"webrtc-datachannel"}, 0, "application 0 UDP/DTLS/SCTP webrtc-datachannel"},
		{"m=audio  05004 \tRTP/AVP  0 ", "audio", "RTP/AVP", 5004, 1, []string{"0"}, 65535, "audio  65535 \tRTP/AVP  0 "},
	}
	for _, tt := range tests {
		s := mustParse(t, "v=0\n"+tt.in+"\na=x\n")
		m := s.Media[0]
		if m.Type() != tt.typ || m.Proto() != tt.proto || m.Port() != tt.port || m.PortCount() != tt.count {
			t.Errorf("%q: Type %q Proto %q Port %d PortCount %d", tt.in, m.Type(), m.Proto(), m.Port(), m.PortCount())
		}
		if !reflect.DeepEqual(m.Formats(), tt.formats) {
			t.Errorf("%q: Formats = %q", tt.in, m.Formats())
		}
		m.SetPort(tt.setPort)
		checkOutput(t, s, "v=0\nm="+tt.wantSetValue+"\na=x\n")
		if m.Port() != tt.setPort || m.PortCount() != tt.count {
			t.Errorf("%q: after SetPort: Port %d PortCount %d", tt.in, m.Port(), m.PortCount())
		}
	}

	// Sections broken by direct edits of Lines.
	for _, m := range []*Media{{}, {Lines: Lines{{'a', "x"}}}, {Lines: Lines{{'m', "audio x RTP/AVP 0"}}}, {Lines: Lines{{'m', "audio"}}}} {
		if m.Port() != -1 || m.PortCount() != -1 {
			t.Errorf("%+v: Port %d PortCount %d", m, m.Port(), m.PortCount())
		}
		before := len(m.Lines)
		m.SetPort(1)
		if len(m.Lines) != before {
			t.Errorf("%+v: SetPort changed the section", m)
		}
	}
	// The invalid port is replaced when the field exists.
	m := &Media{Lines: Lines{{'m', "audio x RTP/AVP 0"}}}
	m.SetPort(7)
	if m.Lines[0].Value != "audio 7 RTP/AVP 0" {
		t.Errorf("SetPort on invalid port: %q", m.Lines[0].Value)
	}
	if (&Media{}).Type() != "" || (&Media{}).Proto() != "" || (&Media{}).Formats() != nil {
		t.Error("accessors on an empty Media")
	}

	for _, p := range []int{-1, 65536} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SetPort(%d) did not panic", p)
				}
			}()
			mustParse(t, portCountOffer).Media[0].SetPort(p)
		}()
	}
}

func TestAttributes(t *testing.T) {
	s := mustParse(t, chromeOffer)
	audio, video := s.Media[0], s.Media[1]

	if v, ok := s.Attr("group"); !ok || v != "BUNDLE 0 1" {
		t.Errorf("session group = %q, %v", v, ok)
	}
	if v, ok := s.Attr("extmap-allow-mixed"); !ok || v != "" {
		t.Errorf("property attribute = %q, %v", v, ok)
	}
	if _, ok := s.Attr("mid"); ok {
		t.Error("session level sees media attributes")
	}
	if v, ok := audio.Attr("mid"); !ok || v != "0" {
		t.Errorf("audio mid = %q, %v", v, ok)
	}
	if v, ok := video.Attr("mid"); !ok || v != "1" {
		t.Errorf("video mid = %q, %v", v, ok)
	}
	// "rtcp" must not match "rtcp-mux", "rtcp-fb" or "rtcp-rsize".
	if got := video.Attrs("rtcp"); !reflect.DeepEqual(got, []string{"9 IN IP4 0.0.0.0"}) {
		t.Errorf("Attrs(rtcp) = %q", got)
	}
	if got := video.Attrs("rtcp-fb"); !reflect.DeepEqual(got, []string{"96 goog-remb", "96 nack", "96 nack pli"}) {
		t.Errorf("Attrs(rtcp-fb) = %q", got)
	}
	if got := audio.Attrs("fmtp"); !reflect.DeepEqual(got, []string{"111 minptime=10;useinbandfec=1", "63 111/111"}) {
		t.Errorf("Attrs(fmtp) = %q", got)
	}
	if got := audio.Attrs("nope"); got != nil {
		t.Errorf("Attrs(nope) = %q", got)
	}
	// Split at the first ':' only.
	if v, _ := audio.Attr("ssrc"); v != "3570614608 cname:4TOk42mSjXCkVIa6" {
		t.Errorf("ssrc = %q", v)
	}
	if !audio.HasAttr("rtcp-mux") || audio.HasAttr("RTCP-MUX") || audio.HasAttr("rtcp-m") || audio.HasAttr("") {
		t.Error("HasAttr matching")
	}
	if v, ok := s.Attr("msid-semantic"); !ok || v != " WMS 5yVgRTUcb8vZP3r3mOmzBIcjHSUnMR0mMYLF" {
		t.Errorf("msid-semantic = %q", v)
	}
	// Other line types are not attributes.
	s2 := mustParse(t, "v=0\nb=AS:64\nx=a\n")
	if s2.HasAttr("AS") || s2.HasAttr("a") {
		t.Error("non-a= line matched")
	}
}

func TestSetAttr(t *testing.T) {
	const in = "v=0\na=tool:x\nm=audio 1 RTP/AVP 0 8\na=rtpmap:0 PCMU/8000\na=ptime:20\na=rtpmap:8 PCMA/8000\na=ptime:30\na=sendrecv\nb=AS:1\nm=video 2 RTP/AVP 31\n"

	s := mustParse(t, in)
	s.Media[0].SetAttr("ptime", "40")
	checkOutput(t, s, "v=0\na=tool:x\nm=audio 1 RTP/AVP 0 8\na=rtpmap:0 PCMU/8000\na=ptime:40\na=rtpmap:8 PCMA/8000\na=sendrecv\nb=AS:1\nm=video 2 RTP/AVP 31\n")

	// Absent: appended at the end of that level only.
	s = mustParse(t, in)
	s.SetAttr("tool", "rtcgate")
	s.SetAttr("ice-lite", "")
	s.Media[0].SetAttr("rtcp", "9 IN IP4 192.0.2.1")
	s.Media[1].SetAttr("inactive", "")
	checkOutput(t, s, "v=0\na=tool:rtcgate\na=ice-lite\nm=audio 1 RTP/AVP 0 8\na=rtpmap:0 PCMU/8000\na=ptime:20\na=rtpmap:8 PCMA/8000\na=ptime:30\na=sendrecv\nb=AS:1\na=rtcp:9 IN IP4 192.0.2.1\nm=video 2 RTP/AVP 31\na=inactive\n")

	// Property attribute replaced by a valued one and back.
	s = mustParse(t, in)
	s.Media[0].SetAttr("sendrecv", "x")
	checkOutput(t, s, strings.Replace(in, "a=sendrecv", "a=sendrecv:x", 1))
	s.Media[0].SetAttr("sendrecv", "")
	checkOutput(t, s, in)

	// Values cannot inject lines.
	s = mustParse(t, "v=0\n")
	s.SetAttr("x\ny", "1\r\na=evil")
	checkOutput(t, s, "v=0\na=x y:1  a=evil\n")
	s.SetAttr("x y", "2")
	checkOutput(t, s, "v=0\na=x y:2\n")
}

func TestAddRemoveAttr(t *testing.T) {
	s := mustParse(t, "v=0\na=x-a:1\nm=audio 1 RTP/AVP 0\na=rtcp-fb:0 nack\na=x-a:2\na=rtcp:5\na=x-a:3\na=rtcp-fb:0 pli\nc=IN IP4 1.1.1.1\n")
	m := s.Media[0]
	m.AddAttr("x-a", "4")
	m.AddAttr("rtcp-mux", "")
	checkOutput(t, s, "v=0\na=x-a:1\nm=audio 1 RTP/AVP 0\na=rtcp-fb:0 nack\na=x-a:2\na=rtcp:5\na=x-a:3\na=rtcp-fb:0 pli\nc=IN IP4 1.1.1.1\na=x-a:4\na=rtcp-mux\n")

	if n := m.RemoveAttr("x-a", "rtcp"); n != 4 {
		t.Errorf("RemoveAttr = %d, want 4", n)
	}
	checkOutput(t, s, "v=0\na=x-a:1\nm=audio 1 RTP/AVP 0\na=rtcp-fb:0 nack\na=rtcp-fb:0 pli\nc=IN IP4 1.1.1.1\na=rtcp-mux\n")
	if n := m.RemoveAttr("nothing"); n != 0 {
		t.Errorf("RemoveAttr = %d, want 0", n)
	}
	if n := m.RemoveAttr(); n != 0 {
		t.Errorf("RemoveAttr() = %d, want 0", n)
	}
	if n := s.RemoveAttr("x-a"); n != 1 {
		t.Errorf("session RemoveAttr = %d, want 1", n)
	}
	checkOutput(t, s, "v=0\nm=audio 1 RTP/AVP 0\na=rtcp-fb:0 nack\na=rtcp-fb:0 pli\nc=IN IP4 1.1.1.1\na=rtcp-mux\n")
}

func TestDirection(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{phoneOffer, []string{"sendrecv"}},
		{holdOffer, []string{"sendonly"}}, // session level
		{ipv6Offer, []string{"recvonly"}},
		{portCountOffer, []string{"sendrecv"}}, // default
		{"v=0\na=inactive\nm=audio 1 RTP/AVP 0\na=sendonly\nm=audio 2 RTP/AVP 0\n", []string{"sendonly", "inactive"}},
		{"v=0\nm=audio 1 RTP/AVP 0\na=sendonly:x\na=recvonly\na=sendonly\n", []string{"recvonly"}},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.in)
		var got []string
		for _, m := range s.Media {
			got = append(got, m.Direction(s))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: Direction = %q, want %q", tt.in, got, tt.want)
		}
	}
	if d := mustParse(t, holdOffer).Media[0].Direction(nil); d != "sendrecv" {
		t.Errorf("Direction(nil) = %q", d)
	}
}

func TestRTCP(t *testing.T) {
	v4 := &Connection{"IN", "IP4", "192.168.1.20", ""}
	tests := []struct {
		attr string
		port int
		conn *Connection
		ok   bool
	}{
		{"a=rtcp:4001 IN IP4 192.168.1.20", 4001, v4, true},
		{"a=rtcp:53020", 53020, nil, true},
		{"a=rtcp:9 IN IP6 2001:db8::1", 9, &Connection{"IN", "IP6", "2001:db8::1", ""}, true},
		{"a=rtcp:  4001   IN IP4  192.168.1.20 ", 4001, v4, true},
		{"a=rtcp:x", 0, nil, false},
		{"a=rtcp:70000", 0, nil, false},
		{"a=rtcp:", 0, nil, false},
		{"a=rtcp", 0, nil, false},
		{"a=rtcp:5 IN IP4", 0, nil, false},
		{"a=rtcp:5 IN IP4 1.1.1.1 x", 0, nil, false},
		{"a=rtcp-mux", 0, nil, false},
	}
	for _, tt := range tests {
		m := mustParse(t, "v=0\nm=audio 1 RTP/AVP 0\n"+tt.attr+"\n").Media[0]
		port, conn, ok := m.RTCP()
		if port != tt.port || ok != tt.ok || !reflect.DeepEqual(conn, tt.conn) {
			t.Errorf("%q: RTCP() = %d, %+v, %v", tt.attr, port, conn, ok)
		}
	}
}

func TestSetRTCP(t *testing.T) {
	s := mustParse(t, phoneOffer)
	relay := NewConnection(netip.MustParseAddr("203.0.113.1"))
	s.Media[0].SetRTCP(30001, &relay)
	checkOutput(t, s, strings.Replace(phoneOffer, "a=rtcp:4001 IN IP4 192.168.1.20", "a=rtcp:30001 IN IP4 203.0.113.1", 1))
	s.Media[0].SetRTCP(30003, nil)
	checkOutput(t, s, strings.Replace(phoneOffer, "a=rtcp:4001 IN IP4 192.168.1.20", "a=rtcp:30003", 1))
	if port, conn, ok := s.Media[0].RTCP(); port != 30003 || conn != nil || !ok {
		t.Errorf("RTCP() = %d, %v, %v", port, conn, ok)
	}
	defer func() {
		if recover() == nil {
			t.Error("SetRTCP(65536) did not panic")
		}
	}()
	s.Media[0].SetRTCP(65536, nil)
}

func TestRemoveICE(t *testing.T) {
	in := strings.Replace(chromeOffer, "a=group:BUNDLE 0 1\r\n", "a=group:BUNDLE 0 1\r\na=ice-lite\r\na=ice-options:ice2\r\n", 1)
	in += crlf("a=end-of-candidates\na=remote-candidates:1 192.0.2.1 5000\na=ice-mismatch\na=ice-pacing:50\na=ice-foo:keep\na=candidates-not:keep\n")
	s := mustParse(t, in)
	s.RemoveICE()

	// The expected text is derived independently, by dropping lines.
	var want strings.Builder
	for _, l := range strings.SplitAfter(in, "\r\n") {
		name, _, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(l, "a="), "\r\n"), ":")
		switch name {
		case "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "candidate", "remote-candidates", "end-of-candidates", "ice-mismatch", "ice-pacing":
			continue
		}
		want.WriteString(l)
	}
	checkOutput(t, s, want.String())
	if !strings.Contains(want.String(), "a=ice-foo:keep\r\na=candidates-not:keep\r\n") || strings.Contains(want.String(), "candidate:") {
		t.Fatal("test expectation is wrong")
	}
	if !reflect.DeepEqual(ICEAttributes, []string{"ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "candidate", "remote-candidates", "end-of-candidates", "ice-mismatch", "ice-pacing"}) {
		t.Errorf("ICEAttributes = %q", ICEAttributes)
	}
	// Nil media entries are tolerated.
	(&Session{Media: []*Media{nil}}).RemoveICE()
}

func TestAddrType(t *testing.T) {
	tests := []struct {
		ip   netip.Addr
		want string
	}{
		{netip.MustParseAddr("192.0.2.1"), "IP4"},
		{netip.MustParseAddr("0.0.0.0"), "IP4"},
		{netip.MustParseAddr("::1"), "IP6"},
		{netip.MustParseAddr("2001:db8::1"), "IP6"},
		{netip.MustParseAddr("::ffff:192.0.2.1"), "IP6"},
		{netip.MustParseAddr("::ffff:192.0.2.1").Unmap(), "IP4"},
		{netip.Addr{}, ""},
	}
	for _, tt := range tests {
		if got := AddrType(tt.ip); got != tt.want {
			t.Errorf("AddrType(%v) = %q, want %q", tt.ip, got, tt.want)
		}
	}
	if c := NewConnection(netip.MustParseAddr("2001:db8::1")); c != (Connection{"IN", "IP6", "2001:db8::1", ""}) {
		t.Errorf("NewConnection = %+v", c)
	}
}

// TestRelayRewrite performs the full offer rewrite the relay does and checks
// that exactly the intended lines changed.
func TestRelayRewrite(t *testing.T) {
	s := mustParse(t, chromeOffer)
	relay := NewConnection(netip.MustParseAddr("198.51.100.10"))
	s.SetConnection(relay)
	for i, m := range s.Media {
		port := 40000 + 2*i
		m.SetPort(port)
		m.SetConnection(relay)
		m.SetRTCP(port+1, nil)
	}
	s.RemoveICE()
	s.IncrementVersion()

	want := crlf(`v=0
o=- 4611731400430051336 3 IN IP4 127.0.0.1
s=-
c=IN IP4 198.51.100.10
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 5yVgRTUcb8vZP3r3mOmzBIcjHSUnMR0mMYLF
m=audio 40000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 198.51.100.10
a=rtcp:40001
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
m=video 40002 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 198.51.100.10
a=rtcp:40003
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
	checkOutput(t, s, want)
	if _, err := Parse(s.Marshal()); err != nil {
		t.Fatal(err)
	}
}

// TestClearPortCount: "PORT/COUNT" loses its count, nothing else moves.
func TestClearPortCount(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"m=audio 4000/300 RTP/AVP 0", "audio 4000 RTP/AVP 0"},
		{"m=video  49170/2 \tRTP/AVP 31", "video  49170 \tRTP/AVP 31"},
		{"m=audio 4000 RTP/AVP 0", "audio 4000 RTP/AVP 0"},
	} {
		s := mustParse(t, "v=0\n"+tt.in+"\na=x\n")
		m := s.Media[0]
		m.ClearPortCount()
		checkOutput(t, s, "v=0\nm="+tt.want+"\na=x\n")
		if m.PortCount() != 1 {
			t.Errorf("%q: PortCount %d after ClearPortCount", tt.in, m.PortCount())
		}
	}
	for _, m := range []*Media{{}, {Lines: Lines{{'a', "x/2"}}}, {Lines: Lines{{'m', "audio"}}}} {
		before := append(Lines(nil), m.Lines...)
		m.ClearPortCount()
		if !reflect.DeepEqual(before, m.Lines) {
			t.Errorf("%+v: ClearPortCount changed a section without a port", m)
		}
	}
}
