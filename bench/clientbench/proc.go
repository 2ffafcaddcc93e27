package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// procStatusKB returns fields of /proc/<pid>/status in kB (VmRSS, RssAnon…);
// pid 0 is this process.
func procStatusKB(pid int, keys ...string) (map[string]int64, error) {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKBFields(b, keys), nil
}

// parseKBFields reads "Key:   123 kB" lines (status, meminfo).
func parseKBFields(b []byte, keys []string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, want := range keys {
			if k == want {
				f := strings.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					out[k] = n
				}
			}
		}
	}
	return out
}

// rssBytes is VmRSS of pid in bytes.
func rssBytes(pid int) (int64, error) {
	m, err := procStatusKB(pid, "VmRSS")
	if err != nil {
		return 0, err
	}
	v, ok := m["VmRSS"]
	if !ok {
		return 0, errors.New("no VmRSS (process gone?)")
	}
	return v * 1024, nil
}

// kernelMem is the machine's kernel-side memory that sockets cost: slab
// (struct sock, inodes, dentries, epoll items…) and TCP buffer pages.
type kernelMem struct {
	SlabKB       int64 `json:"slab_kb"`
	SUnreclaimKB int64 `json:"sunreclaim_kb"`
	TCPInUse     int64 `json:"tcp_inuse"`
	TCPTimeWait  int64 `json:"tcp_tw"`
	TCPMemPages  int64 `json:"tcp_mem_pages"`
	MemAvailKB   int64 `json:"mem_available_kb"`
}

func readKernelMem() kernelMem {
	var k kernelMem
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m := parseKBFields(b, []string{"Slab", "SUnreclaim", "MemAvailable"})
		k.SlabKB, k.SUnreclaimKB, k.MemAvailKB = m["Slab"], m["SUnreclaim"], m["MemAvailable"]
	}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		// TCP: inuse 5 orphan 0 tw 0 alloc 7 mem 1
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "TCP:" {
				continue
			}
			for i := 1; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(f[i+1], 10, 64)
				switch f[i] {
				case "inuse":
					k.TCPInUse = n
				case "tw":
					k.TCPTimeWait = n
				case "mem":
					k.TCPMemPages = n
				}
			}
		}
	}
	return k
}

// metrics are the figures read from rtcgate's /metrics.
type metrics struct {
	HeapInuse  float64 `json:"go_memstats_heap_inuse_bytes"`
	StackInuse float64 `json:"go_memstats_stack_inuse_bytes"`
	Sys        float64 `json:"go_memstats_sys_bytes"`
	Goroutines float64 `json:"go_goroutines"`
	Sessions   float64 `json:"rtcgate_client_sessions"`
	ProcRSS    float64 `json:"process_resident_memory_bytes"`
}

// fetchMetrics scrapes the control listener's /metrics.
func fetchMetrics(ctx context.Context, c *rtcgatechild.Child) (metrics, error) {
	var m metrics
	found, err := c.Metrics(ctx, 10*time.Second, map[string]*float64{
		"go_memstats_heap_inuse_bytes":  &m.HeapInuse,
		"go_memstats_stack_inuse_bytes": &m.StackInuse,
		"go_memstats_sys_bytes":         &m.Sys,
		"go_goroutines":                 &m.Goroutines,
		"rtcgate_client_sessions":       &m.Sessions,
		"process_resident_memory_bytes": &m.ProcRSS,
	})
	if err == nil && found < 3 {
		err = fmt.Errorf("/metrics: only %d of the expected series", found)
	}
	return m, err
}

// sample is the state of the child (and the box) at one instant.
type sample struct {
	At       time.Time `json:"-"`
	RSS      int64     `json:"rss_bytes"`
	Metrics  metrics   `json:"metrics"`
	Kernel   kernelMem `json:"kernel"`
	SelfRSS  int64     `json:"client_rss_bytes"`
	ChildCPU float64   `json:"child_cpu_s"`
}

func takeSample(ctx context.Context, t *rtcgatechild.Child) (sample, error) {
	s := sample{At: time.Now()}
	var errs []error
	var err error
	if s.RSS, err = rssBytes(t.Pid()); err != nil {
		errs = append(errs, fmt.Errorf("rss: %w", err))
	}
	if s.ChildCPU, err = proc.CPUSeconds(t.Pid()); err != nil {
		errs = append(errs, fmt.Errorf("cpu: %w", err))
	}
	if s.Metrics, err = fetchMetrics(ctx, t); err != nil {
		errs = append(errs, fmt.Errorf("metrics: %w", err))
	}
	s.Kernel = readKernelMem()
	s.SelfRSS, _ = rssBytes(0)
	return s, errors.Join(errs...)
}

// readIntFile reads a number from a /proc/sys file.
func readIntFile(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("%s: empty", path)
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// fdLimits reports what the box allows and raises this process's
// RLIMIT_NOFILE (soft and hard) to want when it is lower; the child
// inherits it (Go restores the original soft limit in children only when
// the program never called Setrlimit). It returns the limit in force.
func raiseNoFile(want uint64, logf func(string, ...any)) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	nrOpen, err := readIntFile("/proc/sys/fs/nr_open")
	if err == nil && want > uint64(nrOpen) {
		logf("fs.nr_open is %d, below the %d descriptors wanted; capping", nrOpen, want)
		want = uint64(nrOpen)
	}
	if fileMax, err := readIntFile("/proc/sys/fs/file-max"); err == nil && uint64(fileMax) < 2*want {
		logf("warning: fs.file-max is %d: the client and rtcgate together may need %d", fileMax, 2*want)
	}
	if lim.Cur >= want && lim.Max >= want {
		return lim.Cur, nil
	}
	nl := syscall.Rlimit{Cur: max(want, lim.Cur), Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err != nil {
		// Without CAP_SYS_RESOURCE only the soft limit may move, up to hard.
		nl = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err2 != nil {
			return lim.Cur, fmt.Errorf("setrlimit(NOFILE, %d): %w", want, err)
		}
		return nl.Cur, fmt.Errorf("setrlimit(NOFILE, %d): %w; soft limit raised to the hard limit %d only", want, err, lim.Max)
	}
	return nl.Cur, nil
}

// childNoFile reads "Max open files" (soft) from /proc/<pid>/limits.
func childNoFile(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if f[0] == "unlimited" {
					return 1 << 62, nil
				}
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, errors.New("no Max open files line")
}

// cpuWindow is the CPU used by the child, this process and the box over a
// measured window.
type cpuWindow struct {
	child, self float64
	host        proc.HostCPU
	at          time.Time
}

func snapWindow(pid int) cpuWindow {
	w := cpuWindow{at: time.Now()}
	w.host, _ = proc.ReadHostCPU()
	w.child, _ = proc.CPUSeconds(pid)
	w.self, _ = proc.CPUSeconds(0)
	return w
}

// otherCPU is the CPU the rest of the box used between a and b: the host's
// busy time less rtcgate's and ours. On a shared box it says whether a
// window's figures are rtcgate's doing.
func otherCPU(a, b cpuWindow) float64 {
	return max(0, proc.BusySeconds(a.host, b.host)-(b.child-a.child)-(b.self-a.self))
}

// awaitQuiet waits (at most -wait-quiet) for the rest of the box to calm
// down before a scenario; it returns how long it waited.
func awaitQuiet(ctx context.Context, env *runEnv, c *rtcgatechild.Child, sc string) float64 {
	q := proc.Quiet{Limit: env.cfg.waitQuiet, Step: 2 * time.Second, Who: "other processes", Logf: env.Logf}
	return q.Await(ctx, sc, func(sleep func()) float64 {
		a := snapWindow(c.Pid())
		sleep()
		b := snapWindow(c.Pid())
		return otherCPU(a, b) / b.at.Sub(a.at).Seconds()
	}).Seconds()
}
