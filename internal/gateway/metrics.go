package gateway

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// gatewayMetrics are the SIP gateway's figures, for /metrics and `list sip`.
type gatewayMetrics struct {
	registrations *prometheus.CounterVec // by status
	calls         *prometheus.CounterVec // ended calls by direction and final status
	messages      *prometheus.CounterVec // by direction and status
	setup         prometheus.Histogram   // outgoing call sent → ESTABLISHED
	active        atomic.Int64           // calls not ended
	byStatus      sync.Map               // "call/outgoing/FINISH" → *atomic.Int64, for the CLI
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

// count adds one to a labelled counter and to the CLI's tally of it.
func (m *gatewayMetrics) count(vec *prometheus.CounterVec, tally string, labels ...string) {
	vec.WithLabelValues(labels...).Inc()
	v, _ := m.byStatus.LoadOrStore(tally, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (m *gatewayMetrics) tally(name string) int64 {
	if v, ok := m.byStatus.Load(name); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
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
		for _, s := range []string{"REGISTERED", "UNREGISTERED", "FAILED"} {
			line("Registrations "+s, m.tally("reg/"+s))
		}
		for _, d := range []string{"outgoing", "incoming"} {
			for _, s := range []string{"FINISH", "BUSY", "FAILED"} {
				line(fmt.Sprintf("Calls %s %s", d, s), m.tally("call/"+d+"/"+s))
			}
		}
		for _, d := range []string{"outgoing", "incoming"} {
			for _, s := range []string{"ACCEPTED", "FAILED", "RECEIVED"} {
				if d == "outgoing" && s == "RECEIVED" || d == "incoming" && s != "RECEIVED" {
					continue
				}
				line(fmt.Sprintf("Messages %s %s", d, s), m.tally("msg/"+d+"/"+s))
			}
		}
	})
}

func (m *gatewayMetrics) registration(status string) {
	m.count(m.registrations, "reg/"+status, status)
}

func (m *gatewayMetrics) callEnded(incoming bool, status string) {
	d := direction(incoming)
	m.count(m.calls, "call/"+d+"/"+status, d, status)
	m.active.Add(-1)
}

func (m *gatewayMetrics) message(incoming bool, status string) {
	d := direction(incoming)
	m.count(m.messages, "msg/"+d+"/"+status, d, status)
}

func (m *gatewayMetrics) answered(since time.Time) { m.setup.Observe(time.Since(since).Seconds()) }

func direction(incoming bool) string {
	if incoming {
		return "incoming"
	}
	return "outgoing"
}
