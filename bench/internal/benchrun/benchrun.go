// Package benchrun is the frame the benchmark programs under bench/ share:
// flags and exit status (Main), a run's directory and log (Env), and the
// report, a header line, the table, its errors and warnings and a final
// line of JSON (Report).
package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Main is a benchmark program's main: it parses the flags with parse and
// runs run until it returns or SIGINT or SIGTERM cancels its context (the
// children are stopped in order then, not left running), and exits with
// run's status. -h exits 0; bad flags exit 2 with the error on stderr.
func Main[C any](name string, parse func(args []string, stderr io.Writer) (C, error), run func(ctx context.Context, cfg C, stdout, stderr io.Writer) int) {
	cfg, err := parse(os.Args[1:], os.Stderr)
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Parse parses a program's flags; arguments left over are an error, since
// none of the programs takes any.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}

// Scenarios parses a -scenarios list: comma-separated names of known, in
// the order given, each once however often it is named, and at least one.
func Scenarios(list string, known []string) ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(known, s) {
			return nil, fmt.Errorf("-scenarios: unknown %q (want %s)", s, strings.Join(known, ","))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-scenarios: none given")
	}
	return out, nil
}

// Env is what every scenario of a run shares: the program's log and the
// directory that holds the logs, the binary and the peers' files.
type Env struct {
	Name     string // the program's: prefix of its log lines and of Dir
	Stderr   io.Writer
	Dir      string // "" until MakeDir
	KeepLogs bool   // -keep-logs
	Keep     bool   // something failed: Cleanup keeps Dir whatever -keep-logs says
}

// Logf writes one line to the program's log, stderr.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Stderr, e.Name+": "+format+"\n", args...)
}

// MakeDir makes the run's directory, a new one under the system's
// temporary directory.
func (e *Env) MakeDir() error {
	dir, err := os.MkdirTemp("", e.Name+"-")
	if err != nil {
		return err
	}
	e.Dir = dir
	return nil
}

// Cleanup removes the run's directory, unless -keep-logs or a failure asks
// to keep it: then it says where it is.
func (e *Env) Cleanup() {
	if e.Dir == "" {
		return
	}
	if e.KeepLogs || e.Keep {
		e.Logf("logs kept in %s", e.Dir)
		return
	}
	os.RemoveAll(e.Dir)
}

// Fail records that scenario failed with err: in the log, in n (the table
// and the JSON), and by keeping the run's directory for its logs. The
// exit status is the caller's to set.
func (e *Env) Fail(n *Notes, scenario string, err error) {
	e.Keep = true
	n.Errors = append(n.Errors, fmt.Sprintf("(%s) %v", scenario, err))
	e.Logf("(%s) FAILED: %v", scenario, err)
}

// FailStart records that something the run needs (rtcgate, a peer) did
// not build or start: in the log, in n, and by keeping the run's directory.
// The program then reports what it has and exits 3.
func (e *Env) FailStart(n *Notes, err error) {
	e.Keep = true
	n.Errors = append(n.Errors, err.Error())
	e.Logf("FAILED: %v", err)
}

// Notes are a run's errors and warnings: printed under the table, and part
// of the results in the JSON line (embedded last in a program's results).
type Notes struct {
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Report prints a run's report to w: the header line (the program, when it
// started, the cores, then settings), the table, one line per error and
// warning, and the JSON line.
func Report(w io.Writer, name string, started time.Time, settings string, table []string, n Notes, fields map[string]any) {
	Header(w, name, started, settings)
	for _, line := range table {
		fmt.Fprintln(w, line)
	}
	for _, e := range n.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	for _, wn := range n.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wn)
	}
	JSON(w, started, fields)
}

// Header prints the line above the table, after a blank line that parts it
// from anything printed before.
func Header(w io.Writer, name string, started time.Time, settings string) {
	fmt.Fprintf(w, "\n%s  %s  cores=%d  %s\n", name, started.Format("2006-01-02 15:04"), runtime.NumCPU(), settings)
}

// JSON prints the report's last line: fields with the date and the number
// of cores, every figure for a program to read.
func JSON(w io.Writer, started time.Time, fields map[string]any) {
	out := map[string]any{"date": started.Format(time.RFC3339), "cores": runtime.NumCPU()}
	maps.Copy(out, fields)
	b, err := json.Marshal(out)
	if err != nil {
		b = fmt.Appendf(nil, `{"error":%q}`, err.Error())
	}
	fmt.Fprintf(w, "%s\n", b)
}
