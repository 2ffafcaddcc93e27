package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
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

func snap(p pids) cpuSnap {
	s := cpuSnap{p: p, at: time.Now(), ticks: proc.AllTicks()}
	s.host, _ = proc.ReadHostCPU()
	if p.rtcgate > 0 {
		s.rtcgate = cpuSeconds(p.rtcgate)
	}
	if p.sipp > 0 {
		s.sipp = cpuSeconds(p.sipp)
	}
	if p.kamailio > 0 {
		s.kamailio, s.kamN = groupCPUSeconds(p.kamailio)
	}
	s.self = cpuSeconds(os.Getpid())
	return s
}

// cpuSeconds is the CPU time process pid has used: the sum of its
// threads' run time in /proc/PID/task/*/schedstat, in nanoseconds, because
// (a) lasts a fraction of a second and utime+stime in /proc/PID/stat counts
// 10 ms ticks, per thread. A thread that exited takes its time with it;
// Go's and Kamailio's threads live as long as the process. Without
// schedstat (a kernel without CONFIG_SCHED_INFO), utime+stime.
func cpuSeconds(pid int) float64 {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err == nil {
		var ns uint64
		ok := true
		for _, e := range ents {
			b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
			if err != nil {
				if os.IsNotExist(err) {
					continue // the thread exited meanwhile
				}
				ok = false
				break
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				ok = false
				break
			}
			v, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				ok = false
				break
			}
			ns += v
		}
		if ok && len(ents) > 0 {
			return float64(ns) / 1e9
		}
	}
	s, _ := proc.CPUSeconds(pid)
	return s
}

// groupCPUSeconds sums the CPU time of every process in process group
// pgid, and counts them. Kamailio is a main process and forked workers
// (UDP, TCP, timers); they live as long as it does, so none of their time
// is lost to an exit inside a window.
func groupCPUSeconds(pgid int) (float64, int) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	var sum float64
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// After the comm's closing parenthesis: state, ppid, pgrp.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		sum += cpuSeconds(pid)
		n++
	}
	return sum, n
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
	if f.OtherS > busyOtherCores*f.WindowS && a.ticks != nil && b.ticks != nil {
		// TopOthers leaves out rtcgate, this program and its parent; the
		// peers are named here since they are known.
		top, seen := proc.TopOthers(a.ticks, b.ticks, b.p.rtcgate, 6)
		var named []string
		for _, t := range top {
			if !strings.HasPrefix(t, "kamailio[") && !strings.HasPrefix(t, "sipp[") {
				named = append(named, t)
			}
		}
		seen -= f.KamailioS + f.SippS
		if unseen := f.OtherS - seen; unseen > 0.05 {
			// Busy time no running process was charged with: softirq work
			// (loopback's packet delivery among it) and processes that
			// ended during the window.
			named = append(named, fmt.Sprintf("%.1fs in no running process", unseen))
		}
		f.OtherTop = strings.Join(named, ", ")
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
func awaitQuiet(ctx context.Context, env *runEnv, p pids, sc string) {
	limit := env.cfg.waitQuiet
	if limit <= 0 {
		return
	}
	t0 := time.Now()
	deadline := t0.Add(limit)
	for {
		a := snap(p)
		sleepCtx(ctx, time.Second)
		f := between(a, snap(p))
		// The peers idle too: their timers are not load, but a Kamailio
		// still busy with the last scenario is.
		busy := (f.OtherS + f.KamailioS + f.SippS + f.RtcgateS) / f.WindowS
		switch {
		case busy < quietCores:
			if w := time.Since(t0); w > 3*time.Second {
				env.logf("(%s) waited %.0f s for a quiet box", sc, w.Seconds())
			}
			return
		case ctx.Err() != nil || time.Now().After(deadline):
			env.logf("(%s) box still busy after %v (%.2f cores used by others and the idle peers); measuring anyway", sc, limit, busy)
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
