package gateway

import (
	"sort"
	"time"

	"github.com/rtcgate/rtcgate/internal/client"
)

// SIPStatus is a session's SIP side as the operator's status page shows
// it: its account, the last REGISTER outcome and its calls.
type SIPStatus struct {
	Account          string // login@domain; "" for a session without SIP identity
	Transport        string // udp, tcp, tls ("" is udp)
	Registration     string // REGISTERED, UNREGISTERED, FAILED; "" before the first outcome or without sipRegisterRequired
	RegistrationCode int    // its SIP status
	RegistrationAt   time.Time
	Calls            []CallStatus // oldest first
}

// CallStatus is one call of a session.
type CallStatus struct {
	ID       string // the client's callId
	MediaID  string // the media engine's call id (`list sessions`)
	Incoming bool
	Caller   string
	Callee   string
	Status   string    // the last CallStatusEvent's status (TRYING, RING, ESTABLISHED, HOLD…)
	Started  time.Time // placed or offered
	Answered time.Time // zero until ESTABLISHED
}

// Status reports a session's SIP side; false for a session the gateway
// does not know (not established, or ended).
func (g *Gateway) Status(s client.Session) (SIPStatus, bool) {
	ua := agentOf(s)
	if ua == nil {
		return SIPStatus{}, false
	}
	ua.mu.Lock()
	st := SIPStatus{Transport: ua.cfg.Transport, Registration: string(ua.reg.status),
		RegistrationCode: ua.reg.code, RegistrationAt: ua.reg.at}
	if ua.cfg.Login != "" && ua.cfg.Domain != "" {
		st.Account = ua.cfg.Login + "@" + ua.cfg.Domain
	}
	calls := make([]*call, 0, len(ua.calls))
	for _, c := range ua.calls {
		calls = append(calls, c)
	}
	ua.mu.Unlock()
	for _, c := range calls {
		c.mu.Lock()
		cs := CallStatus{ID: c.id, MediaID: c.mediaID, Incoming: c.incoming, Status: c.status,
			Started: c.started, Answered: c.answered}
		cs.Caller, _ = c.info["caller"].(string)
		cs.Callee, _ = c.info["callee"].(string)
		c.mu.Unlock()
		st.Calls = append(st.Calls, cs)
	}
	sort.Slice(st.Calls, func(i, j int) bool { return st.Calls[i].Started.Before(st.Calls[j].Started) })
	return st, true
}
