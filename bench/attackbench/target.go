package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/ng"
)

// target is the rtcgate under attack.
type target struct {
	child *rtcgatechild.Child
	pid   int
}

func (t *target) addr(key string) string { return t.child.Addr(key) }

func (t *target) ng() *ng.Client {
	return &ng.Client{URL: t.addr("listen-ng"), Timeout: time.Second, Attempts: 2}
}

// prober is 127.0.0.250: no attack sends from there.
var prober = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 250)}

func proberHTTP(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil,
		DialContext: (&net.Dialer{LocalAddr: prober, Timeout: timeout}).DialContext}}
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// prlimit lowers rtcgate's descriptor limit, as `ulimit -n` would have.
func prlimit(pid, n int) error {
	out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", n, n)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("prlimit: %v: %s", err, out)
	}
	return nil
}

// settleBaseline lets a fresh rtcgate finish starting (its RSS grows for a
// moment) before the baseline is read.
func (t *target) settleBaseline(ctx context.Context) {
	prev := rssMiB(t.pid)
	for i := 0; i < 20 && ctx.Err() == nil; i++ {
		time.Sleep(250 * time.Millisecond)
		cur := rssMiB(t.pid)
		if cur-prev < 0.5 {
			return
		}
		prev = cur
	}
}

// waitSettled waits up to d for the descriptors to come back to fds and
// RSS to within 10 MiB of rss: caches expire on their own clock (the ng
// reply cache's generations are 30 s), so "after" is read once rtcgate is
// back or d has passed.
func (t *target) waitSettled(ctx context.Context, d time.Duration, fds int, rss float64) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil && (fdCount(t.pid) > fds+10 || rssMiB(t.pid) > rss+10) {
		time.Sleep(250 * time.Millisecond)
	}
}

// sampler follows a figure until stopped.
type sampler struct {
	stopc chan struct{}
	done  chan float64
}

func (s *sampler) stop() float64 {
	close(s.stopc)
	return <-s.done
}

// startRSSSampler reads rtcgate's RSS every 100 ms; stop returns the peak.
func startRSSSampler(ctx context.Context, pid int) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan float64, 1)}
	go func() {
		peak := rssMiB(pid)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				peak = max(peak, rssMiB(pid))
			case <-s.stopc:
				s.done <- max(peak, rssMiB(pid))
				return
			case <-ctx.Done():
				s.done <- peak
				return
			}
		}
	}()
	return s
}

// probes ask rtcgate every 500 ms what a user and an operator would: /ping,
// an ng ping, a client connection (WebSocket, connection → getUserData).
type probes struct {
	stopc chan struct{}
	done  chan struct{}

	mu     sync.Mutex
	n, ok  int
	errors map[string]int
}

func startProbes(ctx context.Context, t *target) *probes {
	p := &probes{stopc: make(chan struct{}), done: make(chan struct{}), errors: map[string]int{}}
	hc := proberHTTP(2 * time.Second)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stopc:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for name, probe := range map[string]func() error{
				"ping":   func() error { return pingHTTP(hc, t.addr("listen-http")) },
				"ng":     func() error { return pingNG(ctx, t) },
				"client": func() error { return connectClient(ctx, hc, t.addr("listen-client")) },
			} {
				err := probe()
				p.mu.Lock()
				p.n++
				if err == nil {
					p.ok++
				} else {
					p.errors[name+": "+shorten(err.Error())]++
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *probes) stop() {
	select {
	case <-p.stopc:
	default:
		close(p.stopc)
	}
	<-p.done
}

func (p *probes) counts() (int, int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []string
	for e, n := range p.errors {
		errs = append(errs, fmt.Sprintf("%d× %s", n, e))
	}
	sort.Strings(errs)
	return p.n, p.ok, strings.Join(errs, "; ")
}

var hexRun = regexp.MustCompile(`[0-9a-f]{8,}|:\d{2,5}`)

// shorten keeps an error's message short and groupable.
func shorten(s string) string {
	s = hexRun.ReplaceAllString(s, "…")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func pingHTTP(hc *http.Client, addr string) error {
	resp, err := hc.Get("http://" + addr + "/ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("/ping: %s", resp.Status)
	}
	return nil
}

func pingNG(ctx context.Context, t *target) error {
	var d bencode.Dict
	d.Set("command", "ping")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := t.ng().Do(ctx, &d)
	if err != nil {
		return err
	}
	if res["result"] != "pong" {
		return fmt.Errorf("ng ping: %v", res["result"])
	}
	return nil
}

func connectClient(ctx context.Context, hc *http.Client, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"message":"connection","data":[{"appKey":"defaultApp"}]}`)); err != nil {
		return err
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), `"getUserData"`) {
		return fmt.Errorf("connection answered %.60s", b)
	}
	c.Close(websocket.StatusNormalClosure, "")
	return nil
}

// call is an ng call between two loopback sockets, A → relay → B, with RTP
// flowing from A at 50 packets a second until stopped.
type call struct {
	id         string
	t          *target
	a, b       *net.UDPConn
	relay      *net.UDPAddr // where A sends to reach B
	sent, got  atomic.Int64
	stopc, end chan struct{}
}

var mAudio = regexp.MustCompile(`(?m)^m=audio (\d+) `)

func sdpOf(c *net.UDPConn) string {
	port := c.LocalAddr().(*net.UDPAddr).Port
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", port)
}

func (t *target) newCall(ctx context.Context) (*call, error) {
	c := &call{id: fmt.Sprintf("attackbench-%d", time.Now().UnixNano()), t: t, stopc: make(chan struct{}), end: make(chan struct{})}
	var err error
	if c.a, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	if c.b, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	do := func(cmd, sdp string, kv ...string) (string, error) {
		var d bencode.Dict
		d.Set("command", cmd)
		d.Set("call-id", c.id)
		d.Set("sdp", sdp)
		for i := 0; i+1 < len(kv); i += 2 {
			d.Set(kv[i], kv[i+1])
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		res, err := t.ng().Do(ctx, &d)
		if err != nil {
			return "", err
		}
		if res["result"] != "ok" {
			return "", fmt.Errorf("%s: %v %v", cmd, res["result"], res["error-reason"])
		}
		s, _ := res["sdp"].(string)
		return s, nil
	}
	if _, err := do("offer", sdpOf(c.a), "from-tag", "a"); err != nil {
		return nil, err
	}
	ans, err := do("answer", sdpOf(c.b), "from-tag", "a", "to-tag", "b")
	if err != nil {
		return nil, err
	}
	m := mAudio.FindStringSubmatch(ans)
	if m == nil {
		return nil, fmt.Errorf("answer SDP without m=audio")
	}
	port, _ := strconv.Atoi(m[1])
	c.relay = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	go c.receive()
	go c.stream()
	return c, nil
}

func (c *call) stream() {
	pkt := make([]byte, 172)
	pkt[0], pkt[1] = 0x80, 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for seq := uint16(0); ; seq++ {
		select {
		case <-c.stopc:
			close(c.end)
			return
		case <-tick.C:
		}
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		if _, err := c.a.WriteToUDP(pkt, c.relay); err == nil {
			c.sent.Add(1)
		}
	}
}

func (c *call) receive() {
	buf := make([]byte, 2048)
	for {
		if _, _, err := c.b.ReadFromUDP(buf); err != nil {
			return
		}
		c.got.Add(1)
	}
}

// stop ends the stream and counts: packets sent, and lost after a grace
// for the last ones in flight. The first packets latch the relay and are
// not losses: rtcgate forwards from the first one.
func (c *call) stop() (int, int) {
	select {
	case <-c.stopc:
	default:
		close(c.stopc)
		<-c.end
	}
	time.Sleep(300 * time.Millisecond)
	sent, got := c.sent.Load(), c.got.Load()
	return int(sent), int(max(0, sent-got))
}

func (c *call) close() {
	c.stop()
	c.a.Close()
	c.b.Close()
}
