package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/rtcgate/rtcgate/bench/internal/table"
)

func splitHostPort(a string) (net.IP, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return nil, 0, err
	}
	ip := net.ParseIP(h)
	if ip == nil {
		return nil, 0, fmt.Errorf("%q is not an IP address", h)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return nil, 0, fmt.Errorf("bad port %q", p)
	}
	return ip, port, nil
}

// row is one line of the table: scenario, figure, value, target, verdict.
type row = table.Row

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

func kb(b float64) string { return fmt.Sprintf("%.2f KiB", b/1024) }
func mb(b int64) string   { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// tableLines lays out the figures with their targets.
func tableLines(cfg *config, res *results) []string {
	var rows []row
	if cfg.has("idle") {
		name := fmt.Sprintf("(1) idle WebSocket sessions (N=%d)", cfg.sessions)
		if r := res.Idle; r == nil || r.Opened == 0 || r.Hold.RSS == 0 {
			rows = append(rows, row{name, "RSS per idle session", "not measured", "≤ 10 KiB", "-"})
		} else {
			name = fmt.Sprintf("(1) idle WebSocket sessions (%d open)", r.Opened)
			rows = append(rows,
				row{name, "RSS per idle session", kb(r.RSSPerSession), "≤ 10 KiB", verdict(r.RSSPerSession <= targetIdleBytes)},
				row{"", "  RSS fresh → after ramp → after hold", mb(r.Base.RSS) + " → " + mb(r.AfterRamp.RSS) + " → " + mb(r.Hold.RSS), "", ""},
				row{"", "Go heap in use per session", kb(r.HeapPerSession), "", ""},
				row{"", "goroutine stacks per session", kb(r.StackPerSession), "", ""},
				row{"", "goroutines per session", fmt.Sprintf("%.2f", r.GoroutinesPerSession), "", ""},
			)
			if r.AfterGC != nil {
				rows = append(rows, row{"", "heap / stacks per session after a forced GC", kb(r.HeapAfterGCPerSess) + " / " +
					kb((r.AfterGC.Metrics.StackInuse-r.Base.Metrics.StackInuse)/float64(r.Opened)), "", ""})
			}
			rows = append(rows,
				row{"", "time to open them all", fmt.Sprintf("%.1f s (%.0f/s)", r.OpenS, r.OpenPerS), "", ""},
				row{"", "kernel (slab + TCP) per session, both ends", kb(r.KernelPerSession), "", ""},
				row{"", "client RSS per session", kb(r.ClientRSSPerSession), "", ""},
				row{"", "open at the end of the hold", fmt.Sprintf("%d/%d", r.Alive, r.Opened), "", ""},
			)
			if r.Failed > 0 {
				rows = append(rows, row{"", "failed to open", strconv.Itoa(r.Failed), "", ""})
			}
		}
	}
	load := func(name string, r *loadResult, target float64) {
		tgt := fmt.Sprintf("≥ %s/s", table.Thousands(target))
		switch {
		case r != nil && r.Unavailable != "":
			rows = append(rows, row{name, "round trips/s", "n/a: fallback not available (" + r.UnavailableStatus + ")", tgt, "-"})
		case r == nil || r.RoundTrips == 0:
			rows = append(rows, row{name, "round trips/s", "not measured", tgt, "-"})
		default:
			rows = append(rows,
				row{name, "round trips/s", table.Thousands(r.PerS), tgt, verdict(r.PerS >= target)},
				row{"", "latency p50 / p99 (max)", fmt.Sprintf("%.2f / %.2f ms (%.1f)", r.P50Ms, r.P99Ms, r.MaxMs), "", ""},
				row{"", "rtcgate CPU-s per 1000 round trips", fmt.Sprintf("%.4f", r.CPUPer1000), "", ""},
				row{"", "rtcgate / client CPU, box busy", fmt.Sprintf("%.2f / %.2f cores, %.0f%%", r.ChildCPUS/r.DurationS, r.ClientCPUS/r.DurationS, r.HostBusyPct), "", ""},
			)
			if r.Errors > 0 {
				rows = append(rows, row{"", "errors", strconv.FormatUint(r.Errors, 10), "", ""})
			}
		}
	}
	if cfg.has("ws") {
		load(fmt.Sprintf("(2) sendData over WebSocket (C=%d)", cfg.conns), res.WS, targetWSPerS)
	}
	if cfg.has("http") {
		load(fmt.Sprintf("(3) sendData over HTTP long-poll (C=%d)", cfg.conns), res.HTTP, targetHTTPPerS)
	}

	return table.Render(rows)
}
