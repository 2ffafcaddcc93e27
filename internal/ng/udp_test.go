package ng

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/bencode"
)

// replyWait bounds the wait for a reply that must come.
const replyWait = 10 * time.Second

// silenceWait is how long a reply that must not come is waited for.
const silenceWait = 300 * time.Millisecond

// startUDP serves d on a fresh 127.0.0.1 socket until the test ends.
func startUDP(t *testing.T, d *Dispatcher, o UDPOptions) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewUDPServer(d, slog.New(slog.DiscardHandler), o)
	done := make(chan struct{})
	go func() {
		s.Serve(conn)
		close(done)
	}()
	t.Cleanup(func() {
		conn.Close()
		select {
		case <-done:
		case <-time.After(replyWait):
			t.Error("Serve did not return after its socket closed")
		}
	})
	return conn.LocalAddr().(*net.UDPAddr)
}

type udpClient struct {
	t    *testing.T
	conn *net.UDPConn
}

func dialUDP(t *testing.T, server *net.UDPAddr) *udpClient {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{t, conn}
}

func (c *udpClient) send(msg []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(msg); err != nil {
		c.t.Fatal(err)
	}
}

func (c *udpClient) recv() []byte {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(replyWait))
	buf := make([]byte, 65536)
	n, err := c.conn.Read(buf)
	if err != nil {
		c.t.Fatalf("no reply: %v", err)
	}
	return buf[:n]
}

// roundTrip sends msg and returns the reply.
func (c *udpClient) roundTrip(msg []byte) []byte {
	c.t.Helper()
	c.send(msg)
	return c.recv()
}

// expectSilence fails if a datagram arrives within silenceWait.
func (c *udpClient) expectSilence() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(silenceWait))
	buf := make([]byte, 65536)
	n, err := c.conn.Read(buf)
	if err == nil {
		c.t.Fatalf("unexpected reply %q", buf[:n])
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("read: %v", err)
	}
}

func withCookie(cookie string, body []byte) []byte {
	return append([]byte(cookie+" "), body...)
}

func TestUDPPing(t *testing.T) {
	c := dialUDP(t, startUDP(t, New(nil), UDPOptions{Workers: 2, CookieCacheSize: 100}))
	for _, tc := range []struct{ in, want string }{
		{"5300_1 d7:command4:pinge", "5300_1 d6:result4:ponge"},
		{`5300_2 {"command":"ping"}`, `5300_2 {"result":"pong"}`},
		{"5300_3 ", "5300_3 " + bencodeError("Invalid NG data format")},
		{"5300_4 garbage", "5300_4 " + bencodeError("Invalid NG data format")},
		{"5300_5 d7:command3:fooe", "5300_5 " + bencodeError("Unrecognized command")},
		{"5300_6 {", "5300_6 " + `{"result":"error","error-reason":"Invalid NG data format"}`},
		{"c  d7:command4:pinge", "c d6:result4:ponge"}, // the body's leading space is skipped
	} {
		if got := c.roundTrip([]byte(tc.in)); string(got) != tc.want {
			t.Errorf("%q: reply %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestUDPNoCookie: a message without a cookie is dropped without a reply,
// and the server goes on.
func TestUDPNoCookie(t *testing.T) {
	c := dialUDP(t, startUDP(t, New(nil), UDPOptions{Workers: 1, CookieCacheSize: 100}))
	c.send([]byte("d7:command4:pinge"))
	c.expectSilence()
	// The next reply is the one to the next request: nothing was queued
	// for the first.
	c.send([]byte(" d7:command4:pinge")) // empty cookie: dropped too
	if got := c.roundTrip([]byte("x d7:command4:pinge")); string(got) != "x d6:result4:ponge" {
		t.Errorf("reply %q", got)
	}
}

// TestUDPRetransmission: a retransmitted offer gets the same reply, from the
// cache, and the call is made once.
func TestUDPRetransmission(t *testing.T) {
	env := newTestEnv(t)
	server := startUDP(t, env.d, UDPOptions{Workers: 4, CookieCacheSize: 100})
	a := dialUDP(t, server)
	offer := withCookie("ck1", bdict(t, "command", "offer", "call-id", "rt1", "from-tag", "ft", "sdp", offerSDP))
	first := a.roundTrip(offer)
	if !bytes.HasPrefix(first, []byte("ck1 d3:sdp")) || !bytes.HasSuffix(first, []byte("6:result2:oke")) {
		t.Fatalf("offer reply %q", first)
	}
	for i := range 3 {
		if again := a.roundTrip(offer); !bytes.Equal(again, first) {
			t.Fatalf("retransmission %d: reply\n%q\nwant\n%q", i, again, first)
		}
	}
	// Even a different body under the same cookie is a retransmission.
	if again := a.roundTrip([]byte("ck1 d7:command4:pinge")); !bytes.Equal(again, first) {
		t.Errorf("same cookie, other body: %q", again)
	}
	if n := env.engine.NumCalls(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
	if n := offerCount(t, env.d); n != 1 {
		t.Errorf("offer ran %d times, want 1", n)
	}

	// The same cookie from another socket is another request.
	b := dialUDP(t, server)
	if got := b.roundTrip([]byte("ck1 d7:command4:pinge")); string(got) != "ck1 d6:result4:ponge" {
		t.Errorf("other source, same cookie: %q", got)
	}
	c := dialUDP(t, server)
	second := c.roundTrip(withCookie("ck1", bdict(t, "command", "offer", "call-id", "rt2", "from-tag", "ft", "sdp", offerSDP)))
	if !bytes.HasPrefix(second, []byte("ck1 d3:sdp")) || bytes.Equal(second, first) {
		t.Errorf("other source's offer: %q", second)
	}
	if n := env.engine.NumCalls(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
	if n := offerCount(t, env.d); n != 2 {
		t.Errorf("offer ran %d times, want 2", n)
	}
	// And the first source still gets its cached reply.
	if again := a.roundTrip(offer); !bytes.Equal(again, first) {
		t.Errorf("first source after the others: %q", again)
	}
}

func offerCount(t *testing.T, d *Dispatcher) int64 {
	t.Helper()
	out, err := Encode(nil, d.controlStatistics(), Bencode)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return m["totaloffercount"].(int64)
}

// TestUDPRetransmissionWhileRunning: a retransmission that arrives while
// the request still runs is dropped; the reply comes once.
func TestUDPRetransmissionWhileRunning(t *testing.T) {
	d := New(nil)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var runs atomic.Int32
	d.Handle("offer", func(context.Context, *Request) (*bencode.Dict, error) {
		runs.Add(1)
		entered <- struct{}{}
		<-release
		r := &bencode.Dict{}
		r.Set("sdp", "x")
		return r, nil
	})
	// Two workers: one blocks in the handler, the other reads the rest in
	// order.
	c := dialUDP(t, startUDP(t, d, UDPOptions{Workers: 2, CookieCacheSize: 100}))
	c.send([]byte("slow d7:command5:offere"))
	select {
	case <-entered:
	case <-time.After(replyWait):
		close(release)
		t.Fatal("handler not called")
	}
	c.send([]byte("slow d7:command5:offere"))
	// The ping is read after the retransmission by the free worker, so its
	// reply shows the retransmission was dealt with (dropped: had it run,
	// it would have blocked that worker too).
	if got := c.roundTrip([]byte("p1 d7:command4:pinge")); string(got) != "p1 d6:result4:ponge" {
		close(release)
		t.Fatalf("reply %q, want the ping's", got)
	}
	close(release)
	if got := c.recv(); string(got) != "slow d3:sdp1:x6:result2:oke" {
		t.Fatalf("reply %q, want the offer's", got)
	}
	if got := c.roundTrip([]byte("p2 d7:command4:pinge")); string(got) != "p2 d6:result4:ponge" {
		t.Fatalf("reply %q, want the second ping's (no duplicate offer reply)", got)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times", n)
	}
	// Now done: answered from the cache.
	if got := c.roundTrip([]byte("slow d7:command5:offere")); string(got) != "slow d3:sdp1:x6:result2:oke" {
		t.Errorf("cached reply %q", got)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times", n)
	}
}

// TestUDPManyRequests: many distinct cookies from one client, all answered,
// with several workers.
func TestUDPManyRequests(t *testing.T) {
	c := dialUDP(t, startUDP(t, New(nil), UDPOptions{Workers: 4, CookieCacheSize: 1000}))
	const n = 50
	want := map[string]bool{}
	for i := range n {
		cookie := fmt.Sprint("m", i)
		want[cookie+" d6:result4:ponge"] = true
		c.send([]byte(cookie + " d7:command4:pinge"))
	}
	for range n {
		got := string(c.recv())
		if !want[got] {
			t.Fatalf("unexpected or duplicate reply %q", got)
		}
		delete(want, got)
	}
}

// TestUDPNilLogger: NewUDPServer with a nil logger, as New allows for the
// dispatcher.
func TestUDPNilLogger(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewUDPServer(New(nil), nil, UDPOptions{})
	done := make(chan struct{})
	go func() {
		s.Serve(conn)
		close(done)
	}()
	defer func() { conn.Close(); <-done }()
	c := dialUDP(t, conn.LocalAddr().(*net.UDPAddr))
	c.send([]byte("no-cookie"))
	if got := c.roundTrip([]byte("x d7:command4:pinge")); string(got) != "x d6:result4:ponge" {
		t.Errorf("reply %q", got)
	}
}

// badInputs records bad-input reports.
type badInputs struct {
	mu   sync.Mutex
	seen []string // "listener reason from bytes"
}

func (b *badInputs) Report(listener, reason, from string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, fmt.Sprintf("%s %s %d", listener, reason, len(data)))
}

func (b *badInputs) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

// TestUDPBadInput: a datagram without cookie and one whose dictionary does
// not decode are reported as bad input, each once, under the listener's
// key; good requests are not.
func TestUDPBadInput(t *testing.T) {
	bad := &badInputs{}
	c := dialUDP(t, startUDP(t, New(nil), UDPOptions{Workers: 1, CookieCacheSize: 100, BadInput: bad}))
	c.send([]byte("nocookie"))
	c.expectSilence()
	if got := c.roundTrip([]byte("k1 garbage")); string(got) != "k1 "+bencodeError("Invalid NG data format") {
		t.Errorf("reply %q", got)
	}
	if got := c.roundTrip([]byte("k2 d7:command4:pinge")); string(got) != "k2 d6:result4:ponge" {
		t.Errorf("reply %q", got)
	}
	want := []string{"listen-ng no-cookie 8", "listen-ng undecodable 7"}
	if got := bad.get(); !slices.Equal(got, want) {
		t.Errorf("reports %q, want %q", got, want)
	}
}
