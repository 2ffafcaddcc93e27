package main

import "testing"

func TestParseProcStatCPU(t *testing.T) {
	// A comm with spaces and parentheses must not shift the fields.
	stat := "4242 (rtp (engine) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n"
	got, err := parseProcStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 325 {
		t.Fatalf("utime+stime = %d, want 325", got)
	}
	for _, bad := range []string{"", "4242 rtpengine S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 u 75 0"} {
		if _, err := parseProcStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseProcStatCPU(%q): no error", bad)
		}
	}
}

func TestProcCPUSecondsSelf(t *testing.T) {
	if _, err := procCPUSeconds(0); err != nil {
		t.Fatal(err)
	}
}

func TestParseHostStat(t *testing.T) {
	stat := "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"
	h, err := parseHostStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if h.total != 1000 || h.busy != 160 {
		t.Fatalf("got %+v, want total 1000 busy 160 (guest not counted twice)", h)
	}
	if got := busyPercent(hostCPU{busy: 100, total: 1000}, hostCPU{busy: 150, total: 1100}); got != 50 {
		t.Fatalf("busyPercent = %v, want 50", got)
	}
	if _, err := parseHostStat([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("no error for a stat without the cpu line first")
	}
}

func TestOtherCPUSeconds(t *testing.T) {
	tick := clockTicks()
	a := cpuSnap{relay: 1, self: 1, host: hostCPU{busy: 0}}
	b := cpuSnap{relay: 2, self: 1.5, host: hostCPU{busy: uint64(2 * tick)}}
	if got := otherCPUSeconds(a, b); got < 0.49 || got > 0.51 {
		t.Fatalf("otherCPUSeconds = %v, want 0.5", got)
	}
}

func TestTopOthers(t *testing.T) {
	if got := parseProcStatComm([]byte("12 (a (b) c) R 1")); got != "a (b) c" {
		t.Fatalf("comm = %q", got)
	}
	tick := uint64(clockTicks())
	a := cpuSnap{procs: map[int]procTicks{
		10: {"relay", 0}, 11: {"fuzz", 1 * tick}, 12: {"idle", 5 * tick},
	}}
	b := cpuSnap{procs: map[int]procTicks{
		10: {"relay", 9 * tick}, 11: {"fuzz", 4 * tick}, 12: {"idle", 5 * tick}, 13: {"new", 2 * tick},
	}}
	if got := topOthers(a, b, 10, 3); got != "fuzz[11] 3.0s, new[13] 2.0s" {
		t.Fatalf("topOthers = %q", got)
	}
}
