// Package stats keeps the relay's live and total figures — what rtpengine's
// statistics.c keeps — and shows them two ways from the same counters: the
// `list totals` / `list numsessions` CLI texts and the rtpengine_* Prometheus
// metrics. The media engine updates the counters; until it runs they are 0.
package stats

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// CloseReason says why a session ended, with rtpengine's metric label.
type CloseReason int

const (
	ClosedTimeout         CloseReason = iota // no media for `timeout`
	ClosedSilentTimeout                      // one-way media for `silent-timeout`
	ClosedFinalTimeout                       // `final-timeout` reached
	ClosedOfferTimeout                       // an offer never answered
	ClosedTerminated                         // a regular delete
	ClosedForceTerminated                    // `terminate` by the operator
	numCloseReasons
)

var closeLabels = [numCloseReasons]string{"timeout", "silent_timeout", "final_timeout", "offer_timeout", "terminated", "force_terminated"}

// Label is the reason's value in rtpengine_closed_sessions_total{reason}.
func (r CloseReason) Label() string { return closeLabels[r] }

// Stats is safe for concurrent use; the packet path only touches atomics.
type Stats struct {
	started time.Time

	// Current state (gauges).
	SessionsOwn     atomic.Int64
	SessionsForeign atomic.Int64 // sessions restored from another relay; rtcgate has none yet
	SessionsIPv4    atomic.Int64 // sessions whose media is IPv4 only
	SessionsIPv6    atomic.Int64
	SessionsMixed   atomic.Int64
	StreamsUser     atomic.Int64 // media streams relayed in userspace (all of rtcgate's)

	// Totals (counters). Packets, Bytes and PacketErrors count ended
	// sessions only; see Relayed.
	Rejected       atomic.Uint64
	Packets        atomic.Uint64 // relayed in userspace
	Bytes          atomic.Uint64
	PacketErrors   atomic.Uint64
	ZeroWayStreams atomic.Uint64 // streams that ended without a packet
	OneWayStreams  atomic.Uint64
	closed         [numCloseReasons]atomic.Uint64

	mu          sync.Mutex
	managed     uint64 // sessions ended
	durSum      float64
	durSquares  float64
	ratePackets uint64 // per second, from the last sample
	rateBytes   uint64
	rateErrors  uint64
	lastSample  struct{ packets, bytes, errors uint64 }

	sectionsMu sync.RWMutex
	sections   []Section

	live atomic.Pointer[func() (packets, bytes, errors uint64)]
}

// SetLive gives the counters of the sessions in progress, which the totals
// above do not include until a session ends (as in rtpengine). Rates and the
// Prometheus counters add them, so that those move while calls run.
func (s *Stats) SetLive(fn func() (packets, bytes, errors uint64)) { s.live.Store(&fn) }

// Relayed returns packets, bytes and errors of ended and running sessions.
func (s *Stats) Relayed() (packets, bytes, errors uint64) {
	packets, bytes, errors = s.Packets.Load(), s.Bytes.Load(), s.PacketErrors.Load()
	if fn := s.live.Load(); fn != nil {
		p, b, e := (*fn)()
		packets, bytes, errors = packets+p, bytes+b, errors+e
	}
	return
}

// New starts the uptime clock.
func New() *Stats { return &Stats{started: time.Now()} }

// Uptime is the time since New.
func (s *Stats) Uptime() time.Duration { return time.Since(s.started) }

// SessionClosed records the end of a session that lasted d.
func (s *Stats) SessionClosed(r CloseReason, d time.Duration) {
	s.closed[r].Add(1)
	sec := d.Seconds()
	s.mu.Lock()
	s.managed++
	s.durSum += sec
	s.durSquares += sec * sec
	s.mu.Unlock()
}

// Closed is how many sessions ended for reason r.
func (s *Stats) Closed(r CloseReason) uint64 { return s.closed[r].Load() }

// Durations summarises the ended sessions: count, sum of durations, sum of
// their squares, mean and standard deviation, all in seconds.
type Durations struct {
	Managed               uint64
	Sum, Squares          float64
	Average, StdDeviation float64
}

// CallDurations returns the duration summary.
func (s *Stats) CallDurations() Durations {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Durations{Managed: s.managed, Sum: s.durSum, Squares: s.durSquares}
	if s.managed > 0 {
		n := float64(s.managed)
		d.Average = s.durSum / n
		d.StdDeviation = math.Sqrt(math.Max(0, s.durSquares/n-d.Average*d.Average))
	}
	return d
}

// Rates are the per-second figures of the last one-second sample.
type Rates struct{ Packets, Bytes, Errors uint64 }

// Rates returns the relay's current per-second rates.
func (s *Stats) Rates() Rates {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Rates{s.ratePackets, s.rateBytes, s.rateErrors}
}

// sample turns the counters' growth over elapsed into per-second rates.
func (s *Stats) sample(elapsed time.Duration) {
	p, b, e := s.Relayed()
	per := func(now, before uint64) uint64 {
		if elapsed <= 0 || now < before {
			return 0
		}
		return uint64(float64(now-before) / elapsed.Seconds())
	}
	s.mu.Lock()
	s.ratePackets = per(p, s.lastSample.packets)
	s.rateBytes = per(b, s.lastSample.bytes)
	s.rateErrors = per(e, s.lastSample.errors)
	s.lastSample.packets, s.lastSample.bytes, s.lastSample.errors = p, b, e
	s.mu.Unlock()
}

// Run samples the rates once per interval until ctx ends.
func (s *Stats) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sample(now.Sub(last))
			last = now
		}
	}
}

// Snapshot is every figure at one moment, for the views that show them
// (`list totals`, /metrics, the ng statistics command).
type Snapshot struct {
	SessionsOwn, SessionsForeign int64
	StreamsUser                  int64
	Rates                        Rates
	Uptime                       time.Duration
	Calls                        Durations // ended sessions
	Rejected                     uint64
	Closed                       [numCloseReasons]uint64
	// Packets, Bytes and Errors are of ended sessions (rtpengine's totals);
	// Relayed* add the running ones.
	Packets, Bytes, Errors                      uint64
	RelayedPackets, RelayedBytes, RelayedErrors uint64
	ZeroWayStreams, OneWayStreams               uint64
}

// Snapshot reads every figure.
func (s *Stats) Snapshot() Snapshot {
	snap := Snapshot{
		SessionsOwn: s.SessionsOwn.Load(), SessionsForeign: s.SessionsForeign.Load(),
		StreamsUser: s.StreamsUser.Load(), Rates: s.Rates(), Uptime: s.Uptime(), Calls: s.CallDurations(),
		Rejected: s.Rejected.Load(),
		Packets:  s.Packets.Load(), Bytes: s.Bytes.Load(), Errors: s.PacketErrors.Load(),
		ZeroWayStreams: s.ZeroWayStreams.Load(), OneWayStreams: s.OneWayStreams.Load(),
	}
	for r := range numCloseReasons {
		snap.Closed[r] = s.closed[r].Load()
	}
	snap.RelayedPackets, snap.RelayedBytes, snap.RelayedErrors = s.Relayed()
	return snap
}
