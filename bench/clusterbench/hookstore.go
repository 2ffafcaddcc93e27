package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/childproc"
)

// hookStoreRun is one run of bench/hooksbench's queue scenario: the event
// queue and the hook sender alone (what rtcgate builds), N sessions × M
// events, the backend checking order per session.
type hookStoreRun struct {
	Store       string  `json:"store"`
	EventsPerS  float64 `json:"events_per_s"`
	EnqueuePerS float64 `json:"enqueue_per_s"`
	// CPUPer100k is the queue child's own CPU; redis-server's is not in
	// it (hooksbench counts it among the other processes, OtherCPUS).
	CPUPer100k float64  `json:"queue_cpu_s_per_100k_events"`
	Delivered  uint64   `json:"delivered"`
	Expected   uint64   `json:"expected"`
	Lost       uint64   `json:"lost"`
	OutOfOrder uint64   `json:"out_of_order"`
	WindowS    float64  `json:"window_s"`
	OtherCPUS  float64  `json:"other_processes_cpu_s"` // redis-server among them
	Warnings   []string `json:"hooksbench_warnings,omitempty"`
}

// hooksbenchReport is the part of hooksbench's JSON line read here.
type hooksbenchReport struct {
	Results struct {
		Queue *struct {
			EventsPerS  float64 `json:"events_per_s"`
			EnqueuePerS float64 `json:"enqueue_per_s"`
			CPUPer100k  float64 `json:"queue_cpu_s_per_100k_events"`
			Delivered   uint64  `json:"delivered"`
			Track       struct {
				Expected   uint64 `json:"expected"`
				Lost       uint64 `json:"lost"`
				OutOfOrder uint64 `json:"out_of_order"`
			} `json:"events_check"`
			CPU struct {
				WindowS   float64 `json:"window_s"`
				OtherCPUS float64 `json:"other_processes_cpu_s"`
			} `json:"cpu"`
		} `json:"queue"`
		Errors   []string `json:"errors"`
		Warnings []string `json:"warnings"`
	} `json:"results"`
}

// scenarioHookStore is (4): hooksbench built once, then run with the disk
// store and with the Redis store (it starts its own redis-server).
func scenarioHookStore(ctx context.Context, env *runEnv) ([]*hookStoreRun, error) {
	cfg := env.cfg
	bin := filepath.Join(env.Dir, "hooksbench")
	env.Logf("(4) building %s", cfg.hooksSrc)
	if err := childproc.GoBuild(ctx, cfg.hooksSrc, bin); err != nil {
		return nil, &startError{err}
	}
	var out []*hookStoreRun
	for _, store := range []string{"disk", "redis"} {
		r, err := runHooksbench(ctx, env, bin, store)
		if r != nil {
			out = append(out, r)
		}
		if err != nil {
			return out, fmt.Errorf("%s store: %w", store, err)
		}
	}
	return out, nil
}

func runHooksbench(ctx context.Context, env *runEnv, bin, store string) (*hookStoreRun, error) {
	cfg := env.cfg
	// hooksbench bounds its own run (-q-timeout); this bound is for a hang.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	logPath := filepath.Join(env.Dir, "hooksbench-"+store+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"-scenarios", "queue", "-store", store,
		"-q-sessions", strconv.Itoa(cfg.hookSessions), "-q-events", strconv.Itoa(cfg.hookEvents),
		"-wait-quiet", cfg.waitQuiet.String()}
	fmt.Fprintf(logf, "$ %s %v\n", bin, args)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, logf
	runErr := cmd.Run()
	logf.Write(stdout.Bytes())
	// Its last line is the JSON; exit status 1 still prints it.
	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	var rep hooksbenchReport
	if err := json.Unmarshal(lines[len(lines)-1], &rep); err != nil {
		env.Keep = true
		return nil, fmt.Errorf("hooksbench -store %s: %v; no JSON line (%v), log %s:\n%s", store, runErr, err, logPath, childproc.Indent(childproc.LogTail(logPath, 10)))
	}
	q := rep.Results.Queue
	if q == nil {
		env.Keep = true
		return nil, fmt.Errorf("hooksbench -store %s: no queue result (%v): %v", store, runErr, rep.Results.Errors)
	}
	r := &hookStoreRun{Store: store, EventsPerS: q.EventsPerS, EnqueuePerS: q.EnqueuePerS, CPUPer100k: q.CPUPer100k,
		Delivered: q.Delivered, Expected: q.Track.Expected, Lost: q.Track.Lost, OutOfOrder: q.Track.OutOfOrder,
		WindowS: q.CPU.WindowS, OtherCPUS: q.CPU.OtherCPUS, Warnings: rep.Results.Warnings}
	if runErr != nil || len(rep.Results.Errors) > 0 {
		env.Keep = true
		return r, errors.Join(fmt.Errorf("hooksbench -store %s: %v (log %s)", store, runErr, logPath), errors.New(fmt.Sprint(rep.Results.Errors)))
	}
	return r, nil
}
