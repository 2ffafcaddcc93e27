package sipua

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// onRequest handles a request inside the call's dialog.
func (c *Call) onRequest(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		c.onAck(req)
		return
	}
	seq := req.CSeq().SeqNo
	c.mu.Lock()
	if c.state == stateEnded {
		c.mu.Unlock()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "", nil)
		return
	}
	// RFC 3261 12.2.2: a CSeq lower than the last one is out of order.
	// sipgo hands each message to a goroutine of its own, so two requests
	// sent back to back may get here swapped: only an offer, whose order
	// matters, is refused for it. (sipgo's Dialog.ReadRequest would also
	// compare a UAC's remote CSeq with its own INVITE's, so it is not used.)
	if seq < c.remoteCSeq && (req.IsInvite() || req.Method == sip.UPDATE) {
		c.mu.Unlock()
		respond(tx, req, sip.StatusInternalServerError, "CSeq Out of Order", nil)
		return
	}
	c.remoteCSeq = max(c.remoteCSeq, seq)
	c.mu.Unlock()

	switch req.Method {
	case sip.BYE:
		c.onBye(req, tx)
	case sip.INVITE, sip.UPDATE:
		c.onReoffer(req, tx)
	case sip.INFO:
		ct := ""
		if h := req.ContentType(); h != nil {
			ct = h.Value()
		}
		body := slices.Clone(req.Body())
		respond(tx, req, sip.StatusOK, "", nil)
		c.emit(func(h CallHandler) { h.Info(ct, body) })
	case sip.NOTIFY:
		c.onNotify(req, tx)
	case sip.REFER, sip.PRACK:
		// We send no reliable provisionals, and transfer requests from the
		// far end are not part of the API.
		respond(tx, req, sip.StatusNotImplemented, "", nil)
	default:
		res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowMethods))
		_ = tx.Respond(res)
	}
}

func (c *Call) onAck(req *sip.Request) {
	seq := req.CSeq().SeqNo
	c.mu.Lock()
	ch := c.reinviteAck
	match := ch != nil && seq == c.reinviteAckSeq
	if match {
		c.reinviteAck = nil
	}
	c.mu.Unlock()
	switch {
	case match:
		close(ch)
	case c.Incoming && seq == c.inviteCSeq:
		// Confirms the dialog: the 2xx retransmissions stop.
		_ = c.dss.ReadAck(req, nil)
	}
}

func (c *Call) onBye(req *sip.Request, tx sip.ServerTransaction) {
	var err error
	if c.Incoming {
		err = c.dss.ReadBye(req, tx)
	} else {
		err = c.dcs.ReadBye(req, tx)
	}
	if err != nil {
		c.log.Info("BYE", "err", err)
		if errors.Is(err, sipgo.ErrDialogInvalidCseq) {
			respond(tx, req, sip.StatusBadRequest, "", nil)
			return
		}
	}
	c.finish(0, "remote BYE")
}

// onNotify reports the progress of our REFER from its NOTIFY's sipfrag.
func (c *Call) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	ev := req.GetHeader("Event")
	if ev == nil || !strings.EqualFold(strings.TrimSpace(strings.SplitN(ev.Value(), ";", 2)[0]), "refer") {
		respond(tx, req, 489, "Bad Event", nil)
		return
	}
	respond(tx, req, sip.StatusOK, "", nil)
	code, reason, ok := parseSipfrag(req.Body())
	if !ok {
		c.log.Info("NOTIFY without a sipfrag status line")
		return
	}
	c.emit(func(h CallHandler) { h.ReferStatus(code, reason) })
}

// onReoffer answers a re-INVITE or UPDATE. With an offer the CallHandler's
// Reinvite answers it; without one it is a session refresh: a re-INVITE
// gets our current SDP (as the offer; the ACK's answer is not needed), an
// UPDATE none (RFC 3311 allows no answer without an offer).
func (c *Call) onReoffer(req *sip.Request, tx sip.ServerTransaction) {
	isInvite := req.IsInvite()
	c.mu.Lock()
	switch {
	case c.state != stateAnswered, c.reofferOut:
		c.mu.Unlock()
		respond(tx, req, sip.StatusRequestPending, "", nil)
		return
	case c.reofferIn:
		c.mu.Unlock()
		res := sip.NewResponseFromRequest(req, sip.StatusInternalServerError, "Server Internal Error", nil)
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
		_ = tx.Respond(res)
		return
	}
	c.reofferIn = true
	c.reofferIdle = make(chan struct{})
	local := c.localSDP
	if isInvite && c.reinviteAck != nil {
		// A new INVITE means the far end got our 2xx to the last one:
		// as good as its ACK (which may yet be on its way).
		close(c.reinviteAck)
		c.reinviteAck = nil
	}
	c.mu.Unlock()
	// Pending only until our final response: the wait for its ACK below is
	// for retransmissions.
	done := func() {
		c.mu.Lock()
		c.reofferIn = false
		close(c.reofferIdle)
		c.reofferIdle = nil
		c.mu.Unlock()
	}

	var answer []byte
	switch offer := req.Body(); {
	case len(offer) > 0:
		sdp, err := c.askReinvite(slices.Clone(offer))
		if err != nil || len(sdp) == 0 {
			c.log.Info("re-offer refused", "err", err)
			done()
			respond(tx, req, sip.StatusNotAcceptableHere, "", nil)
			return
		}
		answer = sdp
		c.mu.Lock()
		c.localSDP = slices.Clone(sdp)
		c.mu.Unlock()
	case isInvite:
		answer = local
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", answer)
	if len(answer) > 0 {
		ct := sip.ContentTypeHeader("application/sdp")
		res.AppendHeader(&ct)
	}
	res.AppendHeader(c.a.contact.Clone())
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	c.a.s.addUserAgent(res)

	var acked chan struct{}
	if isInvite {
		acked = make(chan struct{})
		c.mu.Lock()
		c.reinviteAck, c.reinviteAckSeq = acked, req.CSeq().SeqNo
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			if c.reinviteAck == acked {
				c.reinviteAck = nil
			}
			c.mu.Unlock()
		}()
	}
	err := tx.Respond(res)
	done()
	if err != nil || !isInvite || sip.NetworkToLower(req.Transport()) != "udp" {
		return
	}

	// The 2xx to an INVITE is ours to repeat over UDP until its ACK (RFC
	// 3261 13.3.1.4).
	interval := sip.T1
	t := time.NewTimer(interval)
	defer t.Stop()
	giveUp := time.Now().Add(64 * sip.T1)
	for {
		select {
		case <-acked:
			return
		case <-c.ended:
			return
		case <-c.a.s.done:
			return
		case <-t.C:
			if time.Now().After(giveUp) {
				c.log.Info("no ACK for our 2xx to a re-INVITE")
				return
			}
			if err := tx.Respond(res); err != nil {
				return
			}
			interval = min(2*interval, sip.T2)
			t.Reset(interval)
		}
	}
}

// askReinvite asks the CallHandler for the answer to offer.
func (c *Call) askReinvite(offer []byte) ([]byte, error) {
	type result struct {
		sdp []byte
		err error
	}
	ch := make(chan result, 1)
	if !c.emit(func(h CallHandler) {
		sdp, err := h.Reinvite(offer)
		ch <- result{slices.Clone(sdp), err}
	}) {
		return nil, errCallEnded
	}
	select {
	case r := <-ch:
		return r.sdp, r.err
	case <-c.a.s.done:
		return nil, ErrClosed
	}
}

// Reinvite sends a re-INVITE with a new offer (hold: a=sendonly; unhold:
// a=sendrecv) and returns the far end's answer. A re-offer in progress
// either way (the far end's being answered, another of ours) is waited
// for first, as RFC 3261 14.1 wants; glare — the far end's 491 Request
// Pending — is retried after RFC 3261 14.1's random delay. Both within
// ctx (64*T1 when it has no deadline). A final failure is a *StatusError
// (491: the far end was still busy when ctx ended). With no offer it is a
// session refresh: the far end offers in its 200, and the ACK answers
// with our current SDP.
func (c *Call) Reinvite(ctx context.Context, offer []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 64*sip.T1)
		defer cancel()
	}
	for {
		answer, err := c.reinvite(ctx, offer)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != sip.StatusRequestPending || ctx.Err() != nil {
			return answer, err
		}
		t := time.NewTimer(c.glareDelay())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-c.ended:
			t.Stop()
			return nil, errCallEnded
		case <-c.a.s.done:
			t.Stop()
			return nil, ErrClosed
		}
	}
}

// glareDelay is how long to wait after a 491 before trying again (RFC
// 3261 14.1): 2.1 to 4 s for the side that chose the Call-ID (the
// caller), up to 2 s for the other, in units of 10 ms.
func (c *Call) glareDelay() time.Duration {
	if c.dcs != nil {
		return 2100*time.Millisecond + time.Duration(rand.IntN(191))*10*time.Millisecond
	}
	return time.Duration(rand.IntN(201)) * 10 * time.Millisecond
}

// reinvite is one re-INVITE transaction, once no other re-offer is in
// progress.
func (c *Call) reinvite(ctx context.Context, offer []byte) ([]byte, error) {
	c.mu.Lock()
	for c.reofferOut || c.reofferIn {
		idle := c.reofferIdle
		c.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return nil, &StatusError{Code: sip.StatusRequestPending, Reason: "Request Pending"}
		case <-c.ended:
			return nil, errCallEnded
		}
		c.mu.Lock()
	}
	switch {
	case c.state == stateEnded:
		c.mu.Unlock()
		return nil, errCallEnded
	case c.state != stateAnswered:
		c.mu.Unlock()
		return nil, errNotAnswered
	}
	c.reofferOut = true
	c.reofferIdle = make(chan struct{})
	target, local := c.remoteTarget(), c.localSDP
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.reofferOut = false
		close(c.reofferIdle)
		c.reofferIdle = nil
		c.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, c.a.s.cfg.RequestTimeout)
	defer cancel()
	req := c.newInDialog(sip.INVITE, target)
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if len(offer) > 0 {
		ct := sip.ContentTypeHeader("application/sdp")
		req.AppendHeader(&ct)
	}
	req.SetBody(slices.Clone(offer))
	tx, err := c.transact(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := finalResponse(ctx, tx)
	if err != nil {
		tx.Terminate()
		return nil, errors.New(errReason(err, c.a.s.cfg.RequestTimeout))
	}
	if !res.IsSuccess() {
		// The transaction ACKs a failure itself.
		return nil, &StatusError{Code: res.StatusCode, Reason: res.Reason}
	}

	var ackBody []byte
	if len(offer) == 0 {
		ackBody = local
	}
	ack := ackFor(req, res, ackBody)
	if err := c.a.s.cli.WriteRequest(ack, sipgo.ClientRequestAddVia); err != nil {
		c.log.Info("ACK failed", "err", err)
	}
	// A lost ACK brings the 2xx again; the transaction lives on for that
	// (timer M) and ends by itself.
	tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			_ = c.a.s.cli.WriteRequest(ack.Clone(), keepAsBuilt)
		}
	})
	answer := sdpOf(res)
	if len(offer) > 0 {
		c.mu.Lock()
		c.localSDP = slices.Clone(offer)
		c.mu.Unlock()
	}
	return answer, nil
}

// Info sends an INFO in the call (e.g. application/dtmf-relay). A final
// failure is a *StatusError.
func (c *Call) Info(ctx context.Context, contentType string, body []byte) error {
	c.mu.Lock()
	if c.state != stateAnswered {
		c.mu.Unlock()
		return errNotAnswered
	}
	target := c.remoteTarget()
	c.mu.Unlock()
	req := c.newInDialog(sip.INFO, target)
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(slices.Clone(body))
	res, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		return &StatusError{Code: res.StatusCode, Reason: res.Reason}
	}
	return nil
}

// Refer asks the far end to call target (REFER with Refer-To); the outcome
// arrives as ReferStatus. A REFER that fails is reported both ways: the
// error (a *StatusError for a final failure) and ReferStatus.
func (c *Call) Refer(ctx context.Context, target string) error {
	uri, err := c.a.target(target)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.state != stateAnswered {
		c.mu.Unlock()
		return errNotAnswered
	}
	remote := c.remoteTarget()
	c.mu.Unlock()
	req := c.newInDialog(sip.REFER, remote)
	req.AppendHeader(&sip.ReferToHeader{Address: uri})
	req.AppendHeader(&sip.ReferredByHeader{Address: *c.a.aor.Clone()})
	req.SetBody(nil)
	res, err := c.do(ctx, req)
	if err != nil {
		reason := err.Error()
		c.emit(func(h CallHandler) { h.ReferStatus(0, reason) })
		return err
	}
	if !res.IsSuccess() {
		c.emit(func(h CallHandler) { h.ReferStatus(res.StatusCode, res.Reason) })
		return &StatusError{Code: res.StatusCode, Reason: res.Reason}
	}
	return nil
}

// newInDialog starts a request to the far end; the dialog layer adds
// From, To, Call-ID, CSeq, Route and Contact.
func (c *Call) newInDialog(method sip.RequestMethod, target sip.Uri) *sip.Request {
	req := sip.NewRequest(method, target)
	req.SetTransport(c.a.tp)
	c.a.s.addUserAgent(req)
	return req
}

// transact sends an in-dialog request through sipgo's dialog session.
func (c *Call) transact(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if c.Incoming {
		return c.dss.TransactionRequest(ctx, req)
	}
	return c.dcs.TransactionRequest(ctx, req)
}

// do is a non-INVITE in-dialog request up to its final response.
func (c *Call) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.a.s.cfg.RequestTimeout)
	defer cancel()
	tx, err := c.transact(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	res, err := finalResponse(ctx, tx)
	if err != nil {
		return nil, errors.New(errReason(err, c.a.s.cfg.RequestTimeout))
	}
	return res, nil
}

func finalResponse(ctx context.Context, tx sip.ClientTransaction) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, sip.ErrTransactionTerminated
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ackFor is the ACK of a 2xx to our re-INVITE inv: same route, same CSeq
// number, a new branch (RFC 3261 13.2.2.4). sipgo's Ack is for the
// dialog's first INVITE only.
func ackFor(inv *sip.Request, res *sip.Response, body []byte) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *inv.Recipient.Clone())
	for _, h := range inv.GetHeaders("Route") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	ack.AppendHeader(sip.HeaderClone(inv.From()))
	ack.AppendHeader(sip.HeaderClone(res.To()))
	ack.AppendHeader(sip.HeaderClone(inv.CallID()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.ACK})
	if len(body) > 0 {
		ct := sip.ContentTypeHeader("application/sdp")
		ack.AppendHeader(&ct)
	}
	ack.SetBody(slices.Clone(body))
	ack.SetTransport(inv.Transport())
	ack.SetDestination(inv.Destination())
	ack.Laddr = inv.Laddr
	return ack
}

func isSDP(contentType string) bool {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	return ct == "application/sdp"
}
