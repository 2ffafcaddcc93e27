package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// udpDrops is what the kernel dropped for the UDP socket bound to addr
// (the last column of /proc/net/udp): datagrams rtcgate never read.
func udpDrops(t *testing.T, addr string) int {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := ua.IP.To4()
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ua.Port)
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 12 && fs[1] == local {
			n, _ := strconv.Atoi(fs[len(fs)-1])
			return n
		}
	}
	t.Fatalf("no socket %s in /proc/net/udp", local)
	return 0
}

// ngPing sends one ng ping over UDP, retransmitting, and reports whether
// pong came back within limit.
func ngPing(addr string, limit time.Duration) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	cookie := newCookie()
	buf := make([]byte, 65536)
	for end := time.Now().Add(limit); time.Now().Before(end); {
		conn.Write([]byte(cookie + " d7:command4:pinge"))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil {
			if string(buf[:n]) != cookie+" d6:result4:ponge" {
				return fmt.Errorf("ng ping answered %q", buf[:n])
			}
			return nil
		}
	}
	return fmt.Errorf("no pong within %v", limit)
}

// sipOptions sends an OPTIONS over UDP, retransmitting, and reports
// whether a 200 came back within limit.
func sipOptions(addr string, limit time.Duration) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	id := newCookie()
	msg := fmt.Sprintf("OPTIONS sip:rtcgate@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=%s\r\nTo: <sip:rtcgate@%s>\r\nCall-ID: %s@probe\r\n"+
		"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", addr, conn.LocalAddr(), id, id, addr, id)
	buf := make([]byte, 65536)
	for end := time.Now().Add(limit); time.Now().Before(end); {
		conn.Write([]byte(msg))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil {
			if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 ") {
				return fmt.Errorf("OPTIONS answered %q", buf[:min(n, 100)])
			}
			return nil
		}
	}
	return fmt.Errorf("no 200 to OPTIONS within %v", limit)
}

// flood sends count datagrams made by gen to addr, within limit, and
// returns how many it sent; half-way it closes half.
func flood(addr string, count int, limit time.Duration, gen func(i int) []byte, half chan<- struct{}) int {
	var once sync.Once
	halfway := func() { once.Do(func() { close(half) }) }
	defer halfway()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	end := time.Now().Add(limit)
	sent := 0
	for i := 0; i < count && time.Now().Before(end); i++ {
		if i == count/2 {
			halfway()
		}
		if _, err := conn.Write(gen(i)); err == nil {
			sent++
		}
	}
	return sent
}

// logBytes sums the JSON log lines of one subsystem.
func logBytes(t *testing.T, logs string, subsys string) (int, []string) {
	t.Helper()
	total, lines := 0, []string{}
	for _, l := range strings.Split(logs, "\n") {
		var rec struct{ Subsys string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Subsys == subsys {
			total += len(l) + 1
			lines = append(lines, l)
		}
	}
	return total, lines
}

// TestGarbageFlood: 200 000 garbage datagrams to the SIP UDP port and as
// many to the ng port. Every one rtcgate reads is counted in
// rtcgate_bad_input_total (what it counts plus what the kernel dropped is
// what was sent); each subsystem logs a few short lines and says how many
// more it suppressed; an ng ping and a SIP OPTIONS are answered during the
// flood and after.
func TestGarbageFlood(t *testing.T) {
	const count = 200000
	r := start(t, append(ephemeral, "--port-min", "21200", "--port-max", "21299", "--log-bad-input-interval", "2s")...)
	sipAddr, ngAddr := r.addr(t, "listen-sip"), r.addr(t, "listen-ng")
	base := "http://" + r.addr(t, "listen-http")
	logStart := len(r.Logs())
	pid := r.cmd.Process.Pid
	before := rssKB(t, pid)
	watch := watchRSS(t, pid)

	// SIP: not SIP at all, now and then 60 KB of it. ng: no cookie, or a
	// cookie and no dictionary.
	big := []byte(strings.Repeat("\x01GARBAGE\xff", 6000))
	sipGen := func(i int) []byte {
		if i%1000 == 0 {
			return big
		}
		return fmt.Appendf(nil, "\x01GARBAGE %d \xff\xfe not a SIP message %s", i, strings.Repeat("x", i%200))
	}
	ngGen := func(i int) []byte {
		if i%2 == 0 {
			return fmt.Appendf(nil, "nocookie-%d", i)
		}
		return fmt.Appendf(nil, "c%d garbage%d", i, i)
	}
	var sentSIP, sentNG atomic.Int64
	halfSIP, halfNG := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	floodStart := time.Now()
	wg.Go(func() { sentSIP.Store(int64(flood(sipAddr, count, 9*time.Second, sipGen, halfSIP))) })
	wg.Go(func() { sentNG.Store(int64(flood(ngAddr, count, 9*time.Second, ngGen, halfNG))) })

	// During: probes sent half-way through each flood.
	var during sync.WaitGroup
	var duringErr [2]error
	var duringTook [2]time.Duration
	during.Go(func() {
		<-halfNG
		t0 := time.Now()
		duringErr[0] = ngPing(ngAddr, 8*time.Second)
		duringTook[0] = time.Since(t0)
	})
	during.Go(func() {
		<-halfSIP
		t0 := time.Now()
		duringErr[1] = sipOptions(sipAddr, 8*time.Second)
		duringTook[1] = time.Since(t0)
	})
	wg.Wait()
	floodTook := time.Since(floodStart)
	during.Wait()
	for i, what := range []string{"ng ping", "SIP OPTIONS"} {
		if duringErr[i] != nil {
			t.Errorf("%s during the flood: %v", what, duringErr[i])
		}
	}

	// Every datagram sent was read and counted, or dropped by the kernel.
	var m string
	var sipCounted, ngCounted float64
	var sipDrops, ngDrops int
	for end := time.Now().Add(8 * time.Second); ; {
		m = scrape(t, base)
		sipCounted = metricValue(m, `rtcgate_bad_input_total{listener="listen-sip/udp",reason="parse"}`)
		ngCounted = metricValue(m, `rtcgate_bad_input_total{listener="listen-ng",reason="no-cookie"}`) +
			metricValue(m, `rtcgate_bad_input_total{listener="listen-ng",reason="undecodable"}`)
		sipDrops, ngDrops = udpDrops(t, sipAddr), udpDrops(t, ngAddr)
		if int(sipCounted)+sipDrops >= int(sentSIP.Load()) && int(ngCounted)+ngDrops >= int(sentNG.Load()) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("counted SIP %v + dropped %d < sent %d, or ng %v + %d < %d:\n%s", sipCounted, sipDrops, sentSIP.Load(),
				ngCounted, ngDrops, sentNG.Load(), grepLines(m, "rtcgate_bad_input_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sipCounted > float64(sentSIP.Load()) || ngCounted > float64(sentNG.Load()) || sipCounted == 0 || ngCounted == 0 {
		t.Errorf("counted SIP %v of %d, ng %v of %d", sipCounted, sentSIP.Load(), ngCounted, sentNG.Load())
	}

	// After: still answering.
	if err := ngPing(ngAddr, 5*time.Second); err != nil {
		t.Errorf("ng ping after the flood: %v", err)
	}
	if err := sipOptions(sipAddr, 5*time.Second); err != nil {
		t.Errorf("SIP OPTIONS after the flood: %v", err)
	}

	// The log: each subsystem's suppressed lines are summed up at the end of
	// their interval (2 s).
	waitCond(t, "both summaries", func() bool {
		logs := r.Logs()[logStart:]
		_, sipLines := logBytes(t, logs, "sip")
		_, ngLines := logBytes(t, logs, "control")
		return strings.Contains(strings.Join(sipLines, ""), "more suppressed") && strings.Contains(strings.Join(ngLines, ""), "more suppressed")
	})
	peak := watch.Stop()
	logs := r.Logs()[logStart:]
	sipBytes, sipLines := logBytes(t, logs, "sip")
	ngBytes, ngLines := logBytes(t, logs, "control")
	t.Logf("sent SIP %d, ng %d in %v; counted SIP %v (kernel dropped %d), ng %v (dropped %d); probes during answered in %v, %v; "+
		"log: sip %d bytes in %d lines, control %d bytes in %d lines (all %d bytes); RSS before %d KiB, peak %d KiB, after %d KiB",
		sentSIP.Load(), sentNG.Load(), floodTook.Round(time.Millisecond), sipCounted, sipDrops, ngCounted, ngDrops,
		duringTook[0].Round(time.Millisecond), duringTook[1].Round(time.Millisecond),
		sipBytes, len(sipLines), ngBytes, len(ngLines), len(logs), before, peak, rssKB(t, pid))
	// The limiter's contract: per subsystem, at most 5 lines and one
	// summary per interval (2 s) for as long as the flood and its summary
	// took, each line bounded (the excerpt is at most MaxExcerpt printable
	// bytes): so the budget follows the flood's length, which load stretches.
	intervals := int(time.Since(floodStart)/(2*time.Second)) + 2
	budget := intervals * 6 * 640
	for _, s := range []struct {
		name  string
		bytes int
		lines []string
	}{{"sip", sipBytes, sipLines}, {"control", ngBytes, ngLines}} {
		if len(s.lines) > intervals*6 {
			t.Errorf("%s logged %d lines in %d intervals of 2 s (at most 6 each)", s.name, len(s.lines), intervals)
		}
		if s.bytes > budget {
			t.Errorf("%s logged %d bytes for the flood:\n%s", s.name, s.bytes, strings.Join(s.lines, "\n"))
		}
		for _, l := range s.lines {
			if len(l) > 640 {
				t.Errorf("%s logged a %d-byte line: %.300s…", s.name, len(l), l)
			}
		}
	}
	if len(logs) > 3*budget {
		t.Errorf("%d bytes of log for the flood", len(logs))
	}
}
