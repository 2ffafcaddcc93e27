package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rtcgate/rtcgate/bench/internal/table"
)

// row is one line of the table: scenario, figure, value, target, verdict.
type row = table.Row

// tableLines lays out the figures with the target.
func tableLines(cfg *config, res *results) []string {
	var rows []row
	add := func(r ...row) { rows = append(rows, r...) }
	tgt := "≥ " + strconv.Itoa(targetCallsPerS) + "/s"

	name := fmt.Sprintf("(a) REGISTER (N=%d, %d at once)", cfg.users, min(cfg.users, cfg.regConcurrency))
	if r := res.Register; r == nil || r.Registered == 0 {
		add(row{name, "registrations/s", "not measured", "", ""})
	} else {
		add(
			row{name, "registrations/s (first dial → last registered)", fmt.Sprintf("%.0f", r.PerS), "", ""},
			row{"", "registered / failed, in", fmt.Sprintf("%d / %d, %.2f s", r.Registered, r.Failed, r.WallS), "", ""},
			row{"", "dial → registered p50 / p99 (max)", ms3(r.Latency), "", ""},
			row{"", "rtcgate CPU-ms per registration", fmt.Sprintf("%.2f", r.RtcgateMs), "", ""},
			row{"", fmt.Sprintf("Kamailio CPU-ms per registration (%d procs)", r.CPU.KamailioN), fmt.Sprintf("%.2f", r.KamailioMs), "", ""},
			row{"", "hooks per registration (by method below)", fmt.Sprintf("%.1f", r.HooksPerReg), "", ""},
			row{"", "cores: rtcgate / Kamailio / sipbench, box busy", cores(r.CPU, false), "", ""},
		)
	}

	name = fmt.Sprintf("(b) calls (C=%d, %v, all hooks)", cfg.callClients, cfg.callDuration)
	if cfg.callRate > 0 {
		name = fmt.Sprintf("(b) calls (C=%d, ≤ %.0f/s, %v, all hooks)", cfg.callClients, cfg.callRate, cfg.callDuration)
	}
	if r := res.Calls; r == nil || r.WindowS == 0 {
		add(row{name, "calls/s completed", "not measured", tgt, "-"})
	} else {
		add(
			row{name, "calls/s completed, none failing", fmt.Sprintf("%.1f", r.PerS), tgt, table.Met(callsMet(r))},
			row{"", "completed / failed in the window", fmt.Sprintf("%d / %d", r.Complete, r.Failed), "failed 0", table.Met(r.Failed == 0)},
			row{"", "setup: call → talk p50 / p99 (max)", ms3(r.Setup), "", ""},
			row{"", "teardown: hangup → finish p50 / p99 (max)", ms3(r.Teardown), "", ""},
			row{"", "rtcgate CPU-ms per call", fmt.Sprintf("%.2f", r.RtcgateMs), "", ""},
			row{"", "  rtcgate cores at 200 calls/s at that cost", fmt.Sprintf("%.2f", r.RtcgateMs*targetCallsPerS/1000), "", ""},
			row{"", fmt.Sprintf("Kamailio CPU-ms per call (%d procs summed)", r.CPU.KamailioN), fmt.Sprintf("%.2f", r.KamailioMs), "", ""},
			row{"", "sipp / sipbench CPU-ms per call", fmt.Sprintf("%.2f / %.2f", r.SippMs, r.SelfMs), "", ""},
			row{"", "ring/trying frames read after talk (whole phase)", strconv.FormatUint(r.LateProgress, 10), "", ""},
			row{"", "hooks per call (by method below)", fmt.Sprintf("%.2f", r.HooksPerCall), "", ""},
			row{"", "cores: rtcgate / Kamailio / sipp / sipbench, busy", cores(r.CPU, true), "", ""},
			row{"", "whole phase: completed / failed", fmt.Sprintf("%d / %d", r.AllComplete, r.AllFailed), "", ""},
		)
		if s := r.Sipp; s != nil {
			add(row{"", "  sipp UAS: calls in / successful / failed", fmt.Sprintf("%d / %d / %d", s.Total, s.Successful, s.Failed), "", ""})
		}
	}

	out := table.Render(rows)
	// Free text, after the table so that it does not widen its columns.
	if r := res.Register; r != nil && r.Registered > 0 {
		out = append(out, "(a) hooks per registration: "+perMethod(r.Hooks, float64(r.Registered)))
	}
	if r := res.Calls; r != nil && r.WindowS > 0 {
		out = append(out, "(b) hooks per call: "+perCall(r.HooksByMethod))
		out = append(out, "(b) bound by "+r.BoundBy)
		for i, f := range r.FailSample {
			if i == 3 {
				break
			}
			out = append(out, "(b) a failure: "+f)
		}
	}
	if res.RtcgateWarns > 0 {
		out = append(out, fmt.Sprintf("rtcgate logged %d lines at WARN or above (samples below)", res.RtcgateWarns))
	}
	return out
}

func ms3(l latency) string {
	if l.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f ms (%.0f)", l.P50Ms, l.P99Ms, l.MaxMs)
}

// cores is a window's CPU as cores used on average: rtcgate, Kamailio,
// sipp (withSipp: in (a) it only idles), this program, and the box's busy
// share.
func cores(f cpuFigures, withSipp bool) string {
	if f.WindowS <= 0 {
		return "-"
	}
	c := func(s float64) string { return fmt.Sprintf("%.2f", s/f.WindowS) }
	parts := []string{c(f.RtcgateS), c(f.KamailioS)}
	if withSipp {
		parts = append(parts, c(f.SippS))
	}
	parts = append(parts, c(f.SelfS))
	return fmt.Sprintf("%s, %.0f%%", strings.Join(parts, " / "), f.HostBusyPct)
}

// perMethod is "method n, …" per unit, most first.
func perMethod(m map[string]uint64, units float64) string {
	f := map[string]float64{}
	for k, v := range m {
		f[k] = float64(v) / units
	}
	return perCall(f)
}

func perCall(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2g", k, m[k])
	}
	return strings.Join(parts, ", ")
}
