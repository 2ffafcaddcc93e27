package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
)

// otherCPUSeconds is the CPU time used between a and b by everything but
// the relay and the generator: other people's builds and tests on a shared
// box. When it is more than a sliver, the window's figures are disturbed.
func otherCPUSeconds(a, b cpuSnap) float64 {
	return max(0, proc.BusySeconds(a.host, b.host)-(b.relay-a.relay)-(b.self-a.self))
}

// snapSkew is how much longer than planned the span between two snapshots
// was: on an overloaded box the goroutine that takes them can be scheduled
// late, and then CPU seconds cover more than the window.
func snapSkew(a, b cpuSnap, planned time.Duration) time.Duration {
	return time.Duration(b.at-a.at) - planned
}

// cpuSnap is the CPU state at one instant: the relay's and the generator's
// own CPU seconds, the host counters, and every process's CPU ticks (to
// name whoever else used the CPUs during a window).
type cpuSnap struct {
	at          int64 // mono() when taken
	relay, self float64
	host        proc.HostCPU
	procs       map[int]proc.Ticks
	err         error
}

// topOthers names the n processes, other than the relay and this one (and
// the `go run` that started it), that used the most CPU between a and b,
// e.g. "sdp.test[812] 6.1s". CPU of other processes that no longer existed
// at b (compilers of someone's build, say) is added as one sum.
func topOthers(a, b cpuSnap, relayPID, n int) string {
	parts, seen := proc.TopOthers(a.procs, b.procs, relayPID, n)
	if gone := otherCPUSeconds(a, b) - seen; gone >= 0.1 {
		parts = append(parts, fmt.Sprintf("%.1fs in processes that exited", gone))
	}
	return strings.Join(parts, ", ")
}

// systemCPU is the box's busy time between a and b less what the other
// processes alive at both ends used: the relay's, the generator's, the
// kernel's work in interrupts and softirq (and in its ksoftirqd threads,
// which count as ours), and, unavoidably, processes that started and ended
// in between (exited, which is also returned). own is the relay's, the
// generator's and ksoftirqd's alone: with tick-based accounting (no
// IRQ_TIME_ACCOUNTING) softirq work on loopback is charged to the process
// whose send raised it, so own holds the kernel path's work too, and other
// load on the box cannot inflate it.
func systemCPU(a, b cpuSnap, relayPID int) (sys, exited, own float64) {
	_, seen := proc.TopOthers(a.procs, b.procs, relayPID, 0)
	var softirqd float64
	for pid, p := range b.procs {
		if strings.HasPrefix(p.Name, "ksoftirqd/") {
			d := p.Ticks
			if old, ok := a.procs[pid]; ok && old.Ticks <= p.Ticks {
				d -= old.Ticks
			}
			softirqd += float64(d) / proc.ClockTicks()
		}
	}
	sys = max(0, proc.BusySeconds(a.host, b.host)-(seen-softirqd))
	exited = max(0, otherCPUSeconds(a, b)-seen)
	own = (b.relay - a.relay) + (b.self - a.self) + softirqd
	return sys, exited, own
}

// snapCPU reads all three counters back to back so the windows line up;
// with procs, every process's too.
func snapCPU(relayPID int, procs bool) cpuSnap {
	s := cpuSnap{at: mono()}
	if relayPID > 0 { // 0: no relay (the sink, or waiting for a quiet box)
		s.relay, s.err = proc.CPUSeconds(relayPID)
	}
	if self, err := proc.CPUSeconds(0); err == nil {
		s.self = self
	} else if s.err == nil {
		s.err = err
	}
	if h, err := proc.ReadHostCPU(); err == nil {
		s.host = h
	} else if s.err == nil {
		s.err = err
	}
	if procs {
		s.procs = proc.AllTicks()
	}
	return s
}

// waitQuiet samples the host's CPU use in 2 s steps until other processes
// use less than proc.QuietCores, ctx ends, or limit passes. It returns the last
// load seen and an error if the box never became quiet.
func waitQuiet(ctx context.Context, limit time.Duration) (float64, error) {
	deadline := time.Now().Add(limit)
	var busy float64
	for {
		a := snapCPU(0, false)
		select {
		case <-ctx.Done():
			return busy, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		b := snapCPU(0, false)
		if a.err != nil || b.err != nil {
			return 0, errors.Join(a.err, b.err)
		}
		busy = otherCPUSeconds(a, b) / (time.Duration(b.at - a.at).Seconds())
		if busy < proc.QuietCores {
			return busy, nil
		}
		if time.Now().After(deadline) {
			return busy, errors.New("box busy")
		}
	}
}
