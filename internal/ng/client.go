package ng

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/internal/bencode"
)

// Client sends ng requests to a relay (rtcgate or rtpengine): over UDP, with
// retransmission as proxies do, or over HTTP POST /ng.
type Client struct {
	// URL is "udp://host:port" (or just "host:port") or "http(s)://host:port".
	URL      string
	Encoding Encoding
	// Timeout bounds one UDP attempt; a request is sent up to Attempts times.
	Timeout  time.Duration
	Attempts int
	HTTP     *http.Client
}

var clientSeq atomic.Uint64

// Do sends one request and returns the reply dictionary.
func (c *Client) Do(ctx context.Context, req *bencode.Dict) (map[string]any, error) {
	body, err := Encode(nil, req, c.Encoding)
	if err != nil {
		return nil, err
	}
	cookie := fmt.Sprintf("%d_%d", time.Now().UnixNano()%1e9, clientSeq.Add(1))
	msg := append([]byte(cookie+" "), body...)
	var reply []byte
	if strings.HasPrefix(c.URL, "http://") || strings.HasPrefix(c.URL, "https://") {
		reply, err = c.doHTTP(ctx, msg)
	} else {
		reply, err = c.doUDP(ctx, msg)
	}
	if err != nil {
		return nil, err
	}
	gotCookie, rbody, ok := SplitCookie(reply)
	if !ok || string(gotCookie) != cookie {
		return nil, fmt.Errorf("reply does not carry our cookie: %.60q", reply)
	}
	d, _, err := Decode(rbody)
	return d, err
}

func (c *Client) doUDP(ctx context.Context, msg []byte) ([]byte, error) {
	addr := strings.TrimPrefix(c.URL, "udp://")
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	timeout, attempts := c.Timeout, c.Attempts
	if timeout <= 0 {
		timeout = time.Second
	}
	if attempts <= 0 {
		attempts = 3
	}
	buf := make([]byte, 65536)
	for range attempts {
		if _, err := conn.Write(msg); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err == nil {
			return append([]byte{}, buf[:n]...), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("no reply from %s after %d attempts", addr, attempts)
}

func (c *Client) doHTTP(ctx context.Context, msg []byte) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/ng", bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-rtpengine-ng")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// listKeys are sent as lists even when given once on the command line.
var listKeys = map[string]bool{"flags": true, "replace": true, "rtcp-mux": true, "direction": true,
	"received-from": true, "received from": true, "supports": true}

// BuildRequest turns `rtcgate ng` arguments — a command, then key=value
// pairs — into a request. A key given twice, or a list key, becomes a list;
// a value of digits only is sent as an integer.
func BuildRequest(command string, args []string) (*bencode.Dict, error) {
	req := &bencode.Dict{}
	req.Set("command", command)
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("argument %q: want key=value", a)
		}
		prev, seen := req.Get(k)
		switch {
		case listKeys[k] || seen:
			list, _ := prev.([]any)
			if seen && !listKeys[k] && list == nil {
				list = []any{prev}
			}
			req.Set(k, append(list, v))
		case isDigits(v):
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("argument %q: %v", a, err)
			}
			req.Set(k, n)
		default:
			req.Set(k, v)
		}
	}
	if k, _ := req.Get("command"); k == "" {
		return nil, errors.New("no command")
	}
	return req, nil
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
