package loopdial

import (
	"net"
	"testing"
	"time"
)

func TestDialFromSpread(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		got <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	if a := SourceAddr(250).IP.String(); a != "127.0.0.3" {
		t.Fatalf("SourceAddr(250) = %s, want 127.0.0.3 (the spread wraps at 249)", a)
	}
	c, err := Dialer(SourceAddr(5), 5*time.Second).Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ip := <-got; ip != "127.0.0.7" {
		t.Fatalf("connection from %s, want 127.0.0.7", ip)
	}
}
