package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.targets, ",") != "rtpengine,rtcgate" || cfg.workers != 32 || cfg.calls != 500 ||
		cfg.rate != 50 || cfg.durationA != 10*time.Second || cfg.durationB != 20*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	if !cfg.has("a") || !cfg.has("b") {
		t.Fatal("default scenarios")
	}
	lo0, hi0 := cfg.portRange(0)
	lo1, hi1 := cfg.portRange(1)
	if hi0 >= lo1 || hi1-lo1 != hi0-lo0 || hi0-lo0+1 < 4*cfg.calls {
		t.Fatalf("port ranges %d-%d and %d-%d", lo0, hi0, lo1, hi1)
	}
	for _, bad := range [][]string{
		{"-targets", "kamailio"}, {"-targets", "rtpengine,rtpengine"}, {"-targets", ""},
		{"-workers", "0"}, {"-rate", "0"}, {"-duration-a", "0s"}, {"-scenarios", "d"},
		{"-port-base", "65000"}, {"extra"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestTableRatios(t *testing.T) {
	cfg, _ := parseFlags(nil, io.Discard)
	by := map[string]*targetResult{
		"rtpengine": {Name: "rtpengine", OK: true, A: &aResult{CyclesPerS: 4000, CyclesPerCPUS: 4000}, B: &bResult{CPUSPer1M: 10}},
		"rtcgate":   {Name: "rtcgate", OK: false, A: &aResult{CyclesPerS: 6000, CyclesPerCPUS: 10000}},
	}
	lines := table(cfg, by)
	find := func(label string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, label) {
				return l
			}
		}
		t.Fatalf("no row %q in\n%s", label, strings.Join(lines, "\n"))
		return ""
	}
	if l := find("(a) cycles per CPU-second"); !strings.Contains(l, "2.50") || !strings.HasSuffix(l, "(target ratio ≥ 2.0: met)") {
		t.Errorf("ratio or goal missing: %q", l)
	}
	if g := goals(by); g["a_cycles_per_cpu_s_ratio_ge_2"] != true || len(g) != 1 {
		t.Errorf("goals = %v", g)
	}
	if l := find("(b) CPU-s per 1M packets"); !strings.Contains(l, "FAILED") || !strings.Contains(l, "10.00") {
		t.Errorf("failed target not shown: %q", l)
	}
	r := ratios(by)
	if r["a_cycles_per_s"] != 1.5 {
		t.Errorf("ratios = %v", r)
	}
	if _, ok := r["b_cpu_s_per_1m_packets"]; ok {
		t.Error("ratio for a figure rtcgate lacks")
	}
}
