package sipua

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

// echoPeer is a sipp uas_echo reached as sip:echo@domain through Kamailio.
func echoPeer(t *testing.T, scenario string) (*testpeer.Kamailio, *testpeer.Sipp) {
	t.Helper()
	sp := testpeer.StartSipp(t, scenario, "-m", "1")
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{Routes: map[string]string{"echo": sp.Addr}})
	return k, sp
}

func TestOutgoingCall(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			k, sp := echoPeer(t, "uas_echo")
			s := newStack(t, nil)
			h := newHandler(t)
			a, err := s.NewAccount(accountConfig(t, k, "alice", tp, false), h)
			if err != nil {
				t.Fatal(err)
			}
			ch := newCallHandler(h)
			c, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), ch)
			if err != nil {
				t.Fatal(err)
			}
			if c.Incoming || c.CallID == "" || c.LocalTag == "" || c.To != "sip:echo@rtcgate.test" || c.From != "sip:alice@rtcgate.test" {
				t.Errorf("call %+v", c)
			}
			ch.expectProgress(t, 180)
			sdp := ch.expectAnswered(t)
			if !bytes.Contains(sdp, []byte("m=audio ")) {
				t.Errorf("answer %q", sdp)
			}
			if c.RemoteTag == "" {
				t.Error("no RemoteTag after Answered")
			}

			// Hold.
			ans, err := c.Reinvite(ctxT(t), []byte(holdSDP))
			if err != nil || !bytes.Contains(ans, []byte("m=audio ")) {
				t.Fatalf("re-INVITE: %q %v", ans, err)
			}
			if err := c.Info(ctxT(t), "application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n")); err != nil {
				t.Fatalf("INFO: %v", err)
			}
			if err := c.Refer(ctxT(t), "carol"); err != nil {
				t.Fatalf("REFER: %v", err)
			}
			select {
			case e := <-ch.refers:
				if e.code != 200 {
					t.Errorf("ReferStatus %d %q, want 200", e.code, e.reason)
				}
			case <-time.After(wait):
				t.Fatal("no ReferStatus")
			}
			// uas_echo takes nothing but the 200 to its NOTIFY next. Over
			// TCP our 200 and our next request reach Kamailio on two
			// connections (its own to our listener, ours to it) and may
			// swap: wait until sipp logged the 200.
			waitSippLog(t, sp, notifyCSeq, 2)

			if err := c.Hangup(ctxT(t)); err != nil {
				t.Fatalf("Hangup: %v", err)
			}
			if e := ch.expectEnded(t); e.code != 0 || e.reason != "BYE" {
				t.Errorf("Ended %d %q, want 0 BYE", e.code, e.reason)
			}
			if err := sp.Wait(wait); err != nil {
				t.Error(err)
			}
			if err := c.Hangup(ctxT(t)); err != nil {
				t.Errorf("second Hangup: %v", err)
			}
			if _, err := c.Reinvite(ctxT(t), []byte(offerSDP)); err == nil {
				t.Error("re-INVITE on an ended call")
			}
			ch.expectNoMore(t, 200*time.Millisecond)
		})
	}
}

func TestOutgoingBusy(t *testing.T) {
	testutil.CheckGoroutines(t)
	k, sp := echoPeer(t, "uas_busy")
	s := newStack(t, nil)
	h := newHandler(t)
	a, err := s.NewAccount(accountConfig(t, k, "alice", "udp", false), h)
	if err != nil {
		t.Fatal(err)
	}
	ch := newCallHandler(h)
	if _, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), ch); err != nil {
		t.Fatal(err)
	}
	if e := ch.expectEnded(t); e.code != 486 {
		t.Errorf("Ended %d %q, want 486", e.code, e.reason)
	}
	if err := sp.Wait(wait); err != nil {
		t.Error(err)
	}
	ch.expectNoMore(t, 100*time.Millisecond)
}

// A ringing call cancelled: the far end's 487 ends it (Ended 487). A UAS
// whose 487 cannot be matched (a Via copied from the CANCEL, as
// uas_ring_cancel once did) ends it after RequestTimeout with Ended(0,
// "CANCEL"); both are accepted.
func TestOutgoingCancel(t *testing.T) {
	testutil.CheckGoroutines(t)
	k, sp := echoPeer(t, "uas_ring_cancel")
	s := newStack(t, func(c *Config) { c.RequestTimeout = time.Second })
	h := newHandler(t)
	a, err := s.NewAccount(accountConfig(t, k, "alice", "udp", false), h)
	if err != nil {
		t.Fatal(err)
	}
	ch := newCallHandler(h)
	c, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), ch)
	if err != nil {
		t.Fatal(err)
	}
	ch.expectProgress(t, 180)
	if err := c.Answer([]byte(answerSDP)); err == nil {
		t.Error("Answer on an outgoing call")
	}
	if err := c.Hangup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	e := ch.expectEnded(t)
	if e.code != 487 && (e.code != 0 || e.reason != "CANCEL") {
		t.Errorf("Ended %d %q, want 487 or 0 CANCEL", e.code, e.reason)
	}
	if err := sp.Wait(wait); err != nil {
		t.Error(err)
	}
}

// A ringing call is cancelled when RingTimeout passes.
func TestOutgoingRingTimeout(t *testing.T) {
	testutil.CheckGoroutines(t)
	k, sp := echoPeer(t, "uas_ring_cancel")
	s := newStack(t, func(c *Config) {
		c.RingTimeout = 300 * time.Millisecond
		c.RequestTimeout = time.Second // bounds the wait for an unmatched 487 (TestOutgoingCancel)
	})
	h := newHandler(t)
	a, err := s.NewAccount(accountConfig(t, k, "alice", "udp", false), h)
	if err != nil {
		t.Fatal(err)
	}
	ch := newCallHandler(h)
	if _, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), ch); err != nil {
		t.Fatal(err)
	}
	ch.expectProgress(t, 180)
	if e := ch.expectEnded(t); e.code != 487 && (e.code != 0 || e.reason != "ring timeout") {
		t.Errorf("Ended %d %q, want 487 or 0 ring timeout", e.code, e.reason)
	}
	if err := sp.Wait(wait); err != nil {
		t.Error(err)
	}
}

// An INVITE that nothing answers ends with the timeout, within
// RequestTimeout.
func TestOutgoingUnreachable(t *testing.T) {
	testutil.CheckGoroutines(t)
	const timeout = 500 * time.Millisecond
	s := newStack(t, func(c *Config) { c.RequestTimeout = timeout })
	h := newHandler(t)
	a, err := s.NewAccount(AccountConfig{Login: "alice", Domain: "rtcgate.test", OutboundProxy: "127.0.0.1", Port: deadPort(t)}, h)
	if err != nil {
		t.Fatal(err)
	}
	ch := newCallHandler(h)
	start := time.Now()
	if _, err := a.Invite(ctxT(t), "bob", []byte(offerSDP), ch); err != nil {
		t.Fatal(err)
	}
	e := ch.expectEnded(t)
	if e.code != 0 || !strings.Contains(e.reason, "timeout") {
		t.Errorf("Ended %d %q", e.code, e.reason)
	}
	if took := time.Since(start); took > timeout+time.Second {
		t.Errorf("ended after %v", took)
	}
}

func TestIncomingCall(t *testing.T) {
	for _, tp := range []string{"udp", "tcp"} {
		t.Run(tp, func(t *testing.T) {
			testutil.CheckGoroutines(t)
			k := testpeer.StartKamailio(t, testpeer.KamailioOptions{})
			s := newStack(t, nil)
			h := newHandler(t)
			ch := newCallHandler(h)
			h.onIncoming = func(c *Call) CallHandler {
				// Answering from inside the Handler must not deadlock.
				if err := c.Ring(); err != nil {
					t.Errorf("Ring: %v", err)
				}
				return ch
			}
			if _, err := s.NewAccount(accountConfig(t, k, "alice", tp, true), h); err != nil {
				t.Fatal(err)
			}
			h.expectReg(t, Registered)

			sp := testpeer.StartSipp(t, "uac_call", k.Addr, "-s", "alice", "-m", "1")
			var c *Call
			select {
			case c = <-h.incoming:
			case <-time.After(wait):
				t.Fatal("no IncomingCall")
			}
			if !c.Incoming || c.From != "sip:sipp@rtcgate.test" || c.DisplayName != "sipp" || !bytes.Contains(c.Offer, []byte("m=audio ")) ||
				c.RemoteTag == "" || c.LocalTag == "" {
				t.Errorf("call %+v offer %q", c, c.Offer)
			}
			if err := c.Answer([]byte(answerSDP)); err != nil {
				t.Fatalf("Answer: %v", err)
			}
			if err := c.Ring(); err == nil {
				t.Error("Ring after Answer")
			}
			if e := ch.expectEnded(t); e.code != 0 || e.reason != "remote BYE" {
				t.Errorf("Ended %d %q, want 0 remote BYE", e.code, e.reason)
			}
			if err := sp.Wait(wait); err != nil {
				t.Error(err)
			}
			ch.expectNoMore(t, 100*time.Millisecond)
		})
	}
}

func TestIncomingRejectAndCancel(t *testing.T) {
	testutil.CheckGoroutines(t)
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{})
	s := newStack(t, nil)
	h := newHandler(t)
	ch := newCallHandler(h)
	h.onIncoming = func(*Call) CallHandler { return ch }
	if _, err := s.NewAccount(accountConfig(t, k, "alice", "udp", true), h); err != nil {
		t.Fatal(err)
	}
	h.expectReg(t, Registered)
	incoming := func() *Call {
		t.Helper()
		select {
		case c := <-h.incoming:
			return c
		case <-time.After(wait):
			t.Fatal("no IncomingCall")
		}
		return nil
	}

	sp := testpeer.StartSipp(t, "uac_call_rejected", k.Addr, "-s", "alice", "-m", "1")
	c := incoming()
	if err := c.Reject(486, ""); err != nil {
		t.Fatal(err)
	}
	if e := ch.expectEnded(t); e.code != 486 || e.reason != "Busy Here" {
		t.Errorf("Ended %d %q, want 486 Busy Here", e.code, e.reason)
	}
	if err := sp.Wait(wait); err != nil {
		t.Error(err)
	}
	if err := c.Answer([]byte(answerSDP)); err == nil {
		t.Error("Answer after Reject")
	}

	sp = testpeer.StartSipp(t, "uac_ring_cancel", k.Addr, "-s", "alice", "-m", "1")
	c = incoming()
	if err := c.Ring(); err != nil {
		t.Fatal(err)
	}
	if e := ch.expectEnded(t); e.code != 0 || e.reason != "CANCEL" {
		t.Errorf("Ended %d %q, want 0 CANCEL", e.code, e.reason)
	}
	if err := sp.Wait(wait); err != nil {
		t.Error(err)
	}
	if err := c.Answer([]byte(answerSDP)); err == nil {
		t.Error("Answer after CANCEL")
	}
}

// Closing an account (or the whole Stack) with a live call sends BYE
// (sipp's scenario only completes on one) and unregisters.
func TestCloseHangsUp(t *testing.T) {
	t.Run("account", func(t *testing.T) { testCloseHangsUp(t, false) })
	t.Run("stack", func(t *testing.T) { testCloseHangsUp(t, true) })
}

func testCloseHangsUp(t *testing.T, wholeStack bool) {
	testutil.CheckGoroutines(t)
	k, sp := echoPeer(t, "uas_echo")
	s := newStack(t, nil)
	h := newHandler(t)
	a, err := s.NewAccount(accountConfig(t, k, "alice", "udp", true), h)
	if err != nil {
		t.Fatal(err)
	}
	h.expectReg(t, Registered)
	ch := newCallHandler(h)
	if _, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), ch); err != nil {
		t.Fatal(err)
	}
	ch.expectAnswered(t)
	if wholeStack {
		s.Close()
	} else {
		a.Close(ctxT(t))
	}
	if e := ch.expectEnded(t); e.code != 0 || e.reason != "BYE" {
		t.Errorf("Ended %d %q, want 0 BYE", e.code, e.reason)
	}
	if e := h.waitReg(t, Unregistered); e.code != 200 {
		t.Errorf("unregistered %d %q", e.code, e.reason)
	}
	if err := sp.Wait(wait); err != nil {
		t.Error(err)
	}
	if _, err := a.Invite(ctxT(t), "echo", []byte(offerSDP), newCallHandler(h)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invite after Close: %v", err)
	}
	if s.NumAccounts() != 0 {
		t.Errorf("NumAccounts %d", s.NumAccounts())
	}
}

// aliceCallsBob registers alice (UDP) and bob (TCP) at a Kamailio and
// makes alice's call to bob, which bob's CallHandler chb is to handle: the
// calls on both sides, not answered yet.
func aliceCallsBob(t *testing.T, ha, hb *handler, cha, chb CallHandler) (ca, cb *Call) {
	t.Helper()
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{})
	s := newStack(t, nil)
	hb.onIncoming = func(*Call) CallHandler { return chb }
	alice, err := s.NewAccount(accountConfig(t, k, "alice", "udp", true), ha)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewAccount(accountConfig(t, k, "bob", "tcp", true), hb); err != nil {
		t.Fatal(err)
	}
	ha.expectReg(t, Registered)
	hb.expectReg(t, Registered)
	ca, err = alice.Invite(ctxT(t), "bob", []byte(offerSDP), cha)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case cb = <-hb.incoming:
	case <-time.After(wait):
		t.Fatal("bob got no call")
	}
	return ca, cb
}

// Two accounts of one Stack call each other through Kamailio: both ends of
// every in-dialog request are ours (re-INVITE from the callee, with and
// without an offer, INFO both ways, BYE from the caller).
func TestCallBetweenAccounts(t *testing.T) {
	testutil.CheckGoroutines(t)
	ha, hb := newHandler(t), newHandler(t)
	cha, chb := newCallHandler(ha), newCallHandler(hb)
	ca, cb := aliceCallsBob(t, ha, hb, cha, chb)
	if cb.From != "sip:alice@rtcgate.test" || cb.DisplayName != "Alice" || string(cb.Offer) != offerSDP || cb.CallID != ca.CallID {
		t.Errorf("bob's call %+v", cb)
	}
	if err := cb.Ring(); err != nil {
		t.Fatal(err)
	}
	cha.expectProgress(t, 180)
	if err := cb.Answer([]byte(answerSDP)); err != nil {
		t.Fatal(err)
	}
	if sdp := cha.expectAnswered(t); string(sdp) != answerSDP {
		t.Errorf("alice got answer %q", sdp)
	}
	if ca.RemoteTag != cb.LocalTag || cb.RemoteTag != ca.LocalTag {
		t.Errorf("tags: alice %s/%s bob %s/%s", ca.LocalTag, ca.RemoteTag, cb.LocalTag, cb.RemoteTag)
	}

	// bob (the callee) holds: alice's Reinvite answers.
	ans, err := cb.Reinvite(ctxT(t), []byte(holdSDP))
	if err != nil || string(ans) != answerSDP {
		t.Fatalf("bob's re-INVITE: %q %v", ans, err)
	}
	select {
	case offer := <-cha.reinvites:
		if string(offer) != holdSDP {
			t.Errorf("alice was offered %q", offer)
		}
	case <-time.After(wait):
		t.Fatal("alice's Reinvite not called")
	}
	// alice (the caller) resumes: bob's Reinvite answers.
	ans, err = ca.Reinvite(ctxT(t), []byte(offerSDP))
	if err != nil || string(ans) != answerSDP {
		t.Fatalf("alice's re-INVITE: %q %v", ans, err)
	}
	select {
	case offer := <-chb.reinvites:
		if string(offer) != offerSDP {
			t.Errorf("bob was offered %q", offer)
		}
	case <-time.After(wait):
		t.Fatal("bob's Reinvite not called")
	}
	// A session refresh without an offer: alice offers her current SDP
	// (her last offer) without asking her handler.
	ans, err = cb.Reinvite(ctxT(t), nil)
	if err != nil || string(ans) != offerSDP {
		t.Fatalf("refresh: %q %v", ans, err)
	}
	// alice refuses an offer: 488.
	cha.answer.Store("")
	_, err = cb.Reinvite(ctxT(t), []byte(offerSDP))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 488 {
		t.Fatalf("refused re-INVITE: %v, want a 488 StatusError", err)
	}

	if err := ca.Info(ctxT(t), "application/dtmf-relay", []byte("Signal=1")); err != nil {
		t.Fatal(err)
	}
	if err := cb.Info(ctxT(t), "text/plain", []byte("back")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ch   *callHandler
		want string
	}{{chb, "application/dtmf-relay|Signal=1"}, {cha, "text/plain|back"}} {
		select {
		case got := <-tc.ch.infos:
			if got != tc.want {
				t.Errorf("INFO %q, want %q", got, tc.want)
			}
		case <-time.After(wait):
			t.Fatal("INFO not delivered")
		}
	}

	// The callee hangs up.
	if err := cb.Hangup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if e := chb.expectEnded(t); e.code != 0 || e.reason != "BYE" {
		t.Errorf("bob Ended %d %q", e.code, e.reason)
	}
	if e := cha.expectEnded(t); e.code != 0 || e.reason != "remote BYE" {
		t.Errorf("alice Ended %d %q", e.code, e.reason)
	}
	if err := ca.Info(ctxT(t), "text/plain", nil); err == nil {
		t.Error("INFO on an ended call")
	}
	cha.expectNoMore(t, 100*time.Millisecond)
	chb.expectNoMore(t, 0)
}

var notifyCSeq = regexp.MustCompile(`(?i)\ncseq:\s*\d+\s+notify`)

// waitSippLog waits until sipp's message log matches re n times (the
// message it sent, then the one it got).
func waitSippLog(t *testing.T, sp *testpeer.Sipp, re *regexp.Regexp, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for len(re.FindAllStringIndex(sp.Logs(), -1)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("sipp did not log %v %d times", re, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatedCallHandler answers a re-offer only once gate is closed.
type gatedCallHandler struct {
	*callHandler
	gate chan struct{}
}

func (g *gatedCallHandler) Reinvite(offer []byte) ([]byte, error) {
	ans, err := g.callHandler.Reinvite(offer)
	<-g.gate
	return ans, err
}

// TestReinviteWhileReofferPending: alice's re-INVITE made while she is
// still answering bob's waits for that answer (RFC 3261 14.1) instead of
// failing with 491 — the test's flow raced that way under load, her
// answer on the wire before she marked it done; then both sides re-offer
// at once (glare: a 491 is retried after 14.1's random delay) and both
// get their answers.
func TestReinviteWhileReofferPending(t *testing.T) {
	testutil.CheckGoroutines(t)
	ha, hb := newHandler(t), newHandler(t)
	cha := &gatedCallHandler{newCallHandler(ha), make(chan struct{})}
	chb := newCallHandler(hb)
	ca, cb := aliceCallsBob(t, ha, hb, cha, chb)
	if err := cb.Answer([]byte(answerSDP)); err != nil {
		t.Fatal(err)
	}
	cha.expectAnswered(t)

	type result struct {
		who string
		ans []byte
		err error
	}
	results := make(chan result, 2)
	reinvite := func(who string, c *Call, offer string) {
		ans, err := c.Reinvite(ctxT(t), []byte(offer))
		results <- result{who, ans, err}
	}
	go reinvite("bob", cb, holdSDP)
	select {
	case <-cha.reinvites: // alice's handler holds her answer
	case <-time.After(wait):
		t.Fatal("alice's Reinvite not called")
	}
	started := make(chan struct{})
	go func() {
		close(started)
		reinvite("alice", ca, offerSDP)
	}()
	<-started
	close(cha.gate)
	for range 2 {
		if r := <-results; r.err != nil || string(r.ans) != answerSDP {
			t.Fatalf("%s's re-INVITE while alice answered bob's: %q %v", r.who, r.ans, r.err)
		}
	}
	if offer := <-chb.reinvites; string(offer) != offerSDP {
		t.Errorf("bob was offered %q", offer)
	}

	// Both at once.
	go reinvite("bob", cb, holdSDP)
	go reinvite("alice", ca, offerSDP)
	for range 2 {
		if r := <-results; r.err != nil || string(r.ans) != answerSDP {
			t.Fatalf("%s's re-INVITE in glare: %q %v", r.who, r.ans, r.err)
		}
	}
	<-cha.reinvites
	<-chb.reinvites

	if err := cb.Hangup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	chb.expectEnded(t)
	cha.expectEnded(t)
}
