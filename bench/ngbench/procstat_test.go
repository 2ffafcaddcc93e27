package main

import (
	"testing"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
)

func TestOtherCPUSeconds(t *testing.T) {
	tick := proc.ClockTicks()
	a := cpuSnap{relay: 1, self: 1, host: proc.HostCPU{Busy: 0}}
	b := cpuSnap{relay: 2, self: 1.5, host: proc.HostCPU{Busy: uint64(2 * tick)}}
	if got := otherCPUSeconds(a, b); got < 0.49 || got > 0.51 {
		t.Fatalf("otherCPUSeconds = %v, want 0.5", got)
	}
}

func TestTopOthers(t *testing.T) {
	tick := proc.ClockTicks()
	at := func(name string, sec float64) proc.Ticks {
		return proc.Ticks{Name: name, Ticks: uint64(sec * tick)}
	}
	a := cpuSnap{procs: map[int]proc.Ticks{
		10: at("relay", 0), 11: at("fuzz", 1), 12: at("idle", 5),
	}}
	b := cpuSnap{procs: map[int]proc.Ticks{
		10: at("relay", 9), 11: at("fuzz", 4), 12: at("idle", 5), 13: at("new", 2),
	}}
	if got := topOthers(a, b, 10, 3); got != "fuzz[11] 3.0s, new[13] 2.0s" {
		t.Fatalf("topOthers = %q", got)
	}
	// 9 s busy on the host and the relay's CPU seconds 0 here: 5 s were seen
	// in processes still there, so 4 s went to processes that exited.
	b.host = proc.HostCPU{Busy: uint64(9 * tick)}
	if got := topOthers(a, b, 10, 1); got != "fuzz[11] 3.0s, 4.0s in processes that exited" {
		t.Fatalf("topOthers with exited = %q", got)
	}
}
