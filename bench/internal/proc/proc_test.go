package proc

import (
	"os"
	"strings"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	// A comm with spaces and parentheses must not shift the fields.
	stat := "4242 (rtp (engine) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n"
	got, err := ParseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 325 {
		t.Fatalf("utime+stime = %d, want 325", got)
	}
	for _, bad := range []string{"", "4242 rtpengine S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 u 75 0"} {
		if _, err := ParseStatCPU([]byte(bad)); err == nil {
			t.Errorf("ParseStatCPU(%q): no error", bad)
		}
	}
}

func TestCPUSecondsSelf(t *testing.T) {
	if _, err := CPUSeconds(0); err != nil {
		t.Fatal(err)
	}
}

func TestParseHostStat(t *testing.T) {
	stat := "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"
	h, err := ParseHostStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if h.Total != 1000 || h.Busy != 160 {
		t.Fatalf("got %+v, want total 1000 busy 160 (guest not counted twice)", h)
	}
	if got := BusyPercent(HostCPU{Busy: 100, Total: 1000}, HostCPU{Busy: 150, Total: 1100}); got != 50 {
		t.Fatalf("BusyPercent = %v, want 50", got)
	}
	if _, err := ParseHostStat([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("no error for a stat without the cpu line first")
	}
}

func TestBusySeconds(t *testing.T) {
	tick := ClockTicks()
	if got := BusySeconds(HostCPU{Busy: 0}, HostCPU{Busy: uint64(2 * tick)}); got < 1.99 || got > 2.01 {
		t.Fatalf("BusySeconds = %v, want 2", got)
	}
	if got := BusySeconds(HostCPU{Busy: 5}, HostCPU{Busy: 4}); got != 0 {
		t.Fatalf("BusySeconds backwards = %v, want 0", got)
	}
}

func TestTopOthers(t *testing.T) {
	if got := ParseStatComm([]byte("12 (a (b) c) R 1")); got != "a (b) c" {
		t.Fatalf("comm = %q", got)
	}
	tick := uint64(ClockTicks())
	a := map[int]Ticks{
		10: {"relay", 0}, 11: {"fuzz", 1 * tick}, 12: {"idle", 5 * tick},
	}
	b := map[int]Ticks{
		10: {"relay", 9 * tick}, 11: {"fuzz", 4 * tick}, 12: {"idle", 5 * tick}, 13: {"new", 2 * tick},
	}
	top, seen := TopOthers(a, b, 10, 3)
	if got := strings.Join(top, ", "); got != "fuzz[11] 3.0s, new[13] 2.0s" {
		t.Fatalf("TopOthers = %q", got)
	}
	if seen < 4.99 || seen > 5.01 {
		t.Fatalf("seen = %v, want 5", seen)
	}
	if top, _ := TopOthers(a, b, 10, 1); len(top) != 1 {
		t.Fatalf("n=1: %q", top)
	}
}

func TestAllTicksSelf(t *testing.T) {
	if p, ok := AllTicks()[os.Getpid()]; !ok || p.Name == "" {
		t.Fatalf("this process not in AllTicks: %+v, %v", p, ok)
	}
}
