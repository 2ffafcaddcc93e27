package media

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/uring"
)

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestRelayIO relays over each relay-io interface: latching both ways,
// strict source, and 60 calls set up, relayed and deleted one after the
// other in a range of 24 ports (4 held by a call flooded all along), so
// sockets not closed (or ports not given back) after their receives are
// cancelled soon fail an offer; no descriptor is left behind.
func TestRelayIO(t *testing.T) {
	for i, mode := range []string{"epoll", "io_uring"} {
		t.Run(mode, func(t *testing.T) {
			// Ports of its own (26400-26449), away from the other tests'
			// (24000 up), which other worktrees may run at the same time.
			base := 26400 + 25*i
			e := newEngineWith(t, Config{
				Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
				PortMin:    base, PortMax: base + 23, RelayIO: mode, Threads: 2,
			})
			for _, l := range e.pollers {
				if _, ring := l.(*ringPoller); ring != (mode == "io_uring") {
					t.Fatalf("relay-io %s started a %T", mode, l)
				}
			}
			a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
			// A call flooded all along (bounded: 20 s or 1M packets):
			// the loop must still close and free the others' sockets.
			f1, f2 := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
			toF2 := relayAddr(t)(e.Offer(&Request{CallID: "flood", FromTag: "a", SDP: f1.sdp()}))
			relayAddr(t)(e.Answer(&Request{CallID: "flood", FromTag: "a", ToTag: "b", SDP: f2.sdp()}))
			stopFlood := make(chan struct{})
			flooded := make(chan struct{})
			go func() {
				defer close(flooded)
				end := time.Now().Add(20 * time.Second)
				for i := 0; i < 1e6 && time.Now().Before(end); i++ {
					select {
					case <-stopFlood:
						return
					default:
					}
					f1.rtp.WriteToUDPAddrPort([]byte("\x80\x00flood"), toF2)
				}
			}()
			defer func() { close(stopFlood); <-flooded }()
			before := openFDs(t)
			for i := range 60 {
				id := fmt.Sprintf("c%d", i)
				toB := relayAddr(t)(e.Offer(&Request{CallID: id, FromTag: "a", SDP: a.sdp(), Flags: Flags{StrictSource: true}}))
				toA := relayAddr(t)(e.Answer(&Request{CallID: id, FromTag: "a", ToTag: "b", SDP: b.sdp()}))
				// A sends from elsewhere than its SDP: latching sends B's media there.
				nat := newPeer(t, "127.0.0.1")
				relayed(t, nat.rtp, toA, b.rtp, []byte(fmt.Sprintf("\x80\x00to b %d", i)))
				relayed(t, b.rtp, toB, nat.rtp, []byte(fmt.Sprintf("\x80\x00to a %d", i)))
				relayed(t, b.rtcp, netip.AddrPortFrom(toB.Addr(), toB.Port()+1), a.rtcp, []byte{0x80, 201, 0, 1, 1, 2, 3, byte(i)})
				if i == 0 { // strict source: a stranger is dropped and counted
					a.rtp.WriteToUDPAddrPort([]byte("\x80\x00intruder"), toA)
					if got, _, ok := recvFrom(t, b.rtp); ok {
						t.Fatalf("strict source relayed %q", got)
					}
					info, err := e.Query(id)
					if err != nil {
						t.Fatal(err)
					}
					st := info.Tags[0].Medias[0].Streams[0]
					if st.Errors == 0 || st.Packets == 0 {
						t.Errorf("stream after packets and a stranger: %+v", st)
					}
				}
				if _, err := e.Delete(id, "", "", 0, false); err != nil {
					t.Fatal(err)
				}
				nat.rtp.Close()
				nat.rtcp.Close()
			}
			deadline := time.Now().Add(5 * time.Second)
			for openFDs(t) > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := openFDs(t); n > before {
				t.Errorf("%d descriptors open after 60 calls, %d before", n, before)
			}
		})
	}
}

// TestRelayIOFallback: auto relays with epoll, saying so once, where
// io_uring does not set up; io_uring then refuses to start; auto takes
// io_uring where it works.
func TestRelayIOFallback(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	loops, err := startRelayLoops(2, "auto", log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loops {
		if _, ok := l.(*ringPoller); !ok {
			t.Errorf("auto where io_uring works started a %T", l)
		}
		l.stop()
	}

	saved := newRing
	newRing = func(uint32, uint32) (*uring.Ring, error) { return nil, fmt.Errorf("io_uring_setup: %w", unix.EPERM) }
	defer func() { newRing = saved }()
	loops, err = startRelayLoops(2, "auto", log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loops {
		if _, ok := l.(*poller); !ok {
			t.Errorf("auto without io_uring started a %T", l)
		}
		l.stop()
	}
	if n := strings.Count(logs.String(), "io_uring unavailable"); n != 1 || !strings.Contains(logs.String(), "operation not permitted") {
		t.Errorf("want one line saying why, got %d:\n%s", n, logs.String())
	}
	if _, err := startRelayLoops(2, "io_uring", log); err == nil || !strings.Contains(err.Error(), "relay-io io_uring") {
		t.Errorf("io_uring without io_uring: %v", err)
	}
}
