package media

import (
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rtcgate/rtcgate/internal/epoll"
)

// poller is one relay thread: an epoll set over the sockets of the calls
// assigned to it. Every socket of a call belongs to the same poller, so a
// packet is read and forwarded by one thread without locks, and a socket is
// only ever closed by the thread that reads and writes it — never while a
// packet for it is in hand.
//
// Compared with a goroutine per socket on Go's netpoller, this saves per
// packet a read that returns EAGAIN, a goroutine park and wake-up, and the
// scheduler's thread wake-ups: epoll is level-triggered and one epoll_wait
// serves every ready socket.
//
// The loop never blocks a thread in epoll_wait (see package epoll): with a
// goroutine blocked in a system call, Go's sysmon woke every 20 µs, which
// measured as a sixth of the relay's CPU.
type poller struct {
	slotTable
	set    *epoll.Set
	wakefd int // eventfd: signalling asks the loop to look at retired sockets

	done chan struct{}
}

// relayLoop is one relay thread, whichever system interface it uses
// (relay-io): epoll here, io_uring in ringpoller.go. Signalling adds a
// side's sockets and retires them; only the loop reads, writes and closes.
type relayLoop interface {
	add(sd *side) error
	retire(sd *side)
	stop()
}

// slotTable maps a loop's slots (its epoll data or io_uring user data) to
// streams, and queues the sides signalling retired for the loop to close.
type slotTable struct {
	mu      sync.Mutex
	slots   []*stream
	free    []uint32
	retired []retiredPair
	stopped bool
}

// claim gives s a slot.
func (t *slotTable) claim(s *stream) {
	t.mu.Lock()
	if n := len(t.free); n > 0 {
		s.slot, t.free = t.free[n-1], t.free[:n-1]
		t.slots[s.slot] = s
	} else {
		s.slot = uint32(len(t.slots))
		t.slots = append(t.slots, s)
	}
	t.mu.Unlock()
}

// lookup is slot's stream, nil once retired.
func (t *slotTable) lookup(slot uint32) *stream {
	t.mu.Lock()
	var s *stream
	if int(slot) < len(t.slots) {
		s = t.slots[slot]
	}
	t.mu.Unlock()
	return s
}

// markRetired stops the loop from relaying sd's packets and queues its
// sockets for closing.
func (t *slotTable) markRetired(sd *side) {
	t.mu.Lock()
	t.slots[sd.rtp.slot] = nil
	t.slots[sd.rtcp.slot] = nil
	t.retired = append(t.retired, retiredPair{sd.rtp, sd.rtcp, sd.pair})
	t.mu.Unlock()
}

// takeRetired hands the loop what was retired since, and whether to stop.
func (t *slotTable) takeRetired() ([]retiredPair, bool) {
	t.mu.Lock()
	retired, stopped := t.retired, t.stopped
	t.retired = nil
	t.mu.Unlock()
	return retired, stopped
}

// release frees slots whose sockets are closed.
func (t *slotTable) release(slots ...uint32) {
	t.mu.Lock()
	t.free = append(t.free, slots...)
	t.mu.Unlock()
}

// directSend sends at once, with one sendto per packet.
type directSend struct{}

func (directSend) sendFrom(in, out *stream, pkt []byte, dst netip.AddrPort) {
	if err := out.send(pkt, dst); err != nil {
		in.errors.Add(1)
	}
}

// retiredPair is a side whose sockets the loop closes after its current
// batch, before giving the ports back.
type retiredPair struct {
	rtp, rtcp *stream
	pair      *socketPair
}

const (
	maxEvents = 256
	wakeSlot  = ^uint32(0)
)

func newPoller() (*poller, error) {
	set, err := epoll.New()
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		set.Close()
		return nil, err
	}
	if err := set.Ctl(unix.EPOLL_CTL_ADD, wakefd, unix.EPOLLIN, uint64(wakeSlot)); err != nil {
		set.Close()
		unix.Close(wakefd)
		return nil, err
	}
	p := &poller{set: set, wakefd: wakefd, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// add registers a side's two sockets.
func (p *poller) add(sd *side) error {
	for _, s := range []*stream{sd.rtp, sd.rtcp} {
		p.claim(s)
		if err := p.set.Ctl(unix.EPOLL_CTL_ADD, s.fd, unix.EPOLLIN, uint64(s.slot)); err != nil {
			return err
		}
	}
	return nil
}

// retire hands a side's sockets to the loop for closing. From now on no
// packet is read from them; the ports return to the pool once closed.
func (p *poller) retire(sd *side) {
	p.markRetired(sd)
	p.wake()
}

func (p *poller) wake() { signalEventfd(p.wakefd) }

// signalEventfd adds one to an eventfd's count.
func signalEventfd(fd int) {
	one := uint64(1)
	unix.Write(fd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// drainEventfd reads an eventfd's count (zero or not) without waiting.
func drainEventfd(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}

// markStopped asks the loop to end.
func (t *slotTable) markStopped() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
}

// stop ends the loop; retired sockets are closed on the way out.
func (p *poller) stop() {
	p.markStopped()
	p.wake()
	<-p.done
	p.set.Close()
	unix.Close(p.wakefd)
}

// run is the relay loop.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, maxEvents)
	buf := make([]byte, readBufSize)
	var from unix.RawSockaddrInet6
	for {
		n, err := p.set.Wait(events)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		for i := 0; i < n; i++ {
			slot := uint32(epoll.Data(&events[i]))
			if slot == wakeSlot {
				drainEventfd(p.wakefd)
				continue
			}
			s := p.lookup(slot)
			if s == nil {
				continue // retired after epoll_wait returned
			}
			s.readOne(buf, &from, now, directSend{})
		}
		if p.cleanup() {
			return
		}
	}
}

// cleanup closes retired sockets (after the batch: no packet of theirs is
// in hand any more) and frees their ports and slots. It reports whether the
// loop should stop.
func (p *poller) cleanup() bool {
	retired, stopped := p.takeRetired()
	for _, r := range retired {
		for _, s := range []*stream{r.rtp, r.rtcp} {
			p.set.Ctl(unix.EPOLL_CTL_DEL, s.fd, 0, 0)
			unix.Close(s.fd)
		}
		r.pair.release()
		p.release(r.rtp.slot, r.rtcp.slot)
	}
	return stopped
}

// readOne reads one datagram (epoll is level-triggered: more waiting ones
// make the next epoll_wait return at once) and relays it.
func (s *stream) readOne(buf []byte, from *unix.RawSockaddrInet6, now int64, tx sender) {
	fromLen := uint32(unsafe.Sizeof(*from))
	// MSG_TRUNC makes the kernel report the datagram's real length, so an
	// over-long one is counted instead of relayed cut short.
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
		unix.MSG_TRUNC, uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&fromLen)))
	if errno != 0 {
		// EAGAIN: someone else's event; ECONNREFUSED: an ICMP error from an
		// earlier send, reported here; neither is this packet's fault.
		return
	}
	if int(r) > len(buf) {
		s.errors.Add(1)
		return
	}
	s.relay(buf[:r], sockaddrToAddrPort(from), now, tx)
}

// send writes one datagram from this stream's socket.
func (s *stream) send(pkt []byte, dst netip.AddrPort) error {
	var sa unix.RawSockaddrInet6
	size := fillSockaddr(&sa, dst)
	var data unsafe.Pointer
	if len(pkt) > 0 { // an empty datagram is legal UDP
		data = unsafe.Pointer(&pkt[0])
	}
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(data), uintptr(len(pkt)),
		0, uintptr(unsafe.Pointer(&sa)), uintptr(size))
	if errno != 0 {
		return errno
	}
	return nil
}

// sockaddrToAddrPort reads a kernel sockaddr_in or sockaddr_in6.
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// fillSockaddr writes dst as the kernel wants it and returns its size.
func fillSockaddr(sa *unix.RawSockaddrInet6, dst netip.AddrPort) uintptr {
	port := dst.Port()
	if dst.Addr().Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		sa4.Addr = dst.Addr().As4()
		return unsafe.Sizeof(*sa4)
	}
	sa.Family = unix.AF_INET6
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	sa.Addr = dst.Addr().As16()
	return unsafe.Sizeof(*sa)
}
