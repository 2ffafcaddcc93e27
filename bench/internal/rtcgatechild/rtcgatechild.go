// Package rtcgatechild builds rtcgate and runs it as the child process a
// benchmark program measures: JSON logs, kernel-chosen ports, and the
// bound addresses read back from its "listening" log lines.
package rtcgatechild

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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
)

// Build compiles rtcgate's package src into dir, so that the process
// measured is rtcgate itself and not `go run` around it.
func Build(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "rtcgate")
	return bin, childproc.GoBuild(ctx, src, bin)
}

// App is the one app a benchmark configures, with its backend.
type App struct {
	Name, Key, URL string
	Methods        []string // the REST methods sent to URL
}

// WriteConfig writes rtcgate's configuration file into dir, rtcgate.yaml:
// the app, and a state file that stays in dir too. It returns its path.
func WriteConfig(dir string, app App) (string, error) {
	path := filepath.Join(dir, "rtcgate.yaml")
	y := "apps:\n" +
		"  - name: " + app.Name + "\n" +
		"    key: " + app.Key + "\n" +
		"    url: " + app.URL + "\n" +
		"    methods: [" + strings.Join(app.Methods, ", ") + "]\n" +
		"state-file: " + filepath.Join(dir, "rtcgate-state.json") + "\n"
	return path, os.WriteFile(path, []byte(y), 0o600)
}

// ServeArgs begins rtcgate's command line as the benchmarks run it: JSON
// logs (Start reads the bound addresses from them), the configuration file
// when configPath is not "", the control, CLI and ng listeners on
// kernel-chosen loopback ports, and the client listener on clientAddr.
// The caller appends the rest.
func ServeArgs(configPath, clientAddr string) []string {
	args := []string{"serve"}
	if configPath != "" {
		args = append(args, "--config", configPath)
	}
	return append(args,
		"--log-format", "json",
		"--listen-http", "127.0.0.1:0",
		"--listen-cli", "127.0.0.1:0",
		"--listen-ng", "127.0.0.1:0",
		"--listen-client", clientAddr,
	)
}

// Options say how Start runs rtcgate.
type Options struct {
	Bin  string
	Args []string // must include --log-format json and the listeners of Want
	Env  []string // added to this process's environment
	// LogPath is the file that gets rtcgate's output.
	LogPath string
	// Want are the listener keys (listen-http, listen-client…) whose bound
	// address must be logged, on loopback, before rtcgate counts as up.
	Want []string
	// ReadyTimeout bounds the wait for the "rtcgate started" line.
	ReadyTimeout time.Duration
	// Logf gets the log's last lines when rtcgate fails to start.
	Logf func(format string, args ...any)
}

// Child is a running rtcgate.
type Child struct {
	*childproc.Process

	mu    sync.Mutex
	addrs map[string]string // listener key → bound address, from the "listening" lines
	ready chan struct{}     // closed at "rtcgate started"
}

// Start starts rtcgate and waits until it has logged "rtcgate started" and
// every wanted listener. If it does not get there, rtcgate is stopped, the
// last lines of its log go to o.Logf, and the error says why:
// "rtcgate did not start: …".
func Start(ctx context.Context, o Options) (*Child, error) {
	c := &Child{addrs: map[string]string{}, ready: make(chan struct{})}
	p, err := childproc.Start(o.Bin, o.Args, childproc.Options{
		Name: "rtcgate", LogPath: o.LogPath, Env: o.Env,
		Output: func(log io.Writer) io.Writer { return &logWatcher{w: log, c: c} },
	})
	if err != nil {
		return nil, fmt.Errorf("rtcgate did not start: %w", err)
	}
	c.Process = p
	if err := c.awaitReady(ctx, o.Want, o.ReadyTimeout); err != nil {
		c.Stop()
		o.Logf("rtcgate failed to start; log %s, last lines:\n%s", o.LogPath, childproc.Indent(childproc.LogTail(o.LogPath, 20)))
		return nil, fmt.Errorf("rtcgate did not start: %w", err)
	}
	return c, nil
}

func (c *Child) awaitReady(ctx context.Context, want []string, limit time.Duration) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-c.ready:
	case <-c.Exited():
		return c.ExitError()
	case <-timer.C:
		return fmt.Errorf("no \"rtcgate started\" line within %v", limit)
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range want {
		a := c.addrs[k]
		if a == "" && k == "listen-sip" {
			return fmt.Errorf("no \"listening\" line for %s in the log (an rtcgate without the SIP gateway has none for listen-sip)", k)
		}
		if a == "" {
			return fmt.Errorf("no \"listening\" line for %s in the log", k)
		}
		if h, _, err := net.SplitHostPort(a); err != nil || !net.ParseIP(h).IsLoopback() {
			return fmt.Errorf("%s bound to %s, not loopback", k, a)
		}
	}
	return nil
}

// Addr is the address listener key is bound to ("" if it was not logged).
func (c *Child) Addr(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[key]
}

// logWatcher copies the child's output to the log file and picks the
// bound addresses out of its first lines.
type logWatcher struct {
	w       io.Writer // the log
	c       *Child
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

// metricsClient never takes a proxy from the environment: rtcgate is on
// loopback. Each scrape has its own timeout.
var metricsClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

// Metrics scrapes /metrics on the control listener (listen-http) within
// timeout and sets the series of want (name → where its value goes) that
// it finds; it returns how many it found, for the caller to judge.
func (c *Child) Metrics(ctx context.Context, timeout time.Duration, want map[string]*float64) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.Addr("listen-http")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
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
	return found, sc.Err()
}
