// Package loopdial dials rtcgate on loopback from many source addresses,
// for the benchmark programs that open more connections than one address
// has ephemeral ports: tens of thousands held idle, or hundreds of
// thousands opened and closed (each leaving a TIME_WAIT behind on the side
// that closes first).
package loopdial

import (
	"net"
	"syscall"
	"time"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): with a source
// address but port 0, the kernel picks the port at connect() by the whole
// 4-tuple instead of reserving one at bind(), so each source address offers
// the whole ephemeral range towards each server port.
const ipBindAddressNoPort = 24

// SourceAddr is the i-th loopback source address of the spread: 127.0.0.2 …
// 127.0.0.250, so that N connections need only N/249 ephemeral ports each.
func SourceAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%249))}
}

// Dialer returns a net.Dialer without TCP keep-alive, bound to local with
// IP_BIND_ADDRESS_NO_PORT (nil: any address, the kernel's way).
func Dialer(local *net.TCPAddr, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: -1}
	if local != nil {
		d.LocalAddr = local
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}
