package sipua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// ErrClosed is returned by a Stack or Account that is closed or closing.
var ErrClosed = errors.New("sipua: closed")

const (
	defaultRegisterExpires = 600 * time.Second
	defaultRequestTimeout  = 32 * time.Second
	defaultRingTimeout     = 180 * time.Second
	// maxCloseWait bounds Stack.Close's wait for each Account's BYEs,
	// CANCELs and unREGISTER, so that a dead proxy cannot hold a shutdown
	// for a full RequestTimeout.
	maxCloseWait = 5 * time.Second
	allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, NOTIFY, UPDATE"
)

// defaultKeepalive is the interval of the CRLF keep-alives on TLS
// connections: well inside the idle timeouts proxies use (Kamailio:
// tcp_connection_lifetime 120 s, tls connection_timeout 600 s) and NAT
// tables keep for TCP.
const defaultKeepalive = 30 * time.Second

// Stack is the node's SIP endpoint.
type Stack struct {
	cfg Config
	log *slog.Logger

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client

	udp  net.PacketConn
	tcp  net.Listener
	addr string
	// udpLaddr makes every UDP request leave from the listener socket, so
	// that Via, Contact and the packet's source agree and responses come
	// back where they are read; sipgo would otherwise open a socket per
	// destination.
	udpLaddr sip.Addr
	host     string // advertised in Via and Contact
	port     int

	// refreshAfter maps a granted registration expiry to the wait before
	// the refresh; tests shorten it since registrars enforce a minimum
	// expiry far above a test's patience.
	refreshAfter func(granted time.Duration) time.Duration

	mu       sync.Mutex
	accounts map[string]*Account // by Contact token
	dialogs  map[string]*Call    // by dialogKey
	calling  map[string]*Call    // outgoing calls not answered yet, by Call-ID (provisional)
	serving  bool
	closed   bool // Close began: no new Accounts, out-of-dialog requests get 503
	stopping bool // the Accounts are closed: every request gets 503
	// wg counts every goroutine of this package (request handlers, calls,
	// registrations, event queues, account shutdowns); Close waits for it.
	wg        sync.WaitGroup
	serveWG   sync.WaitGroup
	done      chan struct{} // closed once Close has closed the Accounts
	closeOnce sync.Once
}

// New creates the Stack and binds its listener (UDP and TCP on
// cfg.Listen); nothing is served until Serve.
func New(cfg Config) (*Stack, error) {
	if cfg.RegisterExpires <= 0 {
		cfg.RegisterExpires = defaultRegisterExpires
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = defaultRingTimeout
	}
	if cfg.Listen == "" {
		cfg.Listen = ":5060"
	}
	if cfg.TLSKeepalive <= 0 {
		cfg.TLSKeepalive = defaultKeepalive
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "sipua")
	libLog := log
	if cfg.LibLog != nil {
		libLog = cfg.LibLog.With("component", "sipua")
	}
	tlsConf, err := clientTLS(cfg)
	if err != nil {
		return nil, err
	}

	s := &Stack{
		cfg:          cfg,
		log:          log,
		accounts:     map[string]*Account{},
		dialogs:      map[string]*Call{},
		calling:      map[string]*Call{},
		done:         make(chan struct{}),
		refreshAfter: func(g time.Duration) time.Duration { return g / 2 },
	}
	if err := s.bind(cfg.Listen); err != nil {
		return nil, err
	}
	if err := s.advertise(cfg.Advertised); err != nil {
		s.udp.Close()
		s.tcp.Close()
		return nil, err
	}

	uaName := cfg.UserAgent
	if uaName == "" {
		uaName = "rtcgate"
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(uaName),
		sipgo.WithUserAgentHostname(s.host),
		// Dialling a proxy over TLS; sipgo sets ServerName per connection
		// to the host the request is sent to: the outbound proxy's.
		sipgo.WithUserAgenTLSConfig(tlsConf),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(libLog),
			// A dropped TCP connection fails its transactions at once
			// instead of after timer B/F.
			sip.WithTransactionLayerTerminateOnConnClose(),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				log.Debug("stray response", "status", r.StatusCode, "cseq", cseqString(r.CSeq()))
			}),
		),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(libLog)),
	)
	if err != nil {
		s.udp.Close()
		s.tcp.Close()
		return nil, err
	}
	s.ua = ua
	s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(libLog))
	if err == nil {
		s.cli, err = sipgo.NewClient(ua,
			sipgo.WithClientHostname(s.host),
			sipgo.WithClientPort(s.port),
			sipgo.WithClientNAT(),
			sipgo.WithClientLogger(libLog))
	}
	if err != nil {
		ua.Close()
		s.udp.Close()
		s.tcp.Close()
		return nil, err
	}
	s.cli.TxRequester = (*requester)(s)

	// Until Serve runs, nothing reads the socket, but requests can already
	// leave from it and their responses wait in the socket buffer: register
	// the listener where sipgo looks up a UDP request's local address
	// (Serve replaces this entry by its own for the same socket).
	if s.udpLaddr.IP != nil {
		key := s.udp.LocalAddr().String()
		ua.TransportLayer().Pool("udp").Add(key, &sip.UDPConnection{PacketConn: s.udp, PacketAddr: key, Listener: true})
	}

	// sipgo hands each response to its transaction on a goroutine of its
	// own, so a 180 and the 200 right behind it can reach WaitAnswer in
	// either order — and a 180 after the 200 is dropped. Transport
	// handlers run in wire order: provisional responses are reported from
	// here.
	ua.TransportLayer().OnMessage(s.provisional)

	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.OPTIONS,
		sip.MESSAGE, sip.INFO, sip.NOTIFY, sip.REFER, sip.UPDATE, sip.PRACK, sip.SUBSCRIBE,
		sip.REGISTER, sip.PUBLISH} {
		s.srv.OnRequest(m, s.handleRequest)
	}
	s.srv.OnNoRoute(s.handleRequest)
	return s, nil
}

// bind listens on UDP and then TCP at the same port; with port 0 the UDP
// port is picked first and TCP tries it, a few times over if TCP has it
// taken.
func (s *Stack) bind(listen string) error {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("sipua: listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("sipua: listen %q: bad port", listen)
	}
	tries := 1
	if port == 0 {
		tries = 20
	}
	var lastErr error
	for range tries {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("sipua: listen udp %s: %w", listen, err)
		}
		uport := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(uport)))
		if err != nil {
			udp.Close()
			lastErr = fmt.Errorf("sipua: listen tcp %s: %w", net.JoinHostPort(host, strconv.Itoa(uport)), err)
			continue
		}
		if s.cfg.GuardTCP != nil {
			tcp = s.cfg.GuardTCP(tcp)
		}
		s.udp, s.tcp, s.addr = udp, tcp, udp.LocalAddr().String()
		ua := udp.LocalAddr().(*net.UDPAddr)
		la := sip.Addr{IP: ua.IP, Port: ua.Port, Hostname: ua.IP.String()}
		// sipgo finds the listener by this string: use it only if it is
		// the one the pool is keyed by.
		if la.String() == udp.LocalAddr().String() {
			s.udpLaddr = la
		}
		return nil
	}
	return lastErr
}

func (s *Stack) advertise(adv string) error {
	host, port := adv, s.udp.LocalAddr().(*net.UDPAddr).Port
	if adv != "" {
		if h, p, err := net.SplitHostPort(adv); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return fmt.Errorf("sipua: advertised %q: bad port", adv)
			}
			host, port = h, n
		}
	} else {
		ip := s.udp.LocalAddr().(*net.UDPAddr).IP
		host = ip.String()
		if ip.IsUnspecified() {
			host = defaultHostIP()
		}
	}
	s.host, s.port = host, port
	return nil
}

// defaultHostIP is the first non-loopback IPv4 address of an interface that
// is up, for a listener on the unspecified address with nothing advertised.
func defaultHostIP() string {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// Addr is the bound listener's host:port.
func (s *Stack) Addr() string { return s.addr }

// Serve handles incoming requests until ctx ends (then it closes the
// Stack) or Close is called; it returns nil then, or the listener's error.
func (s *Stack) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("sipua: already serving")
	}
	s.serving = true
	s.serveWG.Add(3)
	s.mu.Unlock()

	errc := make(chan error, 2)
	go func() {
		defer s.serveWG.Done()
		errc <- s.srv.ServeUDP(s.udp)
	}()
	go func() {
		defer s.serveWG.Done()
		errc <- s.srv.ServeTCP(s.tcp)
	}()
	go func() {
		defer s.serveWG.Done()
		s.keepFlows()
	}()

	var err error
	select {
	case <-ctx.Done():
	case <-s.done:
	case err = <-errc:
		select {
		case <-s.done:
			err = nil
		default:
			if err == nil {
				err = errors.New("sipua: listener stopped")
			}
			s.log.Error("listener failed", "err", err)
		}
	}
	s.Close()
	return err
}

// Close unregisters and hangs up every Account and releases the listener.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		accts := make([]*Account, 0, len(s.accounts))
		for _, a := range s.accounts {
			accts = append(accts, a)
		}
		s.mu.Unlock()

		for _, a := range accts {
			a.startClose(context.Background(), min(s.cfg.RequestTimeout, maxCloseWait))
		}
		for _, a := range accts {
			<-a.closed
		}

		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		close(s.done)
		// Ends every transaction (and so whatever waits on one) and closes
		// the connections sipgo opened or accepted.
		s.ua.Close()
		s.udp.Close()
		s.tcp.Close()
		s.serveWG.Wait()
		s.wg.Wait()
	})
	return nil
}

// NumAccounts is the number of open Accounts.
func (s *Stack) NumAccounts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accounts)
}

// enter counts a request's goroutine in s.wg, until Close waits for them.
// (In-dialog requests are still served while Close hangs up: two Accounts
// of this Stack may share a call.)
func (s *Stack) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Stack) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// requester is the Client's TxRequester: every request sipgo sends on our
// behalf (including the dialog layer's ACKs, BYEs and auth retries) passes
// here, so each UDP request gets the listener as its local address.
type requester Stack

func (r *requester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	s := (*Stack)(r)
	switch sip.NetworkToLower(req.Transport()) {
	case "udp":
		if s.udpLaddr.IP != nil && req.Laddr.IP == nil {
			s.udpLaddr.Copy(&req.Laddr)
		}
	case "tls":
		// Nothing listens for TLS at our Contact: ask the proxy to send
		// what it has for our Via's address over this connection (RFC
		// 5923's alias, Kamailio's tcp_accept_aliases).
		if v := req.Via(); v != nil && !v.Params.Has("alias") {
			v.Params.Add("alias", "")
		}
	}
	if req.IsAck() {
		return nil, s.ua.TransportLayer().WriteMsg(req)
	}
	tx, err := s.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

func cseqString(h *sip.CSeqHeader) string {
	if h == nil {
		return ""
	}
	return h.Value()
}

// provisional reports a provisional response to one of our INVITEs as
// Progress, in the order the responses arrived. It runs on the transport's
// reading goroutine: it must not block.
func (s *Stack) provisional(m sip.Message) {
	r, ok := m.(*sip.Response)
	if !ok || !r.IsProvisional() {
		return
	}
	cseq, id := r.CSeq(), r.CallID()
	if cseq == nil || cseq.MethodName != sip.INVITE || id == nil {
		return
	}
	s.mu.Lock()
	c := s.calling[id.Value()]
	s.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A retransmitted provisional says nothing new.
	if c.state != stateCalling || r.StatusCode == c.lastProgress {
		return
	}
	c.lastProgress = r.StatusCode
	code, reason, body := r.StatusCode, r.Reason, sdpOf(r)
	c.emitLocked(func(h CallHandler) { h.Progress(code, reason, body) })
}

func (s *Stack) addCalling(c *Call) {
	s.mu.Lock()
	s.calling[c.CallID] = c
	s.mu.Unlock()
}

func (s *Stack) removeCalling(c *Call) {
	s.mu.Lock()
	if s.calling[c.CallID] == c {
		delete(s.calling, c.CallID)
	}
	s.mu.Unlock()
}
