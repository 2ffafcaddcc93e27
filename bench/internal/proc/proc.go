// Package proc reads the CPU figures of processes and of the whole box from
// /proc (Linux), for the benchmark programs under bench/: how much CPU the
// process under test and the load generator used over a window, whether the
// box was busy, and who else used its CPUs.
package proc

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// ClockTicks is the number of CPU ticks (USER_HZ) in one second, the unit of
// the tick counts in /proc/<pid>/stat and /proc/stat.
func ClockTicks() float64 { return clockTicks() }

// ParseStatCPU returns utime+stime in clock ticks from the text of
// /proc/<pid>/stat. The second field (comm) is in parentheses and may itself
// contain spaces and parentheses, so fields are counted from the last ')'.
func ParseStatCPU(b []byte) (uint64, error) {
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

// ParseStatComm returns the comm field (between the first '(' and the last
// ')') of a /proc/<pid>/stat text, or "?" when there is none.
func ParseStatComm(b []byte) string {
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return "?"
	}
	return string(b[i+1 : j])
}

// CPUSeconds returns the CPU time (user+system, all threads) consumed so far
// by process pid; pid 0 means this process.
func CPUSeconds(pid int) (float64, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	t, err := ParseStatCPU(b)
	if err != nil {
		return 0, err
	}
	return float64(t) / clockTicks(), nil
}

// HostCPU is a snapshot of the aggregate "cpu" line of /proc/stat, in clock
// ticks summed over all cores: it tells whether the machine was saturated
// during a window (then every figure is bounded by the box, not by the
// process under test).
type HostCPU struct {
	Busy, Total uint64
}

// ParseHostStat reads the first "cpu " line of /proc/stat. Idle and iowait
// count as not busy; everything else (user, nice, system, irq, softirq,
// steal) as busy. Guest time is already included in user, so it is skipped.
func ParseHostStat(b []byte) (HostCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return HostCPU{}, errors.New("hoststat: first line is not the aggregate cpu line")
	}
	var h HostCPU
	for i, s := range f[1:] {
		if i >= 8 { // guest, guest_nice: counted in user already
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return HostCPU{}, fmt.Errorf("hoststat: field %d: %w", i+1, err)
		}
		h.Total += v
		if i != 3 && i != 4 { // idle, iowait
			h.Busy += v
		}
	}
	return h, nil
}

// ReadHostCPU reads the box's CPU counters from /proc/stat.
func ReadHostCPU() (HostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return HostCPU{}, err
	}
	return ParseHostStat(b)
}

// BusyPercent is the share of all cores that was busy between a and b.
func BusyPercent(a, b HostCPU) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return 100 * float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// BusySeconds is the CPU time, in seconds over all cores, that the box was
// busy between a and b (0 if the counters went backwards). Less the CPU
// seconds of the processes one knows, it is what everything else used.
func BusySeconds(a, b HostCPU) float64 {
	if b.Busy < a.Busy {
		return 0
	}
	return float64(b.Busy-a.Busy) / clockTicks()
}

// Ticks is one process's name (comm) and CPU ticks (all its threads).
type Ticks struct {
	Name  string
	Ticks uint64
}

// AllTicks reads the CPU ticks of every process, by pid. Processes that
// vanish while it runs are skipped: they are not what a warning needs to
// name. It returns nil when /proc cannot be listed.
func AllTicks() map[int]Ticks {
	out := map[int]Ticks{}
	listed := eachStat(func(pid int, stat []byte) {
		if t, err := ParseStatCPU(stat); err == nil {
			out[pid] = Ticks{Name: ParseStatComm(stat), Ticks: t}
		}
	})
	if !listed {
		return nil
	}
	return out
}

// eachStat calls f with the pid and /proc/<pid>/stat of every process,
// skipping those that vanish meanwhile; false when /proc cannot be listed.
func eachStat(f func(pid int, stat []byte)) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f(pid, b)
	}
	return true
}

// ParseStatPgrp returns the process group (field 5) of a /proc/<pid>/stat
// text, counted from the comm's closing parenthesis as ParseStatCPU does.
func ParseStatPgrp(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("procstat: no ')' after comm")
	}
	f := strings.Fields(string(b[i+1:])) // state, ppid, pgrp, …
	if len(f) < 3 {
		return 0, fmt.Errorf("procstat: %d fields after comm, want at least 3", len(f))
	}
	return strconv.Atoi(f[2])
}

// ThreadCPUSeconds is the CPU time process pid has used: the sum of its
// threads' run time in /proc/PID/task/*/schedstat, in nanoseconds, because
// a burst of a fraction of a second is lost in the 10 ms ticks that
// utime+stime count per thread. A thread that exited takes its time with
// it; Go's and Kamailio's threads live as long as the process. Without
// schedstat (a kernel without CONFIG_SCHED_INFO), utime+stime; 0 for a
// process that is gone.
func ThreadCPUSeconds(pid int) float64 {
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
	s, _ := CPUSeconds(pid)
	return s
}

// GroupCPUSeconds sums ThreadCPUSeconds over every process in process
// group pgid, and counts them: a server that forks workers into its group
// (Kamailio) is measured whole. Only the time of processes still alive
// counts, which is all of it for workers that live as long as the server.
func GroupCPUSeconds(pgid int) (float64, int) {
	var sum float64
	n := 0
	eachStat(func(pid int, stat []byte) {
		if g, err := ParseStatPgrp(stat); err == nil && g == pgid {
			sum += ThreadCPUSeconds(pid)
			n++
		}
	})
	return sum, n
}

// TopOthers names the n processes that used the most CPU between the
// snapshots a and b (both from AllTicks), at least 0.05 s each, most first,
// as "name[pid] 6.1s". The process skip (the one under test), this process
// and its parent (the `go run` that started it) are left out. seen is the CPU
// seconds all the processes of b but those left out used, named or not.
func TopOthers(a, b map[int]Ticks, skip, n int) (top []string, seen float64) {
	type use struct {
		pid  int
		name string
		sec  float64
	}
	self, parent := os.Getpid(), os.Getppid()
	var uses []use
	for pid, p := range b {
		if pid == skip || pid == self || pid == parent {
			continue
		}
		d := p.Ticks
		if old, ok := a[pid]; ok && old.Ticks <= p.Ticks {
			d -= old.Ticks
		}
		sec := float64(d) / clockTicks()
		seen += sec
		if sec >= 0.05 {
			uses = append(uses, use{pid, p.Name, sec})
		}
	}
	slices.SortFunc(uses, func(x, y use) int { return cmp.Compare(y.sec, x.sec) })
	for i, u := range uses {
		if i == n {
			break
		}
		top = append(top, fmt.Sprintf("%s[%d] %.1fs", u.name, u.pid, u.sec))
	}
	return top, seen
}
