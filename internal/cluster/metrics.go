package cluster

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// metrics times every Redis command (a go-redis hook) and counts errors;
// redis.Nil (no such key) is an answer, not an error.
type metrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	up      prometheus.Gauge
	nodes   prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rtcgate_cluster_redis_seconds", Help: "Redis command round trips of the cluster, by command (pipeline: a transaction or pipeline)",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"command"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_cluster_redis_errors_total", Help: "Redis commands of the cluster that failed (no answer, refused, an error reply), by command (dial: connecting)",
		}, []string{"command"}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtcgate_cluster_redis_up", Help: "1 when this node's last heartbeat reached Redis",
		}),
		nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtcgate_cluster_nodes", Help: "Nodes whose lease runs, as of this node's last heartbeat",
		}),
	}
}

// Collectors are the cluster's metrics.
func (c *Cluster) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.metrics.latency, c.metrics.errors, c.metrics.up, c.metrics.nodes}
}

func failed(err error) bool { return err != nil && !errors.Is(err, redis.Nil) }

func (m *metrics) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			m.errors.WithLabelValues("dial").Inc()
		}
		return conn, err
	}
}

func (m *metrics) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		name := cmd.Name()
		m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if failed(err) {
			m.errors.WithLabelValues(name).Inc()
		}
		return err
	}
}

func (m *metrics) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		m.latency.WithLabelValues("pipeline").Observe(time.Since(start).Seconds())
		if failed(err) {
			m.errors.WithLabelValues("pipeline").Inc()
		}
		return err
	}
}
