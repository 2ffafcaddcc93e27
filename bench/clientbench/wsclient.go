package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/loopdial"
	"github.com/rtcgate/rtcgate/bench/internal/sdkclient"
)

// A minimal RFC 6455 client: just what the benchmark needs, so that an idle
// session costs the client nothing but its socket (no reading goroutine, no
// buffers once the handshake is done) and a round trip costs one write and
// one read system call. Frames from the server are unmasked, frames to it
// masked; compression is never offered.

// wsGUID is RFC 6455's magic string for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxServerFrame bounds a frame the server sends (its getUserData is a few
// hundred bytes); anything larger is a protocol error here.
const maxServerFrame = 1 << 20

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// wsConn is one client WebSocket. br is nil for an idle connection that
// only keeps its socket.
type wsConn struct {
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte // frame being written: header, mask, masked payload
	rbuf []byte // last payload read (reused)
	rng  *rand.ChaCha8
}

// wsDial connects to addr from local and upgrades to a WebSocket at path.
// br, when not nil, is reset onto the connection and used for the reply
// (the ramp of idle sessions reuses one reader per worker).
func wsDial(addr string, local *net.TCPAddr, path string, timeout time.Duration, br *bufio.Reader) (*wsConn, error) {
	deadline := time.Now().Add(timeout)
	nc, err := loopdial.Dialer(local, timeout).Dial("tcp4", addr)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(deadline)
	var seed [32]byte
	for i := range 4 {
		binary.LittleEndian.PutUint64(seed[8*i:], rand.Uint64())
	}
	c := &wsConn{nc: nc, rng: rand.NewChaCha8(seed)}
	var key [16]byte
	c.rng.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade request: %w", err)
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, 4096)
	} else {
		br.Reset(nc)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		nc.Close()
		return nil, fmt.Errorf("upgrade: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	sum := sha1.Sum([]byte(k + wsGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, errors.New("upgrade: wrong Sec-WebSocket-Accept")
	}
	c.br = br
	return c, nil
}

// writeFrame sends one masked frame.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	n := len(payload)
	b := c.wbuf[:0]
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	m := c.rng.Uint64()
	mask := [4]byte{byte(m), byte(m >> 8), byte(m >> 16), byte(m >> 24)}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

func (c *wsConn) writeText(payload []byte) error { return c.writeFrame(opText, payload) }

// closeError is a close frame from the server.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("server closed the WebSocket: %d %q", e.code, e.reason)
}

// readMessage returns the next text or binary message; pings are answered
// and pongs skipped. The slice is valid until the next call.
func (c *wsConn) readMessage() ([]byte, error) {
	msg := c.rbuf[:0]
	fragmented := false
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0F
		if h[1]&0x80 != 0 {
			return nil, errors.New("masked frame from the server")
		}
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > maxServerFrame || uint64(len(msg))+n > maxServerFrame {
			return nil, fmt.Errorf("server frame of %d bytes", n)
		}
		if op >= opClose { // control frame: its payload is separate
			p := make([]byte, n)
			if _, err := io.ReadFull(c.br, p); err != nil {
				return nil, err
			}
			switch op {
			case opClose:
				e := &closeError{code: 1005}
				if len(p) >= 2 {
					e.code, e.reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
				}
				return nil, e
			case opPing:
				if err := c.writeFrame(opPong, p); err != nil {
					return nil, err
				}
			}
			continue
		}
		if op != opContinuation && fragmented || op == opContinuation && !fragmented {
			return nil, errors.New("bad fragmentation from the server")
		}
		start := len(msg)
		msg = append(msg, make([]byte, n)...)
		if _, err := io.ReadFull(c.br, msg[start:]); err != nil {
			return nil, err
		}
		if fin {
			c.rbuf = msg
			return msg, nil
		}
		fragmented = true
	}
}

// nextNamed reads messages until one whose "message" is name; protocol
// pings are answered with pong on the way. Other frames are returned as an
// error (the benchmark never expects them).
func (c *wsConn) nextNamed(name string) ([]byte, error) {
	want := []byte(`"message":"` + name + `"`)
	for range 100 {
		m, err := c.readMessage()
		if err != nil {
			return nil, err
		}
		if bytes.Contains(m, want) {
			return m, nil
		}
		if bytes.Contains(m, []byte(`"message":"ping"`)) {
			if err := c.writeText([]byte(`{"message":"pong","data":[null]}`)); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("got %s while waiting for %s", sdkclient.Clip(m, 200), name)
	}
	return nil, fmt.Errorf("no %s within 100 frames", name)
}

// connectFrame is the SDK's first message.
var connectFrame = sdkclient.ConnectFrame("defaultApp", "clientbench")

// handshake sends connection and waits for getUserData; it returns the
// sessionId.
func (c *wsConn) handshake() (string, error) {
	if err := c.writeText(connectFrame); err != nil {
		return "", err
	}
	m, err := c.nextNamed("getUserData")
	if err != nil {
		return "", err
	}
	sid := sdkclient.JSONField(m, "sessionId")
	if sid == "" {
		return "", fmt.Errorf("getUserData without sessionId: %s", sdkclient.Clip(m, 200))
	}
	return sid, nil
}

// idle drops everything but the socket: after the handshake the server
// sends nothing (keep-alive off), so nothing needs reading.
func (c *wsConn) idle() (net.Conn, error) {
	if c.br.Buffered() > 0 {
		return nil, fmt.Errorf("%d unexpected bytes after getUserData", c.br.Buffered())
	}
	c.nc.SetDeadline(time.Time{})
	return c.nc, nil
}
