package benchrun

import (
	"bytes"
	"encoding/json"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestScenarios(t *testing.T) {
	known := []string{"a", "b", "c"}
	got, err := Scenarios(" c, a,,c ", known)
	if err != nil || !slices.Equal(got, []string{"c", "a"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := Scenarios("a,x", known); err == nil || !strings.Contains(err.Error(), `unknown "x" (want a,b,c)`) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := Scenarios(" , ", known); err == nil || err.Error() != "-scenarios: none given" {
		t.Fatalf("none: %v", err)
	}
}

func TestParseRefusesArguments(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	n := fs.Int("n", 1, "")
	if err := Parse(fs, []string{"-n", "2"}); err != nil || *n != 2 {
		t.Fatalf("got %d, %v", *n, err)
	}
	if err := Parse(fs, []string{"-n", "2", "extra"}); err == nil {
		t.Fatal("extra argument accepted")
	}
}

func TestReport(t *testing.T) {
	var w bytes.Buffer
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	Report(&w, "xbench", started, "N=1", []string{"table"}, Notes{Errors: []string{"e"}, Warnings: []string{"w"}},
		map[string]any{"results": 1})
	lines := strings.Split(w.String(), "\n")
	if lines[0] != "" || !strings.HasPrefix(lines[1], "xbench  2026-01-02 03:04  cores=") || !strings.HasSuffix(lines[1], "  N=1") ||
		lines[2] != "table" || lines[3] != "error: e" || lines[4] != "warning: w" {
		t.Fatalf("report:\n%s", w.String())
	}
	var j map[string]any
	if err := json.Unmarshal([]byte(lines[5]), &j); err != nil {
		t.Fatal(err)
	}
	if j["date"] != "2026-01-02T03:04:05Z" || j["results"] != 1.0 || j["cores"] == nil {
		t.Fatalf("JSON line: %v", j)
	}
}
