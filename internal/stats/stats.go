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
	StreamsUser     atomic.Int64 // media (a party's end of an m= section) in progress
	StreamsKernel   atomic.Int64 // of those, media whose RTP moved in the kernel only lately
	StreamsMixed    atomic.Int64 // and in both the kernel and userspace

	// Totals (counters). Packets, Bytes and PacketErrors (userspace) and
	// their Kernel counterparts count ended sessions only; see Relayed.
	Rejected       atomic.Uint64
	Packets        atomic.Uint64 // relayed in userspace
	Bytes          atomic.Uint64
	PacketErrors   atomic.Uint64
	KernelPackets  atomic.Uint64 // forwarded in the kernel
	KernelBytes    atomic.Uint64
	KernelErrors   atomic.Uint64
	ZeroWayStreams atomic.Uint64 // streams that ended without a packet
	OneWayStreams  atomic.Uint64
	closed         [numCloseReasons]atomic.Uint64

	mu         sync.Mutex
	managed    uint64 // sessions ended
	durSum     float64
	durSquares float64
	rates      Rates // per second, from the last sample
	lastUser   Traffic
	lastKernel Traffic

	sectionsMu sync.RWMutex
	sections   []Section

	live atomic.Pointer[func() (user, kernel Traffic)]
}

// Traffic is packets, bytes and packet errors.
type Traffic struct{ Packets, Bytes, Errors uint64 }

// Plus is the sum of t and o.
func (t Traffic) Plus(o Traffic) Traffic {
	return Traffic{t.Packets + o.Packets, t.Bytes + o.Bytes, t.Errors + o.Errors}
}

// SetLive gives the counters of the sessions in progress, relayed in
// userspace and forwarded in the kernel, which the totals above do not
// include until a session ends (as in rtpengine). Rates and the Prometheus
// counters add them, so that those move while calls run.
func (s *Stats) SetLive(fn func() (user, kernel Traffic)) { s.live.Store(&fn) }

// Ended is the traffic of ended sessions, by path.
func (s *Stats) Ended() (user, kernel Traffic) {
	return Traffic{s.Packets.Load(), s.Bytes.Load(), s.PacketErrors.Load()},
		Traffic{s.KernelPackets.Load(), s.KernelBytes.Load(), s.KernelErrors.Load()}
}

// Relayed returns the traffic of ended and running sessions, by path.
func (s *Stats) Relayed() (user, kernel Traffic) {
	user, kernel = s.Ended()
	if fn := s.live.Load(); fn != nil {
		u, k := (*fn)()
		user, kernel = user.Plus(u), kernel.Plus(k)
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

// Rates are the per-second figures of the last one-second sample, by path.
type Rates struct{ User, Kernel Traffic }

// Total is both paths together.
func (r Rates) Total() Traffic { return r.User.Plus(r.Kernel) }

// Rates returns the relay's current per-second rates.
func (s *Stats) Rates() Rates {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rates
}

// sample turns the counters' growth over elapsed into per-second rates.
func (s *Stats) sample(elapsed time.Duration) {
	user, kernel := s.Relayed()
	per := func(now, before uint64) uint64 {
		if elapsed <= 0 || now < before {
			return 0
		}
		return uint64(float64(now-before) / elapsed.Seconds())
	}
	rate := func(now, before Traffic) Traffic {
		return Traffic{per(now.Packets, before.Packets), per(now.Bytes, before.Bytes), per(now.Errors, before.Errors)}
	}
	s.mu.Lock()
	s.rates = Rates{User: rate(user, s.lastUser), Kernel: rate(kernel, s.lastKernel)}
	s.lastUser, s.lastKernel = user, kernel
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
	// Media in progress by where their RTP moved lately (rtpengine's
	// userspace-only, kernel-only and mixed media streams).
	StreamsUser, StreamsKernel, StreamsMixed int64
	Rates                                    Rates
	Uptime                                   time.Duration
	Calls                                    Durations // ended sessions
	Rejected                                 uint64
	Closed                                   [numCloseReasons]uint64
	// User and Kernel are the traffic of ended sessions (rtpengine's
	// totals); Relayed* add the running ones.
	User, Kernel                  Traffic
	RelayedUser, RelayedKernel    Traffic
	ZeroWayStreams, OneWayStreams uint64
}

// Snapshot reads every figure.
func (s *Stats) Snapshot() Snapshot {
	snap := Snapshot{
		SessionsOwn: s.SessionsOwn.Load(), SessionsForeign: s.SessionsForeign.Load(),
		StreamsKernel: s.StreamsKernel.Load(), StreamsMixed: s.StreamsMixed.Load(),
		Rates: s.Rates(), Uptime: s.Uptime(), Calls: s.CallDurations(),
		Rejected:       s.Rejected.Load(),
		ZeroWayStreams: s.ZeroWayStreams.Load(), OneWayStreams: s.OneWayStreams.Load(),
	}
	// The kernel and mixed figures are sampled once a second; the total
	// moves at once, so the userspace figure is what remains.
	snap.StreamsUser = max(0, s.StreamsUser.Load()-snap.StreamsKernel-snap.StreamsMixed)
	for r := range numCloseReasons {
		snap.Closed[r] = s.closed[r].Load()
	}
	snap.User, snap.Kernel = s.Ended()
	snap.RelayedUser, snap.RelayedKernel = s.Relayed()
	return snap
}
