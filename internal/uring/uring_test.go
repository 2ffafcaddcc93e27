package uring

import (
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loopSocket is a nonblocking UDP socket on 127.0.0.1 and its port.
func loopSocket(t *testing.T) (int, int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port
}

// waitEventfd polls efd until it is signalled or the limit passes.
func waitEventfd(t *testing.T, efd int, limit time.Duration) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, int(limit/time.Millisecond))
	if err != nil || n != 1 {
		t.Fatalf("eventfd not signalled within %v (n=%d, err=%v)", limit, n, err)
	}
	var b [8]byte
	unix.Read(efd, b[:])
}

// TestMultishotRecvSendCancel drives the ring the way the relay does: a
// multishot recvmsg over a provided-buffer ring, the eventfd signalled for
// deferred work, sends with a destination address, and a cancel whose
// final completion comes before the socket is closed.
func TestMultishotRecvSendCancel(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(64, 256)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := r.RegisterEventfd(efd); err != nil {
		t.Fatal(err)
	}
	const nameLen = uint32(unsafe.Sizeof(unix.RawSockaddrInet6{}))
	bufs, err := r.NewBufRing(1, 4, int(recvmsgOutSize+nameLen)+64)
	if err != nil {
		t.Fatal(err)
	}
	defer bufs.Close()

	fd, port := loopSocket(t)
	defer unix.Close(fd)
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	msg := unix.Msghdr{Namelen: nameLen}
	sqe, err := r.SQE()
	if err != nil {
		t.Fatal(err)
	}
	sqe.Opcode, sqe.Fd, sqe.Addr = OpRecvmsg, int32(fd), uint64(uintptr(unsafe.Pointer(&msg)))
	sqe.Ioprio, sqe.Flags, sqe.BufIndex, sqe.UserData = RecvMultishot, SQEBufferSelect, bufs.Group, 7
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(&msg)

	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	// Six datagrams, one too long, into four buffers: the multishot
	// receive runs out of buffers, ends, and is armed again.
	payloads := []string{"one", "two", "three", string(make([]byte, 100)), "five", "six"}
	got := map[string]bool{}
	truncated, ended := 0, 0
	sent := 0
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(payloads)-1 || truncated == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, %d truncated, after 5s", got, truncated)
		}
		if sent < len(payloads) {
			if _, err := peer.WriteToUDP([]byte(payloads[sent]), dst); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		waitEventfd(t, efd, 2*time.Second)
		for {
			if err := r.Submit(); err != nil {
				t.Fatal(err)
			}
			rearm := false
			n := r.Completions(func(c *CQE) {
				if c.UserData != 7 {
					t.Errorf("user data %d", c.UserData)
				}
				if c.Flags&CQEFBuffer != 0 {
					buf := bufs.Buffer(c.BufferID())
					h, name, payload, err := ParseRecvmsg(buf, int(c.Res), nameLen, 0)
					if err != nil {
						t.Fatal(err)
					}
					if h.Flags&unix.MSG_TRUNC != 0 {
						truncated++
					} else {
						got[string(payload)] = true
					}
					sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&name[0]))
					if sa.Family != unix.AF_INET || sa.Addr != [4]byte{127, 0, 0, 1} {
						t.Errorf("source %+v", sa)
					}
					bufs.Recycle(c.BufferID())
				}
				if c.Flags&CQEFMore == 0 {
					ended++
					if c.Res != -int32(unix.ENOBUFS) && c.Res < 0 {
						t.Errorf("multishot ended with %d", c.Res)
					}
					rearm = true
				}
			})
			if rearm {
				sqe, err := r.SQE()
				if err != nil {
					t.Fatal(err)
				}
				sqe.Opcode, sqe.Fd, sqe.Addr = OpRecvmsg, int32(fd), uint64(uintptr(unsafe.Pointer(&msg)))
				sqe.Ioprio, sqe.Flags, sqe.BufIndex, sqe.UserData = RecvMultishot, SQEBufferSelect, bufs.Group, 7
			}
			if n == 0 && r.Pending() == 0 {
				break
			}
		}
	}
	if truncated != 1 {
		t.Errorf("%d truncated datagrams, want 1", truncated)
	}

	// A send with a destination address, from the ring's socket.
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	sa.Addr = [4]byte{127, 0, 0, 1}
	pp := peer.LocalAddr().(*net.UDPAddr).Port
	(*[2]byte)(unsafe.Pointer(&sa.Port))[0], (*[2]byte)(unsafe.Pointer(&sa.Port))[1] = byte(pp>>8), byte(pp)
	out := []byte("back")
	sqe, err = r.SQE()
	if err != nil {
		t.Fatal(err)
	}
	sqe.Opcode, sqe.Fd, sqe.Addr, sqe.Len, sqe.OpFlags = OpSend, int32(fd), uint64(uintptr(unsafe.Pointer(&out[0]))), uint32(len(out)), unix.MSG_DONTWAIT
	sqe.Off, sqe.SpliceFdIn, sqe.UserData = uint64(uintptr(unsafe.Pointer(&sa))), int32(unsafe.Sizeof(sa)), 9
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	var sendRes int32 = -1
	r.Completions(func(c *CQE) {
		if c.UserData == 9 {
			sendRes = c.Res
		}
	})
	if sendRes != int32(len(out)) {
		t.Fatalf("send result %d, want %d (inline completion)", sendRes, len(out))
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 16)
	n, from, err := peer.ReadFromUDP(b)
	if err != nil || string(b[:n]) != "back" || from.Port != port {
		t.Fatalf("peer read %q from %v: %v", b[:n], from, err)
	}

	// Cancel: the receive's last completion has no MORE flag.
	sqe, err = r.SQE()
	if err != nil {
		t.Fatal(err)
	}
	sqe.Opcode, sqe.Addr, sqe.UserData = OpAsyncCancel, 7, 8
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	final := false
	for i := 0; i < 100 && !final; i++ {
		r.Completions(func(c *CQE) {
			if c.UserData == 7 && c.Flags&CQEFMore == 0 {
				final = true
			}
		})
		if !final {
			if err := r.Submit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !final {
		t.Fatal("no final completion after cancel")
	}
}

func TestNewBufRingRejects(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(8, 16)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	for _, c := range [][2]int{{0, 10}, {3, 10}, {1 << 16, 10}, {4, 0}} {
		if _, err := r.NewBufRing(2, c[0], c[1]); err == nil {
			t.Errorf("NewBufRing(%d, %d) accepted", c[0], c[1])
		}
	}
	for i := 0; i < 8; i++ {
		if _, err := r.SQE(); err != nil {
			t.Fatalf("SQE %d: %v", i, err)
		}
	}
	if _, err := r.SQE(); !errors.Is(err, ErrFull) {
		t.Fatalf("ninth SQE of 8: %v, want ErrFull", err)
	}
}

// FuzzParseRecvmsg: whatever the buffer holds, parsing stays inside it.
func FuzzParseRecvmsg(f *testing.F) {
	f.Add(make([]byte, 64), 60, uint32(28), uint32(0))
	f.Add([]byte{28, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0}, 16, uint32(28), uint32(0))
	f.Fuzz(func(t *testing.T, buf []byte, n int, nameLen, controlLen uint32) {
		if nameLen > 1<<20 || controlLen > 1<<20 {
			return
		}
		h, name, payload, err := ParseRecvmsg(buf, n, nameLen, controlLen)
		if err != nil {
			return
		}
		if len(name) > int(nameLen) || len(name) > int(h.NameLen) || len(payload) > int(h.PayloadLen) || len(payload) > n {
			t.Fatalf("name %d payload %d from header %+v, n %d", len(name), len(payload), h, n)
		}
	})
}
