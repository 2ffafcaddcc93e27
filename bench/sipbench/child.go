package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
	"github.com/rtcgate/rtcgate/internal/hooks"
)

// The app the clients connect to: its backend is ours, with every method.
const (
	appName = "sipbench"
	appKey  = "sipbench"
)

// listeners the benchmark needs to know.
var wantListeners = []string{"listen-http", "listen-client", "listen-sip"}

// app is rtcgate's one app, with every REST method of hooks.Methods
// enabled (the "every hook"), so that a call costs its synchronous
// action hooks (call, hangup) and its queued status events.
func app(backendURL string) rtcgatechild.App {
	return rtcgatechild.App{Name: appName, Key: appKey, URL: backendURL, Methods: hooks.Methods}
}

// rtcgateArgs is the command line: kernel-chosen ports, the SIP listener
// on loopback, room for every session's SIP account, and otherwise
// rtcgate's defaults (keep-alive pings, which the clients answer, hook
// settings, log level).
func rtcgateArgs(env *runEnv, cfgPath string) []string {
	cfg := env.cfg
	args := append(rtcgatechild.ServeArgs(cfgPath, "127.0.0.1:0"),
		"--log-level", strconv.Itoa(cfg.logLevel),
		"--listen-sip", "127.0.0.1:0",
		// One loopback address brings every session: no per-address limits.
		"--client-max-sessions-per-ip", "0", "--client-new-sessions-per-ip", "0",
		"--client-max-connections", strconv.Itoa(cfg.users+100),
		"--sip-max-accounts", strconv.Itoa(cfg.users+100),
		"--node-id", "sipbench",
		"--shutdown-timeout", "5s",
	)
	if cfg.cpuProfile != "" {
		args = append(args, "--pprof", "true")
	}
	return args
}

// launch starts rtcgate with the app pointing at b and waits until it logs
// its listeners.
func launch(ctx context.Context, env *runEnv, b *backend) (*rtcgatechild.Child, error) {
	cfgPath, err := rtcgatechild.WriteConfig(env.Dir, app(b.AppURL()))
	if err != nil {
		return nil, err
	}
	c, err := rtcgatechild.Start(ctx, rtcgatechild.Options{
		Bin: env.bin, Args: rtcgateArgs(env, cfgPath),
		LogPath: filepath.Join(env.Dir, "rtcgate.log"), Want: wantListeners,
		ReadyTimeout: env.cfg.readyTimeout, Logf: env.Logf,
	})
	if err != nil {
		return nil, err
	}
	env.Logf("rtcgate pid %d, client %s, SIP %s, control %s, backend %s",
		c.Pid(), c.Addr("listen-client"), c.Addr("listen-sip"), c.Addr("listen-http"), b.AppURL())
	return c, nil
}

// cpuProfile fetches a CPU profile of rtcgate over d from its control
// listener (--pprof) into path.
func cpuProfile(ctx context.Context, c *rtcgatechild.Child, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET",
		"http://"+c.Addr("listen-http")+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
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

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
