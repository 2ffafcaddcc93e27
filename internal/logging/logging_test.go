package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/cli"
)

func TestLevelsFilterPerSubsystem(t *testing.T) {
	var out bytes.Buffer
	logs := New(&out, "json", LevelInfo)
	core := logs.Logger("core", "core things")
	http := logs.Logger("http", "web things")

	core.Debug("hidden at 6")
	core.Info("shown at 6", "k", "v")
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("at level 6 want 1 line, got %d:\n%s", n, out.String())
	}
	var rec map[string]any
	if err := json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &rec); err != nil {
		t.Fatal(err)
	}
	if rec["msg"] != "shown at 6" || rec["subsys"] != "core" || rec["k"] != "v" {
		t.Fatalf("json record = %v", rec)
	}

	out.Reset()
	logs.SetLevel("http", LevelDebug)
	http.Debug("http debug")
	core.Debug("core debug")
	if got := out.String(); !strings.Contains(got, "http debug") || strings.Contains(got, "core debug") {
		t.Fatalf("per-subsystem level not applied:\n%s", got)
	}

	out.Reset()
	logs.SetLevel("", LevelWarning)
	http.Info("info")
	core.Warn("warning")
	if got := out.String(); strings.Contains(got, "info") || !strings.Contains(got, "warning") {
		t.Fatalf("set all to 4:\n%s", got)
	}
	// A subsystem created after `set loglevel N` starts at N.
	logs.Logger("late", "late subsystem")
	if lv, _ := logs.Level("late"); lv != LevelWarning {
		t.Fatalf("late subsystem level = %d, want 4", lv)
	}
}

func TestNoticeSitsBetweenInfoAndWarning(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, "text", LevelNotice).Logger("core", "")
	l.Info("info")
	l.Log(context.Background(), SlogNotice, "notice")
	if got := out.String(); strings.Contains(got, "msg=info") || !strings.Contains(got, "msg=notice") {
		t.Fatalf("level 5:\n%s", got)
	}
}

func TestCLI(t *testing.T) {
	logs := New(&bytes.Buffer{}, "text", LevelInfo)
	logs.Logger("core", "Everything else")
	logs.Logger("http", "HTTP, HTTPS, Websockets")
	r := cli.New(nil)
	logs.RegisterCLI(r)
	ctx := context.Background()
	for _, c := range []struct{ cmd, want string }{
		{"list loglevel", "core = 6\nhttp = 6\n"},
		{"list loglevels", "core - Everything else\nhttp - HTTP, HTTPS, Websockets\n"},
		{"set loglevel 7", "Success setting loglevel to 7\n"},
		{"list loglevel", "core = 7\nhttp = 7\n"},
		{"set loglevel http 3", "Success setting loglevel to 3\n"},
		{"list loglevel http", "3\n"},
		{"list loglevel core", "7\n"},
		{"list loglevel nope", "Subsystem 'nope' not found\n"},
		{"set loglevel nope 3", "Subsystem 'nope' not found\n"},
		{"set loglevel 9", "Fail setting loglevel to 9; allowed values are 1 (alert) to 7 (debug)\n"},
		{"set loglevel abc", "Fail setting loglevel to abc; allowed values are 1 (alert) to 7 (debug)\n"},
		{"set loglevel", "More parameters required.\n"},
		{"list loglevel", "core = 7\nhttp = 3\n"},
	} {
		if got := r.Run(ctx, c.cmd); got != c.want {
			t.Errorf("%s = %q, want %q", c.cmd, got, c.want)
		}
	}
}
