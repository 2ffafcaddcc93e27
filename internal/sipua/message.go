package sipua

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"
)

// SendMessage sends a MESSAGE to `to` (a user, user@host or a sip: URI;
// a bare user gets the account's domain), answering a 401/407 challenge
// with the account's credentials. It returns the final status and reason;
// err is set when no final response came (timeout, transport).
func (a *Account) SendMessage(ctx context.Context, to, contentType string, body []byte) (code int, reason string, err error) {
	if a.isClosing() {
		return 0, "", ErrClosed
	}
	uri, err := a.target(to)
	if err != nil {
		return 0, "", err
	}
	if contentType == "" {
		contentType = "text/plain"
	}
	ctx, cancel := context.WithTimeout(ctx, a.s.cfg.RequestTimeout)
	defer cancel()
	req := a.newRequest(sip.MESSAGE, uri, newCallID(), 1)
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	res, err := a.doAuth(ctx, req)
	if err != nil {
		return 0, "", errors.New(errReason(err, a.s.cfg.RequestTimeout))
	}
	return res.StatusCode, res.Reason, nil
}

// onMessage hands an incoming MESSAGE to the Handler and answers with the
// status it returns.
func (a *Account) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	m := Message{From: aorOf(req.From()), To: aorOf(req.To()), Body: req.Body()}
	if ct := req.ContentType(); ct != nil {
		m.ContentType = ct.Value()
	}
	code := sip.StatusTemporarilyUnavailable
	res := make(chan int, 1)
	if a.ev.post(func() { res <- a.h.Message(m) }) {
		select {
		case code = <-res:
		case <-a.s.done:
		}
	}
	if code < 200 || code > 699 {
		code = sip.StatusInternalServerError
	}
	respond(tx, req, code, "", nil)
}

// aorOf is "sip:user@host" of a From or To.
func aorOf(h interface{ Value() string }) string {
	switch v := h.(type) {
	case *sip.FromHeader:
		if v != nil {
			return uriAOR(v.Address)
		}
	case *sip.ToHeader:
		if v != nil {
			return uriAOR(v.Address)
		}
	}
	return ""
}

func uriAOR(u sip.Uri) string {
	scheme := u.Scheme
	if scheme == "" {
		scheme = "sip"
	}
	if u.User == "" {
		return scheme + ":" + u.Host
	}
	return scheme + ":" + u.User + "@" + u.Host
}
