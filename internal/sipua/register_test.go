package sipua

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

// Kamailio's registrar raises any Expires under its min_expires (60 s) to
// 60, so a refresh at half the granted expiry cannot be waited for here:
// the test checks that the granted expiry (not the asked one) is used and
// shortens the refresh through Stack.refreshAfter.
func TestRegisterRefreshUnregister(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			k := testpeer.StartKamailio(t, testpeer.KamailioOptions{})
			s := newStack(t, func(c *Config) { c.RegisterExpires = 2 * time.Second })
			s.refreshAfter = func(time.Duration) time.Duration { return 200 * time.Millisecond }
			h := newHandler(t)
			a, err := s.NewAccount(accountConfig(t, k, "alice", tp, true), h)
			if err != nil {
				t.Fatal(err)
			}
			if s.NumAccounts() != 1 {
				t.Fatalf("NumAccounts %d", s.NumAccounts())
			}
			e := h.expectReg(t, Registered)
			if e.code != 200 {
				t.Fatalf("registered with %d %q", e.code, e.reason)
			}
			h.expectReg(t, Registered) // the refresh
			a.mu.Lock()
			granted := a.granted
			a.mu.Unlock()
			if granted != 60*time.Second {
				t.Errorf("granted expiry %v, want Kamailio's min_expires 60s", granted)
			}

			// The binding is there: bob reaches alice through Kamailio.
			hb := newHandler(t)
			b, err := s.NewAccount(accountConfig(t, k, "bob", tp, false), hb)
			if err != nil {
				t.Fatal(err)
			}
			if code, reason, err := b.SendMessage(ctxT(t), "alice", "", []byte("hi")); err != nil || code != 200 {
				t.Fatalf("MESSAGE to registered alice: %d %q %v", code, reason, err)
			}

			a.Close(ctxT(t))
			e = h.waitReg(t, Unregistered)
			if e.code != 200 || e.reason != "OK" {
				t.Errorf("unregistered with %d %q", e.code, e.reason)
			}
			if s.NumAccounts() != 1 {
				t.Errorf("NumAccounts %d after closing one of two", s.NumAccounts())
			}
			// And the binding is gone.
			if code, _, err := b.SendMessage(ctxT(t), "alice", "", []byte("hi")); err != nil || code != 404 {
				t.Errorf("MESSAGE to unregistered alice: %d %v, want 404", code, err)
			}
		})
	}
}

func TestRegisterWrongPassword(t *testing.T) {
	testutil.CheckGoroutines(t)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{})
	s := newStack(t, nil)
	h := newHandler(t)
	cfg := accountConfig(t, k, "alice", "udp", true)
	cfg.Password = "wrong"
	a, err := s.NewAccount(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	e := h.expectReg(t, RegisterFail)
	if e.code != 401 && e.code != 403 {
		t.Errorf("failed with %d %q, want 401 or 403", e.code, e.reason)
	}
	// Once: no retry follows a refusal of the credentials.
	select {
	case e := <-h.regs:
		t.Fatalf("another registration event: %+v", e)
	case <-time.After(time.Second):
	}
	a.Close(ctxT(t))
	select {
	case e := <-h.regs:
		t.Fatalf("Close of an account never registered reported %+v", e)
	default:
	}
	checkNoSecrets(t, s, "wrong")
}

// A registrar that never answers (UDP) or refuses the connection (TCP):
// FAILED with code 0 and a reason within RequestTimeout.
func TestRegisterUnreachable(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			port := deadPort(t)
			const timeout = 700 * time.Millisecond
			s := newStack(t, func(c *Config) { c.RequestTimeout = timeout })
			h := newHandler(t)
			start := time.Now()
			a, err := s.NewAccount(AccountConfig{
				Login: "alice", Password: "x", Domain: "rtcgate.test", OutboundProxy: "127.0.0.1",
				Port: port, Transport: tp, Register: true,
			}, h)
			if err != nil {
				t.Fatal(err)
			}
			e := h.expectReg(t, RegisterFail)
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("failure reported after %v", took)
			}
			if e.code != 0 || e.reason == "" {
				t.Errorf("failed with %d %q, want 0 and a reason", e.code, e.reason)
			}
			t.Logf("reason: %s", e.reason)
			a.Close(ctxT(t))
			s.Close()
		})
	}
}

// closingHandler closes its account from its Registration callback.
type closingHandler struct {
	*handler
	acct   chan *Account
	closed chan struct{}
}

func (h *closingHandler) Registration(status RegistrationStatus, code int, reason string) {
	h.handler.Registration(status, code, reason)
	a := <-h.acct
	a.Close(context.Background())
	close(h.closed)
}

// Close called from the account's own Handler returns (it does not wait
// for the event queue it runs on).
func TestCloseFromHandler(t *testing.T) {
	testutil.CheckGoroutines(t)
	s := newStack(t, nil)
	h := &closingHandler{handler: newHandler(t), acct: make(chan *Account, 1), closed: make(chan struct{})}
	a, err := s.NewAccount(AccountConfig{
		Login: "alice", Domain: "rtcgate.test", OutboundProxy: "127.0.0.1", Port: deadPort(t),
		Transport: "tcp", Register: true,
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	h.acct <- a
	h.expectReg(t, RegisterFail)
	select {
	case <-h.closed:
	case <-time.After(wait):
		t.Fatal("Close from the Handler did not return")
	}
	if s.NumAccounts() != 0 {
		t.Errorf("NumAccounts %d", s.NumAccounts())
	}
}

// deadPort is a loopback port where nothing listens, UDP or TCP.
func deadPort(t *testing.T) int {
	t.Helper()
	return testpeer.FreeUDPPort(t)
}

func TestNewAccountValidation(t *testing.T) {
	testutil.CheckGoroutines(t)
	s := newStack(t, func(c *Config) { c.MaxAccounts = 1 })
	h := newHandler(t)
	for _, cfg := range []AccountConfig{
		{Domain: "d.test"},
		{Login: "a", Domain: ""},
		{Login: "a b", Domain: "d.test"},
		{Login: "a", Domain: "d.test", Transport: "sctp"},
		{Login: "a", Domain: "d.test", Port: 70000},
		{Login: "a", Domain: "d.test", ContactParams: ";=<>"},
	} {
		if _, err := s.NewAccount(cfg, h); err == nil {
			t.Errorf("NewAccount(%+v) took it", cfg)
		}
	}
	a, err := s.NewAccount(AccountConfig{Login: "a", Domain: "d.test", ContactParams: "ob;x=1"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if a.AOR() != "sip:a@d.test" {
		t.Errorf("AOR %q", a.AOR())
	}
	if got := a.contact.Address.String(); !strings.HasSuffix(got, ";ob;x=1") || !strings.HasPrefix(got, "sip:"+a.token+"@127.0.0.1:") {
		t.Errorf("contact %q", got)
	}
	if _, err := s.NewAccount(AccountConfig{Login: "b", Domain: "d.test"}, h); err == nil {
		t.Error("MaxAccounts 1 let a second account in")
	}
	a.Close(context.Background())
	b, err := s.NewAccount(AccountConfig{Login: "b", Domain: "d.test", Transport: "TCP"}, h)
	if err != nil {
		t.Fatalf("after Close, a new account: %v", err)
	}
	if got := b.contact.Address.String(); !strings.HasSuffix(got, ";transport=tcp") {
		t.Errorf("TCP contact %q", got)
	}
	_, p, _ := net.SplitHostPort(s.Addr())
	if n, _ := strconv.Atoi(p); n == 0 {
		t.Errorf("Addr %q", s.Addr())
	}
}
