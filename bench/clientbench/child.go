package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// listeners the benchmark needs to know.
var wantListeners = []string{"listen-http", "listen-cli", "listen-client"}

// rtcgateArgs is the command line: kernel-chosen control ports, the client
// listener.
// The level is 6 at start because the "listening" lines are info; the
// wanted level is set over the CLI once they are read.
func rtcgateArgs(cfg *config) []string {
	return append(rtcgatechild.ServeArgs("", cfg.clientAddr),
		// One loopback address brings every session: no per-address limits.
		"--client-max-sessions-per-ip", "0", "--client-new-sessions-per-ip", "0",
		"--client-max-connections", strconv.Itoa(max(100000, cfg.sessions+1000)),
		"--client-keepalive", cfg.keepalive.String(),
		"--log-level", "6",
	)
}

// cli runs one command on rtcgate's TCP CLI (listen-cli) and returns the
// answer.
func cli(c *rtcgatechild.Child, command string) (string, error) {
	nc, err := net.DialTimeout("tcp4", c.Addr("listen-cli"), 3*time.Second)
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

// launch builds nothing: it starts a fresh rtcgate for one scenario, sets
// the log level, checks its descriptor limit, and returns it.
func launch(ctx context.Context, env *runEnv, scenario string, extraEnv []string) (*rtcgatechild.Child, error) {
	c, err := rtcgatechild.Start(ctx, rtcgatechild.Options{
		Bin: env.bin, Args: rtcgateArgs(env.cfg), Env: extraEnv,
		LogPath: filepath.Join(env.Dir, "rtcgate-"+scenario+".log"), Want: wantListeners,
		ReadyTimeout: env.cfg.readyTimeout, Logf: env.Logf,
	})
	if err != nil {
		return nil, err
	}
	out, err := cli(c, "set loglevel "+strconv.Itoa(env.cfg.logLevel))
	if err != nil || !strings.Contains(out, "Success") {
		env.Logf("warning: set loglevel %d over the CLI: %v %q (the run keeps level 6)", env.cfg.logLevel, err, strings.TrimSpace(out))
	}
	if n, err := childNoFile(c.Pid()); err != nil {
		env.Logf("warning: cannot read rtcgate's fd limit: %v", err)
	} else if need := int64(env.cfg.sessions + 1000); scenario == "idle" && n < need {
		c.Stop()
		return nil, fmt.Errorf("rtcgate did not start: rtcgate's RLIMIT_NOFILE is %d, below the %d the idle scenario needs", n, need)
	} else {
		env.childNoFile = n
	}
	env.Logf("%s: rtcgate pid %d, client %s, control %s", scenario, c.Pid(), c.Addr("listen-client"), c.Addr("listen-http"))
	return c, nil
}
