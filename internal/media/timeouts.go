package media

import (
	"time"

	"github.com/rtcgate/rtcgate/internal/stats"
)

// checkTimeouts ends the calls that are due, with rtpengine's rules:
//   - final-timeout (if set) ends a call that old, media or not;
//   - a delayed delete ends the call at its time;
//   - otherwise a call ends when every stream has been quiet too long: a
//     stream whose party said it would send (sendrecv/sendonly) may be quiet
//     for `timeout`, one that is on hold or receive-only (one-way media) for
//     `silent-timeout`. The reason is TIMEOUT if any stream was under the
//     regular rule, SILENT_TIMEOUT if all were silent ones.
func (e *Engine) checkTimeouts(now time.Time) {
	calls := e.snapshot()

	timeout, silent, final := e.live.Timeout(), e.live.SilentTimeout(), e.live.FinalTimeout()
	for _, c := range calls {
		if reason, due := c.due(now, timeout, silent, final); due {
			e.closeCall(c, reason)
		}
	}
}

func (c *call) due(now time.Time, timeout, silent, final time.Duration) (stats.CloseReason, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if final > 0 && now.Sub(c.created) >= final {
		return stats.ClosedFinalTimeout, true
	}
	if !c.deleteAt.IsZero() && !now.Before(c.deleteAt) {
		return stats.ClosedTerminated, true
	}
	nowNs := now.UnixNano()
	anyStream, regular := false, false
	for _, m := range c.order {
		for _, sd := range m.sides {
			if sd == nil || sd.rejected {
				continue
			}
			limit, silentRule := timeout, false
			if sd.direction == "recvonly" || sd.direction == "inactive" {
				limit, silentRule = silent, true
			}
			_, rtpLast := sd.rtp.counters()
			_, rtcpLast := sd.rtcp.counters()
			last := max(rtpLast, rtcpLast)
			if limit <= 0 || time.Duration(nowNs-last) < limit {
				return 0, false // this stream is still within its time
			}
			anyStream = true
			regular = regular || !silentRule
		}
	}
	if !anyStream {
		// No media sections at all: only the regular timeout since the last
		// signalling applies.
		if timeout > 0 && now.Sub(c.lastSignal) >= timeout {
			return stats.ClosedTimeout, true
		}
		return 0, false
	}
	if regular {
		return stats.ClosedTimeout, true
	}
	return stats.ClosedSilentTimeout, true
}
