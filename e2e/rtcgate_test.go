// Package e2e runs the real rtcgate binary against real peers over loopback.
// `make test` installs the peers (rtpengine-utils, …); a missing peer fails
// the test rather than skipping it, so CI cannot pass without it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rtcgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rtcgate")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/rtcgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building rtcgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTool returns the path of a peer program that `make test` installs.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (make test-deps does)", name, pkg)
	}
	return p
}

// rtcgate is one running `rtcgate serve`.
type rtcgate struct {
	cmd    *exec.Cmd
	addrs  map[string]string // listen key → bound address
	mu     sync.Mutex
	logs   bytes.Buffer
	exited chan struct{}
	err    error
}

// ephemeral puts every control listener on a free loopback port so that
// tests run side by side.
var ephemeral = []string{"--listen-http", "127.0.0.1:0", "--listen-cli", "127.0.0.1:0", "--listen-ng", "127.0.0.1:0", "--listen-client", "127.0.0.1:0", "--listen-sip", "127.0.0.1:0"}

// start runs rtcgate serve with args (JSON logs added) and waits for its
// "rtcgate started" log line, learning the bound addresses from the
// "listening" lines. It stops the process at cleanup and checks it exited 0.
func start(t *testing.T, args ...string) *rtcgate {
	t.Helper()
	return startVia(t, nil, args...)
}

// startVia is start with rtcgate run by a wrapper command (wrapper[0] with
// wrapper[1:] as its first arguments), e.g. setpriv to drop capabilities.
func startVia(t *testing.T, wrapper []string, args ...string) *rtcgate {
	t.Helper()
	r := &rtcgate{addrs: map[string]string{}, exited: make(chan struct{})}
	argv := append(append(append([]string(nil), wrapper...), binary, "serve", "--log-format", "json"), args...)
	r.cmd = exec.Command(argv[0], argv[1:]...)
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Bytes()
			r.mu.Lock()
			r.logs.Write(line)
			r.logs.WriteByte('\n')
			var rec struct{ Msg, Key, Addr string }
			if json.Unmarshal(line, &rec) == nil {
				switch rec.Msg {
				case "listening":
					r.addrs[rec.Key] = rec.Addr
				case "rtcgate started":
					if !signalled {
						close(started)
						signalled = true
					}
				}
			}
			r.mu.Unlock()
		}
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	select {
	case <-started:
	case <-r.exited:
		t.Fatalf("rtcgate exited before starting: %v\n%s", r.err, r.Logs())
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		t.Fatalf("rtcgate did not start within 30s\n%s", r.Logs())
	}
	t.Cleanup(func() { r.stop(t, syscall.SIGTERM) })
	return r
}

func (r *rtcgate) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

func (r *rtcgate) addr(t *testing.T, key string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.addrs[key]
	if !ok {
		t.Fatalf("rtcgate logged no listener for %s", key)
	}
	return a
}

// kill ends the process with SIGKILL (a node dying) and waits for it; its
// exit status is not checked.
func (r *rtcgate) kill() time.Time {
	r.cmd.Process.Kill()
	<-r.exited
	r.err = nil // killed on purpose
	return time.Now()
}

// stop signals the process and requires a clean exit (status 0).
func (r *rtcgate) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	select {
	case <-r.exited:
	default:
		r.cmd.Process.Signal(sig)
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
			t.Fatalf("rtcgate did not stop within 20s of %v\n%s", sig, r.Logs())
		}
	}
	if r.err != nil {
		t.Fatalf("rtcgate exited with %v after %v\n%s", r.err, sig, r.Logs())
	}
}

// runCmd runs a program with a time bound and returns stdout, stderr and the
// exit status.
func runCmd(t *testing.T, timeout time.Duration, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("%s %v: %v (stderr %q)", name, args, err, stderr.String())
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// execCommand prepares a command with an optional extra environment
// variable ("KEY=value") and a time bound.
func execCommand(t *testing.T, name string, args []string, env string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, name, args...)
	if env != "" {
		cmd.Env = append(os.Environ(), env)
	}
	return cmd
}
