package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/internal/hooks"
)

// child is the rtcgate under test, our child process, its output in a log
// file.
type child struct {
	*childproc.Process

	mu    sync.Mutex
	addrs map[string]string // listener key → bound address, from the "listening" lines
	ready chan struct{}     // closed at "rtcgate started"
}

// The app the clients connect to: its backend is ours, with every method.
const (
	appName = "sipbench"
	appKey  = "sipbench"
)

// listeners the benchmark needs to know.
var wantListeners = []string{"listen-http", "listen-client", "listen-sip"}

// buildRtcgate compiles rtcgate into dir, so that the process measured is
// rtcgate itself and not `go run` around it.
func buildRtcgate(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "rtcgate")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build -o %s %s: %w\n%s", bin, src, err, indent(strings.TrimSpace(string(out))))
	}
	return bin, nil
}

// writeConfig writes rtcgate's configuration file: one app with every REST
// method of hooks.Methods enabled (the "every hook"), so that a
// call costs its synchronous action hooks (call, hangup) and its queued
// status events. The state file stays in dir.
func writeConfig(dir, backendURL string) (string, error) {
	path := filepath.Join(dir, "rtcgate.yaml")
	y := "apps:\n" +
		"  - name: " + appName + "\n" +
		"    key: " + appKey + "\n" +
		"    url: " + backendURL + "\n" +
		"    methods: [" + strings.Join(hooks.Methods, ", ") + "]\n" +
		"state-file: " + filepath.Join(dir, "rtcgate-state.json") + "\n"
	return path, os.WriteFile(path, []byte(y), 0o600)
}

// rtcgateArgs is the command line: JSON logs (the "listening" lines carry
// the bound addresses), kernel-chosen ports, the SIP listener on loopback,
// room for every session's SIP account, and otherwise rtcgate's defaults
// (keep-alive pings, which the clients answer, hook settings, log level).
func rtcgateArgs(env *runEnv, cfgPath string) []string {
	cfg := env.cfg
	args := []string{
		"serve",
		"--config", cfgPath,
		"--log-format", "json",
		"--log-level", strconv.Itoa(cfg.logLevel),
		"--listen-http", "127.0.0.1:0",
		"--listen-cli", "127.0.0.1:0",
		"--listen-ng", "127.0.0.1:0",
		"--listen-client", "127.0.0.1:0",
		"--listen-sip", "127.0.0.1:0",
		"--client-max-connections", strconv.Itoa(cfg.users + 100),
		"--sip-max-accounts", strconv.Itoa(cfg.users + 100),
		"--node-id", "sipbench",
		"--shutdown-timeout", "5s",
	}
	if cfg.cpuProfile != "" {
		args = append(args, "--pprof", "true")
	}
	return args
}

// logWatcher copies the child's output to the log file and picks the
// bound addresses out of its first lines.
type logWatcher struct {
	w       io.Writer
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

// launch starts rtcgate with the app pointing at b and waits until it logs
// its listeners.
func launch(ctx context.Context, env *runEnv, b *backend) (*child, error) {
	cfgPath, err := writeConfig(env.dir, b.appURL())
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(env.dir, "rtcgate.log")
	c := &child{addrs: map[string]string{}, ready: make(chan struct{})}
	p, err := childproc.Start(env.bin, rtcgateArgs(env, cfgPath), childproc.Options{
		Name: "rtcgate", LogPath: logPath,
		Output: func(log io.Writer) io.Writer { return &logWatcher{w: log, c: c} },
	})
	if err != nil {
		return nil, fmt.Errorf("rtcgate did not start: %w", err)
	}
	c.Process = p
	fail := func(err error) (*child, error) {
		c.Stop()
		env.logf("rtcgate failed to start; log %s, last lines:\n%s", logPath, indent(childproc.LogTail(logPath, 20)))
		return nil, fmt.Errorf("rtcgate did not start: %w", err)
	}
	timer := time.NewTimer(env.cfg.readyTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
	case <-c.Exited():
		return fail(c.ExitError())
	case <-timer.C:
		return fail(fmt.Errorf("no \"rtcgate started\" line within %v", env.cfg.readyTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range wantListeners {
		a := c.addrs[k]
		if a == "" {
			return fail(fmt.Errorf("no \"listening\" line for %s in the log (an rtcgate without the SIP gateway has none for listen-sip)", k))
		}
		if h, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(h).IsLoopback() {
			return fail(fmt.Errorf("%s bound to %s, not loopback", k, a))
		}
	}
	env.logf("rtcgate pid %d, client %s, SIP %s, control %s, backend %s",
		c.Pid(), c.addrs["listen-client"], c.addrs["listen-sip"], c.addrs["listen-http"], b.appURL())
	return c, nil
}

func (c *child) addr(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[key]
}

// cpuProfile fetches a CPU profile of rtcgate over d from its control
// listener (--pprof) into path.
func (c *child) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET",
		"http://"+c.addr("listen-http")+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/debug/pprof/profile: %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// logProblems counts rtcgate's log lines at WARN and above and keeps a few
// distinct ones (by message) as a sample.
func logProblems(path string, keep int) (n int, sample []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil
	}
	seen := map[string]bool{}
	for line := range bytes.Lines(b) {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		// slog's names: WARN, ERROR, and ERROR+n above it.
		if !strings.HasPrefix(rec.Level, "WARN") && !strings.HasPrefix(rec.Level, "ERROR") {
			continue
		}
		n++
		if !seen[rec.Msg] && len(sample) < keep {
			seen[rec.Msg] = true
			sample = append(sample, clip(bytes.TrimSpace(line), 400))
		}
	}
	return n, sample
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
