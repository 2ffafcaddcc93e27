package cluster

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
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
	// sessions is each live node's session count as the registry had it
	// at this node's last heartbeat that reached Redis.
	sessions *nodeSessions
}

// nodeSessions exports the registry's session counts, one series per live
// node, from one snapshot (a node that left is gone at once).
type nodeSessions struct {
	desc  *prometheus.Desc
	nodes atomic.Pointer[[]Node]
}

// Describe implements prometheus.Collector.
func (n *nodeSessions) Describe(ch chan<- *prometheus.Desc) { ch <- n.desc }

// Collect implements prometheus.Collector.
func (n *nodeSessions) Collect(ch chan<- prometheus.Metric) {
	if p := n.nodes.Load(); p != nil {
		for _, nd := range *p {
			ch <- prometheus.MustNewConstMetric(n.desc, prometheus.GaugeValue, float64(nd.Sessions), nd.ID)
		}
	}
}

// registry takes the live nodes of a heartbeat.
func (m *metrics) registry(nodes []Node) {
	m.nodes.Set(float64(len(nodes)))
	m.sessions.nodes.Store(&nodes)
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
		sessions: &nodeSessions{desc: prometheus.NewDesc("rtcgate_cluster_node_sessions",
			"Client sessions of each live node, as the node registry had them at this node's last heartbeat", []string{"node"}, nil)},
	}
}

// Collectors are the cluster's metrics.
func (c *Cluster) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.metrics.latency, c.metrics.errors, c.metrics.up, c.metrics.nodes, c.metrics.sessions}
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
