package client

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// from makes c's requests come from the loopback address ip.
func (c *fbConn) from(ip string) *fbConn {
	c.hc = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
	return c
}

// TestSessionsPerAddress: one address gets client-max-sessions-per-ip
// sessions and no more (429); another address still gets in; a closed
// session gives its place back.
func TestSessionsPerAddress(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.SessionsPerIP = 3 })
	var conns []*fbConn
	for i := 0; i < 3; i++ {
		c := e.conn().from("127.0.0.1")
		c.open()
		conns = append(conns, c)
	}
	if r := e.conn().from("127.0.0.1").post("open"); r.status != 429 {
		t.Fatalf("a fourth session from one address: %v, want 429", r)
	}
	e.conn().from("127.0.0.2").open()
	conns[0].post("close")
	e.conn().from("127.0.0.1").open()
}

// TestNewSessionsPerSecond: bursts of twice the rate, then 429, until
// the bucket refills.
func TestNewSessionsPerSecond(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.NewSessionsPerSecond = 5 })
	ok, refused := 0, 0
	for i := 0; i < 30; i++ {
		switch r := e.conn().post("open"); r.status {
		case 200:
			ok++
		case 429:
			refused++
		default:
			t.Fatalf("open: %v", r)
		}
	}
	if ok < 10 || ok > 13 || refused == 0 {
		t.Fatalf("30 opens at once: %d opened, %d refused; want a burst of about 10", ok, refused)
	}
}

// TestTrustedProxies: X-Forwarded-For is believed from a trusted proxy
// only, and the rightmost untrusted hop is the client.
func TestTrustedProxies(t *testing.T) {
	h := NewHub(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, BuiltIn{})
	defer h.Close()
	for _, c := range []struct{ peer, xff, want string }{
		{"10.1.1.1:5", "203.0.113.9, 10.2.2.2", "203.0.113.9"},
		{"10.1.1.1:5", "198.51.100.1, 203.0.113.9", "203.0.113.9"},
		{"10.1.1.1:5", "", "10.1.1.1"},
		{"10.1.1.1:5", "junk", "10.1.1.1"},
		{"192.0.2.7:5", "203.0.113.9", "192.0.2.7"}, // not trusted: its header is not
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := h.clientIP(r); got != c.want {
			t.Errorf("peer %s XFF %q: client %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// TestPendingBytes: a session whose unread frames pass
// client-max-pending-bytes ends, saying why.
func TestPendingBytes(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.MaxPendingBytes = 64 << 10 })
	c := e.conn()
	w := c.open()
	s := e.hub.session(w.SourceID)
	big := strings.Repeat("x", 10<<10)
	for i := 0; i < 10 && s.Send("OnDataEvent", big); i++ {
	}
	select {
	case reason := <-e.app.ended:
		if !strings.Contains(reason, "client-max-pending-bytes") {
			t.Fatalf("ended: %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session outlived client-max-pending-bytes")
	}
}

// TestSlowBodyTimesOut: a POST whose body trickles is answered 408 once
// client-read-timeout passes, and the connection is closed.
func TestSlowBodyTimesOut(t *testing.T) {
	e := newFBEnv(t, func(o *Options) { o.ReadTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /http?connectionId=%s&action=open HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\nx", fbRandomID())
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("trickled body: %d, want 408", res.StatusCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("answered after %v", d)
	}
}

// FuzzClientIP: any X-Forwarded-For from a trusted proxy gives an address
// (the proxy's own when the list is no list of addresses), never a panic.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"203.0.113.9, 10.2.2.2", "", "junk", "::1,::ffff:10.0.0.1", ",,,"} {
		f.Add(s)
	}
	h := NewHub(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, BuiltIn{})
	f.Cleanup(h.Close)
	f.Fuzz(func(t *testing.T, xff string) {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.1.1.1:5"
		r.Header.Set("X-Forwarded-For", xff)
		if _, err := netip.ParseAddr(h.clientIP(r)); err != nil {
			t.Fatalf("XFF %q gave %q", xff, h.clientIP(r))
		}
	})
}
