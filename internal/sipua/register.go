package sipua

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

const (
	// A failed registration that a retry may fix (timeout, 5xx…) is tried
	// again after retryMin, doubling up to retryMax.
	retryMin = 30 * time.Second
	retryMax = 5 * time.Minute
	// minRefresh keeps a registrar granting tiny expiries from turning the
	// refresh into a loop.
	minRefresh = time.Second
)

// regResult is one REGISTER round.
type regResult struct {
	code    int
	reason  string
	granted time.Duration // 2xx: the expiry the registrar granted
	err     error         // no final response
}

func (a *Account) registerLoop(ctx context.Context) {
	defer close(a.regDone)
	backoff := retryMin
	for {
		r := a.register(ctx, a.s.cfg.RegisterExpires)
		if ctx.Err() != nil {
			// Close interrupted it; Close reports the unregister.
			return
		}
		var wait time.Duration
		switch {
		case r.err == nil && r.code >= 200 && r.code < 300:
			a.post(func() { a.h.Registration(Registered, r.code, r.reason) })
			wait = max(a.s.refreshAfter(r.granted), minRefresh)
			backoff = retryMin
		case r.err == nil && authRefused(r.code):
			// Wrong credentials do not get better by retrying: report once
			// and stay unregistered until the Account is closed.
			a.log.Info("registration refused", "status", r.code, "reason", r.reason)
			a.post(func() { a.h.Registration(RegisterFail, r.code, r.reason) })
			<-ctx.Done()
			return
		default:
			a.log.Info("registration failed", "status", r.code, "reason", r.reason)
			a.post(func() { a.h.Registration(RegisterFail, r.code, r.reason) })
			wait = backoff
			backoff = min(2*backoff, retryMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-a.renew:
			t.Stop()
		}
	}
}

// register sends one REGISTER (expires 0: remove our binding), answering
// a digest challenge and one 423 Interval Too Brief.
func (a *Account) register(ctx context.Context, expires time.Duration) regResult {
	ctx, cancel := context.WithTimeout(ctx, a.s.cfg.RequestTimeout)
	defer cancel()
	secs := int((expires + time.Second - 1) / time.Second)
	var res *sip.Response
	var err error
	for range 2 {
		req := a.newRegister(secs)
		res, err = a.doAuth(ctx, req)
		a.mu.Lock()
		a.regCSeq = req.CSeq().SeqNo
		a.mu.Unlock()
		if err != nil {
			return regResult{reason: errReason(err, a.s.cfg.RequestTimeout), err: err}
		}
		if res.StatusCode != sip.StatusIntervalToBrief || secs == 0 {
			break
		}
		h := res.GetHeader("Min-Expires")
		if h == nil {
			break
		}
		n, perr := strconv.Atoi(strings.TrimSpace(h.Value()))
		if perr != nil || n <= secs {
			break
		}
		secs = n
	}
	r := regResult{code: res.StatusCode, reason: res.Reason}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		r.granted = a.grantedExpiry(res, secs)
		a.mu.Lock()
		a.bound = secs > 0
		a.granted = r.granted
		a.mu.Unlock()
		if secs > 0 {
			a.noteFlow(res)
		} else {
			a.flowLost("")
		}
	}
	return r
}

func (a *Account) newRegister(expires int) *sip.Request {
	a.mu.Lock()
	a.regCSeq++
	cseq := a.regCSeq
	a.mu.Unlock()
	req := a.newRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: a.cfg.Domain}, a.regCID, cseq)
	// The To of a REGISTER is the AOR being bound, not the Request-URI.
	req.RemoveHeader("To")
	req.AppendHeader(&sip.ToHeader{Address: *a.aor.Clone()})
	req.AppendHeader(a.contact.Clone())
	exp := sip.ExpiresHeader(expires)
	req.AppendHeader(&exp)
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	req.SetBody(nil)
	return req
}

// grantedExpiry is what the registrar granted our Contact: its expires
// parameter in the 200, else the Expires header, else what we asked.
func (a *Account) grantedExpiry(res *sip.Response, asked int) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.User != a.token {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
	}
	return time.Duration(asked) * time.Second
}

// authRefused tells a registrar's "your credentials are wrong" (a challenge
// left after we answered one, or 403).
func authRefused(code int) bool {
	return code == sip.StatusUnauthorized || code == sip.StatusProxyAuthRequired || code == sip.StatusForbidden
}
