package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseLeases(t *testing.T) {
	got, err := parseLeases(" 5s/1s, 2s/250ms ,")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (lease{5 * time.Second, time.Second}) || got[1] != (lease{2 * time.Second, 250 * time.Millisecond}) {
		t.Fatalf("got %v", got)
	}
	// rtcgate's own rules: heartbeat ≥ 100ms, ttl ≥ 2×heartbeat.
	for _, bad := range []string{"", "5s", "5s/", "1s/1s", "1s/50ms", "x/1s", "2m/1s", "1s/100ms,1s/100ms,1s/100ms,1s/100ms,1s/100ms"} {
		if _, err := parseLeases(bad); err == nil {
			t.Errorf("parseLeases(%q): no error", bad)
		}
	}
}

func FuzzParseLeases(f *testing.F) {
	f.Add("5s/1s,2s/250ms")
	f.Add("1s/100ms")
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := parseLeases(s)
		if err != nil {
			return
		}
		if len(ls) == 0 || len(ls) > 4 {
			t.Fatalf("%q: %d settings", s, len(ls))
		}
		for _, l := range ls {
			if l.Heartbeat < 100*time.Millisecond || l.TTL < 2*l.Heartbeat || l.TTL > time.Minute {
				t.Fatalf("%q: %v accepted", s, l)
			}
		}
	})
}

func TestParseNodes(t *testing.T) {
	got, err := parseNodes("1,2,2, 3")
	if err != nil || len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "9", "a", ","} {
		if _, err := parseNodes(bad); err == nil {
			t.Errorf("parseNodes(%q): no error", bad)
		}
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-scenarios", "takeover", "-leases", "3s/1s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.has("takeover") || cfg.has("lb") || len(cfg.leases) != 1 {
		t.Fatalf("%+v", cfg)
	}
	for _, bad := range [][]string{{"-conns", "0"}, {"-retry-every", "1ms"}, {"-route-rate", "-1"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%v): no error", bad)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	q := quantilesOf(ds)
	if q.N != 100 || q.P50Ms != 50 || q.P99Ms != 99 || q.MaxMs != 100 {
		t.Fatalf("%+v", q)
	}
	if q := quantilesOf(nil); q.N != 0 {
		t.Fatalf("%+v", q)
	}
	if q := quantilesOf([]time.Duration{7 * time.Millisecond}); q.P50Ms != 7 || q.P99Ms != 7 {
		t.Fatalf("%+v", q)
	}
}

// TestProjections: with no extra cost per forwarded request the cluster
// is N× one node; with twice the cost, 2 nodes carry 4/3×.
func TestProjections(t *testing.T) {
	if got := projections(1); !strings.HasPrefix(got, " N=2 2.0×, N=3 3.0×") {
		t.Fatalf("r=1: %s", got)
	}
	if got := projections(2); !strings.HasPrefix(got, " N=2 1.3×") {
		t.Fatalf("r=2: %s", got)
	}
}
