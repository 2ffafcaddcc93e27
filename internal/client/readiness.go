package client

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/rtcgate/rtcgate/internal/epoll"
)

// wsConn is an attached WebSocket. While it is idle nothing reads it: the
// hub's readiness set watches its socket and starts a short-lived reader when
// bytes arrive, so an idle session holds no goroutine and no goroutine stack
// — a blocked reader's stack was 8 KiB of the 18 KiB an idle session cost
// (clientbench). TLS connections buffer inside crypto/tls, where readiness
// cannot see, and keep a reading goroutine instead.
type wsConn struct {
	*websocket.Conn
	h *Hub
	// att is the session the WebSocket carries and its attach generation:
	// first, unless a `connection` with an authToken moved the WebSocket
	// to the session it names (moveTo).
	att   atomic.Pointer[wsAttachment]
	first wsAttachment

	// Guarded by the session's lock: whether a flush goroutine runs (one
	// exists only while there is something to write, so an idle WebSocket
	// costs no goroutine) and whether the reader runs a frame and flushes
	// after it.
	flushing bool
	handling bool

	nc       net.Conn        // the TCP connection under the library
	raw      syscall.RawConn // its socket, registered under Go's own fd reference
	polled   atomic.Bool     // raw is in the readiness set (else a goroutine reads for good)
	br       *bufio.Reader   // the library reads through it: Buffered() says whether frames wait
	key      uint64          // slot | generation<<32 in the readiness set
	reading  atomic.Bool
	released atomic.Bool
	closing  atomic.Bool // rtcgate sent a close frame: the peer's is only its echo
}

// wsAttachment is a WebSocket's session and its attach generation.
type wsAttachment struct {
	s   *session
	gen uint64
}

// at is the session the WebSocket carries now.
func (w *wsConn) at() *wsAttachment { return w.att.Load() }

// close ends the WebSocket with a close frame and lets the session wait for
// a resume.
func (w *wsConn) close(code websocket.StatusCode, reason string) {
	w.closing.Store(true) // before the frame leaves: the echo may come at once
	w.Conn.Close(code, reason)
	w.done()
}

// ended is the end of reading: the connection is dropped, and the session
// with it when the client said goodbye. A close frame the client started
// (any code: 1000, 1001 from a closing tab, 1005 with none) ends the
// session now; a transport lost without one (EOF, reset) leaves it waiting
// client-idle-timeout for a resume. So does a close frame that only echoes
// one of rtcgate's (keep-alive timeout, resumed elsewhere), and one from a
// connection the session has left already.
func (w *wsConn) ended(err error) {
	a := w.at()
	byClient := websocket.CloseStatus(err) != -1 && !w.closing.Load() && a.s.current(a.gen)
	w.closeNow()
	if byClient {
		a.s.Close("closed by client")
	}
}

// closeNow ends the WebSocket without a handshake.
func (w *wsConn) closeNow() {
	w.Conn.CloseNow()
	w.done()
}

func (w *wsConn) done() {
	a := w.at()
	a.s.detach(a.gen, time.Now())
	if w.polled.Load() {
		w.h.ready.release(w)
	}
}

// hotWindow is how long a reader stays with its connection after a frame,
// parked in Go's netpoller, before handing it back to the readiness set: a
// busy client costs no epoll re-arm and no new goroutine per frame, an idle
// one no goroutine at all.
const hotWindow = 100 * time.Millisecond

// read runs frames while they come, then hands the socket back to the
// readiness set. One read runs at a time per connection, so frames are
// handled in order.
func (w *wsConn) read() {
	ctx := context.Background()
	for {
		typ, data, err := w.Conn.Read(ctx)
		if err != nil {
			w.ended(err)
			return
		}
		if typ != websocket.MessageText {
			w.at().s.Fail("unknown", "binary frames are not part of the protocol")
		} else if !utf8.Valid(data) {
			// RFC 6455 8.1: the connection fails with 1007; the session
			// waits for a resume, as after a frame over client-max-frame.
			w.h.invalidUTF8.Inc()
			w.close(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		} else {
			w.handleFrame(ctx, data)
		}
		if !w.polled.Load() || w.br.Buffered() > 0 || w.waitReadable(hotWindow) {
			continue
		}
		break // quiet: back to the readiness set
	}
	w.reading.Store(false)
	// EPOLLONESHOT disarmed the socket when it fired: no second reader can
	// start until this re-arm.
	if err := w.h.ready.arm(w, unix.EPOLL_CTL_MOD); err != nil {
		w.closeNow()
	}
}

// waitReadable parks until the socket has bytes (or news: EOF, an error)
// or d passes, without taking any bytes: the library reads them.
func (w *wsConn) waitReadable(d time.Duration) bool {
	w.nc.SetReadDeadline(time.Now().Add(d))
	defer w.nc.SetReadDeadline(time.Time{})
	ready := false
	w.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EAGAIN {
			return false // wait for the netpoller
		}
		ready = true
		return true
	})
	return ready
}

// readiness is an epoll set over idle WebSockets.
type readiness struct {
	set *epoll.Set

	mu    sync.Mutex
	slots []*wsConn
	gens  []uint32
	free  []uint32
}

func newReadiness() (*readiness, error) {
	set, err := epoll.New()
	if err != nil {
		return nil, err
	}
	return &readiness{set: set}, nil
}

// add registers a connection.
func (rd *readiness) add(w *wsConn) error {
	rd.mu.Lock()
	var slot uint32
	if n := len(rd.free); n > 0 {
		slot, rd.free = rd.free[n-1], rd.free[:n-1]
		rd.slots[slot] = w
	} else {
		slot = uint32(len(rd.slots))
		rd.slots = append(rd.slots, w)
		rd.gens = append(rd.gens, 0)
	}
	w.key = uint64(slot) | uint64(rd.gens[slot])<<32
	rd.mu.Unlock()
	return rd.arm(w, unix.EPOLL_CTL_ADD)
}

// arm (re-)enables one readiness event for w. It runs under Go's reference
// on the descriptor, so the number cannot have been closed and reused by
// another connection meanwhile; a closed socket is simply an error. Closing
// a socket removes it from the set, so nothing ever deletes by number.
func (rd *readiness) arm(w *wsConn, op int) error {
	var armErr error
	err := w.raw.Control(func(fd uintptr) {
		armErr = rd.set.Ctl(op, int(fd), unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT, w.key)
	})
	if err != nil {
		return err
	}
	return armErr
}

// release frees w's slot; an event still in flight for it is recognised as
// stale by the generation.
func (rd *readiness) release(w *wsConn) {
	if !w.released.CompareAndSwap(false, true) {
		return
	}
	slot := uint32(w.key)
	rd.mu.Lock()
	if int(slot) < len(rd.slots) && rd.slots[slot] == w {
		rd.slots[slot] = nil
		rd.gens[slot]++
		rd.free = append(rd.free, slot)
	}
	rd.mu.Unlock()
}

// run starts a reader for each connection that has bytes, until the set is
// closed.
func (rd *readiness) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := rd.set.Wait(events)
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			key := epoll.Data(&events[i])
			slot, gen := uint32(key), uint32(key>>32)
			rd.mu.Lock()
			var w *wsConn
			if int(slot) < len(rd.slots) && rd.gens[slot] == gen {
				w = rd.slots[slot]
			}
			rd.mu.Unlock()
			if w != nil && w.reading.CompareAndSwap(false, true) {
				go w.read()
			}
		}
	}
}

func (rd *readiness) close() { rd.set.Close() }
