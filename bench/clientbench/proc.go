package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
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

var metricsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// fetchMetrics scrapes the control listener's /metrics.
func fetchMetrics(ctx context.Context, httpAddr string) (metrics, error) {
	var m metrics
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("/metrics: %s", resp.Status)
	}
	want := map[string]*float64{
		"go_memstats_heap_inuse_bytes":  &m.HeapInuse,
		"go_memstats_stack_inuse_bytes": &m.StackInuse,
		"go_memstats_sys_bytes":         &m.Sys,
		"go_goroutines":                 &m.Goroutines,
		"rtcgate_client_sessions":       &m.Sessions,
		"process_resident_memory_bytes": &m.ProcRSS,
	}
	found := 0
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if p, ok := want[name]; ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				*p = v
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found < 3 {
		return m, fmt.Errorf("/metrics: only %d of the expected series", found)
	}
	return m, nil
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

func takeSample(ctx context.Context, t *child) (sample, error) {
	s := sample{At: time.Now()}
	var errs []error
	var err error
	if s.RSS, err = rssBytes(t.Pid()); err != nil {
		errs = append(errs, fmt.Errorf("rss: %w", err))
	}
	if s.ChildCPU, err = proc.CPUSeconds(t.Pid()); err != nil {
		errs = append(errs, fmt.Errorf("cpu: %w", err))
	}
	if s.Metrics, err = fetchMetrics(ctx, t.addrs["listen-http"]); err != nil {
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

// quietCores is the load from other processes under which the box counts
// as quiet enough to measure.
const quietCores = 0.15

// waitQuiet samples the box in 2 s steps until other processes use less
// than quietCores, ctx ends, or limit passes; it returns the last load.
func waitQuiet(ctx context.Context, pid int, limit time.Duration) (float64, bool) {
	deadline := time.Now().Add(limit)
	for {
		a := snapWindow(pid)
		sleepCtx(ctx, 2*time.Second)
		b := snapWindow(pid)
		busy := otherCPU(a, b) / b.at.Sub(a.at).Seconds()
		if busy < quietCores {
			return busy, true
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return busy, false
		}
	}
}
