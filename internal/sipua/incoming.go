package sipua

import (
	"github.com/emiago/sipgo/sip"
)

// handleRequest is the Server's handler for every method; sipgo runs it on
// a goroutine of its own per request and ends the transaction when it
// returns, so an INVITE's handler stays until its final response.
func (s *Stack) handleRequest(req *sip.Request, tx sip.ServerTransaction) {
	if !s.enter() {
		if !req.IsAck() {
			respond(tx, req, sip.StatusServiceUnavailable, "", nil)
		}
		return
	}
	defer s.wg.Done()

	if req.CallID() == nil || req.From() == nil || req.To() == nil || req.CSeq() == nil {
		if !req.IsAck() {
			respond(tx, req, sip.StatusBadRequest, "", nil)
		}
		return
	}
	switch req.Method {
	case sip.OPTIONS:
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowMethods))
		res.AppendHeader(sip.NewHeader("Accept", "application/sdp, text/plain"))
		s.addUserAgent(res)
		_ = tx.Respond(res)
		return
	case sip.CANCEL:
		// A CANCEL for a live INVITE never gets here: sipgo's transaction
		// layer answers it and ends the INVITE with 487.
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "", nil)
		return
	case sip.MESSAGE:
		// In or out of a dialog, a MESSAGE is the account's.
		if a := s.accountFor(req); a != nil {
			a.onMessage(req, tx)
		} else {
			respond(tx, req, s.noAccount(), "", nil)
		}
		return
	}

	if toTag, _ := req.To().Params.Get("tag"); toTag != "" {
		fromTag, _ := req.From().Params.Get("tag")
		c := s.findDialog(dialogKey(req.CallID().Value(), toTag, fromTag))
		if c == nil {
			s.log.Debug("request outside any dialog", "method", req.Method, "call_id", req.CallID().Value())
			if !req.IsAck() {
				respond(tx, req, sip.StatusCallTransactionDoesNotExists, "", nil)
			}
			return
		}
		c.onRequest(req, tx)
		return
	}

	a := s.accountFor(req)
	if a == nil {
		if !req.IsAck() {
			respond(tx, req, s.noAccount(), "", nil)
		}
		return
	}
	switch req.Method {
	case sip.INVITE:
		a.onInvite(req, tx)
	case sip.ACK:
	case sip.BYE, sip.INFO, sip.NOTIFY, sip.UPDATE, sip.PRACK, sip.REFER:
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "", nil)
	default:
		res := sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowMethods))
		_ = tx.Respond(res)
	}
}

// noAccount is the status for a request no Account takes.
func (s *Stack) noAccount() int {
	if s.isClosed() {
		return sip.StatusServiceUnavailable
	}
	return sip.StatusNotFound
}

// accountFor is the Account whose Contact token is the Request-URI's user.
func (s *Stack) accountFor(req *sip.Request) *Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accounts[req.Recipient.User]
}

// dialogKey names a dialog from our side: its Call-ID, our tag, theirs.
func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

func (s *Stack) findDialog(key string) *Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialogs[key]
}

func (s *Stack) addDialog(c *Call) {
	s.mu.Lock()
	s.dialogs[dialogKey(c.CallID, c.LocalTag, c.remoteTag)] = c
	s.mu.Unlock()
}

func (s *Stack) removeDialog(c *Call) {
	s.mu.Lock()
	key := dialogKey(c.CallID, c.LocalTag, c.remoteTag)
	if s.dialogs[key] == c {
		delete(s.dialogs, key)
	}
	s.mu.Unlock()
}

// respond answers req statelessly within tx; reason "" uses the standard
// phrase.
func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte) {
	if reason == "" {
		reason = reasonPhrase(code)
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, body))
}

func reasonPhrase(code int) string {
	switch code {
	case 100:
		return "Trying"
	case 180:
		return "Ringing"
	case 183:
		return "Session Progress"
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 415:
		return "Unsupported Media Type"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 489:
		return "Bad Event"
	case 491:
		return "Request Pending"
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	case 606:
		return "Not Acceptable"
	}
	switch {
	case code < 200:
		return "Session Progress"
	case code < 300:
		return "OK"
	case code < 400:
		return "Redirect"
	case code < 500:
		return "Client Error"
	case code < 600:
		return "Server Error"
	}
	return "Global Failure"
}
