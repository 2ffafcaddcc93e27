// Package sipua is rtcgate's SIP user agent, on emiago/sipgo: one Stack per
// node (one listener, UDP and TCP on the same address), and on it one
// Account per connected client — the SIP identity the client's sip* fields
// describe. An Account registers (digest auth, refresh before expiry,
// unregister on Close), sends and receives MESSAGEs, and places and takes
// calls. It knows nothing of client sessions, hooks or media: it reports
// what the network does through the Handler and CallHandler the caller
// gives it, and takes SDP bodies as opaque bytes.
//
// Incoming requests reach their Account by the Request-URI's user part:
// each Account registers a Contact whose user is a random token, so the
// registrar's rewrite of the Request-URI to that Contact names the
// Account. Requests that match no Account, and in-dialog requests that
// match no dialog, are answered 404 / 481.
//
// Out-of-dialog requests (REGISTER, MESSAGE, INVITE, CANCEL) go to the
// Account's outbound proxy whatever their Request-URI's host; requests
// inside a call follow its route set (RFC 3261 12.2.1.1: the proxy's
// Record-Route, so the proxy again when it record-routes) or else go to
// the far end's Contact.
//
// TLS: the Stack is a TLS client only; it has no TLS listener. An Account
// with Transport "tls" opens (or shares) one TLS connection to its
// outbound proxy, whose certificate is checked against the system's roots
// plus Config.TLSCAFile, for the proxy's host as the Account names it.
// Requests the proxy sends to a TLS Account (incoming MESSAGEs, INVITEs,
// BYEs) must come back over that connection: the Contact names
// ";transport=tls" at the Stack's address, where nothing accepts TLS. So
// every request over TLS carries ";alias" in its Via (RFC 5923; Kamailio
// honours it with tcp_accept_aliases=yes, and otherwise opens a new
// connection to the Contact, which fails). A proxy that handles clients
// behind NAT by their source address instead (Kamailio's
// fix_nated_register, Asterisk's rewrite_contact) should find the
// connection as well: its source port is not the Via's. The Stack keeps
// each such connection open with CRLF keep-alives (RFC 5626 4.4.1) — a
// proxy closes an idle one (Kamailio's tls connection_timeout) and could
// not reach the Account until its next refresh — and re-registers the
// Accounts of a connection that was closed all the same, which opens a
// new one.
package sipua

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config is the Stack's.
type Config struct {
	// Listen is host:port for UDP and TCP ("127.0.0.1:0" picks a port;
	// "" is ":5060").
	Listen string
	// Advertised is the host (or host:port) put in Via and Contact; ""
	// uses the listener's address.
	Advertised string
	// UserAgent is the User-Agent header; "" omits it.
	UserAgent string
	// RegisterExpires is the Expires asked for in REGISTER (default 600 s);
	// refreshes go out at half the granted expiry.
	RegisterExpires time.Duration
	// RequestTimeout bounds a non-INVITE transaction and the wait for an
	// INVITE's first response (default 32 s, RFC 3261 timer F/B).
	RequestTimeout time.Duration
	// RingTimeout bounds the wait for an INVITE's final response once it
	// rings (default 180 s); the call is then cancelled.
	RingTimeout time.Duration
	// MaxAccounts bounds the accounts at once (0: unlimited).
	MaxAccounts int
	Log         *slog.Logger // nil: slog.Default()
	LibLog      *slog.Logger // sipgo's own logs (nil: Log): counted and rate-limited by the daemon (LogBadInput)

	// TLSCAFile is a PEM file of CA certificates trusted for outbound
	// proxies reached over TLS, besides the system's ("": the system's
	// alone).
	TLSCAFile string
	// TLSSkipVerify accepts any certificate from a proxy reached over TLS,
	// its chain and name unchecked: the connection is encrypted but not
	// authenticated. For tests and labs.
	TLSSkipVerify bool
	// TLSKeepalive is the interval of the CRLF keep-alives on the TLS
	// connections Accounts registered or placed calls over (default 30 s).
	TLSKeepalive time.Duration
	// GuardTCP, when set, wraps the TCP listener before it serves: the
	// daemon's caps, idle timeout and accept back-off (netguard).
	GuardTCP func(net.Listener) net.Listener
}

// AccountConfig is one client's SIP identity: the connection's sip* fields.
type AccountConfig struct {
	Login         string // sipLogin: the user part of the AOR
	AuthName      string // sipAuthenticationName; "" uses Login
	Password      string // sipPassword; never logged
	Domain        string // sipDomain: the AOR's host
	OutboundProxy string // sipOutboundProxy: host to send everything to; "" uses Domain
	Port          int    // sipPort: the outbound proxy's port; 0 uses 5060
	Transport     string // "udp" (default), "tcp" or "tls"
	VisibleName   string // sipVisibleName: the From display name
	ContactParams string // sipContactParams: appended to the Contact URI (";a=b")
	Register      bool   // sipRegisterRequired
}

// RegistrationStatus is what a REGISTER round ended in.
type RegistrationStatus string

// Registration states, as Web Call Server names them.
const (
	Registered   RegistrationStatus = "REGISTERED"
	Unregistered RegistrationStatus = "UNREGISTERED"
	RegisterFail RegistrationStatus = "FAILED"
)

// Message is a SIP MESSAGE, incoming or outgoing.
type Message struct {
	From, To    string // AORs, "sip:user@host"
	ContentType string
	Body        []byte
}

// Handler receives what the network does to an Account. Its methods are
// called from the Stack's goroutines, one at a time per Account, and must
// not block for long.
type Handler interface {
	// Registration reports each REGISTER outcome (initial, refresh,
	// unregister): the state, the final SIP status (0 when none came) and
	// a reason (the status's reason phrase or the transport error).
	Registration(status RegistrationStatus, code int, reason string)
	// Message is an incoming MESSAGE; the return is the SIP status to
	// answer with (200, or e.g. 403/480 to refuse).
	Message(m Message) int
	// IncomingCall is an incoming INVITE (out of dialog). The Handler
	// answers through c: Ring, Answer or Reject, now or later; until then
	// the Stack has sent 100 Trying. h receives the call's later events.
	IncomingCall(c *Call) (h CallHandler)
}

// CallHandler receives a call's events.
type CallHandler interface {
	// Progress is a provisional response to our INVITE (100, 180, 183),
	// with its SDP if it had one.
	Progress(code int, reason string, sdp []byte)
	// Answered is the 2xx to our INVITE (ACK already sent) with its SDP.
	Answered(sdp []byte)
	// Ended is the end of the call: code and reason are the final failure
	// response to our INVITE (486 Busy Here…), 487 after our CANCEL, or 0
	// and "BYE" / "remote BYE" / "CANCEL" / the transport error. Called
	// exactly once per call.
	Ended(code int, reason string)
	// Reinvite is a re-INVITE (or UPDATE with SDP) from the far end with
	// its offer; the returned SDP is the answer (an error answers 488).
	Reinvite(offer []byte) ([]byte, error)
	// Info is an INFO inside the call (DTMF relay and the like).
	Info(contentType string, body []byte)
	// ReferStatus reports a transfer we asked for with Refer: each NOTIFY's
	// sipfrag status line code (100, 180, 200…), or the REFER's failure.
	ReferStatus(code int, reason string)
}

// StatusError is a final non-2xx response to a request the caller made
// (Reinvite, Info, Refer): the gateway can tell 491 Request Pending (try
// again) from 488 or 481.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sip: %d %s", e.Code, e.Reason)
}
