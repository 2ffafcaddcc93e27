package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
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
// [&ack=N, the last frame it has]; the frames it has not had follow. In a
// cluster, a resume reaching a node that is not the session's live owner
// is proxied there (routeResume).
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r.Header.Get("Origin"), r.Host, h.opts.Origins) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
	if sid := q.Get("sessionId"); sid != "" && h.routeResume(w, r, sid) {
		return
	}
	sb := &smallBuffers{ResponseWriter: w}
	c, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the Origin was checked above, with our own patterns
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	c.SetReadLimit(int64(h.opts.MaxFrame))

	var s *session
	if sid := q.Get("sessionId"); sid != "" {
		s = h.resume(sid, q.Get("authToken"), q.Get("ack"))
		if s == nil {
			c.Close(closeUnknownSession, "unknown session or wrong authToken")
			return
		}
	} else if s, err = h.open(h.clientIP(r)); err != nil {
		if errors.Is(err, ErrTooManyFromAddress) {
			c.Close(websocket.StatusTryAgainLater, "too many sessions from this address")
			return
		}
		c.Close(websocket.StatusTryAgainLater, "too many connections (client-max-connections)")
		return
	}
	ws := &wsConn{Conn: c, h: h, br: sb.br, nc: sb.conn}
	if sc, ok := sb.conn.(syscall.Conn); ok && h.ready != nil {
		ws.raw, _ = sc.SyscallConn()
	}
	ws.first.s = s
	ws.att.Store(&ws.first)
	ws.first.gen = s.attach(ws, time.Now())
	// The handler returns either way, so that net/http frees the request
	// and its connection state (about 2.5 KiB per held session).
	if ws.raw != nil {
		// polled is set before add and cleared on failure, never by
		// writing raw: a Hub.Close may end the WebSocket meanwhile.
		ws.polled.Store(true)
		if err := h.ready.add(ws); err == nil {
			// A first frame that came with the handshake is already off
			// the socket: it will not signal it.
			if sb.early > 0 && ws.reading.CompareAndSwap(false, true) {
				go ws.read()
			}
			return
		}
		ws.polled.Store(false)
		h.ready.release(ws)
	}
	ws.reading.Store(true)
	go ws.read() // TLS, or no readiness set: a goroutine reads for good
}

// resume finds a session for a returning client and drops the frames it
// says it has.
func (h *Hub) resume(id, token, ack string) *session {
	n, ackErr := strconv.ParseUint(ack, 10, 64)
	s, _ := h.find(id, token, n)
	if s == nil {
		return nil
	}
	if ackErr == nil {
		s.ack(n)
	}
	return s
}

// find is session id if token is its authToken (checked in constant
// time): one of this node's, or, in a cluster, one of a lost node, taken
// over here. written is the last frame its client was written (or
// acknowledged): for a client that cannot say what it has, the frames after
// it are the ones it missed.
func (h *Hub) find(id, token string, clientAck uint64) (*session, uint64) {
	s := h.session(id)
	var written uint64
	if s == nil {
		s, written = h.takeOver(id, token, clientAck)
	} else {
		written = s.ackedSeq()
	}
	if s == nil || subtle.ConstantTimeCompare([]byte(token), []byte(s.authToken)) != 1 {
		return nil, 0
	}
	return s, written
}

// reconnect is the Web SDK's way back to its session:
// createSession({authToken, keepAlive: true}) opens a new WebSocket whose
// `connection` carries the authToken that getUserData gave (the SDK's
// options.authToken, "token for auth on server with keepalived client").
// The WebSocket leaves the session it opened with — which never was:
// nothing heard of it — for the one the token names, here or taken over
// from a lost node; the frames that session queued and had not written
// follow, then getUserData again (the same sessionId and authToken). The
// rest of the connection request (appKey, SIP options) is not looked at:
// the token decides. Over the HTTP fallback a client resumes with open's
// sessionId and authToken instead.
func (h *Hub) reconnect(fresh *session, message, token string) *refusal {
	fresh.mu.Lock()
	ws, _ := fresh.transport.(*wsConn)
	first := fresh.nextSeq == 1 && !fresh.closed && !fresh.established
	fresh.mu.Unlock()
	if ws == nil {
		return &refusal{message, "resuming with an authToken works over the WebSocket; over the HTTP fallback, open with sessionId and authToken"}
	}
	if !first {
		return &refusal{message, "a connection with an authToken must be the WebSocket's first frame"}
	}
	s, written := h.find(tokenSession(token), token, 0)
	if s == nil || s == fresh {
		fresh.Fail(message, "unknown session or wrong authToken")
		fresh.Close("refused: unknown session or wrong authToken")
		return nil
	}
	fresh.detach(ws.first.gen, time.Now())
	fresh.Close("replaced by the session its authToken names")
	s.ack(written)
	ws.moveTo(s)
	s.Send("getUserData", s.Config())
	return nil
}

// moveTo attaches the WebSocket to s in place of the session it opened
// with. It runs on the reader, inside handleFrame (handling is set: no
// flush starts before handleFrame's own).
func (w *wsConn) moveTo(s *session) {
	gen := s.attach(w, time.Now())
	w.att.Store(&wsAttachment{s: s, gen: gen})
}

func (s *session) ackedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// Kind implements Transport.
func (w *wsConn) Kind() string { return "websocket" }

// Pending implements Transport: a flush starts unless one runs or the
// reader is about to flush after its frame.
func (w *wsConn) Pending() {
	if !w.flushing && !w.handling {
		w.flushing = true
		go w.flush()
	}
}

// Replaced implements Transport: the socket is closed with a code saying
// why.
func (w *wsConn) Replaced() {
	go w.close(closeResumedElsewhere, "session resumed on another connection")
}

// handleFrame runs a frame from the reader and then writes the replies on
// that same goroutine: a request/response costs no extra goroutine (and no
// stack growth of a fresh one) per frame.
func (w *wsConn) handleFrame(ctx context.Context, data []byte) {
	s := w.at().s
	s.mu.Lock()
	w.handling = true
	s.mu.Unlock()
	if err := w.h.handle(ctx, s, data); err != nil {
		s.Fail(err.message, err.info)
	}
	s = w.at().s // a `connection` with an authToken moved the WebSocket
	s.mu.Lock()
	w.handling = false
	run := s.transport == Transport(w) && !w.flushing && (len(s.outbox) > 0 || s.closed)
	if run {
		w.flushing = true
	}
	s.mu.Unlock()
	if run {
		w.flush()
	}
}

// flush writes pending frames in order until none are left. Over a
// WebSocket a frame counts as delivered once written: TCP brings it unless
// the connection dies, and then the client resumes with the ack it has.
func (w *wsConn) flush() {
	s := w.at().s
	var written uint64 // the last frame written, for the session store
	for {
		s.mu.Lock()
		if written > 0 && s.established && !s.closed {
			s.hub.persistLocked(StoreOp{Kind: "sent", ID: s.id, Seq: written})
		}
		written = 0
		if s.transport != Transport(w) {
			w.flushing = false
			s.mu.Unlock()
			return
		}
		frames := append([]queued(nil), s.outbox...)
		closed := s.closed
		if len(frames) == 0 {
			w.flushing = false
			s.mu.Unlock()
			if closed {
				w.close(websocket.StatusNormalClosure, "session closed")
			}
			return
		}
		s.mu.Unlock()
		for _, f := range frames {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := w.Write(ctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				s.mu.Lock()
				w.flushing = false
				s.mu.Unlock()
				w.closeNow()
				return
			}
			s.ackTo(f.seq, false) // written; the stored copy waits for the client's ack
			written = f.seq
		}
	}
}

// smallBuffers hands coder/websocket a hijacked connection with small
// buffers in place of net/http's two 4 KiB ones, which it would otherwise
// keep for the life of the connection: over half of an idle session's heap
// (clientbench). Frames larger than the buffers are read and written
// straight through, so only syscall counts change, and only for big frames.
type smallBuffers struct {
	http.ResponseWriter
	conn  net.Conn      // the hijacked connection
	br    *bufio.Reader // the reader handed to the library
	early int           // bytes the client sent with its handshake
}

const hijackedBufferSize = 512

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("client: response cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	// Bytes the client sent after its handshake (a first frame) are
	// already in net/http's reader: carry them over.
	// They must sit in the new reader's buffer, not behind it: the library
	// takes what is buffered and re-aims the reader at conn.
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	early = append([]byte(nil), early...)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), conn), max(hijackedBufferSize, len(early)))
	if len(early) > 0 {
		if _, err := br.Peek(len(early)); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	w.conn, w.br, w.early = conn, br, len(early)
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, hijackedBufferSize)), nil
}
