package stats

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names and labels are rtpengine's (its /metrics), so dashboards built
// for rtpengine keep working.
var (
	descSessions      = prometheus.NewDesc("rtpengine_sessions", "Current sessions", []string{"type"}, nil)
	descTranscoded    = prometheus.NewDesc("rtpengine_transcoded_media", "Transcoded media", nil, nil)
	descMediaStreams  = prometheus.NewDesc("rtpengine_mediastreams", "Current media streams by where they are relayed", []string{"type"}, nil)
	descUptime        = prometheus.NewDesc("rtpengine_uptime_seconds", "Uptime of rtpengine", nil, nil)
	descSessionsTotal = prometheus.NewDesc("rtpengine_sessions_total", "Total managed sessions", nil, nil)
	descClosed        = prometheus.NewDesc("rtpengine_closed_sessions_total", "Total closed or rejected sessions by reason", []string{"reason"}, nil)
	descPackets       = prometheus.NewDesc("rtpengine_packets_total", "Total relayed packets", []string{"type"}, nil)
	descPacketErrors  = prometheus.NewDesc("rtpengine_packet_errors_total", "Total relayed packet errors", []string{"type"}, nil)
	descBytes         = prometheus.NewDesc("rtpengine_bytes_total", "Total relayed bytes", []string{"type"}, nil)
	descZeroPacket    = prometheus.NewDesc("rtpengine_zero_packet_streams_total", "Total number of streams with no relayed packets", nil, nil)
	descOneWay        = prometheus.NewDesc("rtpengine_one_way_sessions_total", "Total number of 1-way streams", nil, nil)
	descDurAvg        = prometheus.NewDesc("rtpengine_call_duration_avg", "Average call duration", nil, nil)
	descDurTotal      = prometheus.NewDesc("rtpengine_call_duration_total", "Total calls duration", nil, nil)
	descDur2Total     = prometheus.NewDesc("rtpengine_call_duration2_total", "Total calls duration squared", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descTranscoded, descMediaStreams, descUptime,
		descSessionsTotal, descClosed, descPackets, descPacketErrors, descBytes, descZeroPacket,
		descOneWay, descDurAvg, descDurTotal, descDur2Total} {
		ch <- d
	}
}

// Collect implements prometheus.Collector, reading the same counters as
// `list totals` at scrape time.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	n := s.Snapshot()
	gauge(descSessions, float64(n.SessionsOwn), "own")
	gauge(descSessions, float64(n.SessionsForeign), "foreign")
	gauge(descTranscoded, 0)
	gauge(descMediaStreams, float64(n.StreamsUser), "userspace")
	gauge(descMediaStreams, float64(n.StreamsKernel), "kernel")
	gauge(descMediaStreams, float64(n.StreamsMixed), "mixed")
	gauge(descUptime, float64(int64(n.Uptime.Seconds())))
	d := n.Calls
	counter(descSessionsTotal, float64(d.Managed))
	counter(descClosed, float64(n.Rejected), "rejected")
	for r := CloseReason(0); r < numCloseReasons; r++ {
		counter(descClosed, float64(n.Closed[r]), r.Label())
	}
	// Unlike `list totals`, the counters include running sessions, so that
	// rate() over them follows the traffic instead of jumping at call end.
	for _, path := range []struct {
		label string
		t     Traffic
	}{{"userspace", n.RelayedUser}, {"kernel", n.RelayedKernel}} {
		counter(descPackets, float64(path.t.Packets), path.label)
		counter(descPacketErrors, float64(path.t.Errors), path.label)
		counter(descBytes, float64(path.t.Bytes), path.label)
	}
	counter(descZeroPacket, float64(n.ZeroWayStreams))
	counter(descOneWay, float64(n.OneWayStreams))
	gauge(descDurAvg, d.Average)
	counter(descDurTotal, d.Sum)
	counter(descDur2Total, d.Squares)
}
