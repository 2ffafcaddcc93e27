package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
)

// The SIP side: Debian's Kamailio as registrar and proxy, and sipp as the
// far end. internal/testpeer runs the same peers for tests but takes a
// testing.TB; this program starts its own, from the config and scenario
// next to this file, as children in their own process groups (childproc),
// so that a Ctrl-C stops them in order.

//go:embed kamailio.cfg.tmpl
var kamailioCfg string

var kamailioTmpl = template.Must(template.New("kamailio.cfg").Parse(kamailioCfg))

//go:embed uas.xml
var uasScenario []byte

// domain is the SIP domain the users register in. It does not resolve:
// clients send everything to Kamailio's address (sipOutboundProxy).
const domain = "sipbench.test"

// user is one Kamailio account.
type user struct{ Name, Password string }

// benchUsers are the accounts u0000, u0001… with passwords that differ per
// user, so that a mix-up between sessions fails to register.
func benchUsers(n int) []user {
	width := max(4, len(strconv.Itoa(n-1)))
	out := make([]user, n)
	for i := range out {
		name := fmt.Sprintf("u%0*d", width, i)
		out[i] = user{Name: name, Password: "pw-" + name}
	}
	return out
}

// kamailio is the running registrar and proxy.
type kamailio struct {
	*childproc.Process
	Addr string // 127.0.0.1:PORT, UDP and TCP
}

// startKamailio renders the config for users and the route callee → uas
// and runs Kamailio in the foreground (-DD: its main process stays our
// child; its workers are forked into the same process group, which is how
// their CPU is summed). It returns once Kamailio answers an OPTIONS.
func startKamailio(ctx context.Context, env *runEnv, users []user, callee, uas string) (*kamailio, error) {
	bin, err := lookBin("kamailio", "/usr/sbin/kamailio")
	if err != nil {
		return nil, err
	}
	// Debian's multiarch directory, e.g. /usr/lib/x86_64-linux-gnu.
	tm, _ := filepath.Glob("/usr/lib/*/kamailio/modules/tm.so")
	if len(tm) == 0 {
		return nil, errors.New("no Kamailio modules in /usr/lib/*/kamailio/modules: install the Debian package kamailio (scripts/bench-deps.sh)")
	}
	dir := filepath.Join(env.dir, "kamailio")
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	logPath := filepath.Join(env.dir, "kamailio.log")
	var lastErr error
	// The port is free when picked but may be taken before Kamailio binds
	// it; a failed bind gets another port.
	for range 3 {
		port, err := freePort(func(p int) bool { return tcpFree(p) })
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		var buf bytes.Buffer
		err = kamailioTmpl.Execute(&buf, map[string]any{
			"Addr": addr, "Domain": domain, "Users": users, "Callee": callee, "UAS": uas,
			"ModulesDir": filepath.Dir(tm[0]), "Children": env.cfg.kamChildren,
			"HashBits": max(4, min(16, bits.Len(uint(len(users))))),
		})
		if err != nil {
			return nil, fmt.Errorf("kamailio.cfg: %w", err)
		}
		if err := os.WriteFile(cfgPath, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
		// Shared memory for a few thousand transactions in flight and the
		// usrloc of every user; -n overrides children= (kept equal).
		p, err := childproc.Start(bin, []string{"-f", cfgPath, "-DD", "-E",
			"-n", strconv.Itoa(env.cfg.kamChildren), "-N", "1",
			"-w", dir, "-Y", run, "-P", filepath.Join(dir, "kamailio.pid"), "-m", "256", "-M", "16"},
			childproc.Options{Name: "kamailio", LogPath: logPath})
		if err != nil {
			return nil, err
		}
		k := &kamailio{Process: p, Addr: addr}
		lastErr = waitSIP(ctx, addr, p, 10*time.Second)
		if lastErr == nil {
			return k, nil
		}
		p.Stop()
		if !strings.Contains(childproc.LogTail(logPath, 50), "bind") {
			break
		}
	}
	return nil, fmt.Errorf("kamailio did not come up: %v; log %s, last lines:\n%s", lastErr, logPath, indent(childproc.LogTail(logPath, 15)))
}

// waitSIP sends OPTIONS to addr over UDP until any SIP response comes back,
// the process exits, or limit passes.
func waitSIP(ctx context.Context, addr string, p *childproc.Process, limit time.Duration) error {
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	deadline := time.Now().Add(limit)
	buf := make([]byte, 4096)
	for i := 1; i <= 200 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		if !p.Alive() {
			return p.ExitError()
		}
		req := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-sipbench-%d;rport\r\n"+
			"Max-Forwards: 70\r\n"+
			"From: <sip:probe@%s>;tag=probe%d\r\n"+
			"To: <sip:%s>\r\n"+
			"Call-ID: sipbench-probe-%d@%s\r\n"+
			"CSeq: %d OPTIONS\r\n"+
			"Content-Length: 0\r\n\r\n", addr, local, i, local, i, addr, i, local, i)
		if _, err := conn.Write([]byte(req)); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 ")) {
			return nil
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			// ICMP port unreachable: not bound yet; don't spin.
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("no answer to OPTIONS on %s within %v", addr, limit)
}

// sipp is the running UAS.
type sipp struct {
	*childproc.Process
	Addr    string // 127.0.0.1:PORT, UDP
	statCSV string // its -trace_stat file
}

// startSipp runs the UAS scenario: no -m (it answers until stopped), -l
// high so that it never refuses a call for having too many open, and its
// counters in a CSV each second (-trace_stat), read at the end.
func startSipp(ctx context.Context, env *runEnv) (*sipp, error) {
	bin, err := lookBin("sipp", "/usr/bin/sipp")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(env.dir, "sipp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sf := filepath.Join(dir, "uas.xml")
	if err := os.WriteFile(sf, uasScenario, 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(env.dir, "sipp.log")
	var lastErr error
	for range 3 {
		port, err := freePort(func(int) bool { return true })
		if err != nil {
			return nil, err
		}
		// sipp binds its media port even when no RTP flows; an even port
		// with the next pair free, as it also binds port+2.
		media, err := freePort(func(p int) bool { return p%2 == 0 && p+2 < 65536 && udpFree(p+2) })
		if err != nil {
			return nil, err
		}
		stat := filepath.Join(dir, "stat.csv")
		args := []string{
			"-sf", sf, "-i", "127.0.0.1", "-bind_local",
			"-p", strconv.Itoa(port), "-mp", strconv.Itoa(media),
			"-nostdin", "-l", "100000",
			"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
			"-trace_stat", "-stf", stat, "-fd", "1",
		}
		p, err := childproc.Start(bin, args, childproc.Options{Name: "sipp", LogPath: logPath})
		if err != nil {
			return nil, err
		}
		lastErr = waitUDPBound(ctx, p, port, 10*time.Second)
		if lastErr == nil {
			return &sipp{Process: p, Addr: "127.0.0.1:" + strconv.Itoa(port), statCSV: stat}, nil
		}
		p.Stop()
	}
	return nil, fmt.Errorf("sipp did not come up: %v; log %s, last lines:\n%s", lastErr, logPath, indent(childproc.LogTail(logPath, 15)))
}

// sippCounts are sipp's own cumulative counters.
type sippCounts struct {
	Successful int64 `json:"successful_calls"`
	Failed     int64 `json:"failed_calls"`
	Total      int64 `json:"incoming_calls"`
}

// counts reads the last line of sipp's statistics file: the columns
// SuccessfulCall(C), FailedCall(C) and TotalCallCreated, cumulative.
func (s *sipp) counts() (sippCounts, error) {
	var c sippCounts
	b, err := os.ReadFile(s.statCSV)
	if err != nil {
		return c, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return c, errors.New("sipp statistics: no data line yet")
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	want := map[string]*int64{"SuccessfulCall(C)": &c.Successful, "FailedCall(C)": &c.Failed, "TotalCallCreated": &c.Total}
	found := 0
	for i, h := range head {
		if p, ok := want[strings.TrimSpace(h)]; ok && i < len(last) {
			if v, err := strconv.ParseInt(strings.TrimSpace(last[i]), 10, 64); err == nil {
				*p = v
				found++
			}
		}
	}
	if found < len(want) {
		return c, fmt.Errorf("sipp statistics: %d of %d columns found", found, len(want))
	}
	return c, nil
}

// waitUDPBound polls /proc/net/udp until port is bound on loopback (less
// intrusive than sending sipp a request it would take for a call).
func waitUDPBound(ctx context.Context, p *childproc.Process, port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hexPort := fmt.Sprintf(":%04X", port)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !p.Alive() {
			return p.ExitError()
		}
		data, err := os.ReadFile("/proc/net/udp")
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			f := strings.Fields(line) // sl local_address …
			if len(f) > 1 && (f[1] == "0100007F"+hexPort || f[1] == "00000000"+hexPort) {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("UDP port %d not bound within %v", port, limit)
}

func lookBin(name, fallback string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if st, err := os.Stat(fallback); err == nil && !st.IsDir() {
		return fallback, nil
	}
	return "", fmt.Errorf("%s not found: install it (scripts/bench-deps.sh does, with apt-get)", name)
}

// freePort picks a port on 127.0.0.1 free for UDP for which ok holds,
// below the kernel's ephemeral range so that no client socket (the
// WebSockets, rtcgate's hooks) takes it before the peer binds it.
func freePort(ok func(int) bool) (int, error) {
	lo, hi := 10000, ephemeralLow()-1
	for range 500 {
		port := 0
		if hi-lo >= 1000 {
			port = lo + rand.IntN(hi-lo+1)
		} else {
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return 0, err
			}
			port = uc.LocalAddr().(*net.UDPAddr).Port
			uc.Close()
		}
		if udpFree(port) && ok(port) {
			return port, nil
		}
	}
	return 0, errors.New("no free port on 127.0.0.1 after 500 tries")
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo int
	if _, err := fmt.Sscan(string(data), &lo); err != nil {
		return 32768
	}
	return lo
}

func udpFree(port int) bool {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func tcpFree(port int) bool {
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
