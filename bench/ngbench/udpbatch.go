package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The generator's sockets are plain non-blocking file descriptors, outside
// Go's netpoller: nobody waits on them, so a packet arriving costs no
// wake-up, and the generator reads them in batches when it has time
// (recvmmsg), with the kernel's receive timestamp of each packet for the
// latency. It writes with sendmmsg and socket addresses built once per call,
// not per packet.

// udpSock is one of the generator's UDP sockets on 127.0.0.1.
type udpSock struct {
	fd   int
	port int
}

// sockBuf is the receive and send buffer asked for: it absorbs the time
// between two reads of a socket (about a millisecond, more when the box is
// busy), so that loss measures the relay and not the generator.
const sockBuf = 16 << 20

func openUDPSock() (udpSock, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return udpSock{}, fmt.Errorf("socket: %w", err)
	}
	s := udpSock{fd: fd}
	fail := func(what string, err error) (udpSock, error) {
		unix.Close(fd)
		return udpSock{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail("bind", err)
	}
	// The ...FORCE options pass rmem_max/wmem_max with CAP_NET_ADMIN; the
	// plain ones are capped by them.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuf)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	s.port = sa.(*unix.SockaddrInet4).Port
	return s, nil
}

func (s udpSock) close() { unix.Close(s.fd) }

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel fills in.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// inet4 is the socket address of a UDP peer on IPv4, as the kernel wants it.
func inet4(a *net.UDPAddr) (unix.RawSockaddrInet4, error) {
	ip := a.IP.To4()
	if ip == nil {
		return unix.RawSockaddrInet4{}, fmt.Errorf("%v: the generator sends over IPv4 only", a)
	}
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(a.Port))
	copy(sa.Addr[:], ip)
	return sa, nil
}

// txBatch is the packets one socket sends in one sendmmsg: slots are
// reused from batch to batch.
type txBatch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
}

// add returns the packet buffer of the next slot, addressed to dst (which
// must stay where it is until the batch is sent).
func (b *txBatch) add(dst *unix.RawSockaddrInet4) []byte {
	j := len(b.hdrs)
	if j == len(b.bufs) {
		b.bufs = append(b.bufs, make([]byte, rtpPacketLen))
		b.iovs = append(b.iovs, unix.Iovec{})
	}
	b.iovs[j].Base = &b.bufs[j][0]
	b.iovs[j].SetLen(rtpPacketLen)
	h := mmsghdr{}
	h.hdr.Name = (*byte)(unsafe.Pointer(dst))
	h.hdr.Namelen = unix.SizeofSockaddrInet4
	h.hdr.Iov = &b.iovs[j]
	h.hdr.SetIovlen(1)
	b.hdrs = append(b.hdrs, h)
	return b.bufs[j]
}

// sendAll writes every message of hs: it returns how many packets left
// and the first error. A packet the kernel refuses is skipped and counted as
// failed; a full send buffer (EAGAIN) is waited out, up to 100 ms.
func sendAll(fd int, hs []mmsghdr) (sent, failed int, firstErr error) {
	for i := 0; i < len(hs); {
		n, err := sendmmsg(fd, hs[i:])
		switch {
		case err == nil:
			i += n
			sent += n
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if k, _ := unix.Poll(fds, 100); k <= 0 {
				return sent, failed + len(hs) - i, err
			}
		default:
			// sendmmsg fails on the first message only: skip it.
			i++
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return sent, failed, firstErr
}

func sendmmsg(fd int, hs []mmsghdr) (int, error) {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rxBatch is room for one recvmmsg: packets and their control messages.
type rxBatch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
	ctl  [][]byte
}

// rxBufLen is more than our packets: a longer one is somebody else's.
const rxBufLen = 512

var rxCtlLen = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

func newRxBatch(n int) *rxBatch {
	b := &rxBatch{hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), bufs: make([][]byte, n), ctl: make([][]byte, n)}
	for i := range n {
		b.bufs[i] = make([]byte, rxBufLen)
		b.ctl[i] = make([]byte, rxCtlLen)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(rxBufLen)
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
		b.hdrs[i].hdr.Control = &b.ctl[i][0]
	}
	return b
}

// recv reads what is waiting on fd without blocking (0 and nil when
// nothing is); packet i is b.packet(i).
func (b *rxBatch) recv(fd int) (int, error) {
	for i := range b.hdrs {
		b.hdrs[i].hdr.SetControllen(rxCtlLen)
		b.hdrs[i].hdr.Flags = 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return 0, nil
	}
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// packet is received packet i (nil if it was cut short: not ours) and the
// kernel's receive time in CLOCK_REALTIME nanoseconds (0 if missing).
func (b *rxBatch) packet(i int) (p []byte, rxWallNs int64) {
	h := &b.hdrs[i]
	if h.hdr.Flags&unix.MSG_TRUNC == 0 {
		p = b.bufs[i][:h.n]
	}
	return p, cmsgTimestampNs(b.ctl[i][:h.hdr.Controllen])
}

// cmsgTimestampNs finds SCM_TIMESTAMPNS in a control buffer.
func cmsgTimestampNs(ctl []byte) int64 {
	for len(ctl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(ctl) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&ctl[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		ctl = ctl[min(len(ctl), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return 0
}
