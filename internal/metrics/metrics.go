// Package metrics builds the Prometheus registry that every subsystem adds
// its collectors to, and serves it as /metrics.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rtcgate/rtcgate/internal/version"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors and rtcgate_build_info. Subsystems register their own metrics
// on it: rtpengine_* names where rtpengine has the same figure, rtcgate_*
// for ours.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "rtcgate_build_info",
		Help:        "The running rtcgate's version; always 1.",
		ConstLabels: prometheus.Labels{"version": version.String(), "goversion": version.GoVersion()},
	})
	info.Set(1)
	reg.MustRegister(info)
	return reg
}

// Handler serves the registry in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
