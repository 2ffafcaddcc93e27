package sipua

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Account is one client's SIP identity on the Stack.
type Account struct {
	s   *Stack
	cfg AccountConfig
	h   Handler
	log *slog.Logger

	token    string  // the Contact's user part; routes requests here
	aor      sip.Uri // sip:login@domain
	contact  sip.ContactHeader
	tp       string // "UDP", "TCP" or "TLS"
	proxy    string // host:port every out-of-dialog request goes to
	authUser string
	dua      *sipgo.DialogUA
	ev       *events

	mu      sync.Mutex
	closing bool
	calls   map[*Call]struct{}
	regStop context.CancelFunc
	regDone chan struct{}
	regCSeq uint32
	regCID  string
	bound   bool           // a binding may exist at the registrar
	granted time.Duration  // last granted expiry
	wg      sync.WaitGroup // the account's call goroutines
	closed  chan struct{}  // closed when Close is done

	closeOnce sync.Once

	// flow (under mu) is the remote address of the TLS connection to the
	// proxy that the registration, or an answered call, went over ("" for
	// UDP and TCP): the one the proxy sends our requests on, kept alive by
	// the Stack (keepFlows).
	flow  string
	renew chan struct{} // wakes registerLoop to register at once (flowLost)
}

// NewAccount creates an Account; with cfg.Register it registers at once
// and keeps the registration fresh, reporting each outcome to h. It fails
// for an invalid config (no Login or Domain, bad transport…) or over
// MaxAccounts.
func (s *Stack) NewAccount(cfg AccountConfig, h Handler) (*Account, error) {
	if h == nil {
		return nil, errors.New("sipua: nil Handler")
	}
	if cfg.Login == "" || !validUser(cfg.Login) {
		return nil, fmt.Errorf("sipua: bad login %q", cfg.Login)
	}
	if cfg.Domain == "" || !validHost(cfg.Domain) {
		return nil, fmt.Errorf("sipua: bad domain %q", cfg.Domain)
	}
	var tp string
	switch strings.ToLower(cfg.Transport) {
	case "", "udp":
		tp = "UDP"
	case "tcp":
		tp = "TCP"
	case "tls":
		tp = "TLS"
	default:
		return nil, fmt.Errorf("sipua: bad transport %q", cfg.Transport)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("sipua: bad port %d", cfg.Port)
	}
	proxyHost := cfg.OutboundProxy
	if proxyHost == "" {
		proxyHost = cfg.Domain
	}
	proxyPort := cfg.Port
	if h, p, err := net.SplitHostPort(proxyHost); err == nil && cfg.Port == 0 {
		// Tolerate "host:port" in sipOutboundProxy when sipPort is unset.
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n <= 65535 {
			proxyHost, proxyPort = h, n
		}
	}
	if !validHost(proxyHost) {
		return nil, fmt.Errorf("sipua: bad outbound proxy %q", cfg.OutboundProxy)
	}
	if proxyPort == 0 {
		proxyPort = 5060
		if tp == "TLS" {
			proxyPort = 5061
		}
	}
	authUser := cfg.AuthName
	if authUser == "" {
		authUser = cfg.Login
	}

	token := randToken()
	contactStr := "sip:" + token + "@" + hostPort(s.host, s.port)
	if tp != "UDP" {
		contactStr += ";transport=" + strings.ToLower(tp)
	}
	if p := strings.TrimSpace(cfg.ContactParams); p != "" {
		if !strings.HasPrefix(p, ";") {
			p = ";" + p
		}
		if !validURIParams(p) {
			return nil, fmt.Errorf("sipua: bad contact params %q", cfg.ContactParams)
		}
		contactStr += p
	}
	var curi sip.Uri
	if err := sip.ParseUri(contactStr, &curi); err != nil {
		return nil, fmt.Errorf("sipua: bad contact params %q: %w", cfg.ContactParams, err)
	}

	a := &Account{
		s:        s,
		cfg:      cfg,
		h:        h,
		token:    token,
		aor:      sip.Uri{Scheme: "sip", User: cfg.Login, Host: cfg.Domain},
		contact:  sip.ContactHeader{Address: curi},
		tp:       tp,
		proxy:    hostPort(proxyHost, proxyPort),
		authUser: authUser,
		ev:       newEvents(),
		calls:    map[*Call]struct{}{},
		regCID:   newCallID(),
		renew:    make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}
	a.log = s.log.With("aor", a.aor.String())
	a.dua = &sipgo.DialogUA{Client: s.cli, ContactHDR: a.contact}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.cfg.MaxAccounts > 0 && len(s.accounts) >= s.cfg.MaxAccounts {
		s.mu.Unlock()
		return nil, fmt.Errorf("sipua: too many accounts (max %d)", s.cfg.MaxAccounts)
	}
	s.accounts[token] = a
	s.wg.Add(1)
	if cfg.Register {
		s.wg.Add(1)
	}
	s.mu.Unlock()

	go func() {
		defer s.wg.Done()
		a.ev.run()
	}()
	if cfg.Register {
		ctx, cancel := context.WithCancel(context.Background())
		a.regStop, a.regDone = cancel, make(chan struct{})
		go func() {
			defer s.wg.Done()
			a.registerLoop(ctx)
		}()
	}
	a.log.Debug("account created", "contact", curi.String(), "proxy", a.proxy, "transport", tp)
	return a, nil
}

// AOR is the account's address of record, sip:login@domain.
func (a *Account) AOR() string { return a.aor.String() }

// Close hangs up the account's calls (BYE / CANCEL), unregisters if it
// registered (Handler told UNREGISTERED), and forgets the account. It
// returns when done or ctx ends.
//
// The network work goes on after ctx ends (a client that went away still
// gets its BYEs and unREGISTER), bounded by RequestTimeout; the Stack's
// Close waits for it. Close called from one of the account's own Handler
// callbacks does not wait for the events it queues (they run after that
// callback returns).
func (a *Account) Close(ctx context.Context) {
	a.startClose(ctx, a.s.cfg.RequestTimeout)
	select {
	case <-a.closed:
	case <-ctx.Done():
	}
}

// startClose starts the shutdown once, its network work bounded by limit.
func (a *Account) startClose(ctx context.Context, limit time.Duration) {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closing = true
		a.mu.Unlock()

		a.s.mu.Lock()
		delete(a.s.accounts, a.token)
		a.s.wg.Add(1)
		a.s.mu.Unlock()

		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
		go func() {
			defer a.s.wg.Done()
			defer cancel()
			a.shutdown(sctx)
		}()
	})
}

func (a *Account) shutdown(ctx context.Context) {
	defer close(a.closed)
	if a.regStop != nil {
		a.regStop()
		<-a.regDone
	}

	a.mu.Lock()
	calls := make([]*Call, 0, len(a.calls))
	for c := range a.calls {
		calls = append(calls, c)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() {
			if err := c.Hangup(ctx); err != nil {
				a.log.Debug("hangup on close", "call_id", c.CallID, "err", err)
			}
			select {
			case <-c.ended:
			case <-ctx.Done():
			}
			// Whatever is still waiting on the network gives up now.
			c.finish(0, "closed")
		})
	}
	wg.Wait()
	waitGroup(ctx, &a.wg)

	a.mu.Lock()
	bound := a.bound
	a.mu.Unlock()
	if bound {
		r := a.register(ctx, 0)
		switch {
		case r.err != nil:
			a.post(func() { a.h.Registration(RegisterFail, 0, r.reason) })
		case r.code >= 200 && r.code < 300:
			a.post(func() { a.h.Registration(Unregistered, r.code, r.reason) })
		default:
			a.post(func() { a.h.Registration(RegisterFail, r.code, r.reason) })
		}
	}

	a.ev.stop()
	if !a.ev.inCallback.Load() {
		select {
		case <-a.ev.done:
		case <-ctx.Done():
		}
	}
	a.log.Debug("account closed")
}

// post queues a Handler call.
func (a *Account) post(f func()) { a.ev.post(f) }

// addCall tracks c and counts its goroutine in a.wg; false when closing.
func (a *Account) addCall(c *Call) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return false
	}
	a.calls[c] = struct{}{}
	a.wg.Add(1)
	a.s.wg.Add(1)
	return true
}

func (a *Account) callGoroutineDone() {
	a.wg.Done()
	a.s.wg.Done()
}

func (a *Account) removeCall(c *Call) {
	a.mu.Lock()
	delete(a.calls, c)
	a.mu.Unlock()
}

func (a *Account) isClosing() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closing
}

// outbound sends an out-of-dialog request to the outbound proxy whatever
// its Request-URI says (the domain need not resolve).
func (a *Account) outbound(_ *sipgo.Client, req *sip.Request) error {
	req.SetDestination(a.proxy)
	return nil
}

// fromHeader is the account's From with a fresh tag.
func (a *Account) fromHeader() *sip.FromHeader {
	f := &sip.FromHeader{DisplayName: a.cfg.VisibleName, Address: *a.aor.Clone(), Params: sip.NewParams()}
	f.Params.Add("tag", sip.GenerateTagN(16))
	return f
}

// newRequest builds an out-of-dialog request from the account.
func (a *Account) newRequest(method sip.RequestMethod, to sip.Uri, callID string, cseq uint32) *sip.Request {
	req := sip.NewRequest(method, to)
	req.AppendHeader(a.fromHeader())
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: to.Scheme, User: to.User, Host: to.Host, Port: to.Port}})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	a.s.addUserAgent(req)
	req.SetTransport(a.tp)
	return req
}

func (s *Stack) addUserAgent(m sip.Message) {
	if s.cfg.UserAgent != "" {
		m.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	}
}

// target parses a destination as the API takes it: a user, user@host or a
// sip:/sips: URI; a bare user is in the account's domain.
func (a *Account) target(to string) (sip.Uri, error) {
	to = strings.TrimSpace(to)
	if strings.HasPrefix(to, "<") && strings.HasSuffix(to, ">") {
		to = to[1 : len(to)-1]
	}
	lower := strings.ToLower(to)
	var s string
	switch {
	case to == "":
		return sip.Uri{}, errors.New("sipua: empty destination")
	case strings.HasPrefix(lower, "sip:") || strings.HasPrefix(lower, "sips:"):
		s = to
	case strings.Contains(to, ":") && !strings.Contains(to, "@"):
		return sip.Uri{}, fmt.Errorf("sipua: unsupported destination %q", to)
	case strings.Contains(to, "@"):
		s = "sip:" + to
	default:
		s = "sip:" + to + "@" + a.cfg.Domain
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, fmt.Errorf("sipua: bad destination %q: %w", to, err)
	}
	if u.Host == "" || (u.Scheme != "sip" && u.Scheme != "sips") {
		return sip.Uri{}, fmt.Errorf("sipua: bad destination %q", to)
	}
	return u, nil
}

// doAuth sends req and answers one 401/407 challenge (two when the first
// answer is refused as stale); the final response or the error that kept
// one from coming.
func (a *Account) doAuth(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := a.s.cli.Do(ctx, req, sipgo.ClientRequestBuild, a.outbound)
	for i := 0; err == nil && i < 2 && isChallenge(res) && a.cfg.Password != ""; i++ {
		if i == 1 && !staleChallenge(res) {
			break
		}
		res, err = a.s.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: a.authUser, Password: a.cfg.Password})
	}
	return res, err
}

func isChallenge(res *sip.Response) bool {
	return res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired
}

func staleChallenge(res *sip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		if h := res.GetHeader(name); h != nil && strings.Contains(strings.ToLower(h.Value()), "stale=true") {
			return true
		}
	}
	return false
}

// errReason is the reason reported for a request that got no final
// response.
func errReason(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timeout: no response within %v", timeout)
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, sip.ErrTransactionTimeout):
		return "timeout: no response"
	}
	return err.Error()
}

func randToken() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// validUser accepts the unreserved and user-unreserved characters of RFC
// 3261's user part (escapes aside), which is all a login needs.
func validUser(u string) bool {
	for _, c := range u {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-_.!~*'()&=+$,;?/%", c):
		default:
			return false
		}
	}
	return u != ""
}

// validURIParams accepts ";name[=value]..." with RFC 3261 uri-parameter
// characters (sipgo's parser takes nearly anything).
func validURIParams(p string) bool {
	for _, kv := range strings.Split(p[1:], ";") {
		name, value, hasValue := strings.Cut(kv, "=")
		if name == "" || (hasValue && value == "") {
			return false
		}
		for _, c := range name + value {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			case strings.ContainsRune("-_.!~*'()%[]/:&+$", c):
			default:
				return false
			}
		}
	}
	return true
}

func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, " \t\r\n@;<>\"/?") {
		return false
	}
	return true
}

// waitGroup waits for wg or ctx.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
