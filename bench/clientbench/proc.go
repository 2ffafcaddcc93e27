package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
})

// procCPUSeconds is utime+stime of pid (0: this process), all threads.
func procCPUSeconds(pid int) (float64, error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// comm (field 2) may hold spaces and parentheses: count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("procstat: no ')' after comm")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: %d fields after comm", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clockTicks(), nil
}

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
	if s.RSS, err = rssBytes(t.pid()); err != nil {
		errs = append(errs, fmt.Errorf("rss: %w", err))
	}
	if s.ChildCPU, err = procCPUSeconds(t.pid()); err != nil {
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

// hostBusy is the aggregate busy and total ticks of /proc/stat.
type hostBusy struct{ busy, total uint64 }

func readHostBusy() hostBusy {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostBusy{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	var h hostBusy
	for i, s := range f[1:] {
		if i >= 8 {
			break
		}
		v, _ := strconv.ParseUint(s, 10, 64)
		h.total += v
		if i != 3 && i != 4 {
			h.busy += v
		}
	}
	return h
}

func busyPercent(a, b hostBusy) float64 {
	if b.total <= a.total {
		return 0
	}
	return 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
}

// cpuWindow is the CPU used by the child, this process and the box over a
// measured window.
type cpuWindow struct {
	child, self float64
	host        hostBusy
	at          time.Time
}

func snapWindow(pid int) cpuWindow {
	w := cpuWindow{at: time.Now(), host: readHostBusy()}
	w.child, _ = procCPUSeconds(pid)
	w.self, _ = procCPUSeconds(0)
	return w
}

// otherCPU is the CPU the rest of the box used between a and b: the host's
// busy time less rtcgate's and ours. On a shared box it says whether a
// window's figures are rtcgate's doing.
func otherCPU(a, b cpuWindow) float64 {
	if b.host.busy < a.host.busy {
		return 0
	}
	return max(0, float64(b.host.busy-a.host.busy)/clockTicks()-(b.child-a.child)-(b.self-a.self))
}

// procTicks reads every process's name and CPU ticks, to name who else used
// the CPUs during a window.
func procTicks() map[int]procUse {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make(map[int]procUse, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(b[j+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		out[pid] = procUse{name: string(b[i+1 : j]), ticks: ut + st}
	}
	return out
}

type procUse struct {
	name  string
	ticks uint64
}

// topOthers names the processes other than rtcgate and this one that used
// the most CPU between a and b ("client.test[812] 6.1s").
func topOthers(a, b map[int]procUse, childPID, n int) string {
	type use struct {
		pid  int
		name string
		sec  float64
	}
	var uses []use
	for pid, p := range b {
		if pid == childPID || pid == os.Getpid() || pid == os.Getppid() {
			continue
		}
		d := p.ticks
		if old, ok := a[pid]; ok && old.ticks <= p.ticks {
			d -= old.ticks
		}
		if sec := float64(d) / clockTicks(); sec >= 0.05 {
			uses = append(uses, use{pid, p.name, sec})
		}
	}
	slices.SortFunc(uses, func(x, y use) int { return cmp.Compare(y.sec, x.sec) })
	var parts []string
	for i, u := range uses {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s[%d] %.1fs", u.name, u.pid, u.sec))
	}
	return strings.Join(parts, ", ")
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
