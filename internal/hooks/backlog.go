package hooks

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// The status events' backlog — queued events, the oldest one's age, the
// dead letters kept — in `list totals` and the metrics, and the operator's
// dead-letter commands.

// backlogAge is how long the oldest queued event has waited (0: none).
func (g *Hooks) backlogAge() time.Duration {
	if g.Events == nil {
		return 0
	}
	if o := g.Events.Oldest(); !o.IsZero() {
		return max(time.Since(o), 0)
	}
	return 0
}

func (g *Hooks) deadLetterStats() eventq.DeadLetterStats {
	if g.Events == nil || g.Events.DeadLetters() == nil {
		return eventq.DeadLetterStats{}
	}
	return g.Events.DeadLetters().Stats()
}

// RegisterTotals adds a "Hook events" section to `list totals`.
func (g *Hooks) RegisterTotals(s *stats.Stats) {
	s.AddSection(stats.Section{Title: "Hook events", Write: func(w io.Writer) {
		var depth int
		var qs eventq.Stats
		if g.Events != nil {
			depth, qs = g.Events.Depth(), g.Events.Stats()
		}
		ds := g.deadLetterStats()
		stats.Line(w, "Queued hook events", depth)
		if g.Events != nil {
			n, _ := g.Events.Spilled()
			stats.Line(w, "Hook events spilled while Redis is down", n)
			var refused uint64
			for _, v := range qs.Refused {
				refused += v
			}
			stats.Line(w, "Hook events refused", refused)
		}
		stats.Line(w, "Oldest queued hook event age", fmt.Sprintf("%d seconds", int64(g.backlogAge().Seconds())))
		stats.Line(w, "Delivered hook events", qs.Delivered)
		stats.Line(w, "Hook event attempts failed and retried", qs.Retries)
		stats.Line(w, "Dead-lettered hook events", qs.DeadLettered)
		stats.Line(w, "Hook dead letters kept", ds.Kept)
		stats.Line(w, "Hook dead letters dropped over the bound", ds.Dropped)
		stats.Line(w, "Hook dead letters replayed", ds.Replayed)
	}})
}

// QueueCollectors are the backlog's metrics (the queue's depth, retries and
// dead letters given up on are in Collectors).
func (g *Hooks) QueueCollectors() []prometheus.Collector {
	dead := func(f func(eventq.DeadLetterStats) float64) func() float64 {
		return func() float64 { return f(g.deadLetterStats()) }
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rtcgate_hook_events_spilled",
			Help: "Status events kept in memory while the cluster's Redis does not answer, appended to Redis when it does."},
			func() float64 {
				if g.Events == nil {
					return 0
				}
				n, _ := g.Events.Spilled()
				return float64(n)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rtcgate_hook_queue_oldest_seconds",
			Help: "Age of the oldest status event waiting for its backend (0: none waiting)."},
			func() float64 { return g.backlogAge().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rtcgate_hook_events_delivered_total",
			Help: "Status events acknowledged by their backend."},
			func() float64 {
				if g.Events == nil {
					return 0
				}
				return float64(g.Events.Stats().Delivered)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rtcgate_hook_dead_letters",
			Help: "Dead letters kept for replay (`list hook-dead-letters`)."},
			dead(func(s eventq.DeadLetterStats) float64 { return float64(s.Kept) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rtcgate_hook_dead_letters_dropped_total",
			Help: "Dead letters dropped, oldest first, to stay within hooks-dead-letter-max-bytes."},
			dead(func(s eventq.DeadLetterStats) float64 { return float64(s.Dropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rtcgate_hook_dead_letters_replayed_total",
			Help: "Dead letters queued again by `replay hook-dead-letters`."},
			dead(func(s eventq.DeadLetterStats) float64 { return float64(s.Replayed) })),
	}
	for _, reason := range eventq.RefuseReasons {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rtcgate_hook_events_refused_total",
			Help:        "Status events not queued (logged \"hook event not queued\"), by reason: full, spill_full (Redis unreachable and the spill full), too_large, closed, error.",
			ConstLabels: prometheus.Labels{"reason": reason}},
			func() float64 {
				if g.Events == nil {
					return 0
				}
				return float64(g.Events.Stats().Refused[reason])
			}))
	}
	return cs
}

// deadLetterMatch selects the dead letters of app, named by its name or
// key ("" or "all": every one). Dead letters name their app by key; an app
// removed since is still matched by its key.
func (g *Hooks) deadLetterMatch(app string) func(eventq.DeadLetter) bool {
	if app == "" || app == "all" {
		return nil
	}
	key := app
	if g.Apps != nil {
		for _, a := range g.Apps.List() {
			if a.Name == app {
				key = a.Key
			}
		}
	}
	return func(d eventq.DeadLetter) bool { return d.App == key }
}

// RegisterQueueCLI adds the dead-letter commands: list, replay, remove.
func (g *Hooks) RegisterQueueCLI(reg *cli.Registry) {
	dl := func(w io.Writer) *eventq.DeadLetters {
		if g.Events == nil || g.Events.DeadLetters() == nil {
			io.WriteString(w, "No hook dead letters are kept\n")
			return nil
		}
		return g.Events.DeadLetters()
	}
	reg.Handle("list hook-dead-letters", "[APP]", "status events given up on, kept for replay (APP: name or key)", func(_ context.Context, args []string, w io.Writer) {
		d := dl(w)
		if d == nil {
			return
		}
		if len(args) > 1 {
			io.WriteString(w, "Usage: list hook-dead-letters [APP]\n")
			return
		}
		match := g.deadLetterMatch(first(args))
		s := d.Stats()
		fmt.Fprintf(w, "Hook dead letters kept: %d (%d bytes); dropped over the bound: %d; replayed: %d\n", s.Kept, s.Bytes, s.Dropped, s.Replayed)
		fmt.Fprintf(w, "%-8s %-20s %-20s %-24s %-36s %-8s %-8s %s\n", "ID", "Dead-lettered", "App", "Method", "Session", "Attempts", "Bytes", "Reason")
		// Never the body: it may carry SIP credentials.
		for _, e := range d.List() {
			if match != nil && !match(e) {
				continue
			}
			fmt.Fprintf(w, "%-8d %-20s %-20s %-24s %-36s %-8d %-8d %s\n", e.ID, e.DeadAt.UTC().Format("2006-01-02T15:04:05Z"),
				e.App, e.Method, e.Key, e.Attempts, e.Bytes, e.Reason)
		}
	})
	reg.Handle("replay hook-dead-letters", "[APP]", "queue dead letters again, in order, each with a fresh hooks-retry-time (APP: name or key; none: all)", func(_ context.Context, args []string, w io.Writer) {
		if dl(w) == nil {
			return
		}
		if len(args) > 1 {
			io.WriteString(w, "Usage: replay hook-dead-letters [APP]\n")
			return
		}
		n, err := g.Events.Replay(g.deadLetterMatch(first(args)))
		if err != nil {
			fmt.Fprintf(w, "Error: %v (%d hook dead letters replayed before it; the rest are kept)\n", err, n)
			return
		}
		fmt.Fprintf(w, "Replayed %d hook dead letters\n", n)
	})
	reg.Handle("remove hook-dead-letters", "APP|all", "forget dead letters without delivering them", func(_ context.Context, args []string, w io.Writer) {
		d := dl(w)
		if d == nil {
			return
		}
		if len(args) != 1 {
			io.WriteString(w, "Usage: remove hook-dead-letters APP|all\n")
			return
		}
		n, err := d.Remove(g.deadLetterMatch(args[0]))
		report(w, err, "Removed %d hook dead letters", n)
	})
}
