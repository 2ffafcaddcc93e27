package e2e

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/kernelfwd"
	"github.com/rtcgate/rtcgate/internal/ng"
)

// The kernel path (kernel-forwarding) end to end: the real binary, real
// RTP over loopback, the rules read back from the kernel itself.

// needKernel skips a test that needs the kernel path when this process,
// and so rtcgate started from it, lacks the capabilities for it.
func needKernel(t *testing.T) {
	t.Helper()
	if err := kernelfwd.Capable(); err != nil {
		t.Skipf("kernel forwarding cannot run here: %v", err)
	}
}

// streamLine is one stream of `list sessions <callid>`.
type streamLine struct {
	packets, kernel int64
	path            string
}

var portLine = regexp.MustCompile(`(?m)^-------- Port\s+\S+:(\d+)\s+<>.*?, (\d+) p, \d+ b, \d+ e, \d+ ts, (.*), kernel (\d+) p \d+ b$`)

// listStream reads the stream on relay port port from `list sessions`.
func listStream(t *testing.T, r *rtcgate, callID string, port int) streamLine {
	t.Helper()
	out, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r.addr(t, "listen-http"), "list", "sessions", callID)
	for _, m := range portLine.FindAllStringSubmatch(out, -1) {
		if m[1] == strconv.Itoa(port) {
			p, _ := strconv.ParseInt(m[2], 10, 64)
			k, _ := strconv.ParseInt(m[4], 10, 64)
			return streamLine{packets: p, kernel: k, path: m[3]}
		}
	}
	t.Fatalf("list sessions %s has no stream on port %d:\n%s", callID, port, out)
	return streamLine{}
}

// kernelRules counts the entries of the process's rules map, found through
// its file descriptors: what the kernel holds, whatever rtcgate thinks. ok
// is false when it has no map.
func kernelRules(t *testing.T, pid int) (n int, ok bool) {
	t.Helper()
	in, err := kernelfwd.Inspect(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Rules == nil {
		return 0, false
	}
	n, err = in.RuleCount()
	if err != nil {
		t.Fatal(err)
	}
	return n, true
}

// callRun is what one call through a relay delivered and counted.
type callRun struct {
	toB, toA         []string // payloads in arrival order
	rtp, rtcp        int64    // query totals
	path             string   // A's RTP stream, after the flow
	kernel           int64    // A's RTP packets forwarded in the kernel
	socketAfterLatch int64    // A's RTP packets the socket saw after the first ones
	rules            int      // rules in the kernel while the call ran
}

// playKernelCall sets up a call, confirms both parties with a first RTP and
// RTCP packet each way, then sends n RTP packets each way and reads them
// all, and deletes the call.
func playKernelCall(t *testing.T, r *rtcgate, callID string, n int) callRun {
	t.Helper()
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	a, b := newParty(t), newParty(t)
	offer := c.Do(t, map[string]any{"command": "offer", "call-id": callID, "from-tag": "A", "sdp": a.sdp()})
	requireOK(t, offer)
	relayB, relayBRTCP := relayPorts(t, str(t, offer, "sdp"))
	answer := c.Do(t, map[string]any{"command": "answer", "call-id": callID, "from-tag": "A", "to-tag": "B", "sdp": b.sdp()})
	requireOK(t, answer)
	relayA, relayARTCP := relayPorts(t, str(t, answer, "sdp"))

	sendExpect(t, a.rtp, relayA, b.rtp, relayB, rtpPacket(0, "latch A"))
	sendExpect(t, b.rtp, relayB, a.rtp, relayA, rtpPacket(0, "latch B"))
	sendExpect(t, a.rtcp, relayARTCP, b.rtcp, relayBRTCP, rtcpPacket())
	sendExpect(t, b.rtcp, relayBRTCP, a.rtcp, relayARTCP, rtcpPacket())
	before := listStream(t, r, callID, relayA)

	var run callRun
	recvAll := func(from, to *net.UDPConn, relay int, tag string) []string {
		var got []string
		buf := make([]byte, 2048)
		for i := range n {
			from.WriteToUDP(rtpPacket(uint16(i+1), fmt.Sprintf("%s %d", tag, i)), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relay})
			to.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, _, err := to.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("%s packet %d lost: %v", tag, i, err)
			}
			got = append(got, string(buf[12:k]))
		}
		return got
	}
	run.toB = recvAll(a.rtp, b.rtp, relayA, "A")
	run.toA = recvAll(b.rtp, a.rtp, relayB, "B")
	after := listStream(t, r, callID, relayA)
	run.path, run.kernel = after.path, after.kernel-before.kernel
	run.socketAfterLatch = (after.packets - after.kernel) - (before.packets - before.kernel)
	run.rules, _ = kernelRules(t, r.cmd.Process.Pid)

	q := c.Do(t, map[string]any{"command": "query", "call-id": callID})
	requireOK(t, q)
	totals := q["totals"].(map[string]any)
	run.rtp = totals["RTP"].(map[string]any)["packets"].(int64)
	run.rtcp = totals["RTCP"].(map[string]any)["packets"].(int64)
	streams := q["tags"].(map[string]any)["A"].(map[string]any)["medias"].([]any)[0].(map[string]any)["streams"].([]any)
	flags := fmt.Sprint(streams[0].(map[string]any)["flags"])
	if strings.Contains(flags, "kernelized") != (run.path == "kernel") {
		t.Errorf("query flags %s disagree with path %q", flags, run.path)
	}
	requireOK(t, c.Do(t, map[string]any{"command": "delete", "call-id": callID, "from-tag": "A", "delete delay": int64(0)}))
	return run
}

// TestKernelForwarding: with the default kernel-forwarding (auto) on this
// machine, a confirmed call's RTP goes through the kernel both ways: every
// packet arrives in order, list sessions and query count them and name the
// path while the relay's socket sees none, the metrics split the paths,
// and the kernel holds one rule per stream until the delete removes them.
func TestKernelForwarding(t *testing.T) {
	needKernel(t)
	// auto named here, so that RTCGATE_KERNEL_FORWARDING=off (the whole
	// suite run without the kernel path) leaves this test as it is.
	r := start(t, append(ephemeral, "--port-min", "21300", "--port-max", "21399", "--kernel-forwarding", "auto")...)
	if !strings.Contains(r.Logs(), `"msg":"kernel forwarding on"`) {
		t.Fatalf("kernel forwarding did not load:\n%s", grepLines(r.Logs(), "kernel"))
	}
	const n = 200
	run := playKernelCall(t, r, "kcall", n)
	if run.path != "kernel" || run.kernel != n || run.socketAfterLatch != 0 {
		t.Errorf("A's RTP: path %q, %d packets in the kernel (want %d), %d at the socket after latching (want 0)",
			run.path, run.kernel, n, run.socketAfterLatch)
	}
	if run.rtp != 2*(n+1) || run.rtcp != 2 {
		t.Errorf("query totals RTP %d RTCP %d, want %d and 2", run.rtp, run.rtcp, 2*(n+1))
	}
	if run.rules != 4 {
		t.Errorf("%d rules in the kernel during the call, want 4 (RTP and RTCP both ways)", run.rules)
	}
	if left, ok := kernelRules(t, r.cmd.Process.Pid); !ok || left != 0 {
		t.Errorf("after delete: %d rules left (map found: %v)", left, ok)
	}
	m := scrape(t, "http://"+r.addr(t, "listen-http"))
	if !regexp.MustCompile(`rtpengine_packets_total\{type="kernel"\} (\d+)\n`).MatchString(m) ||
		!strings.Contains(m, fmt.Sprintf("rtpengine_packets_total{type=\"kernel\"} %d\n", 2*n)) ||
		!strings.Contains(m, "rtpengine_packets_total{type=\"userspace\"} 4\n") ||
		!strings.Contains(m, "rtcgate_kernel_forwarding 1\n") || !strings.Contains(m, "rtcgate_kernel_rules 0\n") {
		t.Errorf("metrics:\n%s", grepLines(m, "kernel"))
	}
	totals, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r.addr(t, "listen-http"), "list", "totals")
	contains(t, "list totals", totals, fmt.Sprintf(" Total relayed packets (kernel)                  :%d\n", 2*n),
		fmt.Sprintf(" Total relayed packets                           :%d\n", 2*n+4))
}

// TestKernelFallback: kernel-forwarding off, and auto where the program
// cannot load (CAP_BPF dropped), relay the same call identically in
// userspace; auto says why in one log line; required refuses to start,
// naming the missing capability.
func TestKernelFallback(t *testing.T) {
	needKernel(t)
	const n = 50
	ref := playKernelCall(t, start(t, append(ephemeral, "--port-min", "21400", "--port-max", "21419", "--kernel-forwarding", "auto")...), "ref", n)
	if ref.path != "kernel" {
		t.Fatalf("reference run not in the kernel: %q", ref.path)
	}
	noBPF := []string{"setpriv", "--bounding-set", "-bpf,-sys_admin", "--"}
	for _, c := range []struct {
		name    string
		wrapper []string
		args    []string
		log     string
	}{
		{"off", nil, []string{"--kernel-forwarding", "off"}, ""},
		{"auto without CAP_BPF", noBPF, []string{"--kernel-forwarding", "auto"}, "needs CAP_BPF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.wrapper != nil {
				needTool(t, "setpriv", "util-linux")
			}
			r := startVia(t, c.wrapper, append(append(ephemeral, "--port-min", "21420", "--port-max", "21439"), c.args...)...)
			lines := grepLines(r.Logs(), "kernel forwarding")
			if c.log != "" && (strings.Count(lines, "\n") != 0 || !strings.Contains(lines, "kernel forwarding unavailable") || !strings.Contains(lines, c.log)) {
				t.Errorf("want one line saying why:\n%s", lines)
			}
			if c.log == "" && lines != "" {
				t.Errorf("off logged: %s", lines)
			}
			run := playKernelCall(t, r, "fallback", n)
			if run.path != "userspace" || run.kernel != 0 || run.socketAfterLatch != n || run.rules != 0 {
				t.Errorf("path %q, %d in the kernel, %d at the socket, %d rules", run.path, run.kernel, run.socketAfterLatch, run.rules)
			}
			if fmt.Sprint(run.toA, run.toB) != fmt.Sprint(ref.toA, ref.toB) || run.rtp != ref.rtp || run.rtcp != ref.rtcp {
				t.Errorf("relayed differently from the kernel path: totals %d/%d vs %d/%d", run.rtp, run.rtcp, ref.rtp, ref.rtcp)
			}
			if m := scrape(t, "http://"+r.addr(t, "listen-http")); !strings.Contains(m, "rtcgate_kernel_forwarding 0\n") ||
				!strings.Contains(m, "rtpengine_packets_total{type=\"kernel\"} 0\n") {
				t.Errorf("metrics:\n%s", grepLines(m, "kernel"))
			}
		})
	}
	t.Run("required without CAP_BPF", func(t *testing.T) {
		needTool(t, "setpriv", "util-linux")
		args := append(append(noBPF, binary, "serve", "--kernel-forwarding", "required", "--port-min", "21440", "--port-max", "21459"), ephemeral...)
		_, stderr, code := runCmd(t, 30*time.Second, args[0], args[1:]...)
		if code != 2 || !strings.Contains(stderr, "config: kernel-forwarding: required, but kernel forwarding needs CAP_BPF") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if strings.Contains(stderr, "listening") {
			t.Errorf("it listened before refusing: %q", stderr)
		}
	})
}

// TestKernelRulesGoWithTimeouts: calls forwarded in the kernel that fall
// silent time out (the kernel's last-packet times count while they flow)
// and leave no rule behind.
func TestKernelRulesGoWithTimeouts(t *testing.T) {
	needKernel(t)
	r := start(t, append(ephemeral, "--port-min", "21460", "--port-max", "21499", "--timeout", "2", "--kernel-forwarding", "auto")...)
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	a, b := newParty(t), newParty(t)
	offer := c.Do(t, map[string]any{"command": "offer", "call-id": "t", "from-tag": "A", "sdp": a.sdp()})
	requireOK(t, offer)
	relayB, _ := relayPorts(t, str(t, offer, "sdp"))
	answer := c.Do(t, map[string]any{"command": "answer", "call-id": "t", "from-tag": "A", "to-tag": "B", "sdp": b.sdp()})
	requireOK(t, answer)
	relayA, _ := relayPorts(t, str(t, answer, "sdp"))
	sendExpect(t, a.rtp, relayA, b.rtp, relayB, rtpPacket(0, "A"))
	sendExpect(t, b.rtp, relayB, a.rtp, relayA, rtpPacket(0, "B"))

	// Three seconds of media in the kernel outlive the two-second timeout.
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 2048)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		a.rtp.WriteToUDP(rtpPacket(seq, "A"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relayA})
		b.rtp.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := b.rtp.Read(buf); err != nil {
			t.Fatalf("kernel media stopped: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := listStream(t, r, "t", relayA); s.path != "kernel" || s.kernel < 100 {
		t.Fatalf("media did not go through the kernel: %+v", s)
	}
	if rules, _ := kernelRules(t, r.cmd.Process.Pid); rules != 2 {
		t.Errorf("%d rules during the call, want 2", rules)
	}
	eventually(t, 10*time.Second, "the silent call times out", func() bool {
		return len(c.Do(t, map[string]any{"command": "list"})["calls"].([]any)) == 0
	})
	if rules, ok := kernelRules(t, r.cmd.Process.Pid); !ok || rules != 0 {
		t.Errorf("after the timeout: %d rules (map found: %v)", rules, ok)
	}
	if m := scrape(t, "http://"+r.addr(t, "listen-http")); !strings.Contains(m, `rtpengine_closed_sessions_total{reason="timeout"} 1`+"\n") {
		t.Errorf("not a timeout:\n%s", grepLines(m, "closed"))
	}
}
