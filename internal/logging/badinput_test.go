package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log output that tests can read while timers write, and
// that signals each write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1024)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records decodes JSON log lines.
func records(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestLimiterInterval(t *testing.T) {
	out := newSyncBuffer()
	log := New(out, "json", LevelInfo).Logger("sip", "")
	clk := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(3, 10*time.Second, log)
	l.now = func() time.Time { return clk }
	allowed := 0
	for range 1000 {
		if l.Allow() {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("%d of 1000 allowed in one interval, want 3", allowed)
	}
	if out.String() != "" {
		t.Fatalf("summary before the interval ended: %s", out.String())
	}
	// The next interval begins with the previous one's summary.
	clk = clk.Add(10 * time.Second)
	if !l.Allow() {
		t.Fatal("a new interval does not allow a line")
	}
	recs := records(t, out.String())
	if len(recs) != 1 || recs[0]["msg"] != "997 more suppressed" || recs[0]["suppressed"] != 997.0 || recs[0]["subsys"] != "sip" {
		t.Fatalf("summary: %v", recs)
	}
	// A quiet interval says nothing.
	clk = clk.Add(time.Minute)
	l.Allow()
	if n := len(records(t, out.String())); n != 1 {
		t.Fatalf("%d lines after a quiet interval", n)
	}
}

// TestLimiterSummaryWhenQuiet: with nothing after a flood, the summary
// still comes, at the interval's end.
func TestLimiterSummaryWhenQuiet(t *testing.T) {
	out := newSyncBuffer()
	l := NewLimiter(1, 50*time.Millisecond, New(out, "json", LevelInfo).Logger("control", ""))
	for range 10 {
		l.Allow()
	}
	select {
	case <-out.wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("no summary within 5s of a 50ms interval")
	}
	if recs := records(t, out.String()); len(recs) != 1 || recs[0]["msg"] != "9 more suppressed" {
		t.Fatalf("summary: %v", recs)
	}
}

// TestReporterFlood: every bad input is counted; the log gets a few short
// lines.
func TestReporterFlood(t *testing.T) {
	out := newSyncBuffer()
	logs := New(out, "json", LevelInfo)
	logs.BadInput().SetLimit(5, time.Hour)
	r := logs.BadInput().Reporter("control", logs.Logger("control", ""))
	big := bytes.Repeat([]byte("\x00garbage!\xff"), 8700) // 87 KB
	for range 100000 {
		r.Report("listen-ng", "no-cookie", "127.0.0.1:9", big)
	}
	if n := logs.BadInput().Count("listen-ng", "no-cookie"); n != 100000 {
		t.Fatalf("counted %v, want 100000", n)
	}
	got := out.String()
	recs := records(t, got)
	if len(recs) != 5 || len(got) > 5*512 {
		t.Fatalf("%d lines, %d bytes of log for 100000 bad inputs:\n%.2000s", len(recs), len(got), got)
	}
	for _, rec := range recs {
		data := rec["data"].(string)
		if rec["msg"] != "bad input" || rec["reason"] != "no-cookie" || rec["bytes"] != float64(len(big)) ||
			len(data) > MaxExcerpt+24 || !strings.HasSuffix(data, "…(87000 bytes)") {
			t.Fatalf("line %v", rec)
		}
	}
	// Flush (at shutdown) says how many were held back.
	logs.BadInput().Flush()
	recs = records(t, out.String())
	if len(recs) != 6 || recs[5]["msg"] != "99995 more suppressed" {
		t.Fatalf("after Flush: %v", recs[5:])
	}
	logs.BadInput().Flush()
	if len(records(t, out.String())) != 6 {
		t.Fatal("a second Flush logged again")
	}

	// Off below warning: counted, not logged.
	logs.SetLevel("control", LevelErr)
	r.Report("listen-ng", "no-cookie", "x", nil)
	if logs.BadInput().Count("listen-ng", "no-cookie") != 100001 || len(records(t, out.String())) != 6 {
		t.Fatal("not counted, or logged, at level 3")
	}
}

func TestExcerpt(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"short", "short"},
		{"bad \xff utf8", "bad . utf8"},
		{"ctl \x01\x00\r\n\u200b end", "ctl ..... end"},
		{"é ü 中", "é ü 中"},
		{strings.Repeat("a", MaxExcerpt), strings.Repeat("a", MaxExcerpt)},
		{strings.Repeat("a", MaxExcerpt+1), strings.Repeat("a", MaxExcerpt) + "…(129 bytes)"},
		{strings.Repeat("a", MaxExcerpt-1) + "é", strings.Repeat("a", MaxExcerpt-1) + "…(129 bytes)"},
	} {
		if got := Excerpt(tt.in); got != tt.want {
			t.Errorf("Excerpt(%.20q…) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestWrapLibrary: a library that logs each unparsable datagram at ERROR
// with its raw bytes (sipgo) is counted per record, logged a few lines,
// its values cut short — and counted even with the log level below ERROR.
func TestWrapLibrary(t *testing.T) {
	out := newSyncBuffer()
	logs := New(out, "json", LevelInfo)
	logs.BadInput().SetLimit(3, time.Hour)
	classify := func(r slog.Record, attrs []slog.Attr) (string, string, bool) {
		if r.Message != "failed to parse" {
			return "", "", false
		}
		for i := len(attrs) - 1; i >= 0; i-- {
			if attrs[i].Key == "caller" && attrs[i].Value.String() == "Transport<UDP>" {
				return "listen-sip/udp", "parse", true
			}
		}
		return "listen-sip", "parse", true
	}
	lib := logs.BadInput().Wrap(logs.Logger("sip", ""), "sip", classify).With("caller", "TransportLayer").With("caller", "Transport<UDP>")
	data := strings.Repeat("GARBAGE ", 11000)
	for range 10000 {
		lib.Error("failed to parse", "data", data, "error", errors.New(strings.Repeat("e", 500)))
	}
	lib.Debug("debug is not limited") // but hidden at level 6
	if n := logs.BadInput().Count("listen-sip/udp", "parse"); n != 10000 {
		t.Fatalf("counted %v", n)
	}
	got := out.String()
	recs := records(t, got)
	if len(recs) != 3 || len(got) > 3*700 {
		t.Fatalf("%d lines, %d bytes:\n%.3000s", len(recs), len(got), got)
	}
	for _, rec := range recs {
		if len(rec["data"].(string)) > MaxExcerpt+24 || len(rec["error"].(string)) > MaxExcerpt+24 || rec["caller"] != "Transport<UDP>" ||
			rec["level"] != "WARN" || rec["listener"] != "listen-sip/udp" || rec["reason"] != "parse" {
			t.Fatalf("line %v", rec)
		}
	}
	// Other records share the budget; debug ones do not.
	lib.Warn("something else")
	logs.SetLevel("sip", LevelDebug)
	lib.Debug("debug", "data", data)
	if recs := records(t, out.String()); len(recs) != 4 || recs[3]["msg"] != "debug" || len(recs[3]["data"].(string)) > MaxExcerpt+24 {
		t.Fatalf("records %v", recs[3:])
	}
	// At level 2 nothing is logged, everything counted.
	logs.SetLevel("sip", LevelCrit)
	lib.Error("failed to parse", "data", "x")
	if logs.BadInput().Count("listen-sip/udp", "parse") != 10001 || len(records(t, out.String())) != 4 {
		t.Fatal("not counted at level 2")
	}
}
