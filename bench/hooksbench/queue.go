package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

// queueChildArg, as the first argument, runs this program as the child of
// (a) queue. A child of its own so that its CPU, from /proc/<pid>/stat, is
// the queue's and the sender's alone, without the backend's, as rtcgate's
// would be.
const queueChildArg = "queue-child"

// queueResult is (a) queue: what the child reports and the backend saw.
type queueResult struct {
	Sessions    int     `json:"sessions"`
	EventsEach  int     `json:"events_per_session"`
	Store       string  `json:"store"`
	Workers     int     `json:"workers"`
	Enqueued    uint64  `json:"enqueued"`
	Delivered   uint64  `json:"delivered"` // the queue's count of 2xx answers
	EnqueueS    float64 `json:"enqueue_s"` // first to last Enqueue
	EnqueuePerS float64 `json:"enqueue_per_s"`
	EventsPerS  float64 `json:"events_per_s"` // delivered / (first Enqueue → last delivery)
	// The child's CPU per 100 000 events: eventq, the JSON body as the
	// Gateway builds it, Gateway.Sender, restclient and the HTTP client.
	CPUPer100kEvents float64      `json:"queue_cpu_s_per_100k_events"`
	FullWaits        uint64       `json:"store_full_waits"` // Enqueues refused with ErrFull, retried after 1 ms
	Retries          uint64       `json:"retries"`
	DeadLetters      uint64       `json:"dead_letters"`
	TimeBound        bool         `json:"time_bound_reached,omitempty"`
	BackendConns     uint64       `json:"backend_connections"`
	Track            trackSummary `json:"events_check"`
	CPU              cpuFigures   `json:"cpu"` // over the child's life
}

func (r *queueResult) correct() bool { return r.Track.Lost == 0 && r.Track.OutOfOrder == 0 }

// childReport is what the child writes to its -result file.
type childReport struct {
	Enqueued    uint64  `json:"enqueued"`
	Delivered   uint64  `json:"delivered"`
	Retries     uint64  `json:"retries"`
	DeadLetters uint64  `json:"dead_letters"`
	FullWaits   uint64  `json:"full_waits"`
	EnqueueS    float64 `json:"enqueue_s"`
	WindowS     float64 `json:"window_s"`
	CPUS        float64 `json:"cpu_s"`
	TimeBound   bool    `json:"time_bound"`
	Err         string  `json:"err,omitempty"`
}

// queueKey is session i's ordering key (its sessionId in the body).
func queueKey(i int) string { return "q" + strconv.Itoa(i) }

// scenarioQueue is (a) queue: the child enqueues, the backend checks.
func scenarioQueue(ctx context.Context, env *runEnv, b *backend) (*queueResult, error) {
	cfg := env.cfg
	r := &queueResult{Sessions: cfg.qSessions, EventsEach: cfg.qEvents, Store: cfg.store, Workers: cfg.hooksMaxAsync}
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	tr := newTracker()
	for i := range cfg.qSessions {
		tr.expect(queueKey(i), cfg.qEvents)
	}
	b.tr.Store(tr)
	defer b.tr.Store(nil)
	result := filepath.Join(env.Dir, "queue-result.json")
	args := []string{queueChildArg,
		"-backend", b.AppURL(),
		"-sessions", strconv.Itoa(cfg.qSessions), "-events", strconv.Itoa(cfg.qEvents),
		"-workers", strconv.Itoa(cfg.hooksMaxAsync), "-retries", strconv.Itoa(cfg.hooksRetries),
		"-idle-per-host", strconv.Itoa(cfg.qIdlePerHost), "-max-bytes", strconv.Itoa(cfg.queueMaxBytes),
		"-store", cfg.store, "-dir", filepath.Join(env.Dir, "queue-child"), "-redis", cfg.redisURL,
		"-timeout", cfg.qTimeout.String(), "-result", result,
	}
	connsA := b.Conns()
	a := snap(0)
	p, err := childproc.Start(exe, args, childproc.Options{Name: "queue child", LogPath: filepath.Join(env.Dir, "queue-child.log")})
	if err != nil {
		return r, err
	}
	// The child's CPU over the same window as ours: its /proc/<pid>/stat
	// read until it exits (the last read misses at most a tick of its
	// writing the report).
	var childCPU float64
	limit := time.NewTimer(cfg.qTimeout + 30*time.Second)
	defer limit.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-p.Exited():
			break wait
		case <-tick.C:
			if v, err := proc.CPUSeconds(p.Pid()); err == nil {
				childCPU = v
			}
		case <-limit.C:
			p.Stop()
			return r, fmt.Errorf("the child did not finish within -q-timeout %v + 30 s", cfg.qTimeout)
		case <-ctx.Done():
			p.Stop()
			return r, ctx.Err()
		}
	}
	w := snap(0)
	w.child = childCPU
	// It exited by itself: a status other than 0 is a failure (ExitError
	// wraps the wait error then), 0 is the normal end.
	exitErr := errors.Unwrap(p.ExitError())
	p.MarkReported()
	p.Stop()
	if exitErr != nil {
		env.Keep = true
		return r, fmt.Errorf("queue child: %v; log %s:\n%s", exitErr, p.LogPath(), childproc.Indent(childproc.LogTail(p.LogPath(), 15)))
	}
	raw, err := os.ReadFile(result)
	if err != nil {
		return r, fmt.Errorf("the child wrote no result: %w", err)
	}
	var rep childReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return r, fmt.Errorf("the child's result: %w", err)
	}
	if rep.Err != "" {
		return r, errors.New("child: " + rep.Err)
	}
	r.Enqueued, r.Delivered, r.Retries, r.DeadLetters, r.FullWaits = rep.Enqueued, rep.Delivered, rep.Retries, rep.DeadLetters, rep.FullWaits
	r.EnqueueS, r.TimeBound = rep.EnqueueS, rep.TimeBound
	if rep.EnqueueS > 0 {
		r.EnqueuePerS = float64(rep.Enqueued) / rep.EnqueueS
	}
	if rep.WindowS > 0 {
		r.EventsPerS = float64(rep.Delivered) / rep.WindowS
	}
	if rep.Delivered > 0 {
		r.CPUPer100kEvents = rep.CPUS / float64(rep.Delivered) * 1e5
	}
	r.BackendConns = b.Conns() - connsA
	// Over the child's whole life, start-up included; the figure per
	// 100 000 events above is over the child's own window.
	r.CPU = between(a, w)
	r.Track = tr.summary()
	switch {
	case r.Track.Lost > 0 && rep.TimeBound:
		return r, fmt.Errorf("-q-timeout reached: %d of %d events not delivered (raise -q-timeout or lower the count)", r.Track.Lost, r.Track.Expected)
	case r.Track.Lost > 0:
		return r, fmt.Errorf("%d of %d events lost (the queue counted %d delivered)", r.Track.Lost, r.Track.Expected, rep.Delivered)
	case r.Track.OutOfOrder > 0:
		return r, fmt.Errorf("%d events arrived before an earlier event of their session", r.Track.OutOfOrder)
	case rep.DeadLetters > 0:
		return r, fmt.Errorf("%d events dead-lettered", rep.DeadLetters)
	}
	return r, nil
}

// producers is how many goroutines enqueue in the child, each for its share
// of the sessions in turn: in rtcgate events are enqueued from the session
// goroutines, many at once — which the Disk store's group commit relies on
// (an Enqueue returns only after its batch's fsync).
const producers = 128

// queueChildMain builds what rtcgate's daemon builds for the hooks (see
// internal/daemon newGateway) around the backend given, enqueues N × M
// events as fast as Enqueue takes them, waits until the queue has had them
// all answered, and writes a childReport.
func queueChildMain(args []string) int {
	fs := flag.NewFlagSet(queueChildArg, flag.ContinueOnError)
	backendURL := fs.String("backend", "", "app URL")
	sessions := fs.Int("sessions", 1000, "sessions (ordering keys)")
	events := fs.Int("events", 100, "events per session")
	workers := fs.Int("workers", 32, "hooks-max-async")
	retries := fs.Int("retries", 0, "hooks-retries (0: no cap)")
	idle := fs.Int("idle-per-host", 0, "restclient MaxIdlePerHost (0: its default)")
	maxBytes := fs.Int("max-bytes", 64<<20, "hooks-queue-max-bytes")
	store := fs.String("store", "memory", "memory or disk")
	dir := fs.String("dir", "", "queue directory for -store disk")
	redisURL := fs.String("redis", "", "Redis URL for -store redis")
	timeout := fs.Duration("timeout", 30*time.Second, "time bound")
	result := fs.String("result", "", "file to write the report to")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rep := runQueueChild(*backendURL, *sessions, *events, *workers, *retries, *idle, *maxBytes, *store, *dir, *redisURL, *timeout)
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(*result, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "queue child:", err)
		return 1
	}
	if rep.Err != "" {
		fmt.Fprintln(os.Stderr, "queue child:", rep.Err)
	}
	return 0
}

func runQueueChild(backendURL string, sessions, events, workers, retries, idle, maxBytes int, storeKind, dir, redisURL string, timeout time.Duration) (rep childReport) {
	apps, err := hooks.NewApps([]hooks.App{{Name: appName, Key: appKey, URL: backendURL, Methods: []string{"ConnectionStatusEvent"}}}, "")
	if err != nil {
		rep.Err = err.Error()
		return rep
	}
	// As the daemon: restclient's defaults (hooks-* defaults are the same
	// timeouts); hooks-max-async is the queue's worker count below.
	// MaxIdlePerHost is left alone unless -q-idle-per-host says otherwise.
	o := restclient.DefaultOptions()
	if idle > 0 {
		o.MaxIdlePerHost = idle
	}
	hc, err := restclient.New(o)
	if err != nil {
		rep.Err = err.Error()
		return rep
	}
	defer hc.Close()
	var st eventq.Store
	switch storeKind {
	case "disk":
		d, err := eventq.OpenDisk(dir, int64(maxBytes), 5*time.Millisecond)
		if err != nil {
			rep.Err = err.Error()
			return rep
		}
		st = d
	case "redis":
		// As the daemon with cluster-redis (internal/daemon hookredis.go).
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			rep.Err = err.Error()
			return rep
		}
		c := redis.NewClient(opt)
		defer c.Close()
		r, err := eventq.OpenRedis(context.Background(), eventq.RedisOptions{Client: c, Consumer: "hooksbench", MaxBytes: int64(maxBytes)})
		if err != nil {
			rep.Err = err.Error()
			return rep
		}
		st = r
	default:
		st = eventq.NewMemory(maxBytes / 512)
	}
	defer st.Close()
	gw := &hooks.Hooks{Apps: apps, HTTP: hc, NodeID: "hooksbench"}
	var dead atomic.Uint64
	q, err := eventq.New(eventq.Options{
		Store: st, Send: gw.Sender(), Workers: workers, MaxAttempts: retries,
		DeadLetter: func(*eventq.Event, error) { dead.Add(1) },
	})
	if err != nil {
		rep.Err = err.Error()
		return rep
	}
	total := uint64(sessions) * uint64(events)
	deadline := time.Now().Add(timeout)
	cpu0, _ := proc.CPUSeconds(0)
	t0 := time.Now()

	var enqueued, full atomic.Uint64
	var enqErr atomic.Pointer[string]
	var wg sync.WaitGroup
	np := min(producers, sessions)
	for p := range np {
		wg.Go(func() {
			for m := 1; m <= events; m++ {
				for i := p; i < sessions; i += np {
					if time.Now().After(deadline) {
						return
					}
					key := queueKey(i)
					// The body as Gateway.event builds one: a map marshalled
					// per event (the fields, nodeId, appKey, sessionId), with
					// the sequence number the backend checks.
					body, _ := json.Marshal(map[string]any{"status": "BENCH", "seq": m, "nodeId": "hooksbench", "appKey": appKey, "sessionId": key})
					for {
						err := q.Enqueue(key, appKey, "ConnectionStatusEvent", body)
						if errors.Is(err, eventq.ErrFull) && time.Now().Before(deadline) {
							// Back-pressure: the store is at its bound.
							full.Add(1)
							time.Sleep(time.Millisecond)
							continue
						}
						if err != nil {
							s := err.Error()
							enqErr.Store(&s)
							return
						}
						enqueued.Add(1)
						break
					}
				}
			}
		})
	}
	wg.Wait()
	rep.EnqueueS = time.Since(t0).Seconds()
	for {
		s := q.Stats()
		if s.Delivered+s.DeadLettered >= enqueued.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	rep.WindowS = time.Since(t0).Seconds()
	cpu1, _ := proc.CPUSeconds(0)
	rep.CPUS = cpu1 - cpu0
	s := q.Stats()
	rep.Enqueued, rep.Delivered, rep.Retries, rep.DeadLetters, rep.FullWaits = enqueued.Load(), s.Delivered, s.Retries, dead.Load(), full.Load()
	rep.TimeBound = rep.Enqueued < total || s.Delivered+s.DeadLettered < rep.Enqueued
	if p := enqErr.Load(); p != nil {
		rep.Err = "Enqueue: " + *p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q.Close(ctx)
	return rep
}
