package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// attack is one hostile load or fault, bounded in count and time.
type attack struct {
	name   string
	what   string   // what it does, for the log
	args   []string // rtcgate's flags for it
	nofile int      // rtcgate's descriptor limit during it (0: as started)
	// run attacks t and returns what was sent, for the table; the attack's
	// own connections are closed when it returns.
	run func(ctx context.Context, t *target) (string, error)
}

var attacks = []attack{
	{name: "sip-flood", what: "1 100 idle TCP connections to the SIP port from 20 addresses, rtcgate at 1 024 descriptors, held 10 s",
		nofile: 1024, args: []string{"--fd-reserve", "200"}, run: sipFlood},
	{name: "slow-body", what: "300 POSTs to /http announcing 1 MB and sending a byte every 2 s, for up to 20 s", run: slowBody},
	{name: "big-frames", what: "150 frames of 1 MB with an unknown message name, over /http send", run: bigFrames},
	{name: "open-flood", what: "10 200 action=open from one address", run: openFlood},
	{name: "ng-cache", what: "30 000 re-offers of one call with a 60 KB SDP, each under a new cookie, within 30 s", run: ngCache},
	{name: "garbage", what: "unparsable datagrams to the SIP and ng UDP ports for 15 s (at most 1 000 000)", run: garbage},
	{name: "control-idle", what: "300 idle keep-alive connections and 50 idle echo WebSockets to listen-http, held 10 s", run: controlIdle},
}

func attackNames() []string {
	var out []string
	for _, a := range attacks {
		out = append(out, a.name)
	}
	return out
}

func attackByName(name string) attack {
	for _, a := range attacks {
		if a.name == name {
			return a
		}
	}
	panic("unknown attack " + name)
}

// from dials from a loopback address of the attacker's.
func from(i int) *net.Dialer {
	return &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%20))}}
}

func sipFlood(ctx context.Context, t *target) (string, error) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	failed := 0
	for i := 0; i < 1100 && ctx.Err() == nil; i++ {
		c, err := from(i).DialContext(ctx, "tcp", t.addr("listen-sip"))
		if err != nil {
			failed++
			continue
		}
		conns = append(conns, c)
	}
	kept := holdAndCount(ctx, conns, 10*time.Second)
	return fmt.Sprintf("1 100 connections: %d opened, %d kept by rtcgate after 10 s, %d refused at connect", len(conns), kept, failed), nil
}

// holdAndCount holds conns for d and counts those rtcgate kept open: what
// it sent meanwhile is read away, and a kept connection then times out
// where a closed one ends.
func holdAndCount(ctx context.Context, conns []net.Conn, d time.Duration) int {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	kept := 0
	buf := make([]byte, 4096)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		for {
			if _, err := c.Read(buf); err != nil {
				if isTimeout(err) {
					kept++
				}
				break
			}
		}
	}
	return kept
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func slowBody(ctx context.Context, t *target) (string, error) {
	var wg sync.WaitGroup
	var answered408, other, cut atomic.Int64
	for i := 0; i < 300; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := from(i).DialContext(ctx, "tcp", t.addr("listen-client"))
			if err != nil {
				cut.Add(1)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /http?action=open&connectionId=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n", randomID())
			// Trickle in the background; the answer ends it.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for j := 0; j < 10; j++ {
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Second):
					}
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(25 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			switch {
			case err != nil:
				cut.Add(1)
			case resp.StatusCode == http.StatusRequestTimeout:
				answered408.Add(1)
			default:
				other.Add(1)
			}
		}(i)
	}
	wg.Wait()
	return fmt.Sprintf("300 trickled bodies: %d answered 408, %d cut, %d other", answered408.Load(), cut.Load(), other.Load()), nil
}

func bigFrames(ctx context.Context, t *target) (string, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	base := "http://" + t.addr("listen-client") + "/http?connectionId=" + randomID()
	post := func(action, body string) (int, int, error) {
		resp, err := hc.Post(base+"&action="+action, "text/plain", strings.NewReader(body))
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			n += len(sc.Bytes())
		}
		return resp.StatusCode, n, nil
	}
	if code, _, err := post("open", ""); err != nil || code != 200 {
		return "", fmt.Errorf("open: %d %v", code, err)
	}
	if code, _, err := post("send", `{"message":"connection","data":[{"appKey":"defaultApp"}]}`); err != nil || code != 200 {
		return "", fmt.Errorf("connection: %d %v", code, err)
	}
	frame := `{"message":"` + strings.Repeat("<", 1<<20-64) + `","data":[]}`
	codes := map[int]int{}
	largest := 0
	for i := 0; i < 150 && ctx.Err() == nil; i++ {
		code, n, err := post("send", frame)
		if err != nil {
			return "", err
		}
		codes[code]++
		largest = max(largest, n)
	}
	return fmt.Sprintf("150 × 1 MB: answers %v, the largest %d bytes", codes, largest), nil
}

func openFlood(ctx context.Context, t *target) (string, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64,
		DialContext: from(0).DialContext}}
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u := "http://" + t.addr("listen-client") + "/http?" + url.Values{"action": {"open"}, "connectionId": {fmt.Sprintf("flood%027d", i)}}.Encode()
				code := 0
				if resp, err := hc.Post(u, "text/plain", nil); err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	deadline := time.After(30 * time.Second)
	for i := 0; i < 10200; i++ {
		select {
		case jobs <- i:
			continue
		case <-deadline:
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	var parts []string
	for code, n := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", n, code))
	}
	sort.Strings(parts)
	return "10 200 opens from one address: " + strings.Join(parts, " "), nil
}

func ngCache(ctx context.Context, t *target) (string, error) {
	conn, err := net.Dial("udp", t.addr("listen-ng"))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	pad := strings.Repeat("a=x-pad:"+strings.Repeat("p", 100)+"\r\n", 550) // ~60 KB
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n" + pad
	body := fmt.Sprintf("d7:command5:offer7:call-id10:cache-call8:from-tag1:a3:sdp%d:%se", len(sdp), sdp)
	// Replies are read in the background: the cache holds them whether or
	// not anyone reads.
	go func() {
		buf := make([]byte, 1<<17)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	sent := 0
	for ; sent < 30000 && time.Now().Before(deadline) && ctx.Err() == nil; sent++ {
		if _, err := conn.Write([]byte(fmt.Sprintf("c%d %s", sent, body))); err != nil {
			break
		}
		if sent%200 == 199 {
			time.Sleep(50 * time.Millisecond) // within the socket buffers: every offer runs
		}
	}
	return fmt.Sprintf("%d re-offers of %d bytes", sent, len(body)), nil
}

func garbage(ctx context.Context, t *target) (string, error) {
	var sent atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(15 * time.Second)
	for _, key := range []string{"listen-sip", "listen-ng"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("udp", t.addr(key))
			if err != nil {
				return
			}
			defer conn.Close()
			junk := []byte("INVITE \x00\xff<script>" + strings.Repeat("garbage ", 150))
			for i := 0; i < 500000 && ctx.Err() == nil; i++ {
				if i%1000 == 0 && time.Now().After(deadline) {
					return
				}
				if _, err := conn.Write(junk); err == nil {
					sent.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d datagrams of 1 KB", sent.Load()), nil
}

func controlIdle(ctx context.Context, t *target) (string, error) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addr := t.addr("listen-http")
	for i := 0; i < 300 && ctx.Err() == nil; i++ {
		c, err := from(i).DialContext(ctx, "tcp", addr)
		if err != nil {
			continue
		}
		// One request, then the connection stays open and idle.
		fmt.Fprintf(c, "GET /ping HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		conns = append(conns, c)
	}
	ws := 0
	for i := 0; i < 50 && ctx.Err() == nil; i++ {
		c, err := from(i).DialContext(ctx, "tcp", addr)
		if err != nil {
			continue
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: echo.rtpengine.com\r\n\r\n", addr)
		conns = append(conns, c)
		ws++
	}
	kept := holdAndCount(ctx, conns, 10*time.Second)
	return fmt.Sprintf("%d keep-alive connections and %d echo WebSockets: %d still open after 10 s", len(conns)-ws, ws, kept), nil
}
