package main

import (
	"fmt"
	"strconv"

	"github.com/rtcgate/rtcgate/bench/internal/table"
)

// row is one line of the table: scenario, figure, value, target, verdict.
type row = table.Row

// tableLines lays out the figures with their targets.
func tableLines(cfg *config, res *results) []string {
	var rows []row
	add := func(r ...row) { rows = append(rows, r...) }
	tgtRate := "≥ " + table.Thousands(targetEventsPerS) + "/s"
	tgtAdded := fmt.Sprintf("p99 ≤ %.0f ms", targetAddedP99Ms)

	if cfg.has("latency") {
		name := fmt.Sprintf("(b) sync hook sendData→OnDataEvent (C=%d)", cfg.latClients)
		if r := res.Latency; r == nil || r.Requests == 0 {
			add(row{name, "added latency", "not measured", tgtAdded, "-"})
		} else {
			add(
				row{name, "added latency p50 / p99", fmt.Sprintf("%.3f / %.3f ms", r.AddedP50Ms, r.AddedP99Ms), tgtAdded, table.Met(r.AddedP99Ms <= targetAddedP99Ms)},
				row{"", "  = hooked − its backend time − unhooked p50", "", "", ""},
				row{"", "  from quantiles: pX(hooked)−pX(unhooked)−pX(backend)", fmt.Sprintf("%.3f / %.3f ms", r.QDiffP50Ms, r.QDiffP99Ms), "", ""},
				row{"", "hooked round trip p50 / p99 (max)", fmt.Sprintf("%.3f / %.3f ms (%.1f)", r.Hooked.P50Ms, r.Hooked.P99Ms, r.Hooked.MaxMs), "", ""},
				row{"", "unhooked round trip p50 / p99 (max)", fmt.Sprintf("%.3f / %.3f ms (%.1f)", r.Unhooked.P50Ms, r.Unhooked.P99Ms, r.Unhooked.MaxMs), "", ""},
				row{"", "backend handler time p50 / p99 (max)", fmt.Sprintf("%.3f / %.3f ms (%.1f)", r.Backend.P50Ms, r.Backend.P99Ms, r.Backend.MaxMs), "", ""},
				row{"", "requests of each kind, errors", fmt.Sprintf("%d, %d", r.Requests, r.Errors), "", ""},
				row{"", "rtcgate / hooksbench CPU, box busy", cores(r.CPU), "", ""},
			)
		}
	}
	if cfg.has("churn") {
		if r := res.Baseline; r != nil && r.Sessions > 0 {
			add(
				row{fmt.Sprintf("(a) churn on defaultApp, no hooks (W=%d)", r.Conns), "sessions/s", table.Thousands(r.SessionsPerS), "", ""},
				row{"", "rtcgate CPU-ms per session", fmt.Sprintf("%.4f", r.CPUMsPerSession), "", ""},
				row{"", "rtcgate / hooksbench CPU, box busy", cores(r.CPU), "", ""},
			)
		}
		name := fmt.Sprintf("(a) churn through rtcgate (W=%d)", cfg.churnConns)
		if r := res.Churn; r == nil || r.Events == 0 {
			add(row{name, "events/s delivered", "not measured", tgtRate, "-"})
		} else {
			add(
				row{name, "events/s delivered, in order", table.Thousands(r.EventsPerS), tgtRate, table.Met(r.EventsPerS >= targetEventsPerS && r.correct())},
				row{"", "  bound by", r.BoundBy, "", ""},
				row{"", "sessions/s (2 events each)", table.Thousands(r.SessionsPerS), "", ""},
				row{"", "rtcgate CPU-s per 100k events (sessions too)", fmt.Sprintf("%.2f", r.CPUPer100kEvents), "", ""},
			)
			if b := res.Baseline; b != nil && b.Sessions > 0 {
				hooks := (r.CPUMsPerSession - b.CPUMsPerSession) / 1000 / 2 * 1e5
				add(row{"", "  of which the hooks (less the baseline's)", fmt.Sprintf("%.2f", hooks), "", ""})
			}
			add(
				row{"", "queue depth max / at window end (sweeps: bursts)", fmt.Sprintf("%.0f / %.0f", r.MaxDepth, r.EndDepth), "", ""},
				row{"", "rtcgate / hooksbench CPU, box busy", cores(r.CPU), "", ""},
			)
			if t := r.Track; t != nil {
				add(
					row{"", "events checked: out of order / lost", fmt.Sprintf("%d / %d of %d", t.OutOfOrder, t.Lost, t.Expected), "0 / 0", table.Met(t.OutOfOrder == 0 && t.Lost == 0)},
					row{"", "redeliveries, unexpected, last event after load", fmt.Sprintf("%d, %d, %.1f s", t.Redeliveries, t.Unexpected, r.DrainS), "", ""},
				)
			}
			add(row{"", "backend TCP connections, retries, dead letters", fmt.Sprintf("%d, %.0f, %.0f", r.BackendConns, r.Retries, r.DeadLetters), "", ""})
			if r.Errors > 0 {
				add(row{"", "sessions that failed to open", strconv.FormatUint(r.Errors, 10), "", ""})
			}
		}
	}
	if cfg.has("queue") {
		name := fmt.Sprintf("(a) queue+sender alone (%d×%d, %s)", cfg.qSessions, cfg.qEvents, cfg.store)
		if r := res.Queue; r == nil || r.Delivered == 0 {
			add(row{name, "events/s delivered", "not measured", tgtRate, "-"})
		} else {
			add(
				row{name, "events/s delivered, in order", table.Thousands(r.EventsPerS), tgtRate, table.Met(r.EventsPerS >= targetEventsPerS && r.correct())},
				row{"", "enqueued/s (Enqueue alone)", table.Thousands(r.EnqueuePerS), "", ""},
				row{"", "queue child CPU-s per 100k events", fmt.Sprintf("%.2f", r.CPUPer100kEvents), "", ""},
				row{"", "events checked: out of order / lost", fmt.Sprintf("%d / %d of %d", r.Track.OutOfOrder, r.Track.Lost, r.Track.Expected), "0 / 0", table.Met(r.correct())},
				row{"", "redeliveries, retries, dead letters", fmt.Sprintf("%d, %d, %d", r.Track.Redeliveries, r.Retries, r.DeadLetters), "", ""},
				row{"", "backend TCP connections, store-full waits", fmt.Sprintf("%d, %d", r.BackendConns, r.FullWaits), "", ""},
				row{"", "queue child / hooksbench CPU, box busy", cores(r.CPU), "", ""},
			)
		}
	}

	return table.Render(rows)
}

// cores is a window's CPU as cores used on average.
func cores(f cpuFigures) string {
	if f.WindowS <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f cores, %.0f%%", f.ChildCPUS/f.WindowS, f.SelfCPUS/f.WindowS, f.HostBusyPct)
}
