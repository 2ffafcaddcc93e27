package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/internal/bencode"
)

// ngClient speaks the ng control protocol over UDP: every request is
// "<cookie> <bencoded dict>" and the relay answers with the same cookie.
// Requests from many goroutines share a few sockets; a reader goroutine per
// socket hands each reply to the waiter registered under its cookie, so
// many requests can be in flight at once, as a SIP proxy drives a relay.
type ngClient struct {
	conns   []*net.UDPConn
	next    atomic.Uint64 // round-robin over conns
	seq     atomic.Uint64 // cookie counter
	prefix  string        // random per client, so cookies never repeat across runs
	timeout time.Duration // per attempt
	retries int           // retransmissions after the first attempt

	mu      sync.Mutex
	pending map[string]chan []byte

	retransmits atomic.Uint64 // requests sent again after a timeout
	strays      atomic.Uint64 // replies nobody waited for (late or duplicate)

	wg sync.WaitGroup
}

// newNGClient opens n UDP sockets towards the relay's ng address. The
// retransmission scheme (same cookie, same bytes) is what rtpengine expects:
// it caches replies by cookie and answers a repeat without executing it
// twice.
func newNGClient(addr string, n int, timeout time.Duration, retries int) (*ngClient, error) {
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	if !raddr.IP.IsLoopback() {
		return nil, fmt.Errorf("ng address %s is not loopback", addr)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	c := &ngClient{
		prefix:  hex.EncodeToString(rnd[:]) + "_",
		timeout: timeout,
		retries: retries,
		pending: make(map[string]chan []byte),
	}
	for range max(n, 1) {
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, raddr)
		if err != nil {
			c.Close()
			return nil, err
		}
		// Bursts of replies to 32+ concurrent requests must not overflow
		// the default receive buffer and turn into spurious timeouts.
		_ = conn.SetReadBuffer(1 << 20)
		c.conns = append(c.conns, conn)
		c.wg.Add(1)
		go c.readLoop(conn)
	}
	return c, nil
}

// Close closes the sockets and waits for the readers to finish.
func (c *ngClient) Close() {
	for _, conn := range c.conns {
		conn.Close()
	}
	c.wg.Wait()
}

func (c *ngClient) readLoop(conn *net.UDPConn) {
	defer c.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED from an ICMP port-unreachable (relay not up
			// yet, or gone) is reported per request through its timeout;
			// keep reading.
			continue
		}
		cookie, body, ok := bytes.Cut(buf[:n], []byte(" "))
		if !ok {
			c.strays.Add(1)
			continue
		}
		c.mu.Lock()
		ch := c.pending[string(cookie)]
		delete(c.pending, string(cookie))
		c.mu.Unlock()
		if ch == nil {
			c.strays.Add(1)
			continue
		}
		ch <- bytes.Clone(body) // buffered, never blocks
	}
}

// ngError is an ng reply with result "error" (or any result other than the
// expected one).
type ngError struct {
	Command, Result, Reason string
}

func (e *ngError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("ng %s: %s: %s", e.Command, e.Result, e.Reason)
	}
	return fmt.Sprintf("ng %s: result %q", e.Command, e.Result)
}

// errNGTimeout means no reply came after all retransmissions.
var errNGTimeout = errors.New("ng: no reply (timeout after retransmissions)")

// do sends one request and returns the decoded reply and the time from the
// first transmission to the reply. A reply whose result is "error" is
// returned as *ngError together with the reply.
func (c *ngClient) do(ctx context.Context, req map[string]any) (map[string]any, time.Duration, error) {
	body, err := bencode.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	cookie := c.prefix + strconv.FormatUint(c.seq.Add(1), 36)
	msg := make([]byte, 0, len(cookie)+1+len(body))
	msg = append(append(append(msg, cookie...), ' '), body...)

	ch := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[cookie] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, cookie)
		c.mu.Unlock()
	}()

	conn := c.conns[c.next.Add(1)%uint64(len(c.conns))]
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		if _, err := conn.Write(msg); err != nil && attempt == c.retries {
			return nil, time.Since(start), fmt.Errorf("ng send: %w", err)
		}
		select {
		case reply := <-ch:
			lat := time.Since(start)
			d, err := bencode.DecodeDict(reply)
			if err != nil {
				return nil, lat, fmt.Errorf("ng reply: %w", err)
			}
			return d, lat, checkResult(req, d)
		case <-timer.C:
			if attempt >= c.retries {
				return nil, time.Since(start), errNGTimeout
			}
			c.retransmits.Add(1)
			timer.Reset(c.timeout)
		case <-ctx.Done():
			return nil, time.Since(start), ctx.Err()
		}
	}
}

// checkResult maps the reply's "result" to an error: ping wants "pong",
// everything else "ok".
func checkResult(req, reply map[string]any) error {
	cmd, _ := req["command"].(string)
	want := "ok"
	if cmd == "ping" {
		want = "pong"
	}
	res, _ := reply["result"].(string)
	if res == want {
		return nil
	}
	reason, _ := reply["error-reason"].(string)
	return &ngError{Command: cmd, Result: res, Reason: reason}
}

// offer sends an offer and returns the relay's SDP and the request latency.
func (c *ngClient) offer(ctx context.Context, callID, fromTag, sdp string) (string, time.Duration, error) {
	r, lat, err := c.do(ctx, map[string]any{
		"command": "offer", "call-id": callID, "from-tag": fromTag, "sdp": sdp,
	})
	if err != nil {
		return "", lat, err
	}
	out, ok := r["sdp"].(string)
	if !ok {
		return "", lat, errors.New("ng offer: reply has no sdp")
	}
	return out, lat, nil
}

// answer sends an answer and returns the relay's SDP and the request latency.
func (c *ngClient) answer(ctx context.Context, callID, fromTag, toTag, sdp string) (string, time.Duration, error) {
	r, lat, err := c.do(ctx, map[string]any{
		"command": "answer", "call-id": callID, "from-tag": fromTag, "to-tag": toTag, "sdp": sdp,
	})
	if err != nil {
		return "", lat, err
	}
	out, ok := r["sdp"].(string)
	if !ok {
		return "", lat, errors.New("ng answer: reply has no sdp")
	}
	return out, lat, nil
}

// del deletes a whole call.
func (c *ngClient) del(ctx context.Context, callID, fromTag string) (time.Duration, error) {
	_, lat, err := c.do(ctx, map[string]any{
		"command": "delete", "call-id": callID, "from-tag": fromTag,
	})
	return lat, err
}
