package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// The app rtcgate is started with: its backend is ours.
const (
	appName = "hooksbench"
	appKey  = "hooksbench"
)

// listeners the benchmark needs to know.
var wantListeners = []string{"listen-http", "listen-client"}

// app is rtcgate's one app: its methods are the asynchronous status event
// and the synchronous OnDataEvent. connect is not among them: it is
// synchronous, and (a) would otherwise measure the backend's connect round
// trip per session rather than the queue.
func app(backendURL string) rtcgatechild.App {
	return rtcgatechild.App{Name: appName, Key: appKey, URL: backendURL,
		Methods: []string{"ConnectionStatusEvent", "OnDataEvent"}}
}

// rtcgateArgs is the command line: kernel-chosen ports, no keep-alive pings
// (the churn clients never answer them), room for the churn's sessions,
// and the hook settings under test.
func rtcgateArgs(env *runEnv, cfgPath string) []string {
	cfg := env.cfg
	args := append(rtcgatechild.ServeArgs(cfgPath, "127.0.0.1:0"),
		// One loopback address brings every session: no per-address limits.
		"--client-max-sessions-per-ip", "0", "--client-new-sessions-per-ip", "0",
		"--client-max-connections", "1000000",
		"--client-keepalive", "0s",
		"--client-idle-timeout", cfg.idleTimeout.String(),
		"--node-id", "hooksbench",
		"--hooks-max-async", strconv.Itoa(cfg.hooksMaxAsync),
		"--hooks-retries", strconv.Itoa(cfg.hooksRetries),
		"--hooks-queue-max-bytes", strconv.Itoa(cfg.queueMaxBytes),
		"--shutdown-timeout", "5s",
	)
	if cfg.store == "disk" {
		args = append(args, "--hooks-queue-dir", filepath.Join(env.Dir, "rtcgate-queue"))
	}
	if cfg.store == "redis" {
		args = append(args, "--cluster-redis", cfg.redisURL)
	}
	return args
}

// childEnv is the environment added for rtcgate. The SIP gateway, where
// this rtcgate has one, is turned off through the environment (an rtcgate
// without the key ignores the variable): the benchmark measures the hooks,
// and without it defaultApp's sendData is answered by the built-in app —
// the unhooked round trip of (b).
var childEnv = []string{"RTCGATE_LISTEN_SIP="}

// launch starts rtcgate with the app pointing at b and waits until it logs
// its listeners.
func launch(ctx context.Context, env *runEnv, b *backend) (*rtcgatechild.Child, error) {
	cfgPath, err := rtcgatechild.WriteConfig(env.Dir, app(b.AppURL()))
	if err != nil {
		return nil, err
	}
	c, err := rtcgatechild.Start(ctx, rtcgatechild.Options{
		Bin: env.bin, Args: rtcgateArgs(env, cfgPath), Env: childEnv,
		LogPath: filepath.Join(env.Dir, "rtcgate.log"), Want: wantListeners,
		ReadyTimeout: env.cfg.readyTimeout, Logf: env.Logf,
	})
	if err != nil {
		return nil, err
	}
	env.Logf("rtcgate pid %d, client %s, control %s, backend %s", c.Pid(), c.Addr("listen-client"), c.Addr("listen-http"), b.AppURL())
	return c, nil
}

// hookMetrics are the figures read from rtcgate's /metrics.
type hookMetrics struct {
	QueueDepth  float64
	Retries     float64
	DeadLetters float64
	Sessions    float64
}

// fetchMetrics scrapes the control listener's /metrics.
func fetchMetrics(ctx context.Context, c *rtcgatechild.Child) (hookMetrics, error) {
	var m hookMetrics
	want := map[string]*float64{
		"rtcgate_hook_queue_depth":        &m.QueueDepth,
		"rtcgate_hook_retries_total":      &m.Retries,
		"rtcgate_hook_dead_letters_total": &m.DeadLetters,
		"rtcgate_client_sessions":         &m.Sessions,
	}
	found, err := c.Metrics(ctx, 5*time.Second, want)
	if err == nil && found < len(want) {
		err = fmt.Errorf("/metrics: only %d of the %d expected series", found, len(want))
	}
	return m, err
}

// countLog counts the lines of a log holding s.
func countLog(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}
