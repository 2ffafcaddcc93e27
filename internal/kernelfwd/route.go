package kernelfwd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// router asks the kernel's routing table, over rtnetlink, where packets to
// an address leave: through which interface, and whether the address is
// this host's own. One request at a time on one socket.
type router struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

func newRouter() (*router, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket: %w", err)
	}
	// A reply that does not come within a second is an error, not a hang.
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink bind: %w", err)
	}
	return &router{fd: fd, buf: make([]byte, 8192)}, nil
}

func (r *router) close() { unix.Close(r.fd) }

// route is where packets to an address go.
type route struct {
	ifindex int
	local   bool // the address is this host's (RTN_LOCAL)
}

// lookup is `ip route get dst`.
func (r *router) lookup(dst netip.Addr) (route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	req := routeRequest(dst, r.seq)
	if err := r.send(req); err != nil {
		return route{}, fmt.Errorf("rtnetlink send: %w", err)
	}
	for range 16 { // skip stale replies of requests that timed out
		n, err := r.recv()
		if err != nil {
			return route{}, fmt.Errorf("rtnetlink receive: %w", err)
		}
		rt, seq, err := parseRouteReply(r.buf[:n])
		if seq != r.seq {
			continue
		}
		return rt, err
	}
	return route{}, errors.New("rtnetlink: no reply to the route request")
}

// routeRequest is an RTM_GETROUTE for dst.
func routeRequest(dst netip.Addr, seq uint32) []byte {
	family, bits := unix.AF_INET, 32
	if dst.Is6() {
		family, bits = unix.AF_INET6, 128
	}
	addr := dst.AsSlice()
	attrLen := unix.SizeofRtAttr + len(addr)
	total := unix.SizeofNlMsghdr + unix.SizeofRtMsg + attrLen
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(total))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	rtm := b[unix.SizeofNlMsghdr:]
	rtm[0], rtm[1] = byte(family), byte(bits)
	attr := rtm[unix.SizeofRtMsg:]
	ne.PutUint16(attr[0:], uint16(attrLen))
	ne.PutUint16(attr[2:], unix.RTA_DST)
	copy(attr[unix.SizeofRtAttr:], addr)
	return b
}

// parseRouteReply reads the kernel's answer to routeRequest: the route, or
// the error it reports. seq is the request's sequence number (0 when the
// message could not be read at all).
func parseRouteReply(b []byte) (route, uint32, error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil || len(msgs) == 0 {
		return route{}, 0, fmt.Errorf("rtnetlink: unreadable reply")
	}
	m := &msgs[0]
	seq := m.Header.Seq
	switch m.Header.Type {
	case unix.NLMSG_ERROR:
		if len(m.Data) < 4 {
			return route{}, seq, fmt.Errorf("rtnetlink: short error reply")
		}
		errno := -int32(binary.NativeEndian.Uint32(m.Data))
		if errno <= 0 {
			return route{}, seq, fmt.Errorf("rtnetlink: acknowledgement instead of a route")
		}
		return route{}, seq, fmt.Errorf("no route: %w", syscall.Errno(errno))
	case unix.RTM_NEWROUTE:
	default:
		return route{}, seq, fmt.Errorf("rtnetlink: unexpected message type %d", m.Header.Type)
	}
	if len(m.Data) < unix.SizeofRtMsg {
		return route{}, seq, fmt.Errorf("rtnetlink: short route reply")
	}
	rt := route{local: m.Data[7] == unix.RTN_LOCAL}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return route{}, seq, fmt.Errorf("rtnetlink: unreadable route attributes")
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
			rt.ifindex = int(binary.NativeEndian.Uint32(a.Value))
		}
	}
	if rt.ifindex <= 0 {
		return route{}, seq, fmt.Errorf("rtnetlink: route without an output interface")
	}
	return rt, seq, nil
}

func (r *router) send(req []byte) error {
	return unix.Sendto(r.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// recv reads one reply into r.buf.
func (r *router) recv() (int, error) {
	n, _, err := unix.Recvfrom(r.fd, r.buf, 0)
	return n, err
}
