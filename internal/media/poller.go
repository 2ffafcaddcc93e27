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
	set    *epoll.Set
	wakefd int // eventfd: signalling asks the loop to look at retired sockets

	mu      sync.Mutex
	slots   []*stream // epoll data is the slot index
	free    []uint32
	retired []retiredPair
	stopped bool

	done chan struct{}
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
	return &poller{set: set, wakefd: wakefd, done: make(chan struct{})}, nil
}

// add registers a side's two sockets.
func (p *poller) add(sd *side) error {
	for _, s := range []*stream{sd.rtp, sd.rtcp} {
		p.mu.Lock()
		var slot uint32
		if n := len(p.free); n > 0 {
			slot, p.free = p.free[n-1], p.free[:n-1]
			p.slots[slot] = s
		} else {
			slot = uint32(len(p.slots))
			p.slots = append(p.slots, s)
		}
		p.mu.Unlock()
		s.slot = slot
		if err := p.set.Ctl(unix.EPOLL_CTL_ADD, s.fd, unix.EPOLLIN, uint64(slot)); err != nil {
			return err
		}
	}
	return nil
}

// retire hands a side's sockets to the loop for closing. From now on no
// packet is read from them; the ports return to the pool once closed.
func (p *poller) retire(sd *side) {
	p.mu.Lock()
	p.slots[sd.rtp.slot] = nil
	p.slots[sd.rtcp.slot] = nil
	p.retired = append(p.retired, retiredPair{sd.rtp, sd.rtcp, sd.pair})
	p.mu.Unlock()
	p.wake()
}

func (p *poller) wake() {
	one := uint64(1)
	unix.Write(p.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// stop ends the loop; retired sockets are closed on the way out.
func (p *poller) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
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
				var b [8]byte
				unix.Read(p.wakefd, b[:])
				continue
			}
			p.mu.Lock()
			var s *stream
			if int(slot) < len(p.slots) {
				s = p.slots[slot]
			}
			p.mu.Unlock()
			if s == nil {
				continue // retired after epoll_wait returned
			}
			s.readOne(buf, &from, now)
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
	p.mu.Lock()
	retired, stopped := p.retired, p.stopped
	p.retired = nil
	p.mu.Unlock()
	for _, r := range retired {
		for _, s := range []*stream{r.rtp, r.rtcp} {
			p.set.Ctl(unix.EPOLL_CTL_DEL, s.fd, 0, 0)
			unix.Close(s.fd)
		}
		r.pair.release()
	}
	if len(retired) > 0 {
		p.mu.Lock()
		for _, r := range retired {
			p.free = append(p.free, r.rtp.slot, r.rtcp.slot)
		}
		p.mu.Unlock()
	}
	return stopped
}

// readOne reads one datagram (epoll is level-triggered: more waiting ones
// make the next epoll_wait return at once) and relays it.
func (s *stream) readOne(buf []byte, from *unix.RawSockaddrInet6, now int64) {
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
	s.relay(buf[:r], sockaddrToAddrPort(from), now)
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
