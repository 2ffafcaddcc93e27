package main

import (
	"encoding/json"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/hookbackend"
)

// backend is the app's web backend (hookbackend). It counts what arrives,
// by method, and separately the hooks that carry a callId (the calls'), so
// that the table can say how many hooks a call costs.
type backend struct {
	*hookbackend.Backend

	mu       sync.Mutex
	byMethod map[string]uint64 // every hook
	callHook map[string]uint64 // hooks whose body has a callId, by method[:status]
	total    atomic.Uint64
	calls    atomic.Uint64 // hooks with a callId
	bad      atomic.Uint64 // bodies that were not JSON objects
	last     atomic.Int64  // unix ns of the last hook
}

func startBackend() (*backend, error) {
	b := &backend{byMethod: map[string]uint64{}, callHook: map[string]uint64{}}
	var err error
	b.Backend, err = hookbackend.Start(appName, b.hook)
	return b, err
}

func (b *backend) hook(method string, raw []byte) (func(time.Duration), error) {
	var body struct {
		CallID string `json:"callId"`
		Status string `json:"status"`
	}
	if json.Unmarshal(raw, &body) != nil {
		b.bad.Add(1)
	}
	b.mu.Lock()
	b.byMethod[method]++
	if body.CallID != "" {
		// The calls' status events by status too (TRYING, RING…): a
		// missing one shows.
		key := method
		if body.Status != "" {
			key += ":" + body.Status
		}
		b.callHook[key]++
	}
	b.mu.Unlock()
	b.total.Add(1)
	if body.CallID != "" {
		b.calls.Add(1)
	}
	b.last.Store(time.Now().UnixNano())
	return nil, nil
}

// counts copies the per-method counters: all hooks, and the calls'.
func (b *backend) counts() (all, calls map[string]uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.byMethod), maps.Clone(b.callHook)
}

// settle waits, at most limit, until no hook has arrived for quiet: the
// asynchronous status events of the last calls trail their frames.
func (b *backend) settle(limit, quiet time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if l := b.last.Load(); l == 0 || time.Since(time.Unix(0, l)) >= quiet {
			return
		}
		time.Sleep(quiet / 4)
	}
}

// diff is b − a per key.
func diff(a, b map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}
