package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// target is one relay under test, running as our child process with its
// stdout and stderr in a log file; Process is nil until it is started.
type target struct {
	*childproc.Process
	name             string
	ngAddr           string
	portMin, portMax int
	logPath          string
}

// freeUDPPort asks the kernel for a free loopback UDP port for an ng
// listener. Another process could take it before the relay binds it; the
// readiness check would then fail loudly rather than measure something else.
func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// rtpengineArgs is the anchor's command line, the one the e2e tests use
// (testpeer.RtpengineArgs): userspace only, loopback only, no config file.
func rtpengineArgs(ngAddr string, portMin, portMax int) []string {
	return testpeer.RtpengineArgs(ngAddr, portMin, portMax)
}

// rtcgateArgs mirrors rtpengineArgs for rtcgate; its HTTP and CLI listeners
// get kernel-chosen ports because the benchmark does not use them.
// kernel is its kernel-forwarding: off (userspace, like the anchor) or
// required (the kernel path, or no run at all).
func rtcgateArgs(ngAddr string, portMin, portMax int, kernel string) []string {
	return []string{
		"serve",
		"--listen-ng", ngAddr,
		"--listen-http", "127.0.0.1:0",
		"--listen-cli", "127.0.0.1:0",
		"--listen-client", "127.0.0.1:0", // not 8080: someone else's may hold it
		"--listen-sip", "", // no SIP gateway (5060 may be taken, and it is not measured)
		"--interface", "127.0.0.1",
		"--port-min", strconv.Itoa(portMin),
		"--port-max", strconv.Itoa(portMax),
		"--delete-delay", "0",
		"--timeout", "60",
		"--log-level", "4",
		"--kernel-forwarding", kernel,
	}
}

// buildRtcgate compiles rtcgate from source into dir, once per run, so that
// the process we measure is rtcgate itself and not `go run` wrapping it.
func buildRtcgate(ctx context.Context, src, dir, logPath string) (string, error) {
	bin := filepath.Join(dir, "rtcgate")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, src)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, append([]byte("$ go build -o "+bin+" "+src+"\n"), out...), 0o644)
	if err != nil {
		return "", fmt.Errorf("go build %s: %w", src, err)
	}
	return bin, nil
}

// startTarget starts bin with args, output appended to t.logPath.
func startTarget(t *target, bin string, args []string) error {
	p, err := childproc.Start(bin, args, childproc.Options{Name: t.name, LogPath: t.logPath, Append: true})
	if err != nil {
		return err
	}
	t.Process = p
	return nil
}

// waitReady pings until the relay answers pong, the process dies, or the
// limit passes.
func (t *target) waitReady(ctx context.Context, c *ngClient, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if !t.Alive() {
			return t.ExitError()
		}
		pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, _, err := c.do(pctx, map[string]any{"command": "ping"})
		pcancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("no reply")
			}
			return fmt.Errorf("no pong from %s within %v: %w", t.ngAddr, limit, last)
		case <-t.Exited():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
