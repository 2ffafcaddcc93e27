package control

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// serveWebSocket accepts a handshake that offers one of the registered
// subprotocols and answers each message through that subprotocol's handler,
// in order. A handshake without a known subprotocol is refused with 400, as
// rtpengine refuses it.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	name, h := s.pickSubprotocol(r)
	if h == nil {
		s.requests.WithLabelValues("websocket", "handshake", "400").Inc()
		s.subMu.RLock()
		known := strings.Join(s.subOrder, ", ")
		s.subMu.RUnlock()
		plain(w, http.StatusBadRequest, "no supported WebSocket subprotocol offered; this server speaks: "+known+"\n")
		return
	}
	// The guard has checked Host and Origin (control-allowed-origins)
	// before the handshake reached here.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{name}, InsecureSkipVerify: true})
	if err != nil {
		s.requests.WithLabelValues("websocket", "handshake", "403").Inc()
		s.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	if !s.enterLive(c, func() { c.Close(websocket.StatusGoingAway, "server shutting down") }) {
		c.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer s.leaveLive(c)
	s.wsOpen.WithLabelValues(name).Inc()
	defer s.wsOpen.WithLabelValues(name).Dec()
	c.SetReadLimit(int64(s.opts.MaxMessage))
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	if tc != nil && s.opts.IdleTimeout > 0 {
		// Nothing received (not even a ping) for control-idle-timeout.
		tc.setOnIdle(func() { c.Close(websocket.StatusGoingAway, "idle for "+s.opts.IdleTimeout.String()) })
	}
	// busy marks a message being answered: the connection is not quiet.
	busy := func(b bool) {
		if tc != nil {
			tc.busy.Store(b)
			if !b {
				tc.touch()
			}
		}
	}

	ctx := context.Background() // Shutdown closes the connection itself, with "going away"
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			s.closeWebSocket(c, name, err)
			return
		}
		busy(true)
		reply, err := h(ctx, msg)
		if err != nil {
			s.requests.WithLabelValues("websocket", name, "error").Inc()
			c.Close(websocket.StatusInternalError, truncate(err.Error(), 120))
			return
		}
		s.requests.WithLabelValues("websocket", name, "200").Inc()
		if reply == nil { // the handler chose not to answer (an ng message without cookie)
			busy(false)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		err = c.Write(wctx, typ, reply)
		cancel()
		busy(false)
		if err != nil {
			s.closeWebSocket(c, name, err)
			return
		}
	}
}

// closeWebSocket ends a connection after a read or write error, saying why
// when it is ours to say.
func (s *Server) closeWebSocket(c *websocket.Conn, name string, err error) {
	switch {
	case s.baseCtx.Err() != nil:
		// Shutdown is closing it.
	case websocket.CloseStatus(err) != -1:
		// The peer closed; the library has answered the close handshake.
	default:
		// coder/websocket has already sent 1009 for a message over the read
		// limit; for anything else this is a best-effort close.
		c.Close(websocket.StatusPolicyViolation, truncate(err.Error(), 120))
	}
	if !errors.Is(err, context.Canceled) && websocket.CloseStatus(err) == -1 {
		s.log.Debug("websocket closed", "subprotocol", name, "err", err)
	}
}

// pickSubprotocol returns the first offered subprotocol that is registered.
func (s *Server) pickSubprotocol(r *http.Request) (string, MessageHandler) {
	s.subMu.RLock()
	defer s.subMu.RUnlock()
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(line, ",") {
			p = strings.TrimSpace(p)
			if h, ok := s.subprotocols[p]; ok {
				return p, h
			}
		}
	}
	return "", nil
}

// enter counts a connection in flight unless Shutdown has begun.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enterLocked()
}

func (s *Server) enterLocked() bool {
	if s.closing {
		return false
	}
	s.conns.Add(1)
	return true
}

// enterLive counts a long-lived connection (a WebSocket, an event stream)
// and records how Shutdown ends it, under the same lock, so that Shutdown
// cannot miss it; false when shutting down.
func (s *Server) enterLive(key any, stop func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enterLocked() {
		return false
	}
	s.live[key] = stop
	return true
}

func (s *Server) leaveLive(key any) {
	s.mu.Lock()
	delete(s.live, key)
	s.mu.Unlock()
	s.conns.Done()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
