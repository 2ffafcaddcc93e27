package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/loopdial"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// idleResult is scenario (1).
type idleResult struct {
	Requested int      `json:"requested"`
	Opened    int      `json:"opened"`
	Failed    int      `json:"failed"`
	Errors    []string `json:"errors,omitempty"`
	OpenS     float64  `json:"open_s"`
	OpenPerS  float64  `json:"open_per_s"`
	HoldS     float64  `json:"hold_s"`

	// Per idle session (deltas against the fresh process, over Opened).
	RSSPerSession        float64 `json:"rss_per_session_bytes"`
	HeapPerSession       float64 `json:"heap_inuse_per_session_bytes"`
	StackPerSession      float64 `json:"stack_inuse_per_session_bytes"`
	GoroutinesPerSession float64 `json:"goroutines_per_session"`
	HeapAfterGCPerSess   float64 `json:"heap_inuse_after_gc_per_session_bytes,omitempty"`
	KernelPerSession     float64 `json:"kernel_per_session_bytes"` // slab + TCP pages, both ends of the connection
	ClientRSSPerSession  float64 `json:"client_rss_per_session_bytes"`

	// At the end of the hold, from the client side.
	Alive          int `json:"alive"`
	ClosedByServer int `json:"closed_by_server"`
	UnexpectedData int `json:"unexpected_data"`

	Base      sample   `json:"base"`
	AfterRamp sample   `json:"after_ramp"`
	Hold      sample   `json:"hold"`
	AfterGC   *sample  `json:"after_gc,omitempty"`
	RSSTrace  []int64  `json:"rss_trace_bytes"` // every second of the hold
	Profiles  []string `json:"profiles,omitempty"`
}

// scenarioIdle opens cfg.sessions WebSockets, holds them, and measures
// what rtcgate keeps per session.
func scenarioIdle(ctx context.Context, env *runEnv, c *rtcgatechild.Child) (*idleResult, error) {
	cfg := env.cfg
	r := &idleResult{Requested: cfg.sessions}
	addr := c.Addr("listen-client")

	time.Sleep(time.Second) // let the fresh process settle
	var err error
	if r.Base, err = takeSample(ctx, c); err != nil {
		return r, fmt.Errorf("baseline: %w", err)
	}

	conns := make([]net.Conn, cfg.sessions)
	defer closeAll(conns, cfg.rampConcurrency)

	var next, opened, failed atomic.Int64
	maxErrors := int64(max(50, cfg.sessions/100))
	var errMu sync.Mutex
	var errs []string
	noteErr := func(i int, err error) {
		if failed.Add(1) <= 8 {
			errMu.Lock()
			errs = append(errs, fmt.Sprintf("session %d from %s: %v", i, loopdial.SourceAddr(i).IP, err))
			errMu.Unlock()
		}
	}
	rampCtx, rampCancel := context.WithTimeout(ctx, cfg.rampTimeout)
	defer rampCancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range min(cfg.rampConcurrency, cfg.sessions) {
		wg.Go(func() {
			br := bufio.NewReaderSize(nil, 4096)
			for rampCtx.Err() == nil && failed.Load() < maxErrors {
				i := int(next.Add(1) - 1)
				if i >= cfg.sessions {
					return
				}
				wc, err := wsDial(addr, loopdial.SourceAddr(i), "/", 10*time.Second, br)
				if err != nil {
					noteErr(i, err)
					continue
				}
				if _, err := wc.handshake(); err != nil {
					wc.nc.Close()
					noteErr(i, err)
					continue
				}
				nc, err := wc.idle()
				if err != nil {
					wc.nc.Close()
					noteErr(i, err)
					continue
				}
				conns[i] = nc
				opened.Add(1)
			}
		})
	}
	progressDone := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressDone:
				return
			case <-t.C:
				n := opened.Load()
				env.Logf("(1) %d/%d sessions open (%.0f/s), %d failed", n, cfg.sessions,
					float64(n)/time.Since(start).Seconds(), failed.Load())
			}
		}
	}()
	wg.Wait()
	close(progressDone)
	r.OpenS = time.Since(start).Seconds()
	r.Opened, r.Failed, r.Errors = int(opened.Load()), int(failed.Load()), errs
	r.OpenPerS = float64(r.Opened) / r.OpenS
	env.Logf("(1) opened %d sessions in %.1f s (%.0f/s), %d failed", r.Opened, r.OpenS, r.OpenPerS, r.Failed)
	if !c.Alive() {
		return r, c.ExitError()
	}
	if rampCtx.Err() != nil && ctx.Err() == nil {
		return r, fmt.Errorf("ramp not done within -ramp-timeout %v", cfg.rampTimeout)
	}
	if r.Opened == 0 {
		return r, errors.New("no session opened")
	}
	if r.AfterRamp, err = takeSample(ctx, c); err != nil {
		return r, fmt.Errorf("after ramp: %w", err)
	}

	// Hold: nothing moves; RSS is read every second to show the trend.
	env.Logf("(1) holding %d idle sessions for %v", r.Opened, cfg.hold)
	holdStart := time.Now()
	for time.Since(holdStart) < cfg.hold && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Second, cfg.hold-time.Since(holdStart))):
		}
		if v, err := rssBytes(c.Pid()); err == nil {
			r.RSSTrace = append(r.RSSTrace, v)
		}
	}
	r.HoldS = time.Since(holdStart).Seconds()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if r.Hold, err = takeSample(ctx, c); err != nil {
		return r, fmt.Errorf("after hold: %w", err)
	}
	n := float64(r.Opened)
	r.RSSPerSession = float64(r.Hold.RSS-r.Base.RSS) / n
	r.HeapPerSession = (r.Hold.Metrics.HeapInuse - r.Base.Metrics.HeapInuse) / n
	r.StackPerSession = (r.Hold.Metrics.StackInuse - r.Base.Metrics.StackInuse) / n
	r.GoroutinesPerSession = (r.Hold.Metrics.Goroutines - r.Base.Metrics.Goroutines) / n
	r.KernelPerSession = (float64(r.Hold.Kernel.SlabKB-r.Base.Kernel.SlabKB)*1024 +
		float64(r.Hold.Kernel.TCPMemPages-r.Base.Kernel.TCPMemPages)*float64(os.Getpagesize())) / n
	r.ClientRSSPerSession = float64(r.Hold.SelfRSS-r.Base.SelfRSS) / n
	if got := int(r.Hold.Metrics.Sessions); got != r.Opened {
		env.Logf("(1) warning: rtcgate counts %d sessions, the client opened %d", got, r.Opened)
	}

	if cfg.pprof {
		r.Profiles, err = fetchProfiles(ctx, env, c, "idle")
		if err != nil {
			env.Logf("(1) profiles: %v", err)
		}
		// heap?gc=1 ran a GC: the live heap per session without garbage.
		if s, err := takeSample(ctx, c); err == nil {
			r.AfterGC = &s
			r.HeapAfterGCPerSess = (s.Metrics.HeapInuse - r.Base.Metrics.HeapInuse) / n
		}
	}

	r.Alive, r.ClosedByServer, r.UnexpectedData = checkIdle(conns)
	if r.Alive != r.Opened {
		env.Logf("(1) warning: at the end of the hold %d of %d connections are open (%d closed by rtcgate, %d had data)",
			r.Alive, r.Opened, r.ClosedByServer, r.UnexpectedData)
	}
	var ferr error
	if r.Failed > 0 {
		ferr = fmt.Errorf("%d of %d sessions failed to open", r.Failed, r.Requested)
	}
	return r, ferr
}

// checkIdle looks at every idle connection without blocking: open and
// silent (EAGAIN), closed by the server (EOF, reset), or with data.
func checkIdle(conns []net.Conn) (alive, closed, data int) {
	var buf [64]byte
	for _, nc := range conns {
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			continue
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			closed++
			continue
		}
		var n int
		var rerr error
		err = rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), buf[:])
			return true // never wait
		})
		switch {
		case err != nil:
			closed++
		case rerr == syscall.EAGAIN:
			alive++
		case rerr != nil || n == 0:
			closed++
		default:
			data++
		}
	}
	return
}

// closeAll resets every connection (SO_LINGER 0: no TIME_WAIT left behind
// for the next scenario), with a few goroutines.
func closeAll(conns []net.Conn, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(workers, 16)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if nc := conns[i]; nc != nil {
					if tc, ok := nc.(*net.TCPConn); ok {
						tc.SetLinger(0)
					}
					nc.Close()
					conns[i] = nil
				}
			}
		})
	}
	wg.Wait()
}

// fetchProfiles saves rtcgate's heap and goroutine profiles (RTCGATE_PPROF
// must be on): the heap as it is, the goroutines with their stacks and
// counts, then the heap after a forced GC (live objects only).
func fetchProfiles(ctx context.Context, env *runEnv, c *rtcgatechild.Child, tag string) ([]string, error) {
	var saved []string
	var errs []error
	for _, p := range []struct{ path, file string }{
		{"/debug/pprof/heap", tag + "-heap.pb.gz"},
		{"/debug/pprof/goroutine?debug=1", tag + "-goroutine.txt"},
		{"/debug/pprof/heap?gc=1", tag + "-heap-gc.pb.gz"},
		{"/debug/pprof/heap?debug=1", tag + "-heap.txt"},
	} {
		dst := filepath.Join(env.Dir, p.file)
		if err := fetchTo(ctx, "http://"+c.Addr("listen-http")+p.path, dst); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.path, err))
			continue
		}
		saved = append(saved, dst)
	}
	if len(saved) > 0 {
		env.Keep = true
		env.Logf("profiles saved: %v", saved)
	}
	return saved, errors.Join(errs...)
}

// profileClient fetches the profiles from loopback: no proxy from the
// environment.
var profileClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

func fetchTo(ctx context.Context, url, dst string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := profileClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s (is RTCGATE_PPROF honoured?)", resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.LimitReader(resp.Body, 256<<20))
	return errors.Join(err, f.Close())
}
