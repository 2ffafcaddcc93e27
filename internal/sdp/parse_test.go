package sdp

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func mustParse(t testing.TB, s string) *Session {
	t.Helper()
	sess, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v\ninput:\n%s", err, s)
	}
	return sess
}

// checkOutput compares the marshalled session with want, showing both in
// full and the first differing line, since whole-SDP diffs are otherwise
// hard to read.
func checkOutput(t *testing.T, s *Session, want string) {
	t.Helper()
	got := string(s.Marshal())
	if got == want {
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("first difference at line %d:\n got %q\nwant %q", i+1, g, w)
			break
		}
	}
	t.Fatalf("output mismatch\n--- got ---\n%s--- want ---\n%s", got, want)
}

func TestRoundTrip(t *testing.T) {
	lf := strings.ReplaceAll(phoneOffer, "\r\n", "\n")
	tests := []struct {
		name     string
		in, want string
		eol      string
		session  int // session-level lines
		media    []int
	}{
		{"phone", phoneOffer, phoneOffer, "\r\n", 6, []int{17}},
		{"chrome", chromeOffer, chromeOffer, "\r\n", 7, []int{32, 22}},
		{"hold", holdOffer, holdOffer, "\r\n", 6, []int{2}},
		{"ipv6", ipv6Offer, ipv6Offer, "\r\n", 5, []int{2}},
		{"port count", portCountOffer, portCountOffer, "\r\n", 5, []int{1}},
		{"bench audio", audioOffer, audioOffer, "\r\n", 5, []int{19}},
		{"LF only", lf, lf, "\n", 6, []int{17}},
		{"no final CRLF", strings.TrimSuffix(holdOffer, "\r\n"), holdOffer, "\r\n", 6, []int{2}},
		{"no final LF", "v=0\nm=audio 1 RTP/AVP 0", "v=0\nm=audio 1 RTP/AVP 0\n", "\n", 1, []int{1}},
		{"final bare CR", "v=0\r", "v=0\r\n", "\r\n", 1, nil},
		{"single line", "v=0", "v=0\r\n", "\r\n", 1, nil},
		{"trailing empty lines", ipv6Offer + "\r\n\r\n\n\r", ipv6Offer, "\r\n", 5, []int{2}},
		{"mixed endings, first CRLF", "v=0\r\ns=x\na=y\r\n", "v=0\r\ns=x\r\na=y\r\n", "\r\n", 3, nil},
		{"mixed endings, first LF", "v=0\ns=x\r\na=y", "v=0\ns=x\na=y\n", "\n", 3, nil},
		{"empty values", "v=\ns=\na=\n", "v=\ns=\na=\n", "\n", 3, nil},
		{"upper-case type", "v=0\nX=whatever\n", "v=0\nX=whatever\n", "\n", 2, nil},
		{"extra spaces kept", "v=0\nm=audio  5004/2   RTP/AVP 0  8 \n", "v=0\nm=audio  5004/2   RTP/AVP 0  8 \n", "\n", 1, []int{1}},
		{"NUL and UTF-8 kept", "v=0\ns=caf\xc3\xa9 \x00 \xff\n", "v=0\ns=caf\xc3\xa9 \x00 \xff\n", "\n", 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.in)
			if s.EOL != tt.eol {
				t.Errorf("EOL = %q, want %q", s.EOL, tt.eol)
			}
			if len(s.Lines) != tt.session {
				t.Errorf("session lines = %d, want %d", len(s.Lines), tt.session)
			}
			var media []int
			for _, m := range s.Media {
				media = append(media, len(m.Lines))
				if m.Lines[0].Type != 'm' {
					t.Errorf("media section starts with %q", m.Lines[0].Type)
				}
			}
			if !reflect.DeepEqual(media, tt.media) {
				t.Errorf("media section sizes = %v, want %v", media, tt.media)
			}
			checkOutput(t, s, tt.want)
			if got := string(s.AppendTo([]byte("prefix"))); got != "prefix"+tt.want {
				t.Errorf("AppendTo = %q", got)
			}
			again := mustParse(t, tt.want)
			if !reflect.DeepEqual(again, s) {
				t.Errorf("re-parsed model differs:\n%+v\n%+v", again, s)
			}
		})
	}
}

func TestParseLines(t *testing.T) {
	s := mustParse(t, "v=0\r\na=rtcp:5 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\na=x:y:z\r\n")
	want := &Session{
		Lines: Lines{{'v', "0"}, {'a', "rtcp:5 IN IP4 1.2.3.4"}},
		Media: []*Media{{Lines: Lines{{'m', "audio 1 RTP/AVP 0"}, {'a', "x:y:z"}}}},
		EOL:   "\r\n",
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

// TestSectionsDoNotAlias checks that growing one level does not overwrite
// the next one, which shares the backing array Parse allocates.
func TestSectionsDoNotAlias(t *testing.T) {
	s := mustParse(t, "v=0\nm=audio 1 RTP/AVP 0\nm=video 2 RTP/AVP 31\na=x\n")
	s.AddAttr("session", "")
	s.Media[0].AddAttr("first", "")
	s.Media[0].RemoveAttr("first")
	s.Media[0].AddAttr("again", "")
	s.Media[0].SetConnection(Connection{NetType: "IN", AddrType: "IP4", Address: "192.0.2.1"})
	checkOutput(t, s, "v=0\na=session\nm=audio 1 RTP/AVP 0\nc=IN IP4 192.0.2.1\na=again\nm=video 2 RTP/AVP 31\na=x\n")
}

func TestMarshalZeroSession(t *testing.T) {
	s := &Session{Lines: []Line{{'v', "0"}}, Media: []*Media{nil, {Lines: []Line{{'m', "audio 9 RTP/AVP 0"}}}}}
	checkOutput(t, s, "v=0\r\nm=audio 9 RTP/AVP 0\r\n")
	s.EOL = "bogus"
	checkOutput(t, s, "v=0\r\nm=audio 9 RTP/AVP 0\r\n")
	s.EOL = "\n"
	checkOutput(t, s, "v=0\nm=audio 9 RTP/AVP 0\n")
}

func TestParseErrors(t *testing.T) {
	long := "v=0\ns=" + strings.Repeat("x", MaxLineLength-2) + "\n"
	tooLong := "v=0\ns=" + strings.Repeat("x", MaxLineLength-1) + "\n"
	manyLines := "v=0\n" + strings.Repeat("a=x\n", MaxLines-1)
	manyMedia := "v=0\n" + strings.Repeat("m=audio 9 RTP/AVP 0\n", MaxMediaSections)
	for _, ok := range []string{long, manyLines, manyMedia, manyLines + "\n\n\n"} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("input at the limit rejected: %v", err)
		}
	}

	tests := []struct {
		name string
		in   string
		line int
		msg  string
	}{
		{"empty", "", 0, "empty input"},
		{"only newlines", "\r\n\n", 0, "empty input"},
		{"leading empty line", "\nv=0\n", 1, "empty line"},
		{"empty line inside", "v=0\ns=-\n\nt=0 0\n", 3, "empty line"},
		{"whitespace line", "v=0\n \n", 2, "line is not of the form <letter>=<value>"},
		{"first not v", "o=- 1 1 IN IP4 1.1.1.1\nv=0\n", 1, "first line is not v="},
		{"first upper V", "V=0\n", 1, "first line is not v="},
		{"BOM", "\xef\xbb\xbfv=0\n", 1, "line is not of the form <letter>=<value>"},
		{"no equals", "v=0\nhello\n", 2, "line is not of the form <letter>=<value>"},
		{"one letter", "v=0\na\n", 2, "line is not of the form <letter>=<value>"},
		{"digit type", "v=0\n1=x\n", 2, "line is not of the form <letter>=<value>"},
		{"two-letter type", "v=0\nab=x\n", 2, "line is not of the form <letter>=<value>"},
		{"space before equals", "v=0\na =x\n", 2, "line is not of the form <letter>=<value>"},
		{"CR inside", "v=0\r\ns=a\rb\r\n", 2, "carriage return inside line"},
		{"double CR", "v=0\r\ns=x\r\r\n", 2, "carriage return inside line"},
		{"CR-only endings", "v=0\rs=x\r", 1, "carriage return inside line"},
		{"line too long", tooLong, 2, "line longer than 65536 bytes"},
		{"too many lines", manyLines + "a=x\n", MaxLines + 1, "more than 10000 lines"},
		{"too many media", manyMedia + "m=audio 9 RTP/AVP 0\n", MaxMediaSections + 2, "more than 256 m= sections"},
		{"m= 3 fields", "v=0\nm=audio 9 RTP/AVP\n", 2, "m= line has fewer than 4 fields"},
		{"m= empty", "v=0\nm=\n", 2, "m= line has fewer than 4 fields"},
		{"m= port word", "v=0\nm=audio x RTP/AVP 0\n", 2, `m= line has an invalid port "x"`},
		{"m= port big", "v=0\nm=audio 65536 RTP/AVP 0\n", 2, `m= line has an invalid port "65536"`},
		{"m= port negative", "v=0\nm=audio -1 RTP/AVP 0\n", 2, `m= line has an invalid port "-1"`},
		{"m= port plus", "v=0\nm=audio +5 RTP/AVP 0\n", 2, `m= line has an invalid port "+5"`},
		{"m= count zero", "v=0\nm=audio 5/0 RTP/AVP 0\n", 2, `m= line has an invalid port "5/0"`},
		{"m= count empty", "v=0\nm=audio 5/ RTP/AVP 0\n", 2, `m= line has an invalid port "5/"`},
		{"m= port empty", "v=0\nm=audio /2 RTP/AVP 0\n", 2, `m= line has an invalid port "/2"`},
		{"m= two slashes", "v=0\nm=audio 5/2/3 RTP/AVP 0\n", 2, `m= line has an invalid port "5/2/3"`},
		{"m= huge port", "v=0\nm=audio 99999999999999999999999 RTP/AVP 0\n", 2, `m= line has an invalid port "99999999999999999999999"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.in))
			if s != nil {
				t.Errorf("Parse returned a session with error %v", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Line != tt.line || pe.Msg != tt.msg {
				t.Errorf("got line %d %q, want line %d %q", pe.Line, pe.Msg, tt.line, tt.msg)
			}
		})
	}
}

func TestParseErrorString(t *testing.T) {
	if got := (&ParseError{Msg: "empty input"}).Error(); got != "sdp: empty input" {
		t.Errorf("got %q", got)
	}
	if got := (&ParseError{Line: 3, Msg: "empty line"}).Error(); got != "sdp: line 3: empty line" {
		t.Errorf("got %q", got)
	}
}

func TestLimitsDocumented(t *testing.T) {
	// The error messages spell the limits out; keep them in step.
	if strconv.Itoa(MaxLineLength) != "65536" || MaxLines != 10000 || MaxMediaSections != 256 {
		t.Fatal("limits changed: update TestParseErrors messages")
	}
}

func TestParseDoesNotAliasInput(t *testing.T) {
	b := []byte(ipv6Offer)
	s, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	checkOutput(t, s, ipv6Offer)
}
