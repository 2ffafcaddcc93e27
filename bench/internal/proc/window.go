package proc

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// BusyOtherCores is how much CPU other processes may use during a measured
// window (cores, on average) before its figures are flagged as disturbed.
const BusyOtherCores = 0.1

// QuietCores is the load from other processes (cores) under which the box
// counts as quiet enough to measure.
const QuietCores = 0.15

// Disturbance says how much CPU other processes used over a window of
// windowS seconds, and who (top, may be ""), when it is more than
// BusyOtherCores: "other processes used 1.2 CPU-s (0.60 cores) during the
// window (make[12] 0.8s)", for a warning that ends with what it disturbs.
// It is "" for a quiet window.
func Disturbance(otherS, windowS float64, top string) string {
	if windowS <= 0 || otherS/windowS <= BusyOtherCores {
		return ""
	}
	if top != "" {
		top = " (" + top + ")"
	}
	return fmt.Sprintf("other processes used %.1f CPU-s (%.2f cores) during the window%s", otherS, otherS/windowS, top)
}

// NameOthers joins the busiest other processes of a window (TopOthers)
// with the busy time that no running process was charged with: otherS, the
// box's busy time less the known processes', less seen, the time of the
// processes named or not. That rest is softirq work (loopback's packet
// delivery among it) and processes that ended during the window.
func NameOthers(top []string, otherS, seen float64) string {
	if unseen := otherS - seen; unseen > 0.05 {
		top = append(top, fmt.Sprintf("%.1fs in no running process", unseen))
	}
	return strings.Join(top, ", ")
}

// SleepCtx sleeps for d or until ctx ends.
func SleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Quiet is how a program waits, before each scenario, for the rest of a
// shared box to calm down.
type Quiet struct {
	Limit time.Duration // the longest wait (-wait-quiet); 0: none
	Step  time.Duration // the span of each measurement
	Who   string        // whose load is measured, for the log: "other processes"
	Logf  func(format string, args ...any)
}

// Await measures the load, the cores that Who used over one Step, until it
// is below QuietCores, ctx ends or Limit has passed. load measures one
// step: it takes its snapshots around the sleep it is given. A wait of more
// than 3 s is logged, and so is a box still busy at the end (the scenario,
// sc, is measured anyway). It returns how long it waited.
func (q Quiet) Await(ctx context.Context, sc string, load func(sleep func()) float64) time.Duration {
	if q.Limit <= 0 {
		return 0
	}
	t0 := time.Now()
	deadline := t0.Add(q.Limit)
	sleep := func() { SleepCtx(ctx, q.Step) }
	for {
		busy := load(sleep)
		waited := time.Since(t0)
		switch {
		case busy < QuietCores:
			if waited > 3*time.Second {
				q.Logf("(%s) waited %.0f s for a quiet box", sc, waited.Seconds())
			}
			return waited
		case ctx.Err() != nil || time.Now().After(deadline):
			q.Logf("(%s) box still busy after %v (%s use %.2f cores); measuring anyway", sc, q.Limit, q.Who, busy)
			return waited
		}
	}
}
