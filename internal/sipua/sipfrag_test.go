package sipua

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseSipfrag(t *testing.T) {
	for _, tc := range []struct {
		body   string
		code   int
		reason string
		ok     bool
	}{
		{"SIP/2.0 200 OK", 200, "OK", true},
		{"SIP/2.0 100 Trying\r\n", 100, "Trying", true},
		{"\r\nSIP/2.0 180 Ringing\r\nContact: <sip:x@y>\r\n", 180, "Ringing", true},
		{"sip/2.0 503 Service Unavailable", 503, "Service Unavailable", true},
		{"SIP/2.0 486", 486, "", true},
		{"SIP/2.0 603 Declined  ", 603, "Declined", true},
		{"", 0, "", false},
		{"INVITE sip:a@b SIP/2.0", 0, "", false},
		{"SIP/2.0 20 OK", 0, "", false},
		{"SIP/2.0 2000 OK", 0, "", false},
		{"SIP/2.0 099 Low", 0, "", false},
		{"SIP/2.0 700 High", 0, "", false},
		{"SIP/2 200 OK", 0, "", false},
		{"SIP/.0 200 OK", 0, "", false},
		{"HTTP/1.1 200 OK", 0, "", false},
	} {
		code, reason, ok := parseSipfrag([]byte(tc.body))
		if code != tc.code || reason != tc.reason || ok != tc.ok {
			t.Errorf("parseSipfrag(%q) = %d %q %v, want %d %q %v", tc.body, code, reason, ok, tc.code, tc.reason, tc.ok)
		}
	}
}

func FuzzParseSipfrag(f *testing.F) {
	for _, s := range []string{"SIP/2.0 200 OK", "SIP/2.0 100 Trying\r\n", "\nSIP/2.0 486", "SIP/2.0 9", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, reason, ok := parseSipfrag(body)
		if !ok {
			if code != 0 || reason != "" {
				t.Fatalf("not ok but %d %q", code, reason)
			}
			return
		}
		if code < 100 || code > 699 {
			t.Fatalf("code %d", code)
		}
		if strings.ContainsAny(reason, "\r\n") || strings.TrimSpace(reason) != reason {
			t.Fatalf("reason %q", reason)
		}
		// What it read is what a status line with these says.
		line := fmt.Sprintf("SIP/2.0 %d %s", code, reason)
		c2, r2, ok2 := parseSipfrag([]byte(line))
		if !ok2 || c2 != code || r2 != reason {
			t.Fatalf("%q reparsed as %d %q %v", line, c2, r2, ok2)
		}
	})
}
