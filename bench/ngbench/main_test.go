package main

import (
	"fmt"
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
	if strings.Join(cfg.targets, ",") != "rtpengine,rtcgate,rtcgate-kernel" || cfg.workers != 32 || cfg.calls != 500 ||
		len(cfg.callCounts) != 1 || cfg.rate != 50 || cfg.durationA != 5*time.Second || cfg.durationB != 10*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	if !cfg.has("a") || !cfg.has("b") {
		t.Fatal("default scenarios")
	}
	full, err := parseFlags([]string{"-calls", "500,2000"}, io.Discard)
	if err != nil || fmt.Sprint(full.callCounts) != "[500 2000]" || full.calls != 2000 {
		t.Fatalf("-calls 500,2000: %v %+v", err, full)
	}
	for _, c := range []*config{cfg, full} {
		for i := range c.targets {
			lo, hi := c.portRange(i)
			if hi-lo+1 < 4*c.calls || hi > 65535 {
				t.Fatalf("calls %d: port range %d-%d", c.calls, lo, hi)
			}
			if i > 0 {
				if _, prevHi := c.portRange(i - 1); prevHi >= lo {
					t.Fatalf("port ranges overlap at %d", lo)
				}
			}
		}
	}
	for _, bad := range [][]string{
		{"-targets", "kamailio"}, {"-targets", "rtpengine,rtpengine"}, {"-targets", ""},
		{"-workers", "0"}, {"-rate", "0"}, {"-duration-a", "0s"}, {"-scenarios", "d"}, {"-calls-c", "0"},
		{"-port-base", "65000"}, {"extra"}, {"-calls", "0"}, {"-calls", "x"}, {"-calls", ""},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestTableRatiosAndGoals(t *testing.T) {
	cfg, _ := parseFlags(nil, io.Discard)
	by := map[string]*targetResult{
		sinkName:    {Name: sinkName, OK: true, B: map[int]*bResult{500: {Received: 1e6, OwnCPUSPer1M: 2, P99Ms: 0.3}}},
		"rtpengine": {Name: "rtpengine", OK: true, A: &aResult{CyclesPerS: 4000, CyclesPerCPUS: 4000}, B: map[int]*bResult{500: {Received: 1e6, CPUSPer1M: 10, OwnCPUSPer1M: 14}}},
		"rtcgate":   {Name: "rtcgate", OK: false, A: &aResult{CyclesPerS: 6000, CyclesPerCPUS: 10000}},
		"rtcgate-kernel": {Name: "rtcgate-kernel", OK: true, B: map[int]*bResult{500: {Received: 1e6, Lost: 0,
			CPUSPer1M: 0.01, OwnCPUSPer1M: 2.5, P99Ms: 0.35, BPFRunS: 0.1, BPFRuns: 1e6, BPFPer1M: 0.1}}},
	}
	addBaseline([]*targetResult{by[sinkName], by["rtpengine"], by["rtcgate"], by["rtcgate-kernel"]})
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
	if l := find("(a) cycles per CPU-second"); !strings.Contains(l, "2.50") {
		t.Errorf("ratio missing: %q", l)
	}
	if l := find("(b) relay CPU-s per 1M"); !strings.Contains(l, "FAILED") || !strings.Contains(l, "10.00") || !strings.Contains(l, "0.00") {
		t.Errorf("failed target or kernel ratio not shown: %q", l)
	}
	if l := find("(b) eBPF program ns per run"); !strings.Contains(l, "100") {
		t.Errorf("eBPF run time: %q", l)
	}
	if l := find("(b) added CPU-s per 1M"); !strings.Contains(l, "12.00") || !strings.Contains(l, "0.50") || !strings.Contains(l, "0.04") {
		t.Errorf("added figures or their ratio: %q", l)
	}
	g := goals(cfg, by)
	if !g["a_cycles_per_cpu_s_ratio_ge_2"] || !g["b_500_rtcgate-kernel_added_cpu_s_per_1m_le_1"] ||
		!g["b_500_rtcgate-kernel_zero_loss"] || !g["b_500_rtcgate-kernel_added_p99_le_0.2ms"] || len(g) != 4 {
		t.Errorf("goals = %v", g)
	}
	if l := find("goal: (b) 500 calls: rtcgate-kernel adds 0.50"); !strings.HasSuffix(l, ": met") {
		t.Errorf("goal line %q", l)
	}
	r := ratios(cfg, by)
	if r["a_cycles_per_s_rtcgate"] != 1.5 || r["b_added_cpu_s_per_1m_500_rtcgate-kernel"] != 0.5/12 {
		t.Errorf("ratios = %v", r)
	}
	if _, ok := r["b_cpu_s_per_1m_packets_500_rtcgate"]; ok {
		t.Error("ratio for a figure rtcgate lacks")
	}
}

func TestMedianRounds(t *testing.T) {
	round := func(added float64, ok bool) []*targetResult {
		return []*targetResult{{Name: "rtcgate-kernel", OK: ok, A: &aResult{CyclesPerCPUS: added},
			B: map[int]*bResult{500: {AddedCPUSPer1M: added}}, C: &cResult{SetupP99Ms: 100 * added}}}
	}
	m := medianRounds([][]*targetResult{round(3, true), round(0.5, false), round(1, true)})
	b := m[0].B[500]
	if b.AddedCPUSPer1M != 1 || b.Rounds != 3 || b.AddedMin != 0.5 || b.AddedMax != 3 || m[0].A.CyclesPerCPUS != 1 || m[0].OK {
		t.Errorf("median: %+v, %+v", m[0], b)
	}
	if c := m[0].C; c == nil || c.SetupP99Ms != 100 || c.Rounds != 3 || c.SetupP99Min != 50 || c.SetupP99Max != 300 {
		t.Errorf("(c) median: %+v", c)
	}
}
