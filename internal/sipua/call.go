package sipua

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Call is one INVITE dialog, outgoing or incoming.
//
// Its fields are set before the Call is handed out, except RemoteTag of an
// outgoing call, which is set before Answered is called: read it from the
// CallHandler (or after Answered), not concurrently with the answer.
type Call struct {
	// CallID, LocalTag and RemoteTag name the dialog (RemoteTag is ""
	// until the far end answers an outgoing call).
	CallID, LocalTag, RemoteTag string
	Incoming                    bool
	// From and To are the AORs (caller, callee); DisplayName is the
	// caller's display name of an incoming call.
	From, To, DisplayName string
	// Offer is the SDP of an incoming INVITE (nil without one).
	Offer []byte

	a   *Account
	log *slog.Logger
	// hnd is only touched on the Account's event goroutine once the Call
	// is out (IncomingCall sets it there).
	hnd CallHandler

	ended chan struct{} // closed by finish

	// reqMu keeps our in-dialog requests in CSeq order: sipgo numbers them
	// with a load and a store, not atomically.
	reqMu sync.Mutex

	mu         sync.Mutex
	state      callState
	remoteTag  string
	localSDP   []byte // the SDP we last offered or answered
	remoteCSeq uint32
	byeSent    bool
	reofferIn  bool // a re-INVITE/UPDATE from the far end is being answered
	reofferOut bool // our re-INVITE is out
	// reofferIdle is closed when the re-offer in progress (reofferIn or
	// reofferOut: one at a time) ends; nil when none is.
	reofferIdle chan struct{}
	// reinviteAck is closed by the ACK for our 2xx to the far end's
	// re-INVITE with CSeq reinviteAckSeq.
	reinviteAck    chan struct{}
	reinviteAckSeq uint32

	// Outgoing.
	dcs          *sipgo.DialogClientSession
	forceStop    context.CancelCauseFunc // makes WaitAnswer return at once
	abortReason  string
	cancelReq    *sip.Request // prebuilt once a provisional response came
	cancelWanted bool
	cancelReason string
	cancelSent   bool
	cancelGuard  *time.Timer
	lastProgress int // the provisional status last reported (Stack.provisional)

	// Incoming.
	dss        *sipgo.DialogServerSession
	inviteCSeq uint32
	decide     chan decision
	gDone      chan struct{} // the INVITE's handler returned
}

type callState int

const (
	stateCalling  callState = iota // no final response to the INVITE yet
	stateAnswered                  // 2xx sent or received
	stateEnded
)

var (
	errCallEnded   = errors.New("sipua: call ended")
	errNotAnswered = errors.New("sipua: call not answered")
	errNotIncoming = errors.New("sipua: not an incoming call")
	errAnswered    = errors.New("sipua: call already answered")
)

// Invite places a call to callee (as SendMessage's `to`) with the SDP
// offer, through the outbound proxy, answering a 401/407 challenge. It
// returns once the INVITE is sent; h gets Progress, then Answered or
// Ended. When it returns an error, h gets nothing.
func (a *Account) Invite(ctx context.Context, callee string, offer []byte, h CallHandler) (*Call, error) {
	if h == nil {
		return nil, errors.New("sipua: nil CallHandler")
	}
	uri, err := a.target(callee)
	if err != nil {
		return nil, err
	}
	callID := newCallID()
	req := a.newRequest(sip.INVITE, uri, callID, 1)
	localTag, _ := req.From().Params.Get("tag")
	req.AppendHeader(a.contact.Clone())
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	if len(offer) > 0 {
		ct := sip.ContentTypeHeader("application/sdp")
		req.AppendHeader(&ct)
	}
	req.SetBody(offer)

	c := &Call{
		CallID:   callID,
		LocalTag: localTag,
		From:     a.AOR(),
		To:       uriAOR(uri),
		a:        a,
		hnd:      h,
		ended:    make(chan struct{}),
		localSDP: slices.Clone(offer),
	}
	c.log = a.log.With("call_id", callID)
	waitCtx, stop := context.WithCancelCause(context.Background())
	c.forceStop = stop
	if !a.addCall(c) {
		stop(nil)
		return nil, ErrClosed
	}
	a.s.addCalling(c)
	dcs, err := a.dua.WriteInvite(ctx, req, sipgo.ClientRequestBuild, a.outbound)
	if err != nil {
		stop(nil)
		a.s.removeCalling(c)
		a.removeCall(c)
		a.callGoroutineDone()
		return nil, err
	}
	c.dcs = dcs
	go c.runOutgoing(waitCtx)
	return c, nil
}

// runOutgoing waits for the INVITE's final response, ACKs a 2xx and
// reports; it owns c.dcs until the call is answered.
func (c *Call) runOutgoing(waitCtx context.Context) {
	defer c.a.callGoroutineDone()
	defer c.forceStop(nil)
	cfg := c.a.s.cfg

	noAnswer := time.AfterFunc(cfg.RequestTimeout, func() {
		c.abort(fmt.Sprintf("timeout: no response within %v", cfg.RequestTimeout))
	})
	defer noAnswer.Stop()
	var ringing *time.Timer // set on the WaitAnswer goroutine only
	defer func() {
		if ringing != nil {
			ringing.Stop()
		}
	}()

	err := c.dcs.WaitAnswer(waitCtx, sipgo.AnswerOptions{
		Username: c.a.authUser,
		Password: c.a.cfg.Password,
		OnResponse: func(r *sip.Response) error {
			switch {
			case r.IsProvisional():
				noAnswer.Stop()
				if ringing == nil {
					ringing = time.AfterFunc(cfg.RingTimeout, func() {
						c.cancel(context.Background(), "ring timeout")
					})
				}
				// WaitAnswer owns the INVITE (an auth retry rewrites it):
				// build the CANCEL here, for Hangup to send.
				cancel := cancelFor(c.dcs.InviteRequest)
				c.mu.Lock()
				c.cancelReq = cancel
				send := c.cancelWanted && !c.cancelSent
				c.cancelSent = c.cancelSent || send
				c.mu.Unlock()
				if send {
					// Hangup came before any provisional response. The
					// INVITE's later responses wait while this runs; the
					// CANCEL's own do not.
					c.sendCancel(context.Background(), cancel)
				}
				// Progress itself is reported by Stack.provisional, in
				// the order responses arrived.
			case isChallenge(r):
				// WaitAnswer sends the INVITE again with credentials.
				noAnswer.Reset(cfg.RequestTimeout)
			}
			return nil
		},
	})

	c.mu.Lock()
	ended, cancelWanted, cancelReason, abortReason := c.state == stateEnded, c.cancelWanted, c.cancelReason, c.abortReason
	if c.cancelGuard != nil {
		c.cancelGuard.Stop()
	}
	c.mu.Unlock()

	var de *sipgo.ErrDialogResponse
	switch {
	case err == nil:
		ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout)
		defer cancel()
		if aerr := c.dcs.Ack(ctx); aerr != nil {
			c.log.Warn("ACK failed", "err", aerr)
		}
		res := c.dcs.InviteResponse
		// The far end's BYE will come over this connection: keep it open
		// for as long as the call may last.
		c.a.noteFlow(res)
		remoteTag, _ := res.To().Params.Get("tag")
		c.mu.Lock()
		if ended || cancelWanted {
			c.mu.Unlock()
			// Answered while we hung up: end it the only way left.
			c.sendBye(ctx)
			c.finish(0, cmp.Or(cancelReason, "CANCEL"))
			return
		}
		c.state = stateAnswered
		c.remoteTag = remoteTag
		c.RemoteTag = remoteTag
		c.a.s.addDialog(c)
		c.a.s.removeCalling(c)
		body := sdpOf(res)
		c.emitLocked(func(h CallHandler) { h.Answered(body) })
		c.mu.Unlock()
	case errors.As(err, &de):
		c.finish(de.Res.StatusCode, de.Res.Reason)
	default:
		c.log.Debug("INVITE got no final response", "err", err)
		c.mu.Lock()
		cancel := c.cancelReq
		send := cancel != nil && !c.cancelSent
		c.cancelSent = true
		c.mu.Unlock()
		if send {
			// It rang and then something gave up: tell the far end.
			ctx, stop := context.WithTimeout(context.Background(), cfg.RequestTimeout)
			c.sendCancel(ctx, cancel)
			stop()
		}
		switch {
		case cancelWanted:
			c.finish(0, cancelReason)
		case abortReason != "":
			c.finish(0, abortReason)
		default:
			c.finish(0, errReason(err, cfg.RequestTimeout))
		}
	}
}

// abort makes WaitAnswer give up at once (its INVITE transaction ends).
func (c *Call) abort(reason string) {
	c.mu.Lock()
	if c.abortReason == "" {
		c.abortReason = reason
	}
	stop := c.forceStop
	c.mu.Unlock()
	if stop != nil {
		stop(sipgo.WaitAnswerForceCancelErr)
	}
}

// cancel ends an unanswered outgoing call: CANCEL now if a provisional
// response came, else as soon as one comes. Without a final response to
// the INVITE within RequestTimeout (RFC 3261 allows 64*T1, but a far end
// or proxy that loses the 487 should not hold the call that long), the
// call ends with reason.
func (c *Call) cancel(ctx context.Context, reason string) {
	c.mu.Lock()
	if c.state != stateCalling || c.cancelWanted {
		c.mu.Unlock()
		return
	}
	c.cancelWanted, c.cancelReason = true, reason
	req := c.cancelReq
	send := req != nil && !c.cancelSent
	c.cancelSent = c.cancelSent || send
	c.cancelGuard = time.AfterFunc(min(64*sip.T1, c.a.s.cfg.RequestTimeout), func() { c.abort(reason) })
	c.mu.Unlock()
	c.log.Debug("cancelling", "reason", reason, "now", send)
	if send {
		c.sendCancel(ctx, req)
	}
}

func (c *Call) sendCancel(ctx context.Context, req *sip.Request) {
	ctx, cancel := context.WithTimeout(ctx, c.a.s.cfg.RequestTimeout)
	defer cancel()
	res, err := c.a.s.cli.Do(ctx, req, keepAsBuilt)
	switch {
	case err != nil:
		c.log.Info("CANCEL failed", "err", err)
	case res.StatusCode != sip.StatusOK:
		c.log.Info("CANCEL refused", "status", res.StatusCode)
	}
}

// keepAsBuilt is a ClientRequestOption that leaves a fully built request
// (its Via included) alone.
func keepAsBuilt(*sipgo.Client, *sip.Request) error { return nil }

// cancelFor is the CANCEL of inv (RFC 3261 9.1), sent where inv went.
func cancelFor(inv *sip.Request) *sip.Request {
	r := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	r.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		r.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	r.AppendHeader(sip.HeaderClone(inv.From()))
	r.AppendHeader(sip.HeaderClone(inv.To()))
	r.AppendHeader(sip.HeaderClone(inv.CallID()))
	r.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	r.SetBody(nil)
	r.SetTransport(inv.Transport())
	r.SetDestination(inv.Destination())
	r.Laddr = inv.Laddr
	return r
}

// onInvite takes an incoming INVITE: 100 Trying, IncomingCall, then it
// waits on this goroutine (sipgo ends the transaction when the handler
// returns) for Ring/Answer/Reject, a CANCEL or the ring timeout.
func (a *Account) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	dss, err := a.dua.ReadInvite(req, tx)
	if err != nil {
		a.log.Info("bad INVITE", "err", err)
		respond(tx, req, sip.StatusBadRequest, "", nil)
		return
	}
	respond(tx, req, sip.StatusTrying, "", nil)

	from, to := req.From(), dss.InviteRequest.To()
	localTag, _ := to.Params.Get("tag")
	remoteTag, _ := from.Params.Get("tag")
	c := &Call{
		CallID:      req.CallID().Value(),
		LocalTag:    localTag,
		RemoteTag:   remoteTag,
		Incoming:    true,
		From:        uriAOR(from.Address),
		To:          uriAOR(to.Address),
		DisplayName: from.DisplayName,
		Offer:       slices.Clone(req.Body()),
		a:           a,
		hnd:         nopCallHandler{},
		ended:       make(chan struct{}),
		remoteTag:   remoteTag,
		remoteCSeq:  req.CSeq().SeqNo,
		dss:         dss,
		inviteCSeq:  req.CSeq().SeqNo,
		decide:      make(chan decision),
		gDone:       make(chan struct{}),
	}
	c.log = a.log.With("call_id", c.CallID)
	if !a.addCall(c) {
		close(c.gDone)
		respond(tx, req, sip.StatusTemporarilyUnavailable, "", nil)
		return
	}
	defer a.callGoroutineDone()
	defer close(c.gDone)
	a.s.addDialog(c)
	a.post(func() {
		if h := a.h.IncomingCall(c); h != nil {
			c.hnd = h
		}
	})
	c.serveInvite(tx)
}

// decision is what the gateway said about an incoming INVITE.
type decision struct {
	answer bool
	ring   bool
	code   int // reject
	reason string
	sdp    []byte
	result chan error
}

func (c *Call) serveInvite(tx sip.ServerTransaction) {
	ring := time.NewTimer(c.a.s.cfg.RingTimeout)
	defer ring.Stop()
	cancelled := c.dss.Context()
	for {
		select {
		case d := <-c.decide:
			switch {
			case d.ring:
				d.result <- c.dss.Respond(sip.StatusRinging, "Ringing", nil)
			case d.answer:
				if cancelled.Err() != nil {
					d.result <- errCallEnded
					c.finish(0, endCause(cancelled))
					return
				}
				c.answerInvite(tx, d)
				return
			default:
				err := tx.Respond(sip.NewResponseFromRequest(c.dss.InviteRequest, d.code, d.reason, nil))
				d.result <- err
				c.finish(d.code, d.reason)
				return
			}
		case <-cancelled.Done():
			c.finish(0, endCause(cancelled))
			return
		case <-ring.C:
			_ = tx.Respond(sip.NewResponseFromRequest(c.dss.InviteRequest, sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil))
			c.finish(sip.StatusTemporarilyUnavailable, "ring timeout")
			return
		case <-c.ended:
			// Closed under us: the caller still deserves a final response.
			_ = tx.Respond(sip.NewResponseFromRequest(c.dss.InviteRequest, sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", nil))
			return
		}
	}
}

// endCause is the Ended reason of an incoming call whose INVITE
// transaction ended before an answer.
func endCause(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), sip.ErrTransactionCanceled) {
		return "CANCEL"
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err.Error()
	}
	return "INVITE transaction ended"
}

// answerInvite sends the 2xx and waits for its ACK (sipgo retransmits the
// 2xx meanwhile); d.result is told as soon as the 2xx is on its way.
func (c *Call) answerInvite(tx sip.ServerTransaction, d decision) {
	var res *sip.Response
	if len(d.sdp) > 0 {
		res = sip.NewSDPResponseFromRequest(c.dss.InviteRequest, d.sdp)
	} else {
		res = sip.NewResponseFromRequest(c.dss.InviteRequest, sip.StatusOK, "OK", nil)
	}
	res.AppendHeader(c.a.contact.Clone())
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	c.a.s.addUserAgent(res)

	var established atomic.Bool
	c.dss.OnState(func(st sip.DialogState) {
		if st != sip.DialogStateEstablished || established.Swap(true) {
			return
		}
		c.mu.Lock()
		if c.state == stateCalling {
			c.state = stateAnswered
			c.localSDP = slices.Clone(d.sdp)
		}
		c.mu.Unlock()
		d.result <- nil
	})
	err := c.dss.WriteResponse(res)
	switch {
	case !established.Load():
		if err == nil {
			err = errCallEnded
		}
		d.result <- err
		c.finish(0, errReason(err, c.a.s.cfg.RequestTimeout))
	case err != nil:
		select {
		case <-c.ended: // a BYE, or Close, ended it meanwhile
		default:
			c.log.Info("no ACK for our 2xx", "err", err)
			ctx, cancel := context.WithTimeout(context.Background(), c.a.s.cfg.RequestTimeout)
			c.sendBye(ctx)
			cancel()
			c.finish(0, "no ACK")
		}
	}
}

// decideInvite hands d to the INVITE's goroutine and waits for the result.
func (c *Call) decideInvite(d decision) error {
	if !c.Incoming {
		return errNotIncoming
	}
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch st {
	case stateAnswered:
		return errAnswered
	case stateEnded:
		return errCallEnded
	}
	d.result = make(chan error, 1)
	select {
	case c.decide <- d:
	case <-c.gDone:
		return errCallEnded
	}
	select {
	case err := <-d.result:
		return err
	case <-c.gDone:
		select {
		case err := <-d.result:
			return err
		default:
			return errCallEnded
		}
	}
}

// Ring answers an incoming call 180 Ringing.
func (c *Call) Ring() error { return c.decideInvite(decision{ring: true}) }

// Answer answers an incoming call 200 OK with the SDP answer. It returns
// once the 200 is sent; sipgo repeats it until the ACK comes.
func (c *Call) Answer(sdp []byte) error {
	return c.decideInvite(decision{answer: true, sdp: slices.Clone(sdp)})
}

// Reject answers an incoming call with a final failure (486, 603…); the
// handler's Ended follows.
func (c *Call) Reject(code int, reason string) error {
	if code < 300 || code > 699 {
		return fmt.Errorf("sipua: reject with %d: want 300-699", code)
	}
	if reason == "" {
		reason = reasonPhrase(code)
	}
	return c.decideInvite(decision{code: code, reason: reason})
}

// Hangup ends the call: CANCEL before an answer to our INVITE, a 487
// for an unanswered incoming one, BYE after. Ended follows.
func (c *Call) Hangup(ctx context.Context) error {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch {
	case st == stateEnded:
		return nil
	case st == stateAnswered:
		return c.bye(ctx)
	case c.Incoming:
		err := c.decideInvite(decision{code: sip.StatusRequestTerminated, reason: "Request Terminated"})
		if errors.Is(err, errCallEnded) || errors.Is(err, errAnswered) {
			// An Answer got there first: the call is up, or over.
			c.mu.Lock()
			st = c.state
			c.mu.Unlock()
			if st == stateAnswered {
				return c.bye(ctx)
			}
			return nil
		}
		return err
	default:
		c.cancel(ctx, "CANCEL")
		return nil
	}
}

// bye sends BYE on an answered call and ends it.
func (c *Call) bye(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.a.s.cfg.RequestTimeout)
	defer cancel()
	err := c.sendBye(ctx)
	c.finish(0, "BYE")
	return err
}

func (c *Call) sendBye(ctx context.Context) error {
	c.mu.Lock()
	if c.byeSent {
		c.mu.Unlock()
		return nil
	}
	c.byeSent = true
	target := c.remoteTarget()
	c.mu.Unlock()

	req := sip.NewRequest(sip.BYE, target)
	req.SetTransport(c.a.tp)
	c.a.s.addUserAgent(req)
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	var err error
	if c.Incoming {
		err = c.dss.WriteBye(ctx, req)
	} else {
		err = c.dcs.WriteBye(ctx, req)
	}
	if err != nil {
		c.log.Info("BYE failed", "err", err)
	}
	return err
}

// remoteTarget is where in-dialog requests go (before the route set):
// the far end's Contact. Called once the dialog's INVITE and response are
// no longer written to.
func (c *Call) remoteTarget() sip.Uri {
	if c.Incoming {
		if ct := c.dss.InviteRequest.Contact(); ct != nil {
			return *ct.Address.Clone()
		}
		return *c.dss.InviteRequest.From().Address.Clone()
	}
	if res := c.dcs.InviteResponse; res != nil {
		if ct := res.Contact(); ct != nil {
			return *ct.Address.Clone()
		}
	}
	return *c.dcs.InviteRequest.Recipient.Clone()
}

// finish ends the call once: Ended is queued as its last event.
func (c *Call) finish(code int, reason string) {
	c.mu.Lock()
	if c.state == stateEnded {
		c.mu.Unlock()
		return
	}
	c.state = stateEnded
	c.emitLocked(func(h CallHandler) { h.Ended(code, reason) })
	stop, guard := c.forceStop, c.cancelGuard
	c.mu.Unlock()
	close(c.ended)
	if guard != nil {
		guard.Stop()
	}
	if stop != nil {
		stop(sipgo.WaitAnswerForceCancelErr)
	}
	c.a.s.removeDialog(c)
	c.a.s.removeCalling(c)
	c.a.removeCall(c)
	c.log.Debug("call ended", "code", code, "reason", reason)
}

// emit queues a CallHandler call unless the call has ended.
func (c *Call) emit(f func(CallHandler)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateEnded {
		return false
	}
	return c.emitLocked(f)
}

func (c *Call) emitLocked(f func(CallHandler)) bool {
	return c.a.ev.post(func() { f(c.hnd) })
}

// sdpOf is a message's body if it is SDP.
func sdpOf(m interface {
	Body() []byte
	ContentType() *sip.ContentTypeHeader
}) []byte {
	if len(m.Body()) == 0 {
		return nil
	}
	if ct := m.ContentType(); ct != nil && !isSDP(ct.Value()) {
		return nil
	}
	return slices.Clone(m.Body())
}

type nopCallHandler struct{}

func (nopCallHandler) Progress(int, string, []byte)    {}
func (nopCallHandler) Answered([]byte)                 {}
func (nopCallHandler) Ended(int, string)               {}
func (nopCallHandler) Reinvite([]byte) ([]byte, error) { return nil, errors.New("no handler") }
func (nopCallHandler) Info(string, []byte)             {}
func (nopCallHandler) ReferStatus(int, string)         {}
