package media

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// portPool hands out RTP/RTCP port pairs (an even RTP port and the odd port
// above it) on one local address, as rtpengine does, so that peers that
// assume RTCP = RTP+1 work without a=rtcp.
type portPool struct {
	addr     netip.Addr
	min, max int // even min, pairs up to max

	mu    sync.Mutex
	used  []bool // by pair index
	next  int    // where the search for a free pair starts (round robin)
	inUse int
}

func newPortPool(addr netip.Addr, min, max int) *portPool {
	if min%2 == 1 {
		min++
	}
	pairs := (max - min + 1) / 2
	if pairs < 0 {
		pairs = 0
	}
	return &portPool{addr: addr, min: min, max: max, used: make([]bool, pairs)}
}

// Pairs is the number of port pairs in the pool.
func (p *portPool) Pairs() int { return len(p.used) }

// Used is the number of ports (not pairs) in use, as rtpengine counts them.
func (p *portPool) Used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return 2 * p.inUse
}

// socketPair is a bound RTP socket and its RTCP companion: nonblocking
// descriptors that one poller reads and writes.
type socketPair struct {
	rtpFD, rtcpFD int
	port          int
	pool          *portPool
}

// allocate binds a free pair, searching round robin from after the last
// one handed out (so a just-freed port is not reused at once, which would
// let late packets of the old call into the new one). Pairs that another
// program holds are skipped; when every pair was tried, it is
// ErrPortsExhausted.
func (p *portPool) allocate() (*socketPair, error) {
	var lastErr error
	for range len(p.used) {
		idx, ok := p.reserve()
		if !ok {
			break
		}
		sp, err := bindPair(p.addr, p.min+2*idx)
		if err == nil {
			sp.pool = p
			return sp, nil
		}
		lastErr = err
		p.release(idx)
	}
	if lastErr != nil && !errors.Is(lastErr, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: %v", ErrPortsExhausted, lastErr)
	}
	return nil, ErrPortsExhausted
}

// reserve marks the next free pair used.
func (p *portPool) reserve() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.used)
	for i := range n {
		idx := (p.next + i) % n
		if !p.used[idx] {
			p.used[idx] = true
			p.inUse++
			p.next = (idx + 1) % n
			return idx, true
		}
	}
	return 0, false
}

func (p *portPool) release(idx int) {
	p.mu.Lock()
	if p.used[idx] {
		p.used[idx] = false
		p.inUse--
	}
	p.mu.Unlock()
}

// closeUnregistered releases a pair no poller has seen (an offer that
// failed half-way): close the sockets, return the ports.
func (sp *socketPair) closeUnregistered() {
	unix.Close(sp.rtpFD)
	unix.Close(sp.rtcpFD)
	sp.release()
}

func (sp *socketPair) release() { sp.pool.release((sp.port - sp.pool.min) / 2) }

func bindPair(addr netip.Addr, port int) (*socketPair, error) {
	rtp, err := bindUDP(addr, port)
	if err != nil {
		return nil, err
	}
	rtcp, err := bindUDP(addr, port+1)
	if err != nil {
		unix.Close(rtp)
		return nil, err
	}
	return &socketPair{rtpFD: rtp, rtcpFD: rtcp, port: port}, nil
}

// bindUDP opens a nonblocking UDP socket on addr:port. The relay drives
// these descriptors with its own epoll loops rather than Go's netpoller, to
// save a wake-up and a read per packet.
func bindUDP(addr netip.Addr, port int) (int, error) {
	family := unix.AF_INET
	if addr.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET6 {
		// The socket serves the IPv6 address only; an IPv4 interface has
		// its own socket.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, err
		}
		sa = &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
