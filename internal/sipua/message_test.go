package sipua

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

func TestMessage(t *testing.T) {
	testutil.CheckGoroutines(t)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{})
	s := newStack(t, nil)
	ha, hb := newHandler(t), newHandler(t)
	alice, err := s.NewAccount(accountConfig(t, k, "alice", "udp", true), ha)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := s.NewAccount(accountConfig(t, k, "bob", "tcp", true), hb)
	if err != nil {
		t.Fatal(err)
	}
	ha.expectReg(t, Registered)
	hb.expectReg(t, Registered)

	expectMessage := func(h *handler, from, to, ct, body string) {
		t.Helper()
		select {
		case m := <-h.msgs:
			if m.From != from || m.To != to || m.ContentType != ct || string(m.Body) != body {
				t.Errorf("got %+v (body %q), want from %s to %s %s %q", m, m.Body, from, to, ct, body)
			}
		case <-time.After(wait):
			t.Fatal("MESSAGE not delivered")
		}
	}

	// alice → bob: Kamailio asks alice for credentials (407), then
	// relays to bob's contact.
	code, reason, err := alice.SendMessage(ctxT(t), "bob", "text/plain", []byte("hello bob"))
	if err != nil || code != 200 {
		t.Fatalf("alice→bob: %d %q %v", code, reason, err)
	}
	expectMessage(hb, "sip:alice@rtcgate.test", "sip:bob@rtcgate.test", "text/plain", "hello bob")

	// To oneself, with a full URI.
	code, _, err = alice.SendMessage(ctxT(t), "sip:alice@rtcgate.test", "application/json", []byte(`{"a":1}`))
	if err != nil || code != 200 {
		t.Fatalf("alice→alice: %d %v", code, err)
	}
	expectMessage(ha, "sip:alice@rtcgate.test", "sip:alice@rtcgate.test", "application/json", `{"a":1}`)

	// The Handler's status is the answer.
	hb.msgStatus.Store(480)
	code, _, err = alice.SendMessage(ctxT(t), "bob@rtcgate.test", "", []byte("busy?"))
	if err != nil || code != 480 {
		t.Fatalf("refused MESSAGE: %d %v, want 480", code, err)
	}
	expectMessage(hb, "sip:alice@rtcgate.test", "sip:bob@rtcgate.test", "text/plain", "busy?")

	// Nobody is dave.
	code, _, err = bob.SendMessage(ctxT(t), "dave", "", []byte("?"))
	if err != nil || code != 404 {
		t.Fatalf("MESSAGE to an unknown user: %d %v, want 404", code, err)
	}
	if _, _, err := bob.SendMessage(ctxT(t), "tel:+123", "", nil); err == nil {
		t.Error("a tel: destination was taken")
	}
	checkNoSecrets(t, s, "alice-secret", "bob-secret")
}

// Requests sent straight to the Stack, bypassing Kamailio: an unknown
// Contact user gets 404, a request in an unknown dialog 481, OPTIONS 200.
func TestUnknownContact(t *testing.T) {
	testutil.CheckGoroutines(t)
	s := newStack(t, nil)
	h := newHandler(t)
	if _, err := s.NewAccount(AccountConfig{Login: "alice", Domain: "rtcgate.test"}, h); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, user, toTag string
		want                int
	}{
		{"MESSAGE", "nobody", "", 404},
		{"INVITE", "nobody", "", 404},
		{"BYE", "nobody", "x1", 481},
		{"INFO", "nobody", "x2", 481},
		{"NOTIFY", "nobody", "x3", 481},
		{"INVITE", "nobody", "x4", 481},
		{"OPTIONS", "nobody", "", 200},
		{"SUBSCRIBE", "nobody", "", 404},
	} {
		for _, tp := range []string{"udp", "tcp"} {
			got := rawRequest(t, tp, s.Addr(), tc.method, tc.user, tc.toTag)
			if got != tc.want {
				t.Errorf("%s %s to %s (to-tag %q): %d, want %d", tp, tc.method, tc.user, tc.toTag, got, tc.want)
			}
		}
	}
	select {
	case m := <-h.msgs:
		t.Errorf("the account got %+v", m)
	case c := <-h.incoming:
		t.Errorf("the account got a call from %s", c.From)
	default:
	}
}

// rawRequest sends one request over a socket of its own and returns the
// final response's status.
func rawRequest(t *testing.T, tp, addr, method, user, toTag string) int {
	t.Helper()
	conn, err := net.Dial(tp, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	to := "<sip:" + user + "@rtcgate.test>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	body := ""
	ct := ""
	if method == "INVITE" {
		body, ct = offerSDP, "Content-Type: application/sdp\r\n"
	}
	msg := fmt.Sprintf("%s sip:%s@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;branch=z9hG4bK-raw-%d\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:raw@rtcgate.test>;tag=raw\r\n"+
		"To: %s\r\n"+
		"Call-ID: raw-%d@test\r\n"+
		"CSeq: 1 %s\r\n"+
		"Contact: <sip:raw@%s;transport=%s>\r\n"+
		"%sContent-Length: %d\r\n\r\n%s",
		method, user, addr, strings.ToUpper(tp), local, time.Now().UnixNano(), to,
		time.Now().UnixNano(), method, local, tp, ct, len(body), body)
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	r := bufio.NewReader(conn)
	for range 5 {
		var line string
		if tp == "udp" {
			buf := make([]byte, 4096)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("%s %s: %v", tp, method, err)
			}
			line, _, _ = strings.Cut(string(buf[:n]), "\r\n")
		} else {
			line, err = r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s %s: %v", tp, method, err)
			}
			// Skip the rest of this response.
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
		}
		var code int
		if _, err := fmt.Sscanf(line, "SIP/2.0 %d", &code); err != nil {
			t.Fatalf("not a status line: %q", line)
		}
		if code >= 200 {
			return code
		}
	}
	t.Fatalf("%s %s: no final response", tp, method)
	return 0
}
