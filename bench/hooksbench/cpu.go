package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
)

// cpuFigures is the CPU used over a measured window by the process under
// test (rtcgate, or the queue child), by this program (backend and
// clients), and by everything else on the box.
type cpuFigures struct {
	WindowS     float64 `json:"window_s"`
	ChildCPUS   float64 `json:"child_cpu_s"`
	SelfCPUS    float64 `json:"hooksbench_cpu_s"`
	HostBusyPct float64 `json:"host_busy_pct"`
	OtherCPUS   float64 `json:"other_processes_cpu_s"`
	OtherTop    string  `json:"other_processes,omitempty"` // the busiest of them, when they were busy
}

// cpuSnap is one instant of those counters.
type cpuSnap struct {
	pid         int
	child, self float64
	host        proc.HostCPU
	ticks       map[int]proc.Ticks // every process's, to name the busy others
	at          time.Time
}

// snap reads the counters; pid 0: no child.
func snap(pid int) cpuSnap {
	s := cpuSnap{pid: pid, at: time.Now(), ticks: proc.AllTicks()}
	s.host, _ = proc.ReadHostCPU()
	if pid > 0 {
		s.child, _ = proc.CPUSeconds(pid)
	}
	s.self, _ = proc.CPUSeconds(0)
	return s
}

func between(a, b cpuSnap) cpuFigures {
	f := cpuFigures{
		WindowS:     b.at.Sub(a.at).Seconds(),
		ChildCPUS:   b.child - a.child,
		SelfCPUS:    b.self - a.self,
		HostBusyPct: proc.BusyPercent(a.host, b.host),
	}
	f.OtherCPUS = max(0, proc.BusySeconds(a.host, b.host)-f.ChildCPUS-f.SelfCPUS)
	if f.OtherCPUS > busyOtherCores*f.WindowS && a.ticks != nil && b.ticks != nil {
		top, seen := proc.TopOthers(a.ticks, b.ticks, b.pid, 3)
		if unseen := f.OtherCPUS - seen; unseen > 0.05 {
			// Busy time no running process was charged with: softirq work
			// (loopback's packet delivery among it) and processes that
			// ended during the window.
			top = append(top, fmt.Sprintf("%.1fs in no running process", unseen))
		}
		f.OtherTop = strings.Join(top, ", ")
	}
	return f
}

// busyOtherCores is how much CPU other processes may use during a window
// (cores, on average) before its figures are flagged as disturbed.
const busyOtherCores = 0.1

// quietCores is the load from other processes under which the box counts
// as quiet enough to measure.
const quietCores = 0.15

// awaitQuiet waits (at most -wait-quiet) for the rest of the box to calm
// down before a scenario.
func awaitQuiet(ctx context.Context, env *runEnv, pid int, sc string) {
	limit := env.cfg.waitQuiet
	if limit <= 0 {
		return
	}
	t0 := time.Now()
	deadline := t0.Add(limit)
	for {
		a := snap(pid)
		sleepCtx(ctx, time.Second)
		f := between(a, snap(pid))
		busy := f.OtherCPUS / f.WindowS
		switch {
		case busy < quietCores:
			if w := time.Since(t0); w > 3*time.Second {
				env.logf("(%s) waited %.0f s for a quiet box", sc, w.Seconds())
			}
			return
		case ctx.Err() != nil || time.Now().After(deadline):
			env.logf("(%s) box still busy after %v (other processes use %.2f cores); measuring anyway", sc, limit, busy)
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
