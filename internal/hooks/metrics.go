package hooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

// hookMetrics count every backend call per app and method.
type hookMetrics struct {
	requests *prometheus.CounterVec   // by app, method, status ("0": no reply)
	latency  *prometheus.HistogramVec // by app, method
}

func newHookMetrics() *hookMetrics {
	return &hookMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtcgate_hook_requests_total",
			Help: "REST hook calls to app backends, by app, method and HTTP status (0: no reply).",
		}, []string{"app", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rtcgate_hook_request_seconds",
			Help:    "Time for an app backend to answer a REST hook, by app and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"app", "method"}),
	}
}

// HeaderEventID names every hook request: a queued status event's id
// (eventq.Event.UID: the same on every attempt and every node, so that a
// backend can drop the rare duplicate of at-least-once delivery), or a
// fresh id for a synchronous call.
const HeaderEventID = "X-Rtcgate-Event-Id"

// eventIDs numbers synchronous calls after a random prefix per process.
var (
	eventIDPrefix = func() string {
		var b [8]byte
		rand.Read(b[:])
		return "c" + hex.EncodeToString(b[:])
	}()
	eventIDSeq atomic.Uint64
)

// newEventID is a synchronous call's id: unique, never a queued event's.
func newEventID() string {
	return eventIDPrefix + "-" + strconv.FormatUint(eventIDSeq.Add(1), 10)
}

// call makes one backend request, named id, and records it.
func (g *Hooks) call(ctx context.Context, app App, method string, body []byte, id string) restclient.Response {
	resp := g.HTTP.Do(ctx, restclient.Request{URL: hookURL(app, method), Body: body, BasicUser: app.User, BasicPassword: app.Password,
		Header: http.Header{HeaderEventID: []string{id}}})
	// Debug log of hook traffic: which call and how it went, never the
	// bodies or headers (SIP passwords, signatures).
	g.log().Debug("hook", "app", app.Name, "method", method, "status", resp.Status,
		"duration", resp.Duration, "bytes_out", len(body), "bytes_in", len(resp.Body))
	g.metrics().requests.WithLabelValues(app.Name, method, strconv.Itoa(resp.Status)).Inc()
	g.metrics().latency.WithLabelValues(app.Name, method).Observe(resp.Duration.Seconds())
	return resp
}

func (g *Hooks) metrics() *hookMetrics {
	g.metricsOnce.Do(func() { g.m = newHookMetrics() })
	return g.m
}

// Collectors are the hook metrics, the event queue's depth and its retries
// and dead letters.
func (g *Hooks) Collectors() []prometheus.Collector {
	m := g.metrics()
	stats := func(f func(eventq.Stats) uint64) func() float64 {
		return func() float64 {
			if g.Events == nil {
				return 0
			}
			return float64(f(g.Events.Stats()))
		}
	}
	return []prometheus.Collector{m.requests, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rtcgate_hook_queue_depth", Help: "Status events waiting for their backend."},
			func() float64 {
				if g.Events == nil {
					return 0
				}
				return float64(g.Events.Depth())
			}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rtcgate_hook_retries_total", Help: "Status event attempts that failed and were scheduled again."},
			stats(func(s eventq.Stats) uint64 { return s.Retries })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "rtcgate_hook_dead_letters_total", Help: "Status events given up on and written to the dead-letter log."},
			stats(func(s eventq.Stats) uint64 { return s.DeadLettered })),
	}
}
