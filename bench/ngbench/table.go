package main

import (
	"fmt"
	"slices"
	"strings"
)

// row is one line of the report: how to show a figure for a target (at a
// call count, for (b)), the number behind it, and whether ratios to
// rtpengine mean anything (key names the ratio in the JSON).
type row struct {
	label string
	key   string // JSON name of the ratio; empty: no ratio
	note  string
	b     bool // a scenario (b) row, shown per call count
	c     bool // a scenario (c) row
	get   func(r *targetResult, calls int) (string, float64, bool)
}

func aRow(label, key, note string, f func(a *aResult) (string, float64)) row {
	return row{label: label, key: key, note: note, get: func(r *targetResult, _ int) (string, float64, bool) {
		if r == nil || r.A == nil {
			return "", 0, false
		}
		s, v := f(r.A)
		return s, v, true
	}}
}

func bRow(label, key, note string, f func(b *bResult) (string, float64)) row {
	return row{label: label, key: key, note: note, b: true, get: func(r *targetResult, calls int) (string, float64, bool) {
		if r == nil || r.B[calls] == nil {
			return "", 0, false
		}
		s, v := f(r.B[calls])
		return s, v, true
	}}
}

func cRow(label, key, note string, f func(c *cResult) (string, float64)) row {
	return row{label: label, key: key, note: note, c: true, get: func(r *targetResult, _ int) (string, float64, bool) {
		if r == nil || r.C == nil {
			return "", 0, false
		}
		s, v := f(r.C)
		return s, v, true
	}}
}

// relayRow is a (b) row that has no meaning for the sink (no relay).
func relayRow(label, key, note string, f func(b *bResult) (string, float64)) row {
	r := bRow(label, key, note, f)
	get := r.get
	r.get = func(t *targetResult, calls int) (string, float64, bool) {
		if t == nil || t.Name == sinkName {
			return "", 0, false
		}
		return get(t, calls)
	}
	return r
}

func msStr(v float64) string { return fmt.Sprintf("%.2f ms", v) }

var rows = []row{
	aRow("(a) cycles/s", "a_cycles_per_s", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.0f", a.CyclesPerS), a.CyclesPerS
	}),
	aRow("(a) cycles per CPU-second", "a_cycles_per_cpu_s", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.0f", a.CyclesPerCPUS), a.CyclesPerCPUS
	}),
	aRow("(a) relay CPU-ms per cycle", "a_cpu_ms_per_cycle", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.3f", a.CPUMsPerCycle), a.CPUMsPerCycle
	}),
	aRow("(a) relay CPU-s", "", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.2f", a.RelayCPUS), a.RelayCPUS
	}),
	aRow("(a) p50 request latency", "a_p50", "", func(a *aResult) (string, float64) { return msStr(a.P50Ms), a.P50Ms }),
	aRow("(a) p99 request latency", "a_p99", "", func(a *aResult) (string, float64) { return msStr(a.P99Ms), a.P99Ms }),
	aRow("(a) errors / retransmits", "", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%d / %d", a.Errors, a.Retransmits), float64(a.Errors)
	}),
	aRow("(a) generator CPU-s", "", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.2f", a.GenCPUS), a.GenCPUS
	}),
	aRow("(a) host CPU busy", "", "(all cores)", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.0f%%", a.HostBusyPct), a.HostBusyPct
	}),
	aRow("(a) other processes CPU-s", "", "(should be ≈ 0: shared box)", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.2f", a.OtherCPUS), a.OtherCPUS
	}),
	bRow("(b) calls set up", "", "", func(b *bResult) (string, float64) {
		if b.SetupErrors > 0 {
			return fmt.Sprintf("%d (%d failed)", b.Calls, b.SetupErrors), float64(b.Calls)
		}
		return fmt.Sprintf("%d", b.Calls), float64(b.Calls)
	}),
	bRow("(b) packets sent", "", "(in window)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%d", b.Sent), float64(b.Sent)
	}),
	bRow("(b) packets received", "", "(sent in window)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%d", b.Received), float64(b.Received)
	}),
	bRow("(b) loss", "", "", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%d (%.2f%%)", b.Lost, b.LossPct), b.LossPct
	}),
	bRow("(b) p50 latency", "", "", func(b *bResult) (string, float64) { return msStr(b.P50Ms), b.P50Ms }),
	bRow("(b) p99 latency", "", "", func(b *bResult) (string, float64) { return msStr(b.P99Ms), b.P99Ms }),
	relayRow("(b) added p50 latency", "", "(less the sink's)", func(b *bResult) (string, float64) {
		return msStr(b.AddedP50Ms), b.AddedP50Ms
	}),
	relayRow("(b) added p99 latency", "", "(less the sink's)", func(b *bResult) (string, float64) {
		return msStr(b.AddedP99Ms), b.AddedP99Ms
	}),
	bRow("(b) max latency", "", "", func(b *bResult) (string, float64) { return msStr(b.MaxMs), b.MaxMs }),
	relayRow("(b) relay CPU-s", "b_relay_cpu_s", "(the relay process)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.RelayCPUS), b.RelayCPUS
	}),
	relayRow("(b) relay CPU-s per 1M", "b_cpu_s_per_1m_packets", "", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.CPUSPer1M), b.CPUSPer1M
	}),
	bRow("(b) own CPU-s per 1M", "", "(relay + generator + ksoftirqd)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.OwnCPUSPer1M), b.OwnCPUSPer1M
	}),
	relayRow("(b) added CPU-s per 1M", "b_added_cpu_s_per_1m", "(own, less the sink's)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.AddedCPUSPer1M), b.AddedCPUSPer1M
	}),
	row{label: "(b) added CPU-s per 1M, range", note: "(over the rounds; the median round is shown)", b: true,
		get: func(r *targetResult, calls int) (string, float64, bool) {
			if r == nil || r.Name == sinkName || r.B[calls] == nil || r.B[calls].Rounds < 2 {
				return "", 0, false
			}
			b := r.B[calls]
			return fmt.Sprintf("%.2f–%.2f", b.AddedMin, b.AddedMax), b.AddedMax, true
		}},
	bRow("(b) system CPU-s per 1M", "", "(/proc/stat less other live processes)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.SysCPUSPer1M), b.SysCPUSPer1M
	}),
	relayRow("(b) added system CPU-s per 1M", "b_added_system_cpu_s_per_1m", "(less the sink's; quiet box only)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.AddedSysPer1M), b.AddedSysPer1M
	}),
	row{label: "(b) eBPF program CPU-s per 1M", note: "(kernel.bpf_stats: every run, ours or not)", b: true,
		get: func(r *targetResult, calls int) (string, float64, bool) {
			if r == nil || r.B[calls] == nil || r.B[calls].BPFRuns == 0 {
				return "", 0, false
			}
			b := r.B[calls]
			return fmt.Sprintf("%.3f", b.BPFPer1M), b.BPFPer1M, true
		}},
	row{label: "(b) eBPF program ns per run", b: true,
		get: func(r *targetResult, calls int) (string, float64, bool) {
			if r == nil || r.B[calls] == nil || r.B[calls].BPFRuns == 0 {
				return "", 0, false
			}
			b := r.B[calls]
			ns := 1e9 * b.BPFRunS / float64(b.BPFRuns)
			return fmt.Sprintf("%.0f", ns), ns, true
		}},
	bRow("(b) generator CPU-s", "", "", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.GenCPUS), b.GenCPUS
	}),
	bRow("(b) host CPU busy", "", "(all cores)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.0f%%", b.HostBusyPct), b.HostBusyPct
	}),
	bRow("(b) other processes CPU-s", "", "(should be ≈ 0: shared box)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.OtherCPUS), b.OtherCPUS
	}),
	bRow("(b) sends >5 ms late", "", "(generator overload if > 0)", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%d", b.LateSends), float64(b.LateSends)
	}),
	bRow("(b) silent/misrouted streams", "", "", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%d / %d", b.SilentStreams, b.Misrouted), float64(b.SilentStreams)
	}),
	cRow("(c) WebRTC calls set up", "", "", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%d (%d failed)", c.Calls, c.SetupErrors), float64(c.Calls)
	}),
	cRow("(c) setup p99 (→ 1st SRTP)", "c_setup_p99_ms", "offer → first packet decrypted by the browser", func(c *cResult) (string, float64) {
		return msStr(c.SetupP99Ms), c.SetupP99Ms
	}),
	cRow("(c) packets in window", "", "SRTP⇄RTP, both ways", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%d", c.RecvWin), float64(c.RecvWin)
	}),
	cRow("(c) lost to plain / browser", "", "", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%d / %d", c.LostToPlain, c.LostToBrow), float64(c.LostToPlain + c.LostToBrow)
	}),
	cRow("(c) relay CPU-s / 1M packets", "c_cpu_s_per_1m_packets", "", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%.2f", c.CPUSPer1M), c.CPUSPer1M
	}),
	cRow("(c) host busy / others CPU-s", "", "contention during the window", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%.0f%% / %.1f", c.HostBusyPct, c.OtherCPUS), c.HostBusyPct
	}),
}

// columns are the results shown, in order: the sink first (when (b) ran),
// then the targets as asked.
func columns(cfg *config) []string {
	var cols []string
	if cfg.has("b") {
		cols = append(cols, sinkName)
	}
	return append(cols, cfg.targets...)
}

// ratioTargets are the targets with a ratio to rtpengine.
func ratioTargets(cfg *config) []string {
	if !slices.Contains(cfg.targets, "rtpengine") {
		return nil
	}
	var out []string
	for _, t := range cfg.targets {
		if t != "rtpengine" {
			out = append(out, t)
		}
	}
	return out
}

// table renders the rows for the results asked for, (b) once per call
// count, with a ratio to rtpengine per other target.
func table(cfg *config, by map[string]*targetResult) []string {
	const lw, cw, rw = 32, 15, 13
	cols, rts := columns(cfg), ratioTargets(cfg)
	var lines []string
	hdr := fmt.Sprintf("%-*s", lw, "")
	for _, c := range cols {
		hdr += fmt.Sprintf("%*s", cw, c)
	}
	for _, t := range rts {
		hdr += fmt.Sprintf("%*s", rw, strings.TrimPrefix(t, "rtcgate-")+"/rtpe")
	}
	lines = append(lines, hdr)
	render := func(r row, calls int) {
		line := fmt.Sprintf("%-*s", lw, r.label)
		for _, c := range cols {
			s, _, ok := r.get(by[c], calls)
			if !ok {
				s = "—"
				// FAILED where the scenario has no result at all.
				if t := by[c]; t != nil && !t.OK && (r.b && t.B[calls] == nil || r.c && t.C == nil || !r.b && !r.c && t.A == nil) {
					s = "FAILED"
				}
			}
			line += fmt.Sprintf("%*s", cw, s)
		}
		for _, t := range rts {
			if v, ok := ratio(r, by, t, calls); ok {
				line += fmt.Sprintf("%*.2f", rw, v)
			} else if r.key != "" {
				line += fmt.Sprintf("%*s", rw, "—")
			} else {
				line += fmt.Sprintf("%*s", rw, "")
			}
		}
		if r.note != "" {
			line += "  " + r.note
		}
		lines = append(lines, strings.TrimRight(line, " "))
	}
	if cfg.has("a") {
		for _, r := range rows {
			if !r.b && !r.c {
				render(r, 0)
			}
		}
	}
	if cfg.has("c") {
		lines = append(lines, fmt.Sprintf("(c) WebRTC ⇄ plain RTP, %d calls × 2 × %d/s:", cfg.callsC, cfg.rate))
		for _, r := range rows {
			if r.c {
				render(r, 0)
			}
		}
	}
	if cfg.has("b") {
		for _, calls := range cfg.callCounts {
			lines = append(lines, fmt.Sprintf("(b) %d calls × 2 × %d/s, %d-byte packets:", calls, cfg.rate, rtpPacketLen))
			for _, r := range rows {
				if r.b {
					render(r, calls)
				}
			}
		}
	}
	for _, g := range goalChecks(cfg, by) {
		lines = append(lines, "goal: "+g.text)
	}
	return lines
}

// ratio is target t's figure over rtpengine's for a row that has a ratio.
func ratio(r row, by map[string]*targetResult, t string, calls int) (float64, bool) {
	if r.key == "" {
		return 0, false
	}
	_, base, ok1 := r.get(by["rtpengine"], calls)
	_, v, ok2 := r.get(by[t], calls)
	if !ok1 || !ok2 || base == 0 {
		return 0, false
	}
	return v / base, true
}

// ratios collects every defined ratio for the JSON line, as
// KEY[_CALLS]_TARGET.
func ratios(cfg *config, by map[string]*targetResult) map[string]float64 {
	out := map[string]float64{}
	for _, t := range ratioTargets(cfg) {
		for _, r := range rows {
			counts := []int{0}
			if r.b {
				counts = cfg.callCounts
			}
			for _, calls := range counts {
				if v, ok := ratio(r, by, t, calls); ok {
					name := r.key
					if r.b {
						name = fmt.Sprintf("%s_%d", r.key, calls)
					}
					out[name+"_"+t] = v
				}
			}
		}
	}
	return out
}

// goal is one target of the issues, checked.
type goal struct {
	key  string
	met  bool
	text string
}

// goalChecks checks the targets set for rtcgate: signalling at least twice
// rtpengine's cycles per CPU-second; per million relayed packets at most 5
// CPU-seconds added in userspace and at most 1 with the kernel path, which
// also loses nothing and adds at most 0.2 ms at p99.
func goalChecks(cfg *config, by map[string]*targetResult) []goal {
	var out []goal
	add := func(key string, met bool, format string, args ...any) {
		v := "NOT met"
		if met {
			v = "met"
		}
		out = append(out, goal{key: key, met: met, text: fmt.Sprintf(format, args...) + ": " + v})
	}
	for _, t := range []string{"rtcgate", "rtcgate-kernel"} {
		if r := by["rtpengine"]; t == "rtcgate" && r != nil && r.A != nil {
			if v, ok := ratio(rows[1], by, t, 0); ok {
				add("a_cycles_per_cpu_s_ratio_ge_2", v >= 2, "(a) %s cycles per CPU-second %.2f× rtpengine's (≥ 2)", t, v)
			}
		}
		r := by[t]
		if r == nil || !slices.Contains(cfg.targets, t) {
			continue
		}
		for _, calls := range cfg.callCounts {
			b := r.B[calls]
			if b == nil || b.Received == 0 {
				continue
			}
			limit := 5.0
			if t == "rtcgate-kernel" {
				limit = 1
			}
			add(fmt.Sprintf("b_%d_%s_added_cpu_s_per_1m_le_%g", calls, t, limit), b.AddedCPUSPer1M <= limit,
				"(b) %d calls: %s adds %.2f CPU-s per 1M packets (≤ %g)", calls, t, b.AddedCPUSPer1M, limit)
			if t == "rtcgate-kernel" {
				add(fmt.Sprintf("b_%d_%s_zero_loss", calls, t), b.Lost <= 0, "(b) %d calls: %s loses %d packets (0)", calls, t, b.Lost)
				add(fmt.Sprintf("b_%d_%s_added_p99_le_0.2ms", calls, t), b.AddedP99Ms <= 0.2,
					"(b) %d calls: %s adds %.2f ms at p99 (≤ 0.2 ms)", calls, t, b.AddedP99Ms)
			}
		}
	}
	if r := by["rtcgate"]; cfg.has("c") && r != nil && r.C != nil && r.C.Calls > 0 {
		if v, ok := ratio(cRows["c_cpu_s_per_1m_packets"], by, "rtcgate", 0); ok {
			add("c_cpu_per_packet_le_rtpengine", v <= 1, "(c) rtcgate CPU per WebRTC packet %.2f× rtpengine's (≤ 1)", v)
		}
		add("c_zero_loss", r.C.LostToPlain+r.C.LostToBrow == 0, "(c) rtcgate loses %d / %d packets (0)", r.C.LostToPlain, r.C.LostToBrow)
		add("c_setup_p99_lt_200ms", r.C.SetupP99Ms < 200, "(c) call setup p99 %.1f ms (< 200 ms)", r.C.SetupP99Ms)
	}
	return out
}

// cRows are the (c) rows with a ratio, by key.
var cRows = func() map[string]row {
	m := map[string]row{}
	for _, r := range rows {
		if r.c && r.key != "" {
			m[r.key] = r
		}
	}
	return m
}()

// goals is goalChecks for the JSON line.
func goals(cfg *config, by map[string]*targetResult) map[string]bool {
	out := map[string]bool{}
	for _, g := range goalChecks(cfg, by) {
		out[g.key] = g.met
	}
	return out
}
