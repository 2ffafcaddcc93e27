package main

import (
	"bufio"
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
)

// child is the rtcgate under test, our child process, its output in a log
// file.
type child struct {
	*childproc.Process

	mu    sync.Mutex
	addrs map[string]string // listener key → bound address, from the "listening" lines
	ready chan struct{}     // closed at "rtcgate started"
}

// The app rtcgate is started with: its backend is ours.
const (
	appName = "hooksbench"
	appKey  = "hooksbench"
)

// listeners the benchmark needs to know.
var wantListeners = []string{"listen-http", "listen-client"}

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

// writeConfig writes rtcgate's configuration file: the one app, whose
// methods are the asynchronous status event and the synchronous OnDataEvent.
// connect is not among them: it is synchronous, and (a) would otherwise
// measure the backend's connect round trip per session rather than the
// queue. The state file stays in dir.
func writeConfig(dir, backendURL string) (string, error) {
	path := filepath.Join(dir, "rtcgate.yaml")
	y := "apps:\n" +
		"  - name: " + appName + "\n" +
		"    key: " + appKey + "\n" +
		"    url: " + backendURL + "\n" +
		"    methods: [ConnectionStatusEvent, OnDataEvent]\n" +
		"state-file: " + filepath.Join(dir, "rtcgate-state.json") + "\n"
	return path, os.WriteFile(path, []byte(y), 0o600)
}

// rtcgateArgs is the command line: JSON logs (the "listening" lines carry
// the bound addresses), kernel-chosen ports, no keep-alive pings (the churn
// clients never answer them), room for the churn's sessions, and the
// hook settings under test.
func rtcgateArgs(env *runEnv, cfgPath string) []string {
	cfg := env.cfg
	args := []string{
		"serve",
		"--config", cfgPath,
		"--log-format", "json",
		"--listen-http", "127.0.0.1:0",
		"--listen-cli", "127.0.0.1:0",
		"--listen-ng", "127.0.0.1:0",
		"--listen-client", "127.0.0.1:0",
		"--client-max-connections", "1000000",
		"--client-keepalive", "0s",
		"--client-idle-timeout", cfg.idleTimeout.String(),
		"--node-id", "hooksbench",
		"--hooks-max-async", strconv.Itoa(cfg.hooksMaxAsync),
		"--hooks-retries", strconv.Itoa(cfg.hooksRetries),
		"--hooks-queue-max-bytes", strconv.Itoa(cfg.queueMaxBytes),
		"--shutdown-timeout", "5s",
	}
	if cfg.store == "disk" {
		args = append(args, "--hooks-queue-dir", filepath.Join(env.dir, "rtcgate-queue"))
	}
	return args
}

// childEnv is the environment added for rtcgate. The SIP gateway, where
// this rtcgate has one, is turned off through the environment (an rtcgate
// without the key ignores the variable): the benchmark measures the hooks,
// and without it defaultApp's sendData is answered by the built-in app —
// the unhooked round trip of (b).
var childEnv = []string{"RTCGATE_LISTEN_SIP="}

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
		Name: "rtcgate", LogPath: logPath, Env: childEnv,
		Output: func(log io.Writer) io.Writer { return &logWatcher{w: log, c: c} },
	})
	if err != nil {
		return nil, fmt.Errorf("rtcgate did not start: %w", err)
	}
	c.Process = p
	fail := func(err error) (*child, error) {
		c.Stop()
		env.logf("rtcgate failed to start; log %s, last lines:\n%s", logPath, indent(logTail(logPath, 20)))
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
			return fail(fmt.Errorf("no \"listening\" line for %s in the log", k))
		}
		if h, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(h).IsLoopback() {
			return fail(fmt.Errorf("%s bound to %s, not loopback", k, a))
		}
	}
	env.logf("rtcgate pid %d, client %s, control %s, backend %s", c.Pid(), c.addrs["listen-client"], c.addrs["listen-http"], b.appURL())
	return c, nil
}

func (c *child) addr(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[key]
}

var metricsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}

// hookMetrics are the figures read from rtcgate's /metrics.
type hookMetrics struct {
	QueueDepth  float64
	Retries     float64
	DeadLetters float64
	Sessions    float64
}

// fetchMetrics scrapes the control listener's /metrics.
func (c *child) fetchMetrics(ctx context.Context) (hookMetrics, error) {
	var m hookMetrics
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.addr("listen-http")+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("/metrics: %s", resp.Status)
	}
	want := map[string]*float64{
		"rtcgate_hook_queue_depth":        &m.QueueDepth,
		"rtcgate_hook_retries_total":      &m.Retries,
		"rtcgate_hook_dead_letters_total": &m.DeadLetters,
		"rtcgate_client_sessions":         &m.Sessions,
	}
	found := 0
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if p, ok := want[name]; ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				*p = v
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found < len(want) {
		return m, fmt.Errorf("/metrics: only %d of the %d expected series", found, len(want))
	}
	return m, nil
}

// countLog counts the lines of a log holding s.
func countLog(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

func logTail(path string, n int) string { return childproc.LogTail(path, n) }

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
