package media

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rtcgate/rtcgate/internal/uring"
)

// ringPoller is a relay thread over io_uring (relay-io: io_uring): one ring
// per thread, a multishot recvmsg on every socket of its calls filling a
// ring of provided buffers, and the relayed packets sent as SQEs, so that
// one io_uring_enter receives and sends a whole batch where the epoll loop
// makes an epoll_wait plus a recvfrom and a sendto per packet.
//
// The ring is SINGLE_ISSUER with DEFER_TASKRUN: the kernel only completes
// receives when the loop enters, so its goroutine is locked to one thread.
// It never blocks that thread in the kernel: the ring signals an eventfd
// when packets wait, and the loop parks on it with Go's netpoller, as the
// epoll loop parks on its epoll descriptor. Signalling's add and retire
// wake it through the same eventfd.
//
// A socket with a receive in flight stays open in the kernel even after
// close(2), so retiring cancels the receive and closes the socket (and
// frees its ports) only after the receive's last completion.
type ringPoller struct {
	slotTable
	wakefd int
	wake   syscall.RawConn
	file   *os.File // the eventfd, for the netpoller
	arming []uint32 // slots added by signalling, not yet armed (under mu)

	done chan struct{}

	// Owned by the loop's goroutine.
	ring     *uring.Ring
	bufs     *uring.BufRing
	msg      unix.Msghdr // the multishot receives' template: a name, no data
	armed    []bool      // by slot: a multishot receive is in flight
	retiring map[uint32]*retiredPair
	out      []ringSend // sends of the batch being built
	arena    []byte     // their packets
	arenaLen int
	now      int64
}

// ringSend is one queued send: its destination lives here until submitted.
type ringSend struct {
	sa unix.RawSockaddrInet6
}

const (
	ringBuffers   = 512                                                            // per thread (2 MiB); more datagrams wait in their sockets
	ringBufSize   = 16 + int(unsafe.Sizeof(unix.RawSockaddrInet6{})) + readBufSize // header, name, payload
	ringSQEntries = 512
	ringCQEntries = 8192
	ringArena     = 256 << 10 // bytes of packets per submitted batch
	ringStopWait  = time.Second
	udKindShift   = 32
	udRecv        = 0
	udSend        = 1
	udCancel      = 2
	ringBufGroup  = 1
	// ringRoundsPerTurn bounds the enters of one turn before retired
	// sockets and new ones are seen to.
	ringRoundsPerTurn = 16
)

var errRingStopped = errors.New("relay thread stopped")

// newRing sets a ring up (a variable: tests make it fail).
var newRing = uring.New

// newRingPoller sets up the ring on the loop's own thread and starts the
// loop; it fails where io_uring is unavailable or lacks what it needs.
func newRingPoller() (*ringPoller, error) {
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(wakefd), "relay-wake")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &ringPoller{wakefd: wakefd, file: f, wake: rc, done: make(chan struct{}),
		retiring: map[uint32]*retiredPair{}, arena: make([]byte, ringArena), out: make([]ringSend, 0, ringSQEntries)}
	p.msg.Namelen = uint32(unsafe.Sizeof(unix.RawSockaddrInet6{}))
	started := make(chan error, 1)
	go p.run(started)
	if err := <-started; err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

// setup runs on the locked thread: the ring's single issuer.
func (p *ringPoller) setup() error {
	r, err := newRing(ringSQEntries, ringCQEntries)
	if err != nil {
		return err
	}
	if err := r.RegisterEventfd(p.wakefd); err != nil {
		r.Close()
		return err
	}
	b, err := r.NewBufRing(ringBufGroup, ringBuffers, ringBufSize)
	if err != nil {
		r.Close()
		return err
	}
	p.ring, p.bufs = r, b
	return nil
}

func (p *ringPoller) add(sd *side) error {
	p.mu.Lock()
	stopped := p.stopped
	p.mu.Unlock()
	if stopped {
		return errRingStopped
	}
	for _, s := range []*stream{sd.rtp, sd.rtcp} {
		p.claim(s)
		p.mu.Lock()
		p.arming = append(p.arming, s.slot)
		p.mu.Unlock()
	}
	p.signal()
	return nil
}

func (p *ringPoller) retire(sd *side) {
	p.markRetired(sd)
	p.signal()
}

func (p *ringPoller) signal() { signalEventfd(p.wakefd) }

func (p *ringPoller) stop() {
	p.markStopped()
	p.signal()
	<-p.done
	p.file.Close()
}

// park waits with the netpoller until the eventfd is signalled (it reads
// the count, so the signal is spent).
func (p *ringPoller) park() {
	p.wake.Read(func(uintptr) bool {
		var b [8]byte
		_, err := unix.Read(p.wakefd, b[:])
		return err != unix.EAGAIN
	})
}

func (p *ringPoller) run(started chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the loop
	defer close(p.done)
	if err := p.setup(); err != nil {
		started <- err
		return
	}
	started <- nil
	for {
		p.turn()
		retired, stopped := p.takeRetired()
		p.retireAll(retired)
		if stopped {
			p.shutdown()
			return
		}
		// Park only when nothing is left: a receive made ready after the
		// drain signals the eventfd again.
		drainEventfd(p.wakefd)
		if !p.ring.WorkPending() && !p.signalled() {
			p.park()
		}
	}
}

// signalled tells whether signalling asked for anything (its eventfd
// write may have been spent by drain).
func (p *ringPoller) signalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.arming) > 0 || len(p.retired) > 0 || p.stopped
}

// turn arms new sockets, then enters and handles completions until the
// kernel has nothing more, or for ringRoundsPerTurn rounds.
func (p *ringPoller) turn() {
	p.mu.Lock()
	arming := p.arming
	p.arming = nil
	p.mu.Unlock()
	for _, slot := range arming {
		if s := p.lookup(slot); s != nil {
			p.arm(s)
		}
	}
	// Bounded, so that under a steady flood retired sockets still close
	// and new ones are armed: the loop comes back at once while work waits.
	for range ringRoundsPerTurn {
		p.submit()
		p.now = time.Now().UnixNano()
		if p.ring.Completions(p.complete) == 0 && p.ring.Pending() == 0 {
			return
		}
	}
	p.submit() // what the last round queued (re-arms, sends)
}

// submit enters the ring with what is queued; the batch's packets are
// copied into the kernel by the time it returns (sends are MSG_DONTWAIT,
// done inline), so the arena is free again.
func (p *ringPoller) submit() {
	// Only a kernel bug fails an enter here; the batch's sends are then
	// lost like packets on a full socket buffer.
	_ = p.ring.Submit()
	p.out = p.out[:0]
	p.arenaLen = 0
}

// sqe returns a submission slot, submitting what is queued when full.
func (p *ringPoller) sqe() *uring.SQE {
	sqe, err := p.ring.SQE()
	if err != nil {
		p.submit()
		sqe, _ = p.ring.SQE() // never nil: the queue was just emptied
	}
	return sqe
}

// arm starts s's multishot receive.
func (p *ringPoller) arm(s *stream) {
	sqe := p.sqe()
	sqe.Opcode, sqe.Fd, sqe.Addr = uring.OpRecvmsg, int32(s.fd), uint64(uintptr(unsafe.Pointer(&p.msg)))
	sqe.Ioprio, sqe.Flags, sqe.BufIndex = uring.RecvMultishot, uring.SQEBufferSelect, ringBufGroup
	sqe.UserData = udRecv<<udKindShift | uint64(s.slot)
	for int(s.slot) >= len(p.armed) {
		p.armed = append(p.armed, false)
	}
	p.armed[s.slot] = true
}

// complete handles one completion.
func (p *ringPoller) complete(c *uring.CQE) {
	slot := uint32(c.UserData)
	switch c.UserData >> udKindShift {
	case udSend: // failures only: successes post nothing
		if s := p.lookup(slot); s != nil {
			s.errors.Add(1)
		}
		return
	case udCancel: // ENOENT/EALREADY: the receive ends by itself
		return
	}
	s := p.lookup(slot)
	if c.Flags&uring.CQEFBuffer != 0 {
		id := c.BufferID()
		if s != nil && c.Res >= 0 {
			p.received(s, p.bufs.Buffer(id), int(c.Res))
		}
		p.bufs.Recycle(id)
	}
	if c.Flags&uring.CQEFMore != 0 {
		return
	}
	// The multishot receive ended: out of buffers, an ICMP error reported
	// on the socket, or cancelled because the socket is retired.
	p.armed[slot] = false
	if r := p.retiring[slot]; r != nil {
		delete(p.retiring, slot)
		p.closeIfDone(r)
		return
	}
	if s == nil {
		return
	}
	switch -c.Res {
	case 0, int32(unix.ENOBUFS), int32(unix.ECONNREFUSED), int32(unix.EINTR), int32(unix.EAGAIN), int32(unix.ENOMEM):
		p.arm(s)
	default: // a socket that keeps failing is not re-armed in a loop
		s.errors.Add(1)
	}
}

// received relays one datagram of a multishot receive.
func (p *ringPoller) received(s *stream, buf []byte, n int) {
	h, name, payload, err := uring.ParseRecvmsg(buf, n, p.msg.Namelen, 0)
	if err != nil || h.Flags&unix.MSG_TRUNC != 0 || len(name) < 2 {
		s.errors.Add(1)
		return
	}
	var from unix.RawSockaddrInet6
	copy((*[unsafe.Sizeof(from)]byte)(unsafe.Pointer(&from))[:], name)
	s.relay(payload, sockaddrToAddrPort(&from), p.now, p)
}

// sendFrom queues pkt for the batch's submission (sender).
func (p *ringPoller) sendFrom(in, out *stream, pkt []byte, dst netip.AddrPort) {
	if p.arenaLen+len(pkt) > len(p.arena) || len(p.out) == cap(p.out) {
		p.submit()
	}
	sqe := p.sqe() // before the arena: a full queue submits and empties it
	data := p.arena[p.arenaLen : p.arenaLen+len(pkt)]
	copy(data, pkt)
	p.arenaLen += len(pkt)
	p.out = p.out[:len(p.out)+1]
	snd := &p.out[len(p.out)-1]
	size := fillSockaddr(&snd.sa, dst)
	sqe.Opcode, sqe.Fd, sqe.OpFlags = uring.OpSend, int32(out.fd), unix.MSG_DONTWAIT
	if len(data) > 0 {
		sqe.Addr, sqe.Len = uint64(uintptr(unsafe.Pointer(&data[0]))), uint32(len(data))
	}
	sqe.Off, sqe.SpliceFdIn = uint64(uintptr(unsafe.Pointer(&snd.sa))), int32(size)
	sqe.Flags = uring.SQESkipSuccess
	sqe.UserData = udSend<<udKindShift | uint64(in.slot)
}

// retireAll cancels retired sockets' receives; a socket with none in
// flight is closed at once.
func (p *ringPoller) retireAll(retired []retiredPair) {
	for i := range retired {
		r := &retired[i]
		for _, s := range []*stream{r.rtp, r.rtcp} {
			if int(s.slot) < len(p.armed) && p.armed[s.slot] {
				p.retiring[s.slot] = r
				sqe := p.sqe()
				sqe.Opcode, sqe.Addr = uring.OpAsyncCancel, udRecv<<udKindShift|uint64(s.slot)
				sqe.Flags = uring.SQESkipSuccess
				sqe.UserData = udCancel<<udKindShift | uint64(s.slot)
			}
		}
		p.closeIfDone(r)
	}
	if p.ring.Pending() > 0 {
		p.turn()
	}
}

// closeIfDone closes a retired side's sockets and frees its ports and
// slots once neither has a receive in flight.
func (p *ringPoller) closeIfDone(r *retiredPair) {
	if p.retiring[r.rtp.slot] == r || p.retiring[r.rtcp.slot] == r {
		return
	}
	if r.pair == nil {
		return // closed already
	}
	unix.Close(r.rtp.fd)
	unix.Close(r.rtcp.fd)
	r.pair.release()
	r.pair = nil
	p.release(r.rtp.slot, r.rtcp.slot)
}

// shutdown cancels what is in flight, waits a bounded time for the last
// completions, then closes the ring (the kernel drops whatever is left).
func (p *ringPoller) shutdown() {
	deadline := time.Now().Add(ringStopWait)
	for len(p.retiring) > 0 && time.Now().Before(deadline) {
		p.turn()
		retired, _ := p.takeRetired()
		p.retireAll(retired)
		if len(p.retiring) > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	p.ring.Close()
	p.bufs.Close()
	for _, r := range p.retiring {
		p.retiring[r.rtp.slot], p.retiring[r.rtcp.slot] = nil, nil
		delete(p.retiring, r.rtp.slot)
		delete(p.retiring, r.rtcp.slot)
		p.closeIfDone(r)
	}
}
