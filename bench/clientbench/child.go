package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one rtcgate under test, our child process, its output in a log
// file.
type child struct {
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once reaped
	waitErr error         // valid after exited
	stopped bool

	mu    sync.Mutex
	addrs map[string]string // listener key → bound address, from the "listening" lines
	ready chan struct{}     // closed when every wanted listener is known
}

// listeners the benchmark needs to know.
var wantListeners = []string{"listen-http", "listen-cli", "listen-client"}

// buildRtcgate compiles rtcgate into dir, so that the process measured is
// rtcgate itself and not `go run` around it.
func buildRtcgate(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "rtcgate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, src)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build -o %s %s: %w\n%s", bin, src, err, indent(strings.TrimSpace(string(out))))
	}
	return bin, nil
}

// rtcgateArgs is the command line: JSON logs (the "listening" lines carry
// the bound addresses), kernel-chosen control ports, the client listener.
// The level is 6 at start because the "listening" lines are info; the
// wanted level is set over the CLI once they are read.
func rtcgateArgs(cfg *config) []string {
	return []string{
		"serve",
		"--log-format", "json",
		"--listen-http", "127.0.0.1:0",
		"--listen-cli", "127.0.0.1:0",
		"--listen-ng", "127.0.0.1:0",
		"--listen-client", cfg.clientAddr,
		"--client-max-connections", strconv.Itoa(max(100000, cfg.sessions+1000)),
		"--client-keepalive", cfg.keepalive.String(),
		"--log-level", "6",
	}
}

// logWatcher copies the child's output to the log file and picks the
// bound addresses out of its first lines.
type logWatcher struct {
	f       *os.File
	c       *child
	partial []byte
	done    bool
}

func (w *logWatcher) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.done {
		return n, err
	}
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		w.partial = w.partial[i+1:]
		var rec struct {
			Msg  string `json:"msg"`
			Key  string `json:"key"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "listening":
			w.c.mu.Lock()
			w.c.addrs[rec.Key] = rec.Addr
			w.c.mu.Unlock()
		case "rtcgate started":
			w.done, w.partial = true, nil
			close(w.c.ready)
			return n, err
		}
	}
	if len(w.partial) > 1<<20 { // not a line-oriented log: stop looking
		w.done, w.partial = true, nil
		close(w.c.ready)
	}
	return n, err
}

// startChild starts bin and waits until it logs its listeners.
func startChild(ctx context.Context, bin string, args, env []string, logPath string, limit time.Duration) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "$ %s %s %s\n", strings.Join(env, " "), bin, strings.Join(args, " "))
	c := &child{logPath: logPath, addrs: map[string]string{}, ready: make(chan struct{}), exited: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &logWatcher{f: f, c: c}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a Ctrl-C reaches only us; we stop it in order
		Pdeathsig: syscall.SIGKILL, // if we die anyway, so does rtcgate
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	c.cmd = cmd
	go func() {
		c.waitErr = cmd.Wait() // returns after the output is copied
		f.Close()
		close(c.exited)
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-c.ready:
	case <-c.exited:
		return c, c.exitError()
	case <-timer.C:
		c.stop()
		return c, fmt.Errorf("no \"rtcgate started\" line within %v", limit)
	case <-ctx.Done():
		c.stop()
		return c, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range wantListeners {
		a := c.addrs[k]
		if a == "" {
			go c.stop()
			return c, fmt.Errorf("no \"listening\" line for %s in the log", k)
		}
		if h, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(h).IsLoopback() {
			go c.stop()
			return c, fmt.Errorf("%s bound to %s, not loopback", k, a)
		}
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (c *child) exitError() error {
	if c.waitErr != nil {
		return fmt.Errorf("rtcgate exited: %w", c.waitErr)
	}
	return errors.New("rtcgate exited with status 0")
}

// stop ends the process: SIGTERM, SIGKILL after 5 s. It returns an error
// when the process had died on its own.
func (c *child) stop() error {
	if c.cmd == nil || c.stopped {
		return nil
	}
	c.stopped = true
	if !c.alive() {
		return c.exitError()
	}
	pg := -c.cmd.Process.Pid
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-c.exited
	}
	return nil
}

// cli runs one command on rtcgate's TCP CLI (listen-cli) and returns the
// answer.
func (c *child) cli(command string) (string, error) {
	nc, err := net.DialTimeout("tcp4", c.addrs["listen-cli"], 3*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, command+"\n"); err != nil {
		return "", err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	b, err := io.ReadAll(io.LimitReader(nc, 64<<10))
	return string(b), err
}

// logTail returns the last n lines of the log.
func (c *child) logTail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// launch builds nothing: it starts a fresh rtcgate for one scenario, sets
// the log level, checks its descriptor limit, and returns it.
func launch(ctx context.Context, env *runEnv, scenario string, extraEnv []string) (*child, error) {
	logPath := filepath.Join(env.dir, "rtcgate-"+scenario+".log")
	c, err := startChild(ctx, env.bin, rtcgateArgs(env.cfg), extraEnv, logPath, env.cfg.readyTimeout)
	if err != nil {
		if c != nil {
			env.logf("rtcgate failed to start; log %s, last lines:\n%s", logPath, indent(c.logTail(20)))
		}
		return nil, &startError{err}
	}
	out, err := c.cli("set loglevel " + strconv.Itoa(env.cfg.logLevel))
	if err != nil || !strings.Contains(out, "Success") {
		env.logf("warning: set loglevel %d over the CLI: %v %q (the run keeps level 6)", env.cfg.logLevel, err, strings.TrimSpace(out))
	}
	if n, err := childNoFile(c.pid()); err != nil {
		env.logf("warning: cannot read rtcgate's fd limit: %v", err)
	} else if need := int64(env.cfg.sessions + 1000); scenario == "idle" && n < need {
		c.stop()
		return nil, &startError{fmt.Errorf("rtcgate's RLIMIT_NOFILE is %d, below the %d the idle scenario needs", n, need)}
	} else {
		env.childNoFile = n
	}
	env.logf("%s: rtcgate pid %d, client %s, control %s", scenario, c.pid(), c.addrs["listen-client"], c.addrs["listen-http"])
	return c, nil
}

// startError is a failure to build or start rtcgate: the program exits
// non-zero at once.
type startError struct{ err error }

func (e *startError) Error() string { return "rtcgate did not start: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }
