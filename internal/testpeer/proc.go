// Package testpeer runs real SIP peers for tests, on loopback: Debian's
// Kamailio as registrar and proxy (StartKamailio) and sipp with embedded
// scenarios (StartSipp). `make test` installs both (scripts/test-deps.sh);
// a missing binary fails the test rather than skipping it.
//
// RunKamailio and RunSipp are the same without a testing.TB, for programs
// (bench/sipbench) that run the peers under load: they return errors, and
// the caller stops what they started.
package testpeer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// logBuf collects a process's output; it keeps the newest maxLog bytes,
// since sipp redraws its screen every second.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxLog = 1 << 20

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > maxLog {
		keep := b.buf.Bytes()[b.buf.Len()-maxLog/2:]
		rest := append([]byte("…(older output dropped)\n"), keep...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return len(p), nil
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one started peer process, in its own process group so that
// stopping it also stops Kamailio's children.
type proc struct {
	cmd    *exec.Cmd
	out    logBuf
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's, valid after exited
	once   sync.Once
	killed atomic.Bool // stop signalled it before it exited by itself
}

// startProc starts bin in dir. Its output goes to p.out and, when logPath
// is not "", to that file too (after the command line), so that a program
// can keep a peer's whole log beside its own.
func startProc(bin, dir, logPath string, args ...string) (*proc, error) {
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	var out io.Writer = &p.out
	var logf *os.File
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(f, "$ %s %s\n", bin, strings.Join(args, " "))
		logf, out = f, io.MultiWriter(&p.out, f)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	// Pdeathsig: a test binary that dies leaves no peer behind. SIGTERM, not
	// SIGKILL, so that Kamailio stops its children too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait() // returns once the output is copied
		if logf != nil {
			logf.Close()
		}
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL if the leader
// has not exited after grace. Kamailio's main process stops its children
// on SIGTERM.
func (p *proc) stop(grace time.Duration) {
	p.once.Do(func() {
		if p.done() {
			return
		}
		p.killed.Store(true)
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
			return
		case <-time.After(grace):
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	})
}

// exitCode is the process's exit status, -1 when a signal ended it; only
// once exited is closed.
func (p *proc) exitCode() int {
	var ee *exec.ExitError
	if p.err == nil {
		return 0
	}
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func lookBin(t testing.TB, name, fallback, pkg string) string {
	t.Helper()
	bin, err := findBin(name, fallback, pkg)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	return bin
}

// findBin is name on PATH, or fallback (/usr/sbin is not on a non-root
// PATH), or an error that says which Debian package to install.
func findBin(name, fallback, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if st, err := os.Stat(fallback); err == nil && !st.IsDir() {
		return fallback, nil
	}
	return "", fmt.Errorf("%s not found: install the Debian package %s (make test-deps / scripts/test-deps.sh does)", name, pkg)
}

// failedStart is the error of a peer that did not come up, with its
// output: the last lines of the log file when there is one (it stays for
// reading), all of it otherwise.
func failedStart(what string, err error, p *proc, logPath string) error {
	if logPath != "" {
		return fmt.Errorf("%s: %v; log %s, last lines:\n%s", what, err, logPath, indent(lastLines(p.out.String(), 15)))
	}
	return fmt.Errorf("%s: %v\n%s", what, err, p.out.String())
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

var (
	portMu     sync.Mutex
	portsGiven = map[int]bool{}
)

// FreeUDPPort returns a port on 127.0.0.1 free for both UDP and TCP, never
// the same one twice in this process (parallel tests start peers at once).
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	port, err := freeSIPPort()
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	return port
}

func freeSIPPort() (int, error) {
	return freePort(func(port int) bool { return tcpFree(port) })
}

// freeMediaPort is an even port free with port+2, which sipp's -rtp_echo
// also binds (video).
func freeMediaPort() (int, error) {
	return freePort(func(port int) bool {
		return port%2 == 0 && port+2 <= 65535 && !portsGiven[port+2] && udpFree(port+2) && markGiven(port+2)
	})
}

// freePort picks a free UDP port on 127.0.0.1 for which ok (called with
// portMu held) holds. It picks below the kernel's ephemeral range, so that
// no client socket of another test takes it before the peer binds it.
func freePort(ok func(int) bool) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := 10000, ephemeralLow()-1
	for range 500 {
		port := 0
		if hi-lo >= 1000 {
			port = lo + rand.IntN(hi-lo+1)
			if !udpFree(port) {
				continue
			}
		} else {
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return 0, fmt.Errorf("free port: %v", err)
			}
			port = uc.LocalAddr().(*net.UDPAddr).Port
			uc.Close()
		}
		if portsGiven[port] || !ok(port) {
			continue
		}
		portsGiven[port] = true
		return port, nil
	}
	return 0, errors.New("no suitable free port on 127.0.0.1 after 500 tries")
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

func markGiven(port int) bool {
	portsGiven[port] = true
	return true
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
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
