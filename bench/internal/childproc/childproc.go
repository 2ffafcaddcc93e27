// Package childproc runs the process under test of a benchmark program (a
// relay, rtcgate) as a child in its own process group, with its output in a
// log file, and stops it in order.
package childproc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Options say how Start runs a child.
type Options struct {
	// Name names the process in errors: "<Name> exited: …".
	Name string
	// LogPath is the file that gets the command line, as "$ [env] bin
	// args", then the child's stdout and stderr.
	LogPath string
	// Append adds to the log (after a build's output, say) instead of
	// truncating it.
	Append bool
	// Env is added to this process's environment for the child.
	Env []string
	// Output, if set, wraps the log for the child's stdout and stderr, to
	// watch what it writes; the wrapper must pass everything on to log.
	Output func(log io.Writer) io.Writer
}

// Process is a started child. Its methods may be called from any goroutine
// except Stop and MarkReported, which belong to the one owner.
type Process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // valid after exited is closed
	stopped bool          // we asked it to stop; an exit before that is a crash
}

// Start starts bin with args. The child gets its own process group, so that
// a Ctrl-C in the terminal reaches only us and we stop it in order, and
// SIGKILL as its parent-death signal, so that if we die anyway it does too
// instead of holding its ports.
func Start(bin string, args []string, o Options) (*Process, error) {
	flag := os.O_TRUNC
	if o.Append {
		flag = os.O_APPEND
	}
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|flag, 0o644)
	if err != nil {
		return nil, err
	}
	cmdline := append(append(append([]string(nil), o.Env...), bin), args...)
	fmt.Fprintf(logf, "$ %s\n", strings.Join(cmdline, " "))
	cmd := exec.Command(bin, args...)
	if o.Env != nil {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	var out io.Writer = logf
	if o.Output != nil {
		out = o.Output(logf)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{name: o.Name, logPath: o.LogPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait() // returns after any Output wrapper is done
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the child's process id (and process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is the child's log file.
func (p *Process) LogPath() string { return p.logPath }

// Exited is closed once the child has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the child is still running.
func (p *Process) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ExitError describes how the child ended, for one that should still be
// running; call it only once Alive is false.
func (p *Process) ExitError() error {
	if p.waitErr != nil {
		return fmt.Errorf("%s exited: %w", p.name, p.waitErr)
	}
	return fmt.Errorf("%s exited with status 0", p.name)
}

// MarkReported tells Stop that the caller has reported the death of a child
// that is no longer alive, so that Stop does not report it again. On a live
// child it does nothing.
func (p *Process) MarkReported() {
	if !p.Alive() {
		p.stopped = true
	}
}

// Stop ends the child's whole process group (so that a wrapper script's
// children go too): SIGTERM, then SIGKILL if the child has not exited within
// five seconds. It returns ExitError if the child had died on its own (once
// only; then nil), after killing whatever it left in its group.
func (p *Process) Stop() error {
	pgid := -p.cmd.Process.Pid
	if !p.Alive() {
		if p.stopped {
			return nil
		}
		p.stopped = true
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		return p.ExitError()
	}
	p.stopped = true
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.exited
	}
	return nil
}

// LogTail returns the last n lines of the log file at path, or a note why
// there is none.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// GoBuild compiles the Go package src into the binary bin, so that the
// process a program measures is that binary and not `go run` around it;
// the error carries the compiler's output.
func GoBuild(ctx context.Context, src, bin string) error {
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, src).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -o %s %s: %w\n%s", bin, src, err, Indent(strings.TrimSpace(string(out))))
	}
	return nil
}

// Indent indents every line of s by four spaces, to set a log's lines
// (LogTail's) apart from the program's own.
func Indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
