// Package gateway makes each connected client a SIP user agent: it is the
// client sessions' App behind the REST hooks, maps a session's sip* fields
// to a sipua.Account, client actions to SIP (REGISTER, MESSAGE, INVITE…),
// and what SIP does back to status events through a client.Notifier (the
// hooks, which tell the client and the app's backend). Media is always
// anchored: every SDP goes through the same media engine that serves ng.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/internal/client"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/sipua"
)

// Gateway is the SIP gateway: the client sessions' Handler behind the
// hooks, and the client.Agent that runs their actions.
type Gateway struct {
	SIP    *sipua.Stack
	Media  *media.Engine
	Notify client.Notifier // who tells the client and the backend; nil: the client only
	// WebRTC says whether browsers' calls get WebRTC media (ICE,
	// DTLS-SRTP), which the media engine speaks toward them.
	WebRTC WebRTC
	// CloseTimeout bounds how long ending a session's calls and
	// registration may take (default DefaultCloseTimeout).
	CloseTimeout time.Duration
	Log          *slog.Logger

	metricsOnce sync.Once
	m           *gatewayMetrics
}

// DefaultCloseTimeout is CloseTimeout's default.
const DefaultCloseTimeout = 5 * time.Second

// userAgent is a session's SIP side: its account and calls.
type userAgent struct {
	g    *Gateway
	s    client.Session
	acct *sipua.Account // nil: the session gave no SIP identity
	cfg  sipua.AccountConfig

	mu     sync.Mutex
	calls  map[string]*call // by the client's callId
	closed bool
	reg    registration // the last REGISTER outcome
}

// registration is a REGISTER round's outcome, as last reported.
type registration struct {
	status sipua.RegistrationStatus
	code   int
	at     time.Time
}

type uaKey struct{}

func (g *Gateway) notifier() client.Notifier {
	if g.Notify == nil {
		return client.ClientNotifier{}
	}
	return g.Notify
}

func (g *Gateway) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}

// accountConfig reads the connection's sip* fields. A session without
// sipLogin and sipDomain has no SIP identity (data only); every field
// present must have its type.
func accountConfig(req map[string]any) (sipua.AccountConfig, bool, error) {
	var c sipua.AccountConfig
	str := func(key string) (string, error) {
		switch v := req[key].(type) {
		case nil:
			return "", nil
		case string:
			return strings.TrimSpace(v), nil
		default:
			return "", fmt.Errorf("%s must be a string", key)
		}
	}
	var err error
	get := func(dst *string, key string) {
		if err == nil {
			*dst, err = str(key)
		}
	}
	get(&c.Login, "sipLogin")
	get(&c.AuthName, "sipAuthenticationName")
	get(&c.Password, "sipPassword")
	get(&c.Domain, "sipDomain")
	get(&c.OutboundProxy, "sipOutboundProxy")
	get(&c.VisibleName, "sipVisibleName")
	get(&c.ContactParams, "sipContactParams")
	get(&c.Transport, "sipTransport")
	if err != nil {
		return c, false, err
	}
	if c.OutboundProxy == "" { // the SDK's sipOptions.proxy
		if c.OutboundProxy, err = str("sipProxy"); err != nil {
			return c, false, err
		}
	}
	if c.Login == "" || c.Domain == "" {
		// No SIP identity: a data-only session; calls and messages fail
		// saying what is missing.
		return c, false, nil
	}
	switch v := req["sipPort"].(type) {
	case nil:
	case float64:
		c.Port = int(v)
	case string:
		if v != "" {
			if c.Port, err = strconv.Atoi(v); err != nil {
				return c, false, fmt.Errorf("sipPort %q: not a number", v)
			}
		}
	default:
		return c, false, errors.New("sipPort must be a number")
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, false, fmt.Errorf("sipPort %d: out of range", c.Port)
	}
	switch v := req["sipRegisterRequired"].(type) {
	case nil:
	case bool:
		c.Register = v
	case string:
		c.Register = strings.EqualFold(v, "true")
	default:
		return c, false, errors.New("sipRegisterRequired must be a boolean")
	}
	c.Transport = strings.ToLower(c.Transport)
	switch c.Transport {
	case "", "udp", "tcp", "tls":
	default:
		return c, false, fmt.Errorf("sipTransport %q: want UDP, TCP or TLS", c.Transport)
	}
	return c, true, nil
}

// Connect checks the sip* fields; the account is made once the session is
// established, so that RegistrationStatusEvent follows
// ConnectionStatusEvent ESTABLISHED.
func (g *Gateway) Connect(_ context.Context, _ client.Session, req map[string]any) (map[string]any, error) {
	if _, _, err := accountConfig(req); err != nil {
		return nil, err
	}
	return req, nil
}

// Established creates the session's SIP account (registering it when the
// session asked to).
func (g *Gateway) Established(s client.Session) {
	cfg, ok, _ := accountConfig(s.Config())
	ua := &userAgent{g: g, s: s, cfg: cfg, calls: map[string]*call{}}
	s.SetValue(uaKey{}, ua)
	if !ok || g.SIP == nil {
		return
	}
	acct, err := g.SIP.NewAccount(cfg, ua)
	if err != nil {
		ua.registration(sipua.RegisterFail, 0, err.Error())
		return
	}
	ua.mu.Lock()
	ua.acct = acct
	ua.mu.Unlock()
}

// Adopt re-creates a session taken over from a lost node (client.Adopter):
// the calls it had up there are reported ended — their dialogs and media
// were on that node — and the SIP account is created again (Established:
// a new REGISTER when the session asked to register).
func (g *Gateway) Adopt(s client.Session) {
	g.lostCalls(s)
	g.Established(s)
}

func agentOf(s client.Session) *userAgent {
	ua, _ := s.Value(uaKey{}).(*userAgent)
	return ua
}

// Handle runs a client action: its row of client.Actions calls the
// Agent method below.
func (g *Gateway) Handle(ctx context.Context, s client.Session, a *client.Action, data json.RawMessage) error {
	if agentOf(s) == nil {
		return errors.New("not connected")
	}
	return a.Call(ctx, g, s, data)
}

// onCall runs do on the session's call named by the client's callId.
func onCall(s client.Session, id string, do func(*call) error) error {
	ua := agentOf(s)
	if ua == nil {
		return errors.New("not connected")
	}
	if id == "" {
		return errors.New("callId missing")
	}
	c := ua.call(id)
	if c == nil {
		return errors.New("no such call")
	}
	return do(c)
}

// Call places a call.
func (g *Gateway) Call(_ context.Context, s client.Session, r *client.CallRequest) error {
	return agentOf(s).placeCall(r)
}

// Answer answers an incoming call.
func (g *Gateway) Answer(_ context.Context, s client.Session, r *client.AnswerRequest) error {
	return onCall(s, r.CallID, func(c *call) error { return c.answer(r) })
}

// Hangup ends a call.
func (g *Gateway) Hangup(_ context.Context, s client.Session, r *client.CallRef) error {
	return onCall(s, r.CallID, (*call).hangup)
}

// Hold puts a call on hold.
func (g *Gateway) Hold(ctx context.Context, s client.Session, r *client.CallRef) error {
	return onCall(s, r.CallID, func(c *call) error { return c.hold(ctx, true) })
}

// Unhold resumes a held call.
func (g *Gateway) Unhold(ctx context.Context, s client.Session, r *client.CallRef) error {
	return onCall(s, r.CallID, func(c *call) error { return c.hold(ctx, false) })
}

// Transfer transfers a call (REFER).
func (g *Gateway) Transfer(_ context.Context, s client.Session, r *client.TransferRequest) error {
	return onCall(s, r.CallID, func(c *call) error { return c.transfer(r) })
}

// SendDTMF sends digits in a call.
func (g *Gateway) SendDTMF(ctx context.Context, s client.Session, r *client.DTMFRequest) error {
	return onCall(s, r.CallID, func(c *call) error { return c.sendDTMF(ctx, r) })
}

// SendMessage sends a SIP MESSAGE.
func (g *Gateway) SendMessage(_ context.Context, s client.Session, r *client.MessageRequest) error {
	return agentOf(s).sendMessage(r)
}

// SendData acknowledges the client's data, as the built-in agent does.
func (g *Gateway) SendData(ctx context.Context, s client.Session, r *client.DataRequest) error {
	return client.BuiltIn{Notify: g.notifier()}.SendData(ctx, s, r)
}

// Disconnected ends the session's calls and its registration, within
// CloseTimeout.
func (g *Gateway) Disconnected(s client.Session, _ string) {
	ua := agentOf(s)
	if ua == nil {
		return
	}
	ua.mu.Lock()
	ua.closed = true
	acct := ua.acct
	calls := make([]*call, 0, len(ua.calls))
	for _, c := range ua.calls {
		calls = append(calls, c)
	}
	ua.mu.Unlock()
	timeout := g.CloseTimeout
	if timeout <= 0 {
		timeout = DefaultCloseTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, c := range calls {
		c.hangup()
	}
	if acct != nil {
		acct.Close(ctx) // hangs up what is left, unregisters
	}
	for _, c := range calls {
		c.wait(ctx)
	}
}

// webRTC reports whether the session's client takes WebRTC media: it said
// so in mediaProviders (the Web SDK sends ["WebRTC"]) and the gateway has
// WebRTC on.
func (ua *userAgent) webRTC() bool {
	if !ua.g.WebRTC.Enabled {
		return false
	}
	providers, _ := ua.s.Config()["mediaProviders"].([]any)
	for _, p := range providers {
		if p == "WebRTC" {
			return true
		}
	}
	return false
}

func (ua *userAgent) account() (*sipua.Account, error) {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	if ua.acct == nil {
		return nil, errors.New("no SIP account: connect with sipLogin and sipDomain")
	}
	return ua.acct, nil
}

func (ua *userAgent) call(id string) *call {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	return ua.calls[id]
}

// Registration implements sipua.Handler.
func (ua *userAgent) Registration(status sipua.RegistrationStatus, code int, reason string) {
	ua.registration(status, code, reason)
}

func (ua *userAgent) registration(status sipua.RegistrationStatus, code int, reason string) {
	ua.mu.Lock()
	ua.reg = registration{status, code, time.Now()}
	ua.mu.Unlock()
	ua.g.metrics().registration(string(status))
	ua.g.notifier().Notify(ua.s, client.Event{Name: client.RegistrationStatusEvent, Data: map[string]any{
		"status": string(status), "sipStatus": code, "sipMessage": reason, "sipLogin": ua.cfg.Login, "sipDomain": ua.cfg.Domain,
	}})
}

// Message implements sipua.Handler: an incoming MESSAGE goes to the client
// and the backend as OnMessageEvent.
func (ua *userAgent) Message(m sipua.Message) int {
	ua.mu.Lock()
	closed := ua.closed
	ua.mu.Unlock()
	if closed {
		return 480
	}
	ua.g.metrics().message(true, "RECEIVED")
	ua.g.notifier().Notify(ua.s, client.Event{Name: client.OnMessageEvent, Data: map[string]any{
		"id": newID(), "from": userOf(m.From), "to": userOf(m.To), "body": string(m.Body),
		"contentType": m.ContentType, "status": "RECEIVED",
	}})
	return 200
}

// sendMessage sends a client's message as a SIP MESSAGE: MessageStatusEvent
// SENT, then ACCEPTED on a 2xx or FAILED with the SIP status.
func (ua *userAgent) sendMessage(r *client.MessageRequest) error {
	m := *r
	if m.To == "" {
		return errors.New("sendMessage needs to")
	}
	acct, err := ua.account()
	if err != nil {
		return err
	}
	if m.ID == "" {
		m.ID = newID()
	}
	if m.ContentType == "" {
		m.ContentType = "text/plain"
	}
	ev := map[string]any{"id": m.ID, "from": ua.cfg.Login, "to": m.To, "body": m.Body,
		"contentType": m.ContentType, "status": "SENT"}
	n := ua.g.notifier()
	n.Notify(ua.s, client.Event{Name: client.MessageStatusEvent, Data: copyMap(ev)})
	// The transaction may take the SIP timer's 32 s: not on the client's
	// reading goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		code, reason, err := acct.SendMessage(ctx, m.To, m.ContentType, []byte(m.Body))
		ev["sipStatus"], ev["sipMessage"] = code, reason
		switch {
		case err != nil:
			ev["status"], ev["info"] = "FAILED", err.Error()
		case code >= 200 && code <= 299:
			ev["status"] = "ACCEPTED"
		default:
			ev["status"], ev["info"] = "FAILED", fmt.Sprintf("%d %s", code, reason)
		}
		ua.g.metrics().message(false, ev["status"].(string))
		n.Notify(ua.s, client.Event{Name: client.MessageStatusEvent, Data: ev})
	}()
	return nil
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("gateway: no randomness: " + err.Error())
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// userOf is the user part of a SIP URI or AOR ("sip:alice@x" → "alice"),
// the way Web Call Server names callers; anything else is kept.
func userOf(uri string) string {
	u := uri
	if i := strings.IndexByte(u, '<'); i >= 0 {
		u = u[i+1:]
		if j := strings.IndexByte(u, '>'); j >= 0 {
			u = u[:j]
		}
	}
	u = strings.TrimPrefix(strings.TrimPrefix(u, "sips:"), "sip:")
	if i := strings.IndexByte(u, '@'); i > 0 {
		return u[:i]
	}
	return uri
}
