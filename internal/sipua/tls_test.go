package sipua

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

// tlsAccountConfig is user's account on k over TLS, to its TLS listener.
func tlsAccountConfig(t *testing.T, k *testpeer.Kamailio, user string, register bool) AccountConfig {
	t.Helper()
	c := accountConfig(t, k, user, "tls", register)
	host, port, err := net.SplitHostPort(k.TLSAddr)
	if err != nil {
		t.Fatalf("Kamailio without TLS: %q", k.TLSAddr)
	}
	c.OutboundProxy = host
	c.Port, _ = strconv.Atoi(port)
	return c
}

// tlsStack is a Stack that trusts ca besides the system's roots.
func tlsStack(t *testing.T, ca string, mod func(*Config)) *Stack {
	t.Helper()
	return newStack(t, func(c *Config) {
		c.TLSCAFile = ca
		if mod != nil {
			mod(c)
		}
	})
}

// Two accounts register over TLS with Kamailio's private CA, and a
// MESSAGE from one reaches the other: Kamailio sends it over the TLS
// connection the Stack opened (the Via's alias), since nothing listens
// for TLS at the Contact.
func TestTLSRegisterAndMessage(t *testing.T) {
	testutil.CheckGoroutines(t)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{TLS: true})
	s := tlsStack(t, k.TLSCA, nil)
	ha, hb := newHandler(t), newHandler(t)
	alice, err := s.NewAccount(tlsAccountConfig(t, k, "alice", true), ha)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewAccount(tlsAccountConfig(t, k, "bob", true), hb); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*handler{ha, hb} {
		if e := h.expectReg(t, Registered); e.code != 200 {
			t.Fatalf("registered with %d %q", e.code, e.reason)
		}
	}
	if !strings.Contains(k.Logs(), "req REGISTER sip:rtcgate.test from sip:alice@rtcgate.test (127.0.0.1:") ||
		!strings.Contains(k.Logs(), "/tls) cid=") {
		t.Error("Kamailio logged no REGISTER over TLS")
	}

	code, reason, err := alice.SendMessage(ctxT(t), "bob", "text/plain", []byte("hello over TLS"))
	if err != nil || code != 200 {
		t.Fatalf("alice→bob: %d %q %v", code, reason, err)
	}
	select {
	case m := <-hb.msgs:
		if m.From != "sip:alice@rtcgate.test" || m.To != "sip:bob@rtcgate.test" || string(m.Body) != "hello over TLS" {
			t.Errorf("bob got %+v (body %q)", m, m.Body)
		}
	case <-time.After(wait):
		t.Fatal("MESSAGE not delivered to bob")
	}
	checkNoSecrets(t, s, "alice-secret", "bob-secret")
}

// An outgoing call over TLS to a sipp UAS that Kamailio reaches over UDP,
// and an incoming one from a sipp UAC over UDP to an account registered
// over TLS: the INVITE, and the far end's ACK and BYE, come over our
// connection.
func TestTLSCalls(t *testing.T) {
	testutil.CheckGoroutines(t)
	uas := testpeer.StartSipp(t, "uas_echo", "-m", "1")
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{TLS: true, Routes: map[string]string{"echo": uas.Addr}})
	s := tlsStack(t, k.TLSCA, nil)
	h := newHandler(t)
	in := newCallHandler(h)
	h.onIncoming = func(*Call) CallHandler { return in }
	a, err := s.NewAccount(tlsAccountConfig(t, k, "alice", true), h)
	if err != nil {
		t.Fatal(err)
	}
	h.expectReg(t, Registered)

	out := newCallHandler(h)
	c, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), out)
	if err != nil {
		t.Fatal(err)
	}
	if sdp := out.expectAnswered(t); !bytes.Contains(sdp, []byte("m=audio ")) {
		t.Errorf("answer %q", sdp)
	}
	if err := c.Hangup(ctxT(t)); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	if e := out.expectEnded(t); e.code != 0 || e.reason != "BYE" {
		t.Errorf("Ended %d %q, want 0 BYE", e.code, e.reason)
	}
	if err := uas.Wait(wait); err != nil {
		t.Errorf("uas: %v", err)
	}

	uac := testpeer.StartSipp(t, "uac_call", k.Addr, "-s", "alice", "-m", "1")
	var ic *Call
	select {
	case ic = <-h.incoming:
	case <-time.After(wait):
		t.Fatal("no IncomingCall over TLS")
	}
	if err := ic.Answer([]byte(answerSDP)); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	if e := in.expectEnded(t); e.code != 0 || e.reason != "remote BYE" {
		t.Errorf("Ended %d %q, want 0 remote BYE", e.code, e.reason)
	}
	if err := uac.Wait(wait); err != nil {
		t.Errorf("uac: %v", err)
	}
}

// A proxy whose certificate the trusted CA did not sign: the REGISTER
// never leaves, and FAILED says why.
func TestTLSUntrustedCertificate(t *testing.T) {
	testutil.CheckGoroutines(t)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{TLS: true})
	// Each Kamailio has a CA of its own: trust another one's.
	other := testpeer.StartKamailio(t, testpeer.KamailioOptions{TLS: true})
	s := tlsStack(t, other.TLSCA, nil)
	h := newHandler(t)
	if _, err := s.NewAccount(tlsAccountConfig(t, k, "alice", true), h); err != nil {
		t.Fatal(err)
	}
	e := h.expectReg(t, RegisterFail)
	if e.code != 0 || !strings.Contains(e.reason, "certificate") {
		t.Errorf("failed with %d %q, want 0 and a reason naming the certificate", e.code, e.reason)
	}
	if strings.Contains(k.Logs(), "req REGISTER") {
		t.Error("a REGISTER reached Kamailio over an unverified connection")
	}

	// Without verification the same proxy is accepted.
	s2 := newStack(t, func(c *Config) { c.TLSSkipVerify = true })
	h2 := newHandler(t)
	if _, err := s2.NewAccount(tlsAccountConfig(t, k, "bob", true), h2); err != nil {
		t.Fatal(err)
	}
	h2.expectReg(t, Registered)
}

func TestTLSBadCAFile(t *testing.T) {
	for name, path := range map[string]string{
		"missing": "/nonexistent/ca.pem",
		"not PEM": "tls_test.go",
	} {
		if s, err := New(Config{Listen: "127.0.0.1:0", TLSCAFile: path}); err == nil {
			s.Close()
			t.Errorf("%s CA file %s: New succeeded", name, path)
		} else if !strings.Contains(err.Error(), "CA file") {
			t.Errorf("%s CA file: %v", name, err)
		}
	}
}

// The TLS connection the account registered over goes away: the Stack
// notices at its next keep-alive and registers again over a new one,
// through which the account is reached.
func TestTLSConnectionLostReregisters(t *testing.T) {
	testutil.CheckGoroutines(t)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{TLS: true})
	s := tlsStack(t, k.TLSCA, func(c *Config) { c.TLSKeepalive = 50 * time.Millisecond })
	ha := newHandler(t)
	alice, err := s.NewAccount(tlsAccountConfig(t, k, "alice", true), ha)
	if err != nil {
		t.Fatal(err)
	}
	ha.expectReg(t, Registered)
	alice.mu.Lock()
	flow := alice.flow
	alice.mu.Unlock()
	if flow == "" || flow != k.TLSAddr {
		t.Fatalf("flow %q, want Kamailio's TLS address %s", flow, k.TLSAddr)
	}
	conn := s.ua.TransportLayer().Pool("tls").Get(flow)
	if conn == nil {
		t.Fatal("no TLS connection in the pool")
	}
	conn.Close()

	ha.expectReg(t, Registered) // the renewal, well before any refresh
	// bob, over UDP, reaches alice through the new connection.
	hb := newHandler(t)
	bob, err := s.NewAccount(accountConfig(t, k, "bob", "udp", false), hb)
	if err != nil {
		t.Fatal(err)
	}
	if code, reason, err := bob.SendMessage(ctxT(t), "alice", "", []byte("still there?")); err != nil || code != 200 {
		t.Fatalf("bob→alice after the reconnect: %d %q %v", code, reason, err)
	}
	select {
	case <-ha.msgs:
	case <-time.After(wait):
		t.Fatal("MESSAGE not delivered to alice")
	}
}
