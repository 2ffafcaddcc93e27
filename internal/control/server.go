// Package control is rtcgate's control plane, reached the ways rtpengine is
// reached: HTTP and HTTPS (/ping, /cli, /metrics and what subsystems add, such
// as /ng), WebSocket subprotocols on the same port, and rtpengine-ctl's raw
// TCP CLI. The transports are thin: commands run in the CLI registry, ng
// messages in the ng dispatcher.
package control

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// Options are the control plane's limits.
type Options struct {
	MaxMessage int           // bytes in an HTTP body, WebSocket message or CLI line
	Timeout    time.Duration // to read a request's headers and body, or a CLI line
	Log        *slog.Logger

	// Who may drive the control plane (see guard).
	AllowedOrigins []string // browser Origins let through; none by default
	Hosts          []string // Host names served besides loopback and the listener's own address
	Token          string   // bearer token; required on listeners bound to non-loopback addresses

	// Connections (see limitListener).
	MaxConnections      int           // open per listener; 0: no cap
	IdleTimeout         time.Duration // quiet keep-alive HTTP connections and WebSockets are closed; 0: 4×Timeout for HTTP, none for WebSockets
	PressureIdleTimeout time.Duration // quiet connections are closed after this while over 3/4 of MaxConnections
}

// MessageHandler answers one WebSocket message of a subprotocol with one
// message, or with none when it returns nil. An error closes the connection.
type MessageHandler func(ctx context.Context, msg []byte) ([]byte, error)

// Server is the control plane behind every control listener.
type Server struct {
	opts Options
	cli  *cli.Registry
	mux  *http.ServeMux
	log  *slog.Logger

	subMu        sync.RWMutex
	subprotocols map[string]MessageHandler
	subOrder     []string
	pages        []string // path prefixes of HandlePage

	// Everything Shutdown must stop: HTTP servers, the CLI listeners, and
	// the WebSocket and CLI connections in flight (http.Server.Shutdown does
	// not wait for hijacked connections).
	mu        sync.Mutex
	servers   []*http.Server
	listeners []net.Listener
	conns     sync.WaitGroup
	live      map[any]func() // what never ends by itself (WebSockets, event streams): how Shutdown ends it
	closing   bool
	baseCtx   context.Context
	cancel    context.CancelFunc

	requests *prometheus.CounterVec
	wsOpen   *prometheus.GaugeVec
	refused  *prometheus.CounterVec
	evicted  *prometheus.CounterVec
}

// New builds the control plane around a CLI registry and registers its
// metrics (and /metrics) with reg.
func New(opts Options, registry *cli.Registry, reg *prometheus.Registry, metricsHandler http.Handler) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: opts, cli: registry, mux: http.NewServeMux(), log: opts.Log,
		subprotocols: map[string]MessageHandler{},
		live:         map[any]func(){},
		baseCtx:      ctx, cancel: cancel,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_control_requests_total",
			Help: "Control-plane requests by transport (http, websocket, tcp-cli), endpoint and outcome.",
		}, []string{"transport", "endpoint", "code"}),
		wsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtcgate_control_websockets",
			Help: "Open control-plane WebSocket connections by subprotocol.",
		}, []string{"subprotocol"}),
	}
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtcgate_control_refused_total",
		Help: "Control-plane HTTP/WebSocket requests refused by reason: host (not this server's), origin (a browser's cross-site request), token.",
	}, []string{"reason"})
	s.evicted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rtcgate_control_connections_closed_total",
		Help: "Quiet control-plane connections closed by rtcgate: idle (control-idle-timeout), pressure (over 3/4 of control-max-connections), cap (room for a new connection).",
	}, []string{"reason"})
	reg.MustRegister(s.requests, s.wsOpen, s.refused, s.evicted)

	s.mux.HandleFunc("GET /ping", s.handlePing)
	s.mux.HandleFunc("GET /cli/", s.handleCLIGet)
	s.mux.HandleFunc("POST /cli", s.handleCLIPost)
	s.mux.Handle("GET /metrics", metricsHandler)

	s.HandleSubprotocol("echo.rtpengine.com", func(_ context.Context, msg []byte) ([]byte, error) {
		return append([]byte{}, msg...), nil // never nil: an empty message is echoed too
	})
	s.HandleSubprotocol("cli.rtpengine.com", func(ctx context.Context, msg []byte) ([]byte, error) {
		return []byte(s.cli.Run(ctx, string(msg))), nil
	})
	return s
}

// Handle adds an HTTP endpoint (a net/http ServeMux pattern), for
// subsystems such as the ng dispatcher's POST /ng.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleSubprotocol adds a WebSocket subprotocol.
func (s *Server) HandleSubprotocol(name string, h MessageHandler) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if _, ok := s.subprotocols[name]; !ok {
		s.subOrder = append(s.subOrder, name)
	}
	s.subprotocols[name] = h
}

// ServeHTTP routes WebSocket handshakes by subprotocol and everything else
// by path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.serveWebSocket(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	s.requests.WithLabelValues("http", endpointOf(r.URL.Path), itoa(rec.code)).Inc()
}

// endpointOf keeps the metric's label set small: the first path segment.
func endpointOf(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch seg {
	case "ping", "cli", "metrics", "ng", "ng-plain", "status":
		return "/" + seg
	}
	return "other"
}

// ServeHTTPListener serves plain HTTP (and WS) on ln until Shutdown.
func (s *Server) ServeHTTPListener(ln net.Listener) error {
	return s.serve(ln, nil)
}

// ServeHTTPSListener serves HTTPS (and WSS) on ln until Shutdown.
func (s *Server) ServeHTTPSListener(ln net.Listener, cfg *tls.Config) error {
	return s.serve(ln, cfg)
}

func (s *Server) serve(ln net.Listener, tlsCfg *tls.Config) error {
	li := newListenerInfo(ln)
	ln = s.limit(ln)
	idle := s.opts.IdleTimeout
	if idle <= 0 {
		idle = 4 * s.opts.Timeout
	}
	hs := &http.Server{
		Handler:           s.guard(li, s),
		ReadHeaderTimeout: s.opts.Timeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, trackedOf(c))
		},
		// A connection running a request is busy; between requests
		// (and once a WebSocket) it may be closed when quiet.
		ConnState: func(c net.Conn, st http.ConnState) {
			tc := trackedOf(c)
			if tc == nil {
				return
			}
			switch st {
			case http.StateActive:
				tc.busy.Store(true)
			case http.StateIdle, http.StateHijacked:
				tc.touch()
				tc.busy.Store(false)
			}
		},
	}
	if !s.track(hs, nil) {
		ln.Close()
		return http.ErrServerClosed
	}
	var err error
	if tlsCfg != nil {
		hs.TLSConfig = tlsCfg
		err = hs.Serve(tls.NewListener(ln, tlsCfg))
	} else {
		err = hs.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type connKey struct{}

// limit wraps a listener in the connection cap and idle reaper.
func (s *Server) limit(ln net.Listener) *limitListener {
	return newLimitListener(ln, s.opts, func(reason string) { s.evicted.WithLabelValues(reason).Inc() })
}

// track records a server or listener for Shutdown; false when shutting down.
func (s *Server) track(hs *http.Server, ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if hs != nil {
		s.servers = append(s.servers, hs)
	}
	if ln != nil {
		s.listeners = append(s.listeners, ln)
	}
	return true
}

// Shutdown stops accepting, lets in-flight requests and CLI commands finish,
// closes WebSockets with "going away", and returns when all is done or ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	servers, listeners := s.servers, s.listeners

	for _, ln := range listeners {
		ln.Close()
	}
	// WebSockets and event streams are long-lived: tell them now instead
	// of waiting for them to end by themselves.
	for _, stop := range s.live {
		go stop()
	}
	s.mu.Unlock()

	errs := make([]error, len(servers)+1)
	var wg sync.WaitGroup
	for i, hs := range servers {
		wg.Go(func() { errs[i] = hs.Shutdown(ctx) })
	}
	wg.Wait()
	s.cancel()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs[len(servers)] = ctx.Err()
	}
	return errors.Join(errs...)
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	plain(w, http.StatusOK, "pong\n")
}

// handleCLIGet runs GET /cli/list+totals: the command is the rest of the
// path with '+' for spaces, as rtpengine takes it.
func (s *Server) handleCLIGet(w http.ResponseWriter, r *http.Request) {
	raw := strings.TrimPrefix(r.URL.EscapedPath(), "/cli/")
	cmd, err := unescapeCommand(raw)
	if err != nil {
		plain(w, http.StatusBadRequest, "bad command encoding: "+err.Error()+"\n")
		return
	}
	plain(w, http.StatusOK, s.cli.Run(r.Context(), cmd))
}

// handleCLIPost runs POST /cli with the command as a text/plain body.
func (s *Server) handleCLIPost(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		plain(w, http.StatusUnsupportedMediaType, "POST /cli takes a text/plain body\n")
		return
	}
	body, status, err := s.ReadBody(w, r)
	if err != nil {
		plain(w, status, err.Error()+"\n")
		return
	}
	plain(w, http.StatusOK, s.cli.Run(r.Context(), string(body)))
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (for deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
