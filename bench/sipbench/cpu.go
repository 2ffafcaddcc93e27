package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
)

// cpuFigures is the CPU used over a measured window by rtcgate, Kamailio
// (all its processes), sipp, this program (clients and backend), and
// everything else on the box.
type cpuFigures struct {
	WindowS     float64 `json:"window_s"`
	RtcgateS    float64 `json:"rtcgate_cpu_s"`
	KamailioS   float64 `json:"kamailio_cpu_s"`
	KamailioN   int     `json:"kamailio_processes"`
	SippS       float64 `json:"sipp_cpu_s"`
	SelfS       float64 `json:"sipbench_cpu_s"`
	HostBusyPct float64 `json:"host_busy_pct"`
	OtherS      float64 `json:"other_processes_cpu_s"`
	OtherTop    string  `json:"other_processes,omitempty"`
}

// pids are the processes whose CPU is measured; 0: not running.
type pids struct {
	rtcgate, kamailio, sipp int // kamailio: its process group
}

// cpuSnap is one instant of those counters.
type cpuSnap struct {
	p                   pids
	rtcgate, sipp, self float64
	kamailio            float64
	kamN                int
	host                proc.HostCPU
	ticks               map[int]proc.Ticks
	at                  time.Time
}

// snap reads the counters. The processes' CPU is their threads' run time
// (proc.ThreadCPUSeconds), exact however short the window: (a) lasts a
// fraction of a second. Kamailio's is its whole process group's.
func snap(p pids) cpuSnap {
	s := cpuSnap{p: p, at: time.Now(), ticks: proc.AllTicks()}
	s.host, _ = proc.ReadHostCPU()
	if p.rtcgate > 0 {
		s.rtcgate = proc.ThreadCPUSeconds(p.rtcgate)
	}
	if p.sipp > 0 {
		s.sipp = proc.ThreadCPUSeconds(p.sipp)
	}
	if p.kamailio > 0 {
		s.kamailio, s.kamN = proc.GroupCPUSeconds(p.kamailio)
	}
	s.self = proc.ThreadCPUSeconds(os.Getpid())
	return s
}

func between(a, b cpuSnap) cpuFigures {
	f := cpuFigures{
		WindowS:     b.at.Sub(a.at).Seconds(),
		RtcgateS:    b.rtcgate - a.rtcgate,
		KamailioS:   b.kamailio - a.kamailio,
		KamailioN:   b.kamN,
		SippS:       b.sipp - a.sipp,
		SelfS:       b.self - a.self,
		HostBusyPct: proc.BusyPercent(a.host, b.host),
	}
	known := f.RtcgateS + f.KamailioS + f.SippS + f.SelfS
	f.OtherS = max(0, proc.BusySeconds(a.host, b.host)-known)
	if f.OtherS > proc.BusyOtherCores*f.WindowS && a.ticks != nil && b.ticks != nil {
		// TopOthers leaves out rtcgate, this program and its parent; the
		// peers are named here since they are known.
		top, seen := proc.TopOthers(a.ticks, b.ticks, b.p.rtcgate, 6)
		var named []string
		for _, t := range top {
			if !strings.HasPrefix(t, "kamailio[") && !strings.HasPrefix(t, "sipp[") {
				named = append(named, t)
			}
		}
		f.OtherTop = proc.NameOthers(named, f.OtherS, seen-f.KamailioS-f.SippS)
	}
	return f
}

// awaitQuiet waits (at most -wait-quiet) for the rest of the box to calm
// down before a scenario. The peers idle too: their timers are not load,
// but a Kamailio still busy with the last scenario is.
func awaitQuiet(ctx context.Context, env *runEnv, p pids, sc string) {
	q := proc.Quiet{Limit: env.cfg.waitQuiet, Step: time.Second, Who: "others and the idle peers", Logf: env.Logf}
	q.Await(ctx, sc, func(sleep func()) float64 {
		a := snap(p)
		sleep()
		f := between(a, snap(p))
		return (f.OtherS + f.KamailioS + f.SippS + f.RtcgateS) / f.WindowS
	})
}
