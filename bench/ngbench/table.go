package main

import (
	"fmt"
	"slices"
	"strings"
)

// row is one line of the report: how to show a figure for a target, the
// number behind it (for the ratio), and whether a ratio means anything.
type row struct {
	label string
	key   string // JSON name of the ratio; empty: no ratio
	note  string
	get   func(r *targetResult) (string, float64, bool)
	// goal, when set, says whether rtcgate meets the row's target, given
	// the ratio (if any) and rtcgate's own figure.
	goal func(ratio float64, hasRatio bool, v float64, hasV bool) string
}

// verdict renders a goal check.
func verdict(ok bool) string {
	if ok {
		return ": met"
	}
	return ": NOT met"
}

func aRow(label, key, note string, f func(a *aResult) (string, float64)) row {
	return row{label: label, key: key, note: note, get: func(r *targetResult) (string, float64, bool) {
		if r == nil || r.A == nil {
			return "", 0, false
		}
		s, v := f(r.A)
		return s, v, true
	}}
}

func bRow(label, key, note string, f func(b *bResult) (string, float64)) row {
	return row{label: label, key: key, note: note, get: func(r *targetResult) (string, float64, bool) {
		if r == nil || r.B == nil {
			return "", 0, false
		}
		s, v := f(r.B)
		return s, v, true
	}}
}

func cRow(label, key, note string, f func(c *cResult) (string, float64)) row {
	return row{label: label, key: key, note: note, get: func(r *targetResult) (string, float64, bool) {
		if r == nil || r.C == nil {
			return "", 0, false
		}
		s, v := f(r.C)
		return s, v, true
	}}
}

func msStr(v float64) string { return fmt.Sprintf("%.2f ms", v) }

// withGoal attaches a goal check to a row.
func withGoal(r row, goal func(ratio float64, hasRatio bool, v float64, hasV bool) string) row {
	r.goal = goal
	return r
}

var rows = []row{
	aRow("(a) cycles/s", "a_cycles_per_s", "", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.0f", a.CyclesPerS), a.CyclesPerS
	}),
	withGoal(aRow("(a) cycles per CPU-second", "a_cycles_per_cpu_s", "(target ratio ≥ 2.0", func(a *aResult) (string, float64) {
		return fmt.Sprintf("%.0f", a.CyclesPerCPUS), a.CyclesPerCPUS
	}), func(ratio float64, hasRatio bool, _ float64, _ bool) string {
		if !hasRatio {
			return ")"
		}
		return verdict(ratio >= 2.0) + ")"
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
	bRow("(b) p50 latency", "b_p50", "", func(b *bResult) (string, float64) { return msStr(b.P50Ms), b.P50Ms }),
	bRow("(b) p99 added latency", "b_p99", "", func(b *bResult) (string, float64) { return msStr(b.P99Ms), b.P99Ms }),
	bRow("(b) max latency", "", "", func(b *bResult) (string, float64) { return msStr(b.MaxMs), b.MaxMs }),
	bRow("(b) relay CPU-s", "b_relay_cpu_s", "", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.RelayCPUS), b.RelayCPUS
	}),
	withGoal(bRow("(b) CPU-s per 1M packets", "b_cpu_s_per_1m_packets", "(target for rtcgate ≤ 5 CPU-s absolute", func(b *bResult) (string, float64) {
		return fmt.Sprintf("%.2f", b.CPUSPer1M), b.CPUSPer1M
	}), func(_ float64, _ bool, v float64, hasV bool) string {
		if !hasV || v == 0 {
			return ")"
		}
		return verdict(v <= 5) + ")"
	}),
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
	withGoal(cRow("(c) setup p99 (→ 1st SRTP)", "c_setup_p99_ms", "offer → first packet decrypted by the browser", func(c *cResult) (string, float64) {
		return msStr(c.SetupP99Ms), c.SetupP99Ms
	}), func(_ float64, _ bool, v float64, hasV bool) string {
		if !hasV {
			return ""
		}
		return " (goal < 200 ms" + verdict(v < 200) + ")"
	}),
	cRow("(c) packets in window", "", "SRTP⇄RTP, both ways", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%d", c.RecvWin), float64(c.RecvWin)
	}),
	withGoal(cRow("(c) lost to plain / browser", "", "", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%d / %d", c.LostToPlain, c.LostToBrow), float64(c.LostToPlain + c.LostToBrow)
	}), func(_ float64, _ bool, v float64, hasV bool) string {
		if !hasV {
			return ""
		}
		return " (goal 0" + verdict(v == 0) + ")"
	}),
	withGoal(cRow("(c) relay CPU-s / 1M packets", "c_cpu_s_per_1m_packets", "", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%.2f", c.CPUSPer1M), c.CPUSPer1M
	}), func(ratio float64, hasRatio bool, _ float64, _ bool) string {
		if !hasRatio {
			return ""
		}
		return " (goal ≤ rtpengine" + verdict(ratio <= 1) + ")"
	}),
	cRow("(c) host busy / others CPU-s", "", "contention during the window", func(c *cResult) (string, float64) {
		return fmt.Sprintf("%.0f%% / %.1f", c.HostBusyPct, c.OtherCPUS), c.HostBusyPct
	}),
}

// table renders the rows for the targets that were asked for, with a ratio
// column when both rtpengine and rtcgate have the figure.
func table(cfg *config, by map[string]*targetResult) []string {
	const lw, cw = 30, 16
	var lines []string
	hdr := fmt.Sprintf("%-*s", lw, "")
	for _, t := range cfg.targets {
		hdr += fmt.Sprintf("%*s", cw, t)
	}
	showRatio := len(cfg.targets) == 2
	if showRatio {
		hdr += "   ratio (rtcgate/rtpengine)"
	}
	lines = append(lines, hdr)
	for _, rw := range rows {
		if rw.label[1] == 'a' && !cfg.has("a") || rw.label[1] == 'b' && !cfg.has("b") || rw.label[1] == 'c' && !cfg.has("c") {
			continue
		}
		line := fmt.Sprintf("%-*s", lw, rw.label)
		for _, t := range cfg.targets {
			s, _, ok := rw.get(by[t])
			if !ok {
				s = "—"
				if r := by[t]; r != nil && !r.OK {
					s = "FAILED"
				}
			}
			line += fmt.Sprintf("%*s", cw, s)
		}
		rv, hasRatio := ratio(rw, by)
		if showRatio {
			if v, ok := rv, hasRatio; ok {
				line += fmt.Sprintf("   %8.2f", v)
			} else if rw.key != "" {
				line += fmt.Sprintf("   %8s", "—")
			} else {
				line += fmt.Sprintf("   %8s", "")
			}
		}
		if rw.note != "" {
			line += "  " + rw.note
		}
		if rw.goal != nil {
			_, v, hasV := rw.get(by["rtcgate"])
			if !slices.Contains(cfg.targets, "rtcgate") {
				hasV = false
			}
			line += rw.goal(rv, hasRatio && showRatio, v, hasV)
		}
		lines = append(lines, strings.TrimRight(line, " "))
	}
	return lines
}

// ratio is rtcgate's figure over rtpengine's for a row that has a ratio.
func ratio(rw row, by map[string]*targetResult) (float64, bool) {
	if rw.key == "" {
		return 0, false
	}
	_, base, ok1 := rw.get(by["rtpengine"])
	_, v, ok2 := rw.get(by["rtcgate"])
	if !ok1 || !ok2 || base == 0 {
		return 0, false
	}
	return v / base, true
}

// ratios collects every defined ratio for the JSON line.
func ratios(by map[string]*targetResult) map[string]float64 {
	out := map[string]float64{}
	for _, rw := range rows {
		if v, ok := ratio(rw, by); ok {
			out[rw.key] = v
		}
	}
	return out
}

// goals reports, for the JSON line, whether rtcgate met each target it has
// a figure for.
func goals(by map[string]*targetResult) map[string]bool {
	out := map[string]bool{}
	if v, ok := ratios(by)["a_cycles_per_cpu_s"]; ok {
		out["a_cycles_per_cpu_s_ratio_ge_2"] = v >= 2.0
	}
	if v, ok := ratios(by)["c_cpu_s_per_1m_packets"]; ok {
		out["c_cpu_per_packet_le_rtpengine"] = v <= 1.0
	}
	if r := by["rtcgate"]; r != nil && r.C != nil && r.C.Calls > 0 {
		out["c_zero_loss"] = r.C.LostToPlain+r.C.LostToBrow == 0
		out["c_setup_p99_lt_200ms"] = r.C.SetupP99Ms < 200
	}
	if r := by["rtcgate"]; r != nil && r.B != nil && r.B.CPUSPer1M > 0 {
		out["b_cpu_s_per_1m_packets_le_5"] = r.B.CPUSPer1M <= 5
	}
	return out
}
