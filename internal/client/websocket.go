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
// [&ack=N, the last frame it has]; the frames it has not had follow.
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r.Header.Get("Origin"), r.Host, h.opts.Origins) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	q := r.URL.Query()
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
	ws := &wsConn{Conn: c, h: h, s: s, br: sb.br, nc: sb.conn}
	if sc, ok := sb.conn.(syscall.Conn); ok && h.ready != nil {
		ws.raw, _ = sc.SyscallConn()
	}
	ws.gen = s.attach(ws, time.Now())
	// The handler returns either way, so that net/http frees the request
	// and its connection state (about 2.5 KiB per held session).
	if ws.raw != nil {
		if err := h.ready.add(ws); err == nil {
			// A first frame that came with the handshake is already off
			// the socket: it will not signal it.
			if sb.early > 0 && ws.reading.CompareAndSwap(false, true) {
				go ws.read()
			}
			return
		}
		ws.raw = nil
	}
	ws.reading.Store(true)
	go ws.read() // TLS, or no readiness set: a goroutine reads for good
}

// resume finds a session for a returning client, checking its token in
// constant time, and drops the frames it says it has.
func (h *Hub) resume(id, token, ack string) *session {
	n, ackErr := strconv.ParseUint(ack, 10, 64)
	s := h.session(id)
	if s == nil {
		s = h.takeOver(id, token, n) // a cluster: the session of a lost node
	}
	if s == nil || subtle.ConstantTimeCompare([]byte(token), []byte(s.authToken)) != 1 {
		return nil
	}
	if ackErr == nil {
		s.ack(n)
	}
	return s
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
	s := w.s
	s.mu.Lock()
	w.handling = true
	s.mu.Unlock()
	if err := w.h.handle(ctx, s, data); err != nil {
		s.Fail(err.message, err.info)
	}
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
	s := w.s
	for {
		s.mu.Lock()
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
