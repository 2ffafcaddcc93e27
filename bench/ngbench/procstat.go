package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat.
// It is read once from getconf because it is a kernel build constant; 100 is
// the value on every mainstream Linux and the fallback when getconf fails.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
})

// parseProcStatCPU returns utime+stime in clock ticks from the text of
// /proc/<pid>/stat. The second field (comm) is in parentheses and may itself
// contain spaces and parentheses, so fields are counted from the last ')'.
func parseProcStatCPU(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("procstat: no ')' after comm")
	}
	// After ") " come field 3 (state) onwards; utime and stime are fields
	// 14 and 15, so indexes 11 and 12 here.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: %d fields after comm, want at least 13", len(f))
	}
	ut, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procstat: utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procstat: stime: %w", err)
	}
	return ut + st, nil
}

// procCPUSeconds returns the CPU time (user+system, all threads) consumed so
// far by process pid; pid 0 means this process.
func procCPUSeconds(pid int) (float64, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	t, err := parseProcStatCPU(b)
	if err != nil {
		return 0, err
	}
	return float64(t) / clockTicks(), nil
}

// hostCPU is a snapshot of the aggregate "cpu" line of /proc/stat, used to
// tell whether the machine was saturated during a window (then every figure
// is bounded by the box, not by the relay).
type hostCPU struct {
	busy, total uint64
}

// parseHostStat reads the first "cpu " line of /proc/stat. Idle and iowait
// count as not busy; everything else (user, nice, system, irq, softirq,
// steal) as busy. Guest time is already included in user, so it is skipped.
func parseHostStat(b []byte) (hostCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return hostCPU{}, errors.New("hoststat: first line is not the aggregate cpu line")
	}
	var h hostCPU
	for i, s := range f[1:] {
		if i >= 8 { // guest, guest_nice: counted in user already
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return hostCPU{}, fmt.Errorf("hoststat: field %d: %w", i+1, err)
		}
		h.total += v
		if i != 3 && i != 4 { // idle, iowait
			h.busy += v
		}
	}
	return h, nil
}

func readHostCPU() (hostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}, err
	}
	return parseHostStat(b)
}

// busyPercent is the share of all cores that was busy between a and b.
func busyPercent(a, b hostCPU) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
}

// otherCPUSeconds is the CPU time used between a and b by everything but
// the relay and the generator: other people's builds and tests on a shared
// box. When it is more than a sliver, the window's figures are disturbed.
func otherCPUSeconds(a, b cpuSnap) float64 {
	if b.host.busy < a.host.busy {
		return 0
	}
	host := float64(b.host.busy-a.host.busy) / clockTicks()
	return max(0, host-(b.relay-a.relay)-(b.self-a.self))
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
	host        hostCPU
	procs       map[int]procTicks
	err         error
}

// procTicks is one process's name and CPU ticks (all its threads).
type procTicks struct {
	name  string
	ticks uint64
}

// parseProcStatComm returns the comm field (between the first '(' and the
// last ')') of a /proc/<pid>/stat text.
func parseProcStatComm(b []byte) string {
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return "?"
	}
	return string(b[i+1 : j])
}

// readAllProcs reads the CPU ticks of every process. Processes that vanish
// while it runs are skipped: they are not what a warning needs to name.
func readAllProcs() map[int]procTicks {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make(map[int]procTicks, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		t, err := parseProcStatCPU(b)
		if err != nil {
			continue
		}
		out[pid] = procTicks{name: parseProcStatComm(b), ticks: t}
	}
	return out
}

// topOthers names the n processes, other than the relay and this one (and
// the `go run` that started it), that used the most CPU between a and b,
// e.g. "sdp.test[812] 6.1s". CPU of other processes that no longer existed
// at b (compilers of someone's build, say) is added as one sum.
func topOthers(a, b cpuSnap, relayPID, n int) string {
	type use struct {
		pid  int
		name string
		sec  float64
	}
	self, parent := os.Getpid(), os.Getppid()
	var uses []use
	var seen float64
	for pid, p := range b.procs {
		if pid == relayPID || pid == self || pid == parent {
			continue
		}
		d := p.ticks
		if old, ok := a.procs[pid]; ok && old.ticks <= p.ticks {
			d -= old.ticks
		}
		sec := float64(d) / clockTicks()
		seen += sec
		if sec >= 0.05 {
			uses = append(uses, use{pid, p.name, sec})
		}
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].sec > uses[j].sec })
	var parts []string
	for i, u := range uses {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s[%d] %.1fs", u.name, u.pid, u.sec))
	}
	if gone := otherCPUSeconds(a, b) - seen; gone >= 0.1 {
		parts = append(parts, fmt.Sprintf("%.1fs in processes that exited", gone))
	}
	return strings.Join(parts, ", ")
}

// snapCPU reads all three counters back to back so the windows line up.
func snapCPU(relayPID int) cpuSnap {
	s := cpuSnap{at: mono()}
	if relayPID > 0 { // 0: no relay, as while waiting for a quiet box
		s.relay, s.err = procCPUSeconds(relayPID)
	}
	if self, err := procCPUSeconds(0); err == nil {
		s.self = self
	} else if s.err == nil {
		s.err = err
	}
	if h, err := readHostCPU(); err == nil {
		s.host = h
	} else if s.err == nil {
		s.err = err
	}
	if relayPID > 0 {
		s.procs = readAllProcs()
	}
	return s
}

// quietCores is the load from other processes (in cores) under which the
// box counts as quiet enough to measure.
const quietCores = 0.15

// waitQuiet samples the host's CPU use in 2 s steps until other processes
// use less than quietCores, ctx ends, or limit passes. It returns the last
// load seen and an error if the box never became quiet.
func waitQuiet(ctx context.Context, limit time.Duration) (float64, error) {
	deadline := time.Now().Add(limit)
	var busy float64
	for {
		a := snapCPU(0)
		select {
		case <-ctx.Done():
			return busy, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		b := snapCPU(0)
		if a.err != nil || b.err != nil {
			return 0, errors.Join(a.err, b.err)
		}
		busy = otherCPUSeconds(a, b) / (time.Duration(b.at - a.at).Seconds())
		if busy < quietCores {
			return busy, nil
		}
		if time.Now().After(deadline) {
			return busy, errors.New("box busy")
		}
	}
}
