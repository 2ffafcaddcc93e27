package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/ng"
)

// rssKB is a process's resident set (VmRSS) in KiB.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// rssWatch samples a process's RSS until stopped and keeps the peak.
type rssWatch struct {
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(t *testing.T, pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.peak.Store(int64(rssKB(t, pid)))
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
				if err != nil {
					return
				}
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
						kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
						if int64(kb) > w.peak.Load() {
							w.peak.Store(int64(kb))
						}
					}
				}
			}
		}
	}()
	return w
}

func (w *rssWatch) Stop() int {
	close(w.stop)
	<-w.done
	return int(w.peak.Load())
}

// metricValue is one sample's value in Prometheus text, 0 when absent.
func metricValue(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// bigSDP is an offer of about size bytes: one audio section padded with
// attributes, as a re-offer with many codecs and candidates can be.
func bigSDP(p *party, size int) string {
	var b strings.Builder
	b.WriteString(p.sdp())
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "a=x-pad-%d:%s\r\n", i, strings.Repeat("p", 200))
	}
	return b.String()
}

// TestNgCookieCacheBounded: thousands of re-offers with a 60 KB SDP, each
// under a new cookie, keep at most ng-cookie-cache-bytes of replies; RSS
// stays within the bound and a margin; the last cookie's retransmission is
// still answered from the cache without running again.
func TestNgCookieCacheBounded(t *testing.T) {
	const cacheBytes = 8 << 20
	const offers, senders = 3000, 4
	r := start(t, append(ephemeral, "--port-min", "21000", "--port-max", "21099",
		"--ng-cookie-cache-bytes", strconv.Itoa(cacheBytes))...)
	ngAddr := r.addr(t, "listen-ng")
	base := "http://" + r.addr(t, "listen-http")
	a := newParty(t)
	sdp := bigSDP(a, 60000)
	pid := r.cmd.Process.Pid

	// One call per sender, made before the baseline is taken.
	c := udpNG{ngAddr, ng.Bencode}
	for i := range senders {
		requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": fmt.Sprintf("big%d", i), "from-tag": "x", "sdp": sdp}))
	}
	before := rssKB(t, pid)
	watch := watchRSS(t, pid)
	deadline := time.Now().Add(15 * time.Second)
	var wg sync.WaitGroup
	var answered atomic.Int64
	// The last request answered, and its reply.
	var lastMu sync.Mutex
	var last, lastReply []byte
	var lastConn net.Conn
	start := time.Now()
	for i := range senders {
		wg.Go(func() {
			conn, err := net.Dial("udp", ngAddr)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { conn.Close() })
			buf := make([]byte, 65536)
			body := encodeReq(t, map[string]any{"command": "offer", "call-id": fmt.Sprintf("big%d", i), "from-tag": "x", "sdp": sdp}, ng.Bencode)
			for n := 0; n < offers/senders && time.Now().Before(deadline); n++ {
				msg := append([]byte(fmt.Sprintf("big%d_%d ", i, n)), body...)
				for attempt := 0; ; attempt++ {
					conn.Write(msg)
					conn.SetReadDeadline(time.Now().Add(2 * time.Second))
					k, err := conn.Read(buf)
					if err == nil {
						lastMu.Lock()
						last, lastReply, lastConn = msg, append([]byte(nil), buf[:k]...), conn
						lastMu.Unlock()
						answered.Add(1)
						break
					}
					if attempt == 3 {
						t.Errorf("sender %d: offer %d unanswered", i, n)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	peak := watch.Stop()
	m := scrape(t, base)
	after := rssKB(t, pid)
	held := metricValue(m, "rtcgate_ng_cookie_cache_bytes")
	t.Logf("%d re-offers of %d bytes in %v: RSS before %d KiB, peak %d KiB, after %d KiB; cache %v bytes, %v entries",
		answered.Load(), len(sdp), elapsed.Round(time.Millisecond), before, peak, after, held, metricValue(m, "rtcgate_ng_cookie_cache_entries"))
	if answered.Load() != offers {
		t.Fatalf("%d of %d offers answered", answered.Load(), offers)
	}
	if held <= 0 || held > cacheBytes {
		t.Errorf("the cache holds %v bytes, bound %d", held, cacheBytes)
	}
	// 3000 replies of 60 KB are 180 MB; the bound is 8 MiB. The margin
	// covers the garbage of requests in flight and the race detector's
	// shadow memory.
	if growth := (peak - before) << 10; growth > cacheBytes+96<<20 {
		t.Errorf("RSS grew by %d MiB (before %d KiB, peak %d KiB) with an %d MiB cache", growth>>20, before, peak, cacheBytes>>20)
	}

	// A retransmission of the last cookie (from the same socket): the same
	// reply, from the cache.
	offersRun := metricValue(m, `rtpengine_requests_total{request="offer"}`)
	conn := lastConn
	conn.Write(last)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], lastReply) {
		t.Errorf("retransmission answered differently")
	}
	if got := metricValue(scrape(t, base), `rtpengine_requests_total{request="offer"}`); got != offersRun {
		t.Errorf("the retransmitted offer ran again: %v offers, %v before", got, offersRun)
	}
}

var portCount = regexp.MustCompile(`(?m)^m=audio \d+/`)

// TestNgPortCount: an offer with "m=audio PORT/2" gets one port back, the
// count dropped with a warning; "/300" is refused with a reason that says
// why, and leaves no call behind.
func TestNgPortCount(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "21100", "--port-max", "21199")...)
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	a := newParty(t)
	port := strconv.Itoa(a.port(a.rtp))
	two := strings.Replace(a.sdp(), "m=audio "+port+" ", "m=audio "+port+"/2 ", 1)
	reply := c.Do(t, map[string]any{"command": "offer", "call-id": "pc2", "from-tag": "x", "sdp": two})
	requireOK(t, reply)
	sdp := str(t, reply, "sdp")
	if !mLine.MatchString(sdp) || portCount.MatchString(sdp) {
		t.Errorf("rewritten m= line keeps a port count:\n%s", sdp)
	}
	if w, _ := reply["warning"].(string); !strings.Contains(w, "port count /2 dropped") {
		t.Errorf("warning %q", reply["warning"])
	}

	many := strings.Replace(a.sdp(), "m=audio "+port+" ", "m=audio "+port+"/300 ", 1)
	reply = c.Do(t, map[string]any{"command": "offer", "call-id": "pc300", "from-tag": "x", "sdp": many})
	if reply["result"] != "error" || reply["error-reason"] != "Failed to parse SDP: m= section 1 asks for 300 consecutive ports (at most 10; one port pair is relayed)" {
		t.Fatalf("offer with /300 = %v", reply)
	}
	if calls := c.Do(t, map[string]any{"command": "list"})["calls"].([]any); len(calls) != 1 {
		t.Fatalf("calls after the refused offer: %v", calls)
	}
}
