package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// normalize is an independent statement of the round-trip rule: split at
// LF, drop one CR before each LF (or at the end), drop trailing empty
// lines, and end every line with the first line's ending.
func normalize(in string) string {
	lines := strings.Split(in, "\n")
	eol := "\r\n"
	if len(lines) > 1 && !strings.HasSuffix(lines[0], "\r") {
		eol = "\n"
	}
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, eol) + eol
}

// withinLimits reports whether Parse's limits admit the session, which
// edits may push over them.
func withinLimits(s *Session) bool {
	n, media := len(s.Lines), 0
	check := func(ls Lines) bool {
		for _, l := range ls {
			if len(l.Value)+2 > MaxLineLength {
				return false
			}
		}
		return true
	}
	ok := check(s.Lines)
	for _, m := range s.Media {
		n += len(m.Lines)
		media++
		ok = ok && check(m.Lines)
	}
	return ok && n <= MaxLines && media <= MaxMediaSections
}

// exercise calls every accessor, which must not panic on any parsed input.
func exercise(s *Session) {
	s.Origin()
	s.SessionName()
	s.Connection()
	s.Attr("rtcp")
	s.Attrs("candidate")
	s.HasAttr("ice-lite")
	for _, m := range s.Media {
		m.Type()
		m.Port()
		m.PortCount()
		m.Proto()
		m.Formats()
		m.Connection()
		m.EffectiveConnection(s)
		m.Direction(s)
		m.RTCP()
		m.Attrs("rtpmap")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		phoneOffer, chromeOffer, holdOffer, ipv6Offer, portCountOffer, audioOffer,
		strings.ReplaceAll(phoneOffer, "\r\n", "\n"),
		strings.TrimSuffix(ipv6Offer, "\r\n"),
		"v=0", "v=0\r", "v=0\r\ns=x\na=y", "v=0\n\n\r\n",
		"v=0\nm=audio 1/2 RTP/AVP 0\nc=IN IP4 233.252.0.1/127/3\n",
		"v=0\no=a b 99999999999999999999 IN IP4 x\n",
		"v=0\nm=audio  05004 \tRTP/AVP  0 \na=rtcp:5 IN IP4\n",
		"", "\n", "x", "v=0\nhello\n", "v=0\r\ns=a\rb\r\n", "v=0\nm=audio x RTP/AVP 0\n",
		"v=0\nm=audio 5/0 RTP/AVP 0\n", "v=0\n\nt=0 0\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || s != nil {
				t.Fatalf("Parse returned %v, %T %v", s, err, err)
			}
			return
		}
		out := s.Marshal()
		if want := normalize(string(data)); string(out) != want {
			t.Fatalf("Marshal does not follow the round-trip rule:\n got %q\nwant %q", out, want)
		}
		s2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-Parse: %v", err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("model changed on re-parse:\n%+v\n%+v", s, s2)
		}
		if out2 := s2.Marshal(); !bytes.Equal(out, out2) {
			t.Fatalf("Marshal not idempotent:\n%q\n%q", out, out2)
		}
		exercise(s)

		// The relay's edits must leave parseable SDP.
		relay := NewConnection(netip.MustParseAddr("2001:db8::1"))
		if len(data)%2 == 0 {
			relay = NewConnection(netip.MustParseAddr("192.0.2.1"))
		}
		oldOrigin, hadOrigin := s.Origin()
		s.SetConnection(relay)
		for i, m := range s.Media {
			port := (len(data) + 2*i) % 65536
			m.SetPort(port)
			m.SetConnection(relay)
			m.SetRTCP((port+1)%65536, &relay)
			if m.Port() != port {
				t.Fatalf("Port() = %d after SetPort(%d)", m.Port(), port)
			}
			if i%2 == 1 {
				m.ClearPortCount()
				if m.Port() != port || m.PortCount() != 1 {
					t.Fatalf("Port() = %d, PortCount() = %d after ClearPortCount", m.Port(), m.PortCount())
				}
			}
		}
		s.RemoveICE()
		s.IncrementVersion()
		s.SetSessionName("rtcgate")
		exercise(s)

		edited := s.Marshal()
		if !withinLimits(s) {
			return
		}
		s3, err := Parse(edited)
		if err != nil {
			t.Fatalf("edited SDP does not parse: %v\n%q", err, edited)
		}
		if c, ok := s3.Connection(); !ok || c != relay {
			t.Fatalf("session Connection() = %+v, %v", c, ok)
		}
		if s3.SessionName() != "rtcgate" {
			t.Fatalf("SessionName() = %q", s3.SessionName())
		}
		if o, ok := s3.Origin(); hadOrigin != ok || ok && (o.SessionID != oldOrigin.SessionID || o.Address != oldOrigin.Address) {
			t.Fatalf("Origin() = %+v, was %+v", o, oldOrigin)
		}
		for _, a := range ICEAttributes {
			if s3.HasAttr(a) {
				t.Fatalf("session still has %s", a)
			}
		}
		for i, m := range s3.Media {
			if m.Port() != s.Media[i].Port() {
				t.Fatalf("Port() = %d, want %d", m.Port(), s.Media[i].Port())
			}
			if c, ok := m.EffectiveConnection(s3); !ok || c != relay {
				t.Fatalf("media Connection() = %+v, %v", c, ok)
			}
			if p, c, ok := m.RTCP(); !ok || p != (m.Port()+1)%65536 || c == nil || *c != relay {
				t.Fatalf("RTCP() = %d, %v, %v", p, c, ok)
			}
			for _, a := range ICEAttributes {
				if m.HasAttr(a) {
					t.Fatalf("media still has %s", a)
				}
			}
		}
	})
}
