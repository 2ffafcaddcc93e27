package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// target is one relay under test, running as our child process with its
// stdout and stderr in a log file.
type target struct {
	name             string
	ngAddr           string
	portMin, portMax int
	logPath          string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // valid after exited is closed
	stopped bool          // we asked it to stop; an exit before that is a crash
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

// rtpengineArgs is the anchor's command line: userspace forwarding only
// (--table=-1 and --no-fallback, so a kernel module can never make its
// numbers incomparable), loopback only, and --config-file=none because the
// Debian package's /etc/rtpengine/rtpengine.conf is read by default and its
// [rtpengine] section would add CLI and HTTP listeners on the fixed ports
// 2224/2225 (colliding with anything else on the box) and recording settings.
func rtpengineArgs(ngAddr string, portMin, portMax int) []string {
	return []string{
		"--config-file=none",
		"--table=-1",
		"--foreground",
		"--log-stderr",
		"--log-level=4",
		"--interface=127.0.0.1",
		"--listen-ng=" + ngAddr,
		"--port-min=" + strconv.Itoa(portMin),
		"--port-max=" + strconv.Itoa(portMax),
		"--delete-delay=0",
		"--timeout=60",
		"--no-fallback",
	}
}

// rtcgateArgs mirrors rtpengineArgs for rtcgate; its HTTP and CLI listeners
// get kernel-chosen ports because the benchmark does not use them.
func rtcgateArgs(ngAddr string, portMin, portMax int) []string {
	return []string{
		"serve",
		"--listen-ng", ngAddr,
		"--listen-http", "127.0.0.1:0",
		"--listen-cli", "127.0.0.1:0",
		"--interface", "127.0.0.1",
		"--port-min", strconv.Itoa(portMin),
		"--port-max", strconv.Itoa(portMax),
		"--delete-delay", "0",
		"--timeout", "60",
		"--log-level", "4",
	}
}

// buildRtcgate compiles rtcgate from source into dir, so that the process
// we measure is rtcgate itself and not `go run` wrapping it.
func buildRtcgate(ctx context.Context, src, dir, logPath string) (string, error) {
	bin := filepath.Join(dir, "rtcgate")
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
	logf, err := os.OpenFile(t.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "$ %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C in the terminal reaches only us, and
		// we stop the relay in order. Pdeathsig: if we die anyway, so does
		// the relay, instead of holding its ports.
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	t.cmd = cmd
	t.exited = make(chan struct{})
	go func() {
		t.waitErr = cmd.Wait()
		logf.Close()
		close(t.exited)
	}()
	return nil
}

func (t *target) pid() int { return t.cmd.Process.Pid }

// alive reports whether the process is still running.
func (t *target) alive() bool {
	select {
	case <-t.exited:
		return false
	default:
		return true
	}
}

// exitError describes how the process ended, for a process that should
// still be running.
func (t *target) exitError() error {
	if t.waitErr != nil {
		return fmt.Errorf("%s exited: %w", t.name, t.waitErr)
	}
	return fmt.Errorf("%s exited with status 0", t.name)
}

// waitReady pings until the relay answers pong, the process dies, or the
// limit passes.
func (t *target) waitReady(ctx context.Context, c *ngClient, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if !t.alive() {
			return t.exitError()
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
		case <-t.exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the process: SIGTERM, then SIGKILL if it has not exited within
// five seconds. It returns an error if the process had died on its own.
func (t *target) stop() error {
	if t.cmd == nil {
		return nil
	}
	if !t.alive() {
		if t.stopped {
			return nil
		}
		t.stopped = true
		// Clean up anything the dead leader left in its group.
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		return t.exitError()
	}
	t.stopped = true
	// The whole process group (ours alone, from Setpgid), so that a
	// wrapper script's children go too.
	pgid := -t.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-t.exited
	}
	return nil
}

// logTail returns the last n lines of the target's log.
func (t *target) logTail(n int) string {
	b, err := os.ReadFile(t.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
