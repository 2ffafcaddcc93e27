package client

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
)

// Server is the client listener (listen-client, listen-client-tls): the
// WebSocket at "/", the HTTP fallback at "/http", the browser shim, and a
// page (the phone) for every other request.
type Server struct {
	hub  *Hub
	mux  *http.ServeMux
	page http.Handler

	mu      sync.Mutex
	servers []*http.Server
}

// NewServer puts the hub's transports on one handler. page, when not nil,
// answers every request that is not a WebSocket handshake, the fallback or
// the shim (the phone page at "/"); without it they get 404.
func NewServer(h *Hub, page http.Handler) *Server {
	s := &Server{hub: h, mux: http.NewServeMux(), page: page}
	s.mux.HandleFunc("/http", h.serveHTTP)
	s.mux.Handle("GET /rtcgate-http-websocket.js", shim)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			h.serveWebSocket(w, r)
			return
		}
		if s.page != nil {
			s.page.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers on ln (TLS when cfg is set) until Shutdown.
func (s *Server) Serve(ln net.Listener, cfg *tls.Config) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.hub.opts.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.hub.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown ends every session (WebSockets close, HTTP clients get
// http.command.close on their pending sync) and stops the listeners.
func (s *Server) Shutdown(ctx context.Context) error {
	s.hub.Close()
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()
	var errs []error
	for _, hs := range servers {
		errs = append(errs, hs.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
