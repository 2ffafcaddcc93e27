package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/bench/internal/hist"
	"github.com/rtcgate/rtcgate/bench/internal/rtcgatechild"
)

// quant is a latency distribution's summary.
type quant struct {
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MeanMs float64 `json:"mean_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func quantOf(h *hist.Histogram) quant {
	return quant{P50Ms: ms(h.Quantile(0.50)), P99Ms: ms(h.Quantile(0.99)), MeanMs: ms(h.Mean()), MaxMs: ms(h.Max())}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// latencyResult is (b).
type latencyResult struct {
	Clients  int    `json:"clients"`
	Requests uint64 `json:"requests"` // measured, of each kind
	Hooked   quant  `json:"hooked_round_trip"`
	Unhooked quant  `json:"unhooked_round_trip"`
	Backend  quant  `json:"backend_time"`
	// Added latency per request: its hooked round trip less its own
	// backend time less the unhooked median (what the round trip costs
	// without the hook). Subtracting the median rather than a per-request
	// unhooked time (which does not exist) leaves the ordinary jitter of a
	// round trip in the tail: a conservative p99.
	AddedP50Ms float64 `json:"added_p50_ms"`
	AddedP99Ms float64 `json:"added_p99_ms"`
	// The same from the three distributions' quantiles alone:
	// pX(hooked) − pX(unhooked) − pX(backend). Less conservative; shown for
	// comparison.
	QDiffP50Ms   float64    `json:"quantile_difference_p50_ms"`
	QDiffP99Ms   float64    `json:"quantile_difference_p99_ms"`
	BackendConns uint64     `json:"backend_connections"` // TCP connections rtcgate opened to the backend
	TimeBound    bool       `json:"time_bound_reached,omitempty"`
	Errors       uint64     `json:"errors"`
	ErrorSample  []string   `json:"error_sample,omitempty"`
	CPU          cpuFigures `json:"cpu"`
}

// latRun is what the clients of (b) share.
type latRun struct {
	mu                       sync.Mutex
	hooked, unhooked, backnd hist.Histogram
	net                      hist.Histogram // hooked round trip − its backend time
	errors                   atomic.Uint64
	errs                     []string
}

func (l *latRun) noteErr(err error) {
	if l.errors.Add(1) <= 8 {
		l.mu.Lock()
		l.errs = append(l.errs, err.Error())
		l.mu.Unlock()
	}
}

// scenarioLatency is (b): -lat-clients clients, each with a session on the
// hooked app and one on defaultApp, alternating which goes first so that
// neither kind always follows the other; one request at a time per client.
func scenarioLatency(ctx context.Context, env *runEnv, c *rtcgatechild.Child, b *backend) (*latencyResult, error) {
	cfg := env.cfg
	r := &latencyResult{Clients: cfg.latClients}
	url := "ws://" + c.Addr("listen-client") + "/"

	type client struct{ hooked, unhooked *websocket.Conn }
	clients := make([]client, cfg.latClients)
	defer func() {
		for _, cl := range clients {
			for _, ws := range []*websocket.Conn{cl.hooked, cl.unhooked} {
				if ws != nil {
					ws.CloseNow()
				}
			}
		}
	}()
	hc := httpClientFrom(nil)
	for i := range clients {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		clients[i].hooked, _, err = dialSession(dctx, hc, url, appKey)
		if err == nil {
			clients[i].unhooked, _, err = dialSession(dctx, hc, url, "defaultApp")
		}
		cancel()
		if err != nil {
			return r, fmt.Errorf("client %d: %w", i, err)
		}
	}

	perClient := (cfg.latRequests + cfg.latClients - 1) / cfg.latClients
	warm := (cfg.latWarmup + cfg.latClients - 1) / cfg.latClients
	hardStop := time.Now().Add(cfg.latTimeout)
	l := &latRun{}
	var timedOut atomic.Bool
	connsBefore := b.Conns()
	a := snap(c.Pid())
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() {
			var hk, uh, bk, nt hist.Histogram
			defer func() {
				l.mu.Lock()
				l.hooked.Merge(&hk)
				l.unhooked.Merge(&uh)
				l.backnd.Merge(&bk)
				l.net.Merge(&nt)
				l.mu.Unlock()
			}()
			prefix := "c" + strconv.Itoa(i) + "-"
			for n := range warm + perClient {
				if ctx.Err() != nil {
					return
				}
				if time.Now().After(hardStop) {
					timedOut.Store(true)
					return
				}
				measured := n >= warm
				for k := range 2 {
					hookedTurn := (n+k)%2 == 0
					op := prefix + strconv.Itoa(n)
					octx, cancel := context.WithTimeout(ctx, 10*time.Second)
					if hookedTurn {
						op += "-h"
						wait := b.expectOp(op)
						d, err := sendData(octx, cl.hooked, op)
						var bt time.Duration
						if err == nil {
							select {
							case bt = <-wait:
							case <-octx.Done():
								err = errors.New("the backend never timed " + op)
							}
						}
						cancel()
						if err != nil {
							b.waiters.Delete(op)
							l.noteErr(fmt.Errorf("client %d hooked: %w", i, err))
							return
						}
						if measured {
							hk.Record(d)
							bk.Record(bt)
							nt.Record(d - bt)
						}
					} else {
						d, err := sendData(octx, cl.unhooked, op+"-u")
						cancel()
						if err != nil {
							l.noteErr(fmt.Errorf("client %d unhooked: %w", i, err))
							return
						}
						if measured {
							uh.Record(d)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	r.CPU = between(a, snap(c.Pid()))
	r.BackendConns = b.Conns() - connsBefore
	r.TimeBound = timedOut.Load()

	l.mu.Lock()
	r.Requests = min(l.hooked.Count(), l.unhooked.Count())
	r.Hooked, r.Unhooked, r.Backend = quantOf(&l.hooked), quantOf(&l.unhooked), quantOf(&l.backnd)
	base := l.unhooked.Quantile(0.50)
	r.AddedP50Ms = ms(l.net.Quantile(0.50) - base)
	r.AddedP99Ms = ms(l.net.Quantile(0.99) - base)
	r.QDiffP50Ms = ms(l.hooked.Quantile(0.50) - l.unhooked.Quantile(0.50) - l.backnd.Quantile(0.50))
	r.QDiffP99Ms = ms(l.hooked.Quantile(0.99) - l.unhooked.Quantile(0.99) - l.backnd.Quantile(0.99))
	r.Errors = l.errors.Load()
	r.ErrorSample = l.errs
	l.mu.Unlock()

	if !c.Alive() {
		return r, c.ExitError()
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%d round trips failed, e.g. %v", r.Errors, r.ErrorSample[0])
	}
	if r.Requests == 0 {
		return r, errors.New("no round trip measured")
	}
	if r.TimeBound {
		env.Logf("(b) -lat-timeout %v reached after %d requests of each kind", cfg.latTimeout, r.Requests)
	}
	return r, nil
}
