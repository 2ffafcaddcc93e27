package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

func testRegistry() *Registry {
	r := New(nil)
	r.Handle("list totals", "", "print totals", func(_ context.Context, args []string, w io.Writer) {
		fmt.Fprintf(w, "totals %q\n", args)
	})
	r.Handle("list sessions", "<callid>|all", "print sessions", func(_ context.Context, args []string, w io.Writer) {
		fmt.Fprintf(w, "sessions %q\n", args)
	})
	r.Handle("set maxsessions", "<int>", "set max sessions", func(_ context.Context, args []string, w io.Writer) {
		fmt.Fprintf(w, "set %q", args) // no trailing newline: Run adds it
	})
	r.Handle("terminate", "<callid>|all", "end calls", func(_ context.Context, args []string, w io.Writer) {
		fmt.Fprintf(w, "terminate %q\n", args)
	})
	r.Handle("boom", "", "panics", func(context.Context, []string, io.Writer) { panic("kaputt") })
	r.Alias("get", "list")
	return r
}

func TestRunDispatch(t *testing.T) {
	r := testRegistry()
	for _, tc := range []struct{ line, want string }{
		{"list totals", "totals []\n"},
		{"  list   totals  ", "totals []\n"},
		{"list totals extra words", "totals [\"extra\" \"words\"]\n"},
		{"list sessions all", "sessions [\"all\"]\n"},
		{"get totals", "totals []\n"},
		{"set maxsessions 5", "set [\"5\"]\n"},
		{"terminate", "terminate []\n"},
		{"terminate abc@host", "terminate [\"abc@host\"]\n"},
		// rtpengine's answers for incomplete and unknown commands.
		{"list", "More parameters required.\n"},
		{"", "More parameters required.\n"},
		{"foo bar", "Unknown or incomplete command::foo bar\n"},
		{"list foo", "Unknown or incomplete command::foo\n"},
		{"list foo bar", "Unknown or incomplete command::foo bar\n"},
		{"LIST totals", "Unknown or incomplete command::LIST totals\n"},
		{"list help", "Available sub-commands at this level:\n\ttotals\n\tsessions\n"},
		{"get help", "Available sub-commands at this level:\n\ttotals\n\tsessions\n"},
		{"help", "Available sub-commands at this level:\n\tusage\n\tlist\n\tset\n\tterminate\n\tboom\n\tget\n"},
		{"boom", "Internal error running \"boom\"\n"},
	} {
		if got := r.Run(context.Background(), tc.line); got != tc.want {
			t.Errorf("Run(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestUsageListsEveryCommandOnce(t *testing.T) {
	out := testRegistry().Run(context.Background(), "usage")
	for _, want := range []string{"list totals", "list sessions <callid>|all", "set maxsessions <int>", "terminate <callid>|all"} {
		if strings.Count(out, want+" ") != 1 {
			t.Errorf("usage lists %q %d times, want once:\n%s", want, strings.Count(out, want+" "), out)
		}
	}
	if strings.Contains(out, "get totals") {
		t.Errorf("usage lists the alias as well:\n%s", out)
	}
}

func TestHandleReplaces(t *testing.T) {
	r := testRegistry()
	r.Handle("list totals", "", "new", func(_ context.Context, _ []string, w io.Writer) { io.WriteString(w, "new\n") })
	if got := r.Run(context.Background(), "get totals"); got != "new\n" {
		t.Fatalf("after re-registering, alias runs %q", got)
	}
}

// FuzzRun feeds arbitrary command lines to the registry: it must never panic,
// always answer with text ending in a newline, and answer the same line the
// same way every time.
func FuzzRun(f *testing.F) {
	for _, s := range []string{"list totals", "list", "help", "list help", "get sessions all", "set maxsessions -1",
		"foo", "\x00\xff", "list\ttotals", "terminate all\r\n", strings.Repeat("list ", 100), "usage"} {
		f.Add(s)
	}
	r := testRegistry()
	f.Fuzz(func(t *testing.T, line string) {
		out := r.Run(context.Background(), line)
		if !strings.HasSuffix(out, "\n") {
			t.Fatalf("Run(%q) = %q: no trailing newline", line, out)
		}
		if again := r.Run(context.Background(), line); again != out {
			t.Fatalf("Run(%q) not deterministic: %q then %q", line, out, again)
		}
		if strings.Contains(out, "Internal error") && !strings.HasPrefix(strings.TrimSpace(line), "boom") {
			t.Fatalf("Run(%q) failed internally: %q", line, out)
		}
	})
}
