package client

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// Close codes of our own (RFC 6455 leaves 4000-4999 to applications).
const (
	closeResumedElsewhere = 4000 // another transport took the session over
	closeUnknownSession   = 4001 // a resume named no live session, or the wrong token
)

// serveWebSocket is the SDK's transport: `ws://host:port/`. A client that
// lost its WebSocket may resume its session with ?sessionId=…&authToken=…
// [&ack=N, the last frame it has]; the frames it has not had follow.
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r.Header.Get("Origin"), r.Host, h.opts.Origins) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the Origin was checked above, with our own patterns
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	c.SetReadLimit(int64(h.opts.MaxFrame))

	var s *Session
	if sid := q.Get("sessionId"); sid != "" {
		s = h.resume(sid, q.Get("authToken"), q.Get("ack"))
		if s == nil {
			c.Close(closeUnknownSession, "unknown session or wrong authToken")
			return
		}
	} else if s, err = h.open(remoteIP(r)); err != nil {
		c.Close(websocket.StatusTryAgainLater, "too many connections (client-max-connections)")
		return
	}
	gen := s.attach("websocket", time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		h.writeWebSocket(ctx, c, s, gen)
	}()
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			break
		}
		if typ != websocket.MessageText {
			s.Fail("unknown", "binary frames are not part of the protocol")
			continue
		}
		h.handle(ctx, s, data)
	}
	cancel()
	<-writerDone
	s.detach(gen, time.Now())
	c.CloseNow()
}

// resume finds a session for a returning client, checking its token in
// constant time, and drops the frames it says it has.
func (h *Hub) resume(id, token, ack string) *Session {
	s := h.Session(id)
	if s == nil || subtle.ConstantTimeCompare([]byte(token), []byte(s.AuthToken)) != 1 {
		return nil
	}
	if n, err := strconv.ParseUint(ack, 10, 64); err == nil {
		s.ack(n)
	}
	return s
}

// writeWebSocket pushes the session's frames in order. Over a WebSocket a
// frame counts as delivered once written: TCP brings it unless the
// connection dies, and then the client resumes with the ack it has.
func (h *Hub) writeWebSocket(ctx context.Context, c *websocket.Conn, s *Session, gen uint64) {
	var keepalive <-chan time.Time
	if h.opts.Keepalive > 0 {
		t := time.NewTicker(h.opts.Keepalive)
		defer t.Stop()
		keepalive = t.C
	}
	after := s.ackedSeq()
	for {
		frames, wake, closed := s.pending(after)
		for _, f := range frames {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				c.CloseNow()
				return
			}
			after = f.seq
			s.ack(f.seq)
		}
		if closed {
			c.Close(websocket.StatusNormalClosure, "session closed")
			return
		}
		if !s.current(gen) {
			c.Close(closeResumedElsewhere, "session resumed on another connection")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case now := <-keepalive:
			// A client silent for three keep-alive periods (pings
			// unanswered) is gone: drop the socket, keep the session for
			// a resume.
			if now.Sub(s.inboundAt()) > 3*h.opts.Keepalive {
				c.Close(websocket.StatusGoingAway, "keep-alive timeout")
				return
			}
		}
	}
}

func (s *Session) ackedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

func (s *Session) inboundAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastInbound
}

func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
