package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
)

// child is one rtcgate under test, our child process, its output in a log
// file.
type child struct {
	*childproc.Process

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
	w       io.Writer // the log
	c       *child
	partial []byte
	done    bool
}

func (w *logWatcher) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
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
	c := &child{addrs: map[string]string{}, ready: make(chan struct{})}
	p, err := childproc.Start(bin, args, childproc.Options{
		Name: "rtcgate", LogPath: logPath, Env: env,
		Output: func(log io.Writer) io.Writer { return &logWatcher{w: log, c: c} },
	})
	if err != nil {
		return nil, err
	}
	c.Process = p
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-c.ready:
	case <-c.Exited():
		return c, c.ExitError()
	case <-timer.C:
		c.Stop()
		return c, fmt.Errorf("no \"rtcgate started\" line within %v", limit)
	case <-ctx.Done():
		c.Stop()
		return c, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range wantListeners {
		a := c.addrs[k]
		if a == "" {
			go c.Stop()
			return c, fmt.Errorf("no \"listening\" line for %s in the log", k)
		}
		if h, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(h).IsLoopback() {
			go c.Stop()
			return c, fmt.Errorf("%s bound to %s, not loopback", k, a)
		}
	}
	return c, nil
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
			env.logf("rtcgate failed to start; log %s, last lines:\n%s", logPath, indent(childproc.LogTail(c.LogPath(), 20)))
		}
		return nil, &startError{err}
	}
	out, err := c.cli("set loglevel " + strconv.Itoa(env.cfg.logLevel))
	if err != nil || !strings.Contains(out, "Success") {
		env.logf("warning: set loglevel %d over the CLI: %v %q (the run keeps level 6)", env.cfg.logLevel, err, strings.TrimSpace(out))
	}
	if n, err := childNoFile(c.Pid()); err != nil {
		env.logf("warning: cannot read rtcgate's fd limit: %v", err)
	} else if need := int64(env.cfg.sessions + 1000); scenario == "idle" && n < need {
		c.Stop()
		return nil, &startError{fmt.Errorf("rtcgate's RLIMIT_NOFILE is %d, below the %d the idle scenario needs", n, need)}
	} else {
		env.childNoFile = n
	}
	env.logf("%s: rtcgate pid %d, client %s, control %s", scenario, c.Pid(), c.addrs["listen-client"], c.addrs["listen-http"])
	return c, nil
}

// startError is a failure to build or start rtcgate: the program exits
// non-zero at once.
type startError struct{ err error }

func (e *startError) Error() string { return "rtcgate did not start: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }
