package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/table"
)

// row is one line of the table: scenario, figure, value, target, verdict.
type row = table.Row

// tableLines lays out the figures with their targets.
func tableLines(cfg *config, res *results) []string {
	var rows []row
	add := func(r ...row) { rows = append(rows, r...) }

	if cfg.has("lb") {
		var base float64
		for _, r := range res.LB {
			if r.Nodes == 1 {
				base = r.PerS
			}
		}
		for _, r := range res.LB {
			w := r.Window
			name := fmt.Sprintf("(1) fallback via HAProxy, %d node(s) (C=%d)", r.Nodes, r.Conns)
			if w.RoundTrips == 0 {
				add(row{name, "sendData round trips/s", "not measured", "", "-"})
				continue
			}
			ratio := "-"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f×", r.PerS/base)
			}
			add(
				row{name, "sendData round trips/s (ratio to 1 node)", fmt.Sprintf("%s (%s)", table.Thousands(r.PerS), ratio), "", ""},
				row{"", "latency p50 / p99 (max)", fmt.Sprintf("%.2f / %.2f ms (%.1f)", w.P50Ms, w.P99Ms, w.MaxMs), "", ""},
				row{"", "requests forwarded to the owner", fmt.Sprintf("%.0f%% of %d (round robin: %.0f%%)", 100*r.ForwardedShare, w.Requests, 100*float64(r.Nodes-1)/float64(r.Nodes)), "", ""},
				row{"", "CPU-ms per round trip: rtcgates / HAProxy / Redis", fmt.Sprintf("%.3f / %.3f / %.3f", r.NodesMsPerRT, r.HAProxyMsPerRT, r.RedisMsPerRT), "", ""},
				row{"", "  clients+backend; client requests per round trip", fmt.Sprintf("%.3f; %.2f", r.ClientMsPerRT, r.RequestsPerRT), "", ""},
				row{"", "cores: rtcgates / HAProxy / Redis / clients, box busy", coresLine(w.CPU), "", ""},
			)
		}
	}
	if cfg.has("route") {
		pace := "closed loop"
		if cfg.routeRate > 0 {
			pace = table.Thousands(cfg.routeRate) + " round trips/s"
		}
		name := fmt.Sprintf("(2) CPU per request, owner vs other node (C=%d, %s)", cfg.conns, pace)
		tgt := fmt.Sprintf("≤ %.0f×", targetRoutedRatio)
		if r := res.Route; r == nil || r.Local.Requests == 0 || r.Routed.Requests == 0 {
			add(row{name, "forwarded / local, rtcgates' CPU", "not measured", tgt, "-"})
		} else {
			add(
				row{name, "forwarded / local, rtcgates' CPU per request", fmt.Sprintf("%.2f×", r.Ratio), tgt, table.Met(r.Ratio <= targetRoutedRatio)},
				row{"", "  with redis-server's CPU counted", fmt.Sprintf("%.2f×", r.WithRedis), "", ""},
				row{"", "local: µs per request, owner / other / Redis", fmt.Sprintf("%.1f / %.1f / %.1f", r.Local.AUsPerReq, r.Local.BUsPerReq, r.Local.RedisUsPerReq), "", ""},
				row{"", "forwarded: µs per request, owner / other / Redis", fmt.Sprintf("%.1f / %.1f / %.1f", r.Routed.AUsPerReq, r.Routed.BUsPerReq, r.Routed.RedisUsPerReq), "", ""},
				row{"", "round trips/s local / forwarded", fmt.Sprintf("%s / %s", table.Thousands(r.Local.PerS), table.Thousands(r.Routed.PerS)), "", ""},
				row{"", "p50 latency local / forwarded (first window)", fmt.Sprintf("%.2f / %.2f ms", r.Local.P50Ms, r.Routed.P50Ms), "", ""},
				row{"", "requests measured local / forwarded", fmt.Sprintf("%d / %d in %d+%d windows", r.Local.Requests, r.Routed.Requests, len(r.Local.Windows), len(r.Routed.Windows)), "", ""},
			)
		}
	}
	if cfg.has("takeover") {
		tgt := fmt.Sprintf("p99 ≤ %v", targetTakeoverP99)
		for _, r := range res.Takeover {
			name := fmt.Sprintf("(3) takeover after SIGKILL (S=%d, ttl/heartbeat %s)", r.Sessions, r.Lease)
			if r.First.N == 0 {
				add(row{name, "first replayed frame p50 / p99", "not measured", tgt, "-"})
				continue
			}
			var leases []string
			for _, v := range r.LeaseEndMs {
				leases = append(leases, fmt.Sprintf("%.2f", v/1000))
			}
			add(
				row{name, "kill → first replayed frame p50 / p99 (max)", secs(r.First), tgt, table.Met(r.First.P99Ms <= ms(targetTakeoverP99))},
				row{"", "kill → sendData answered p50 / p99 (max)", secs(r.Send), tgt, table.Met(r.Send.P99Ms <= ms(targetTakeoverP99))},
				row{"", "lease gone after the kill, per round", strings.Join(leases, ", ") + " s", "", ""},
				row{"", "lease end → first frame p50 / p99 (max)", fmt.Sprintf("%.0f / %.0f ms (%.0f)", r.AfterLease.P50Ms, r.AfterLease.P99Ms, r.AfterLease.MaxMs), "", ""},
				row{"", "resumed / failed; tries per session", fmt.Sprintf("%d / %d; %.1f", r.Resumed, r.Failed, r.TriesMean), "", ""},
			)
		}
	}
	if cfg.has("hookstore") {
		name := fmt.Sprintf("(4) hook events, queue+sender alone (%d×%d)", cfg.hookSessions, cfg.hookEvents)
		byStore := map[string]*hookStoreRun{}
		for _, r := range res.HookStore {
			byStore[r.Store] = r
		}
		d, rd := byStore["disk"], byStore["redis"]
		val := func(r *hookStoreRun) string {
			if r == nil {
				return "not measured"
			}
			return table.Thousands(r.EventsPerS)
		}
		add(row{name, "events/s delivered in order: disk store", val(d), "", ""},
			row{"", "Redis store", val(rd), "", ""})
		if d != nil && rd != nil && d.EventsPerS > 0 {
			add(
				row{"", "Redis / disk", fmt.Sprintf("%.2f×", rd.EventsPerS/d.EventsPerS), "", ""},
				row{"", "queue CPU-s per 100k events disk / Redis (not redis-server's)", fmt.Sprintf("%.2f / %.2f", d.CPUPer100k, rd.CPUPer100k), "", ""},
				row{"", "out of order / lost, disk; Redis", fmt.Sprintf("%d / %d; %d / %d of %d each", d.OutOfOrder, d.Lost, rd.OutOfOrder, rd.Lost, d.Expected), "0 / 0",
					table.Met(d.OutOfOrder+d.Lost+rd.OutOfOrder+rd.Lost == 0)},
			)
		}
	}
	return table.Render(rows)
}

func secs(q quantiles) string {
	return fmt.Sprintf("%.2f / %.2f s (%.2f)", q.P50Ms/1000, q.P99Ms/1000, q.MaxMs/1000)
}

// coresLine is a window's CPU as cores used on average.
func coresLine(w cpuWindow) string {
	if w.WindowS <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f, %.0f%%", w.NodesS/w.WindowS, w.HAProxyS/w.WindowS, w.RedisS/w.WindowS, w.SelfS/w.WindowS, w.HostBusyPct)
}

// goals is each target with whether it was met (absent: not measured).
func goals(res *results) map[string]any {
	g := map[string]any{}
	if r := res.Route; r != nil && r.Local.Requests > 0 && r.Routed.Requests > 0 {
		g["routed_cpu_per_request_ratio"] = map[string]any{"target_max": targetRoutedRatio, "value": r.Ratio, "met": r.Ratio <= targetRoutedRatio}
	}
	for _, r := range res.Takeover {
		if r.First.N > 0 {
			g["takeover_p99_ms_"+r.Lease.String()] = map[string]any{"target_max": ms(targetTakeoverP99), "value": r.First.P99Ms,
				"met": r.First.P99Ms <= ms(targetTakeoverP99), "send_data_p99_ms": r.Send.P99Ms}
		}
	}
	return g
}

// warnings flag figures to read with care.
func warnings(res *results) []string {
	var out []string
	flag := func(what string, w cpuWindow) {
		if d := proc.Disturbance(w.OtherS, w.WindowS, w.OtherTop); d != "" {
			out = append(out, fmt.Sprintf("(%s) %s: the rates and the CPU shares are disturbed", what, d))
		}
	}
	for _, r := range res.LB {
		flag(fmt.Sprintf("lb, %d node(s)", r.Nodes), r.Window.CPU)
	}
	if r := res.Route; r != nil {
		flag("route, local", r.Local.CPU)
		flag("route, forwarded", r.Routed.CPU)
	}
	for _, r := range res.HookStore {
		for _, w := range r.Warnings {
			out = append(out, fmt.Sprintf("(hookstore, %s) hooksbench: %s", r.Store, w))
		}
	}
	return out
}

// noteLines is the closing note: what the figures mean on this box, and
// what to expect on N machines, from the figures measured.
func noteLines(res *results) []string {
	var n []string
	say := func(format string, args ...any) { n = append(n, fmt.Sprintf(format, args...)) }
	say("note: on this machine (%d cores) every process — the rtcgates, HAProxy, redis-server, the clients and the backend —", runtime.NumCPU())
	say("  shares the same cores: a node added brings no CPU, so these figures are about overhead, not scale.")

	var one, top *lbResult
	for _, r := range res.LB {
		if r.Window.RoundTrips == 0 {
			continue
		}
		if r.Nodes == 1 {
			one = r
		}
		if top == nil || r.Nodes > top.Nodes {
			top = r
		}
	}
	ratio := 0.0
	if r := res.Route; r != nil && r.Ratio > 0 {
		ratio = r.Ratio
	}
	if one != nil && top != nil && top.Nodes > 1 {
		say("- (1): with %d nodes round robin sent %.0f%% of the requests to a node that does not own the session, so the",
			top.Nodes, 100*top.ForwardedShare)
		say("  %.2f× of 1 node is the cost of forwarding on shared cores (rtcgates' CPU per round trip %.3f → %.3f ms).",
			top.PerS/one.PerS, one.NodesMsPerRT, top.NodesMsPerRT)
	}
	if one != nil && ratio > 0 {
		say("- On N machines (a node each; HAProxy and Redis on their own): a request costs c on its owner and %.2f·c", ratio)
		say("  (both nodes together, (2)) elsewhere; round robin lands 1/N of them on the owner, so the cluster carries about")
		say("  N / (1/N + (N−1)/N·%.2f) × one node's rate:%s, tending to N/%.2f.", ratio, projections(ratio), ratio)
		say("  A balancer that keeps a connectionId on one node (hash of the connectionId parameter) forwards nothing: ≈ N×;")
		say("  so does WebSocket, which stays on its owner. What the 2-core box shows instead is the forwarding's extra CPU.")
	}
	if top != nil && top.RedisMsPerRT > 0 {
		say("- Redis: %.3f ms of redis-server CPU per fallback round trip with %d node(s) (owner lookups, frames kept for", top.RedisMsPerRT, top.Nodes)
		say("  takeover, their trims, leases): one single-threaded redis-server is the bound near %s round trips/s,",
			table.Thousands(1000/top.RedisMsPerRT))
		say("  whatever N; beyond it, shard (not supported: one Redis or a Sentinel-watched primary).")
	}
	var claimP99 float64 // the worst lease end → first frame p99
	for _, r := range res.Takeover {
		if r.First.N == 0 {
			continue
		}
		say("- (3) ttl/heartbeat %s: the lease ended %s s after the kill (ttl less the time since its last renewal), and",
			r.Lease, leaseRange(r.LeaseEndMs))
		say("  sessions were back %.0f ms (p50) / %.0f ms (p99) after that: the claims, the replays, the clients' retry pacing.",
			r.AfterLease.P50Ms, r.AfterLease.P99Ms)
		claimP99 = max(claimP99, r.AfterLease.P99Ms)
	}
	if claimP99 > 0 {
		say("  Takeover does not depend on N: it is the lease (between cluster-node-ttl − cluster-heartbeat and the ttl)")
		say("  plus that; a p99 ≤ %v needs a cluster-node-ttl of at most about %v with these claim times.",
			targetTakeoverP99, targetTakeoverP99-time.Duration(claimP99*1e6).Round(100*time.Millisecond))
	}
	byStore := map[string]*hookStoreRun{}
	for _, r := range res.HookStore {
		byStore[r.Store] = r
	}
	if d, rd := byStore["disk"], byStore["redis"]; d != nil && rd != nil && d.EventsPerS > 0 {
		say("- (4): the Redis store delivered %.2f× the disk store's events/s: each event is appended, read into its holder's", rd.EventsPerS/d.EventsPerS)
		say("  pending list and acknowledged by Lua scripts in Redis (round trips), where the disk store batches fsyncs. Each")
		say("  node delivers its own sessions' events, so on N machines the total grows with N until redis-server's one core")
		say("  is the bound; per node it is bound by the round trips to Redis (LAN latency instead of loopback's), not its CPU.")
	}
	return n
}

// projections is the expected cluster rate over one node's, for a few N.
func projections(r float64) string {
	var parts []string
	for _, n := range []int{2, 3, 4, 8} {
		f := float64(n)
		parts = append(parts, " N="+strconv.Itoa(n)+" "+fmt.Sprintf("%.1f×", f/(1/f+(f-1)/f*r)))
	}
	return strings.Join(parts, ",")
}

func leaseRange(v []float64) string {
	if len(v) == 0 {
		return "?"
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if hi-lo < 10 {
		return fmt.Sprintf("%.2f", lo/1000)
	}
	return fmt.Sprintf("%.2f–%.2f", lo/1000, hi/1000)
}
