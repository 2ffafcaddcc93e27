// Package uring is a minimal io_uring over raw system calls: one ring with
// its submission and completion queues mapped into memory, and a ring of
// provided buffers that multishot receives fill. It holds only what the
// media relay uses (multishot recvmsg, send with an address, cancel) and
// no policy: the caller owns the ring from one thread (it is created
// SINGLE_ISSUER with DEFER_TASKRUN, so completions are made only when that
// thread enters).
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Opcodes, flags and offsets from <linux/io_uring.h>.
const (
	OpRecvmsg     = 10
	OpAsyncCancel = 14
	OpSend        = 26

	SQEBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT
	SQESkipSuccess  = 1 << 6 // IOSQE_CQE_SKIP_SUCCESS

	RecvMultishot = 1 << 1 // IORING_RECV_MULTISHOT, in ioprio

	CQEFBuffer  = 1 << 0 // IORING_CQE_F_BUFFER
	CQEFMore    = 1 << 1 // IORING_CQE_F_MORE
	cqeBufShift = 16

	setupCQSize        = 1 << 3
	setupSubmitAll     = 1 << 7
	setupCoopTaskrun   = 1 << 8
	setupTaskrunFlag   = 1 << 9
	setupSingleIssuer  = 1 << 12
	setupDeferTaskrun  = 1 << 13
	setupNoSQArray     = 1 << 16
	featSingleMmap     = 1 << 0
	sqCQOverflow       = 1 << 1
	sqTaskrun          = 1 << 2
	enterGetEvents     = 1 << 0
	registerEventfd    = 4
	registerPbufRing   = 22
	offSQRing          = 0
	offCQRing          = 0x8000000
	offSQEs            = 0x10000000
	recvmsgOutSize     = 16
	bufRingEntrySize   = 16
	maxRegisterRetries = 8
)

// SQE is struct io_uring_sqe (64 bytes).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16 // buf_group with IOSQE_BUFFER_SELECT
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe (16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// BufferID is the provided buffer a completion used (valid with CQEFBuffer).
func (c *CQE) BufferID() uint16 { return uint16(c.Flags >> cqeBufShift) }

// params is struct io_uring_params (120 bytes).
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32 // head, tail, ring_mask, ring_entries, flags, dropped, array, resv1, user_addr(u64)
	cqOff                                                                  [10]uint32 // head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1, user_addr(u64)
}

// Ring is one io_uring instance. Its methods are for one goroutine, on
// the OS thread that created it (runtime.LockOSThread).
type Ring struct {
	fd     int
	rings  []byte // SQ and CQ rings (one mapping)
	sqeMem []byte

	sqHead, sqTail *uint32
	sqMask         uint32
	sqes           []SQE
	pending        uint32 // SQEs written since the last Submit

	sqFlags *uint32

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []CQE
}

// ErrFull is returned by SQE when every submission slot is taken: Submit first.
var ErrFull = errors.New("uring: submission queue full")

// New sets a ring up with sqEntries submission and cqEntries completion
// slots (powers of two). It fails on kernels without the features the
// relay needs (SINGLE_ISSUER, DEFER_TASKRUN, NO_SQARRAY: Linux 6.6), or
// where io_uring is disabled (kernel.io_uring_disabled, seccomp).
func New(sqEntries, cqEntries uint32) (*Ring, error) {
	p := params{cqEntries: cqEntries,
		flags: setupCQSize | setupSubmitAll | setupCoopTaskrun | setupTaskrunFlag | setupSingleIssuer | setupDeferTaskrun | setupNoSQArray}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(sqEntries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 {
		r.Close()
		return nil, errors.New("io_uring: kernel lacks IORING_FEAT_SINGLE_MMAP")
	}
	// One mapping holds both rings (FEAT_SINGLE_MMAP); with NO_SQARRAY
	// there is no index array, and the CQEs come last.
	size := p.cqOff[5] + p.cqEntries*uint32(unsafe.Sizeof(CQE{}))
	if a := p.sqOff[6]; a != 0 {
		size = max(size, a+p.sqEntries*4)
	}
	var err error
	r.rings, err = unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring mmap rings: %w", err)
	}
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(SQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring mmap sqes: %w", err)
	}
	base := unsafe.Pointer(&r.rings[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff[0]))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff[1]))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff[2]))
	r.sqFlags = (*uint32)(unsafe.Add(base, p.sqOff[4]))
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff[0]))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff[1]))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff[2]))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(base, p.cqOff[5])), p.cqEntries)
	return r, nil
}

// Close unmaps the ring and closes it; the kernel cancels what is left.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.rings != nil {
		unix.Munmap(r.rings)
		r.rings = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	return nil
}

// SQE returns the next free submission slot, zeroed, or ErrFull.
func (r *Ring) SQE() (*SQE, error) {
	tail := *r.sqTail + r.pending
	if tail-atomic.LoadUint32(r.sqHead) >= uint32(len(r.sqes)) {
		return nil, ErrFull
	}
	sqe := &r.sqes[tail&r.sqMask]
	*sqe = SQE{}
	r.pending++
	return sqe, nil
}

// Pending is how many SQEs wait for Submit.
func (r *Ring) Pending() uint32 { return r.pending }

// Submit hands the pending SQEs to the kernel and runs the ring's deferred
// work (the receives made ready since the last call), waiting for nothing.
func (r *Ring) Submit() error {
	tail := *r.sqTail + r.pending
	atomic.StoreUint32(r.sqTail, tail)
	r.pending = 0
	for range maxRegisterRetries {
		// Everything not yet taken, including what an interrupted call left.
		n := tail - atomic.LoadUint32(r.sqHead)
		_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 0, enterGetEvents, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			continue
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
	return fmt.Errorf("io_uring_enter: %w", unix.EINTR)
}

// WorkPending tells whether the kernel holds deferred work (receives made
// ready) that the next Submit would run: IORING_SQ_TASKRUN, or completions
// not yet seen. Read it after draining the ring's eventfd: work queued
// after that signals the eventfd again.
func (r *Ring) WorkPending() bool {
	return atomic.LoadUint32(r.sqFlags)&(sqTaskrun|sqCQOverflow) != 0 || atomic.LoadUint32(r.cqTail) != *r.cqHead
}

// Completions calls f on every completion ready now, in order, and marks
// them seen. f may write SQEs (not Submit).
func (r *Ring) Completions(f func(*CQE)) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		f(&r.cqes[head&r.cqMask])
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// RegisterEventfd makes the kernel signal fd when completions (or deferred
// work) appear, so that the ring's owner can wait on fd with the runtime's
// poller instead of blocking its thread in io_uring_enter.
func (r *Ring) RegisterEventfd(fd int) error {
	efd := int32(fd)
	return r.register(registerEventfd, unsafe.Pointer(&efd), 1)
}

func (r *Ring) register(op uintptr, arg unsafe.Pointer, n uintptr) error {
	for range maxRegisterRetries {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), n, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return fmt.Errorf("io_uring_register(%d): %w", op, errno)
		}
		return nil
	}
	return fmt.Errorf("io_uring_register(%d): %w", op, unix.EINTR)
}

// BufRing is a ring of provided buffers (IORING_REGISTER_PBUF_RING): the
// kernel picks one for each datagram a multishot receive takes, and the
// owner gives it back with Recycle once the datagram is handled.
type BufRing struct {
	mem     []byte // the ring of struct io_uring_buf, page-aligned
	bufs    []byte // count × size
	size    int
	mask    uint16
	tail    *uint16 // in the first entry's resv field
	local   uint16
	Group   uint16
	entries []bufEntry
}

type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	_    uint16 // the ring's tail lives here in entry 0
}

// NewBufRing registers count buffers (a power of two, ≤ 32768) of size bytes
// as buffer group group.
func (r *Ring) NewBufRing(group uint16, count, size int) (*BufRing, error) {
	if count <= 0 || count > 1<<15 || count&(count-1) != 0 || size <= 0 {
		return nil, fmt.Errorf("uring: buffer ring of %d × %d", count, size)
	}
	mem, err := unix.Mmap(-1, 0, count*bufRingEntrySize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("uring: buffer ring: %w", err)
	}
	bufs, err := unix.Mmap(-1, 0, count*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("uring: buffers: %w", err)
	}
	b := &BufRing{mem: mem, bufs: bufs, size: size, mask: uint16(count - 1), Group: group,
		entries: unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), count)}
	b.tail = (*uint16)(unsafe.Add(unsafe.Pointer(&mem[0]), 14))
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid        uint16
		flags       uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(count), bgid: group}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		b.free()
		return nil, err
	}
	for i := range count {
		b.add(uint16(i))
	}
	b.commit()
	return b, nil
}

func (b *BufRing) free() {
	unix.Munmap(b.mem)
	unix.Munmap(b.bufs)
}

// Close frees the buffers; call it after the ring is closed.
func (b *BufRing) Close() { b.free() }

// Buffer is buffer id's memory.
func (b *BufRing) Buffer(id uint16) []byte {
	off := int(id) * b.size
	return b.bufs[off : off+b.size : off+b.size]
}

func (b *BufRing) add(id uint16) {
	e := &b.entries[(*b.tail+b.local)&b.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(&b.bufs[int(id)*b.size])))
	e.len = uint32(b.size)
	e.bid = id
	b.local++
}

func (b *BufRing) commit() {
	// The tail is a 16-bit field the kernel reads with an acquire load;
	// a release store of the containing aligned word keeps the kernel's
	// view of the entry's other fields (bid, len) intact.
	atomic.StoreUint32((*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(b.tail))-2)),
		uint32(*b.tail+b.local)<<16|uint32(b.entries[0].bid))
	b.local = 0
}

// Recycle gives buffer id back to the kernel.
func (b *BufRing) Recycle(id uint16) {
	b.add(id)
	b.commit()
}

// RecvmsgOut is struct io_uring_recvmsg_out, at the start of the buffer a
// multishot recvmsg filled; the source address, then the payload follow.
type RecvmsgOut struct {
	NameLen, ControlLen, PayloadLen, Flags uint32
}

// ParseRecvmsg splits a multishot recvmsg's buffer (n bytes used) given the
// msghdr's name and control lengths: the header, the name (as much as the
// kernel wrote), and the payload. It fails on a buffer too short for what
// the header claims; the payload is cut to what the buffer holds (check
// Flags for MSG_TRUNC).
func ParseRecvmsg(buf []byte, n int, nameLen, controlLen uint32) (RecvmsgOut, []byte, []byte, error) {
	var h RecvmsgOut
	if n < recvmsgOutSize || n > len(buf) {
		return h, nil, nil, fmt.Errorf("uring: recvmsg result %d of a %d-byte buffer", n, len(buf))
	}
	h = *(*RecvmsgOut)(unsafe.Pointer(&buf[0]))
	nameEnd := recvmsgOutSize + int(nameLen)
	payloadStart := nameEnd + int(controlLen)
	if payloadStart > n {
		return h, nil, nil, fmt.Errorf("uring: recvmsg result %d shorter than its header and name", n)
	}
	name := buf[recvmsgOutSize:nameEnd]
	if int(h.NameLen) < len(name) {
		name = name[:h.NameLen]
	}
	payload := buf[payloadStart:n]
	if int(h.PayloadLen) < len(payload) {
		payload = payload[:h.PayloadLen]
	}
	return h, name, payload, nil
}
