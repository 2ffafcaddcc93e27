package main

import (
	"context"
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
	if f.OtherCPUS > proc.BusyOtherCores*f.WindowS && a.ticks != nil && b.ticks != nil {
		top, seen := proc.TopOthers(a.ticks, b.ticks, b.pid, 3)
		f.OtherTop = proc.NameOthers(top, f.OtherCPUS, seen)
	}
	return f
}

// awaitQuiet waits (at most -wait-quiet) for the rest of the box to calm
// down before a scenario.
func awaitQuiet(ctx context.Context, env *runEnv, pid int, sc string) {
	q := proc.Quiet{Limit: env.cfg.waitQuiet, Step: time.Second, Who: "other processes", Logf: env.Logf}
	q.Await(ctx, sc, func(sleep func()) float64 {
		a := snap(pid)
		sleep()
		f := between(a, snap(pid))
		return f.OtherCPUS / f.WindowS
	})
}
