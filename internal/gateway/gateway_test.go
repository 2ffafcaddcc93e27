package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/sdp"
)

func TestAccountConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     map[string]any
		has     bool
		wantErr string
		check   func(t *testing.T, port int, register bool, transport string)
	}{
		{name: "no sip fields", req: map[string]any{"appKey": "x"}},
		{name: "login without domain is data only", req: map[string]any{"sipLogin": "alice"}},
		{name: "full", req: map[string]any{"sipLogin": "alice", "sipDomain": "d", "sipPort": float64(5070),
			"sipRegisterRequired": true, "sipTransport": "TCP"}, has: true,
			check: func(t *testing.T, port int, register bool, transport string) {
				if port != 5070 || !register || transport != "tcp" {
					t.Errorf("got %d %v %q", port, register, transport)
				}
			}},
		{name: "string port and flag", req: map[string]any{"sipLogin": "a", "sipDomain": "d", "sipPort": "5061", "sipRegisterRequired": "true"}, has: true,
			check: func(t *testing.T, port int, register bool, _ string) {
				if port != 5061 || !register {
					t.Errorf("got %d %v", port, register)
				}
			}},
		{name: "bad port", req: map[string]any{"sipLogin": "a", "sipDomain": "d", "sipPort": "x"}, wantErr: "sipPort"},
		{name: "port range", req: map[string]any{"sipLogin": "a", "sipDomain": "d", "sipPort": float64(70000)}, wantErr: "out of range"},
		{name: "login type", req: map[string]any{"sipLogin": 5}, wantErr: "sipLogin must be a string"},
		{name: "transport", req: map[string]any{"sipLogin": "a", "sipDomain": "d", "sipTransport": "sctp"}, wantErr: "want UDP, TCP or TLS"},
		{name: "register type", req: map[string]any{"sipLogin": "a", "sipDomain": "d", "sipRegisterRequired": 1.0}, wantErr: "boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, has, err := accountConfig(tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || has != tc.has {
				t.Fatalf("has %v err %v", has, err)
			}
			if tc.check != nil {
				tc.check(t, c.Port, c.Register, c.Transport)
			}
		})
	}
}

func TestUserOf(t *testing.T) {
	for in, want := range map[string]string{
		"sip:alice@example.com":               "alice",
		`"Alice" <sip:alice@x;transport=tcp>`: "alice",
		"sips:bob@y":                          "bob",
		"carol":                               "carol",
	} {
		if got := userOf(in); got != want {
			t.Errorf("userOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedirect(t *testing.T) {
	in := "v=0\r\no=- 1 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=sendrecv\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\nm=video 4002 RTP/AVP 96\r\n"
	out, err := redirect([]byte(in), "sendonly")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sdp.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Media {
		if d := m.Direction(s); d != "sendonly" {
			t.Errorf("%s direction %s", m.Type(), d)
		}
	}
	if o, _ := s.Origin(); o.SessionVersion != "8" {
		t.Errorf("origin version %q, want 8", o.SessionVersion)
	}
	if strings.Count(string(out), "sendrecv") != 0 {
		t.Errorf("sendrecv left in %q", out)
	}
}

// TestListSIP: `list sip` reads the counters /metrics shows.
func TestListSIP(t *testing.T) {
	g := &Gateway{}
	m := g.metrics()
	m.registration("REGISTERED")
	m.active.Add(2)
	m.callEnded(false, "BUSY")
	m.callEnded(true, "FINISH")
	m.message(true, "RECEIVED")
	r := cli.New(nil)
	g.RegisterCLI(r)
	var out strings.Builder
	out.WriteString(r.Run(context.Background(), "list sip"))
	for _, want := range []string{"Registrations REGISTERED", "Calls outgoing BUSY", "Calls incoming FINISH", "Messages incoming RECEIVED"} {
		if !strings.Contains(out.String(), fmt.Sprintf(" %-48s:1\n", want)) {
			t.Errorf("list sip lacks %s:1:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), fmt.Sprintf(" %-48s:0\n", "Calls outgoing FINISH")) ||
		!strings.Contains(out.String(), fmt.Sprintf(" %-48s:0\n", "Active calls")) {
		t.Errorf("list sip:\n%s", out.String())
	}
}
