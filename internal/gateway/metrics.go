package gateway

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// gatewayMetrics are the SIP gateway's figures, for /metrics and `list sip`
// (which reads the same counters).
type gatewayMetrics struct {
	registrations *prometheus.CounterVec // by status
	calls         *prometheus.CounterVec // ended calls by direction and final status
	messages      *prometheus.CounterVec // by direction and status
	setup         prometheus.Histogram   // outgoing call sent → ESTABLISHED
	active        atomic.Int64           // calls not ended
}

func newGatewayMetrics() *gatewayMetrics {
	return &gatewayMetrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_sip_registrations_total",
			Help: "REGISTER outcomes of the clients' SIP accounts, by status (REGISTERED, UNREGISTERED, FAILED).",
		}, []string{"status"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_sip_calls_total",
			Help: "Ended SIP calls, by direction (outgoing, incoming) and final status (FINISH, BUSY, FAILED).",
		}, []string{"direction", "status"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_sip_messages_total",
			Help: "SIP MESSAGEs, by direction (outgoing, incoming) and status (ACCEPTED, FAILED, RECEIVED).",
		}, []string{"direction", "status"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rtcgate_sip_call_setup_seconds",
			Help:    "Time from a client's call to the far end's answer.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
}

func (g *Gateway) metrics() *gatewayMetrics {
	g.metricsOnce.Do(func() { g.m = newGatewayMetrics() })
	return g.m
}

// counts reads a counter vector for the CLI, by its label values joined
// with "/" in label-name order ("outgoing/FINISH").
func counts(vec *prometheus.CounterVec) map[string]float64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { vec.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		labels := make([]string, 0, len(d.GetLabel()))
		for _, l := range d.GetLabel() {
			labels = append(labels, l.GetValue())
		}
		out[strings.Join(labels, "/")] = d.GetCounter().GetValue()
	}
	return out
}

// Collectors are the gateway's metrics.
func (g *Gateway) Collectors() []prometheus.Collector {
	m := g.metrics()
	return []prometheus.Collector{m.registrations, m.calls, m.messages, m.setup,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rtcgate_sip_calls_active", Help: "SIP calls not ended."},
			func() float64 { return float64(m.active.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rtcgate_sip_accounts", Help: "Clients with a SIP account."},
			func() float64 { return float64(g.numAccounts()) }),
	}
}

func (g *Gateway) numAccounts() int {
	if g.SIP == nil {
		return 0
	}
	return g.SIP.NumAccounts()
}

// RegisterCLI adds `list sip`: the gateway's accounts, calls and counters.
func (g *Gateway) RegisterCLI(r *cli.Registry) {
	r.Handle("list sip", "", "print the SIP gateway's accounts, calls and outcomes", func(_ context.Context, _ []string, w io.Writer) {
		m := g.metrics()
		line := func(name string, v any) { fmt.Fprintf(w, " %-48s:%v\n", name, v) }
		line("SIP accounts", g.numAccounts())
		line("Active calls", m.active.Load())
		regs, calls, msgs := counts(m.registrations), counts(m.calls), counts(m.messages)
		for _, s := range []string{"REGISTERED", "UNREGISTERED", "FAILED"} {
			line("Registrations "+s, regs[s])
		}
		for _, d := range []string{"outgoing", "incoming"} {
			for _, s := range []string{"FINISH", "BUSY", "FAILED"} {
				line(fmt.Sprintf("Calls %s %s", d, s), calls[d+"/"+s])
			}
		}
		for _, k := range []string{"outgoing/ACCEPTED", "outgoing/FAILED", "incoming/RECEIVED"} {
			line("Messages "+strings.ReplaceAll(k, "/", " "), msgs[k])
		}
	})
}

func (m *gatewayMetrics) registration(status string) {
	m.registrations.WithLabelValues(status).Inc()
}

func (m *gatewayMetrics) callEnded(incoming bool, status string) {
	m.calls.WithLabelValues(direction(incoming), status).Inc()
	m.active.Add(-1)
}

func (m *gatewayMetrics) message(incoming bool, status string) {
	m.messages.WithLabelValues(direction(incoming), status).Inc()
}

func (m *gatewayMetrics) answered(since time.Time) { m.setup.Observe(time.Since(since).Seconds()) }

func direction(incoming bool) string {
	if incoming {
		return "incoming"
	}
	return "outgoing"
}
