package stats

import (
	"context"
	"fmt"
	"io"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// Section is one titled block of `list totals`. Subsystems other than the
// relay (the ng dispatcher's control statistics, say) add their own.
type Section struct {
	Title string
	Write func(w io.Writer)
}

// AddSection appends a section to `list totals`, after the built-in ones.
func (s *Stats) AddSection(sec Section) {
	s.sectionsMu.Lock()
	s.sections = append(s.sections, sec)
	s.sectionsMu.Unlock()
}

// Line writes one `list totals` line in rtpengine's " %-48s:%s" layout.
func Line(w io.Writer, label string, value any) {
	fmt.Fprintf(w, " %-48s:%v\n", label, value)
}

// RegisterCLI adds `list totals` and `list numsessions`.
func (s *Stats) RegisterCLI(r *cli.Registry) {
	r.Handle("list totals", "", "print total statistics", func(_ context.Context, _ []string, w io.Writer) {
		s.WriteTotals(w)
	})
	r.Handle("list numsessions", "", "print the number of sessions", func(_ context.Context, _ []string, w io.Writer) {
		s.WriteNumSessions(w)
	})
}

type line struct {
	label string
	value uint64
}

// byPath writes lines for userspace, kernel and both together, in
// rtpengine's order; both's label ends in bothSuffix.
func byPath(w io.Writer, user, kernel Traffic, bothSuffix string, lines func(Traffic) []line) {
	for _, p := range []struct {
		suffix string
		t      Traffic
	}{{" (userspace)", user}, {" (kernel)", kernel}, {bothSuffix, user.Plus(kernel)}} {
		for _, l := range lines(p.t) {
			Line(w, l.label+p.suffix, l.value)
		}
	}
}

// WriteNumSessions prints `list numsessions`.
func (s *Stats) WriteNumSessions(w io.Writer) {
	own, foreign := s.SessionsOwn.Load(), s.SessionsForeign.Load()
	fmt.Fprintf(w, "Current sessions own: %d\n", own)
	fmt.Fprintf(w, "Current sessions foreign: %d\n", foreign)
	fmt.Fprintf(w, "Current sessions total: %d\n", own+foreign)
	fmt.Fprintf(w, "Current transcoded media: %d\n", 0)
	fmt.Fprintf(w, "Current sessions ipv4 only media: %d\n", s.SessionsIPv4.Load())
	fmt.Fprintf(w, "Current sessions ipv6 only media: %d\n", s.SessionsIPv6.Load())
	fmt.Fprintf(w, "Current sessions ip mixed  media: %d\n", s.SessionsMixed.Load())
}

// WriteTotals prints `list totals`: rtpengine's sections and lines, in its
// order. The kernel lines are the eBPF kernel path's (kernel-forwarding);
// transcoding is not done, so it is 0.
func (s *Stats) WriteTotals(w io.Writer) {
	n := s.Snapshot()
	own, foreign, rates := n.SessionsOwn, n.SessionsForeign, n.Rates

	fmt.Fprint(w, "\nStatistics over currently running sessions:\n\n")
	Line(w, "Owned sessions", own)
	Line(w, "Foreign sessions", foreign)
	Line(w, "Total sessions", own+foreign)
	Line(w, "Transcoded media", 0)
	byPath(w, rates.User, rates.Kernel, " (total)", func(t Traffic) []line {
		return []line{{"Packets per second", t.Packets}, {"Bytes per second", t.Bytes}, {"Errors per second", t.Errors}}
	})
	Line(w, "Userspace-only media streams", n.StreamsUser)
	Line(w, "Kernel-only media streams", n.StreamsKernel)
	Line(w, "Mixed kernel/userspace media streams", n.StreamsMixed)

	d := n.Calls
	fmt.Fprint(w, "\nTotal statistics (does not include current running sessions):\n\n")
	Line(w, "Uptime of rtpengine", fmt.Sprintf("%d seconds", int64(n.Uptime.Seconds())))
	Line(w, "Total managed sessions", d.Managed)
	Line(w, "Total rejected sessions", n.Rejected)
	Line(w, "Total timed-out sessions via TIMEOUT", n.Closed[ClosedTimeout])
	Line(w, "Total timed-out sessions via SILENT_TIMEOUT", n.Closed[ClosedSilentTimeout])
	Line(w, "Total timed-out sessions via FINAL_TIMEOUT", n.Closed[ClosedFinalTimeout])
	Line(w, "Total timed-out sessions via OFFER_TIMEOUT", n.Closed[ClosedOfferTimeout])
	Line(w, "Total regular terminated sessions", n.Closed[ClosedTerminated])
	Line(w, "Total forced terminated sessions", n.Closed[ClosedForceTerminated])
	byPath(w, n.User, n.Kernel, "", func(t Traffic) []line {
		return []line{{"Total relayed packets", t.Packets}, {"Total relayed packet errors", t.Errors}, {"Total relayed bytes", t.Bytes}}
	})
	Line(w, "Total number of streams with no relayed packets", n.ZeroWayStreams)
	Line(w, "Total number of 1-way streams", n.OneWayStreams)
	Line(w, "Average call duration", fmt.Sprintf("%.6f seconds", d.Average))
	Line(w, "Total calls duration", fmt.Sprintf("%.6f seconds", d.Sum))
	Line(w, "Total calls duration squared", fmt.Sprintf("%.6f seconds squared", d.Squares))
	Line(w, "Total calls duration standard deviation", fmt.Sprintf("%.6f seconds", d.StdDeviation))

	s.sectionsMu.RLock()
	sections := append([]Section(nil), s.sections...)
	s.sectionsMu.RUnlock()
	for _, sec := range sections {
		fmt.Fprintf(w, "\n\n%s:\n\n", sec.Title)
		sec.Write(w)
	}
	fmt.Fprint(w, "\n")
}
