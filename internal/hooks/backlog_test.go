package hooks

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/cli"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// TestBacklogAndDeadLetterCommands, through the real Sender and HTTP
// client: a 5xx is retried (not dead-lettered) while the budget lasts, a
// 4xx is the backend's answer and dead-letters at once; the backlog and
// the dead letters show in `list totals` and the metrics; `list
// hook-dead-letters` lists them (never a body) per app by name or key, and
// `replay hook-dead-letters APP` delivers that app's in order.
func TestBacklogAndDeadLetterCommands(t *testing.T) {
	var status atomic.Int64 // what the backend answers
	status.Store(http.StatusServiceUnavailable)
	var mu sync.Mutex
	var got []string
	arrived := make(chan struct{}, 100)
	srv := newRecorder(t)
	srv.mu.Lock()
	srv.status = func(string) int {
		if s := int(status.Load()); s != http.StatusOK {
			return s
		}
		return 0
	}
	srv.mu.Unlock()
	go func() {
		for m := range srv.got {
			if status.Load() == http.StatusOK {
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
				arrived <- struct{}{}
			}
		}
	}()
	apps, err := NewApps([]App{{Name: "A", Key: "ka", URL: srv.srv.URL + "/A", Methods: Methods},
		{Name: "B", Key: "kb", URL: srv.srv.URL + "/B", Methods: Methods}}, "")
	if err != nil {
		t.Fatal(err)
	}
	hc, err := restclient.New(restclient.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hc.Close)
	h := &Hooks{Apps: apps, HTTP: hc, NodeID: "n", SettleTimeout: time.Second}
	dl := eventq.NewMemoryDeadLetters(1 << 20)
	q, err := eventq.New(eventq.Options{Store: eventq.NewMemory(100), Send: h.Sender(), DeadLetters: dl,
		BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond}) // the default budget: 10 minutes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()); dl.Close() })
	h.Events = q
	reg := cli.New(nil)
	h.RegisterQueueCLI(reg)
	st := stats.New()
	h.RegisterTotals(st)
	pr := prometheus.NewRegistry()
	pr.MustRegister(h.Collectors()...)
	pr.MustRegister(h.QueueCollectors()...)
	metric := func(name string) float64 {
		t.Helper()
		mfs, err := pr.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	totals := func() string {
		var b bytes.Buffer
		st.WriteTotals(&b)
		out := b.String()
		i := strings.Index(out, "\n\nHook events:\n\n")
		if i < 0 {
			t.Fatalf("no Hook events section in list totals:\n%s", out)
		}
		return out[i:]
	}
	line := func(label string, v int) string { return fmt.Sprintf(" %-48s:%d\n", label, v) }
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// 503: retried, not given up on, the backlog shows.
	for _, ev := range []string{"ka/s1/CallStatusEvent", "ka/s1/MessageStatusEvent", "kb/s2/CallStatusEvent", "ka/s3/ConnectionStatusEvent"} {
		p := strings.Split(ev, "/")
		if err := q.Enqueue(p[1], p[0], p[2], []byte(`{"sipPassword":"secret"}`)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil("20 retries", func() bool { return q.Stats().Retries >= 20 })
	if s := q.Stats(); s.DeadLettered != 0 || q.Depth() != 4 {
		t.Fatalf("under 503: stats %+v, depth %d; want retries only", s, q.Depth())
	}
	if v := metric("rtcgate_hook_queue_oldest_seconds"); v <= 0 || v > 10 {
		t.Errorf("rtcgate_hook_queue_oldest_seconds = %v", v)
	}
	if tot := totals(); !strings.Contains(tot, line("Queued hook events", 4)) ||
		!strings.Contains(tot, line("Dead-lettered hook events", 0)) {
		t.Errorf("list totals under 503:\n%s", tot)
	}

	// 404: the backend's answer, dead-lettered at the next attempt.
	status.Store(http.StatusNotFound)
	waitUntil("4 dead letters", func() bool { return dl.Stats().Kept == 4 })
	if v := metric("rtcgate_hook_dead_letters"); v != 4 {
		t.Errorf("rtcgate_hook_dead_letters = %v", v)
	}
	if v := metric("rtcgate_hook_queue_oldest_seconds"); v != 0 {
		t.Errorf("rtcgate_hook_queue_oldest_seconds = %v with nothing queued", v)
	}
	if tot := totals(); !strings.Contains(tot, line("Queued hook events", 0)) ||
		!strings.Contains(tot, line("Dead-lettered hook events", 4)) ||
		!strings.Contains(tot, line("Hook dead letters kept", 4)) {
		t.Errorf("list totals after 404s:\n%s", tot)
	}
	list := reg.Run(context.Background(), "list hook-dead-letters")
	if strings.Contains(list, "secret") || strings.Count(list, "backend answered 404") != 4 || !strings.Contains(list, "MessageStatusEvent") {
		t.Errorf("list hook-dead-letters:\n%s", list)
	}
	if listB := reg.Run(context.Background(), "list hook-dead-letters B"); strings.Count(listB, "backend answered 404") != 1 || !strings.Contains(listB, " s2 ") {
		t.Errorf("list hook-dead-letters B:\n%s", listB)
	}

	// Replay A's (by name), with the backend fixed: in order per session.
	status.Store(http.StatusOK)
	if out := reg.Run(context.Background(), "replay hook-dead-letters A"); out != "Replayed 3 hook dead letters\n" {
		t.Fatalf("replay: %q", out)
	}
	for range 3 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("replayed events not delivered")
		}
	}
	mu.Lock()
	order := strings.Join(got, " ")
	mu.Unlock()
	if c, m := strings.Index(order, "CallStatusEvent"), strings.Index(order, "MessageStatusEvent"); c < 0 || m < c || !strings.Contains(order, "ConnectionStatusEvent") {
		t.Errorf("replayed deliveries %q: want A's three, s1's CallStatusEvent before its MessageStatusEvent", order)
	}
	if left := reg.Run(context.Background(), "list hook-dead-letters"); strings.Count(left, "backend answered 404") != 1 || !strings.Contains(left, "kb") {
		t.Errorf("after replaying A:\n%s", left)
	}
	if v := metric("rtcgate_hook_dead_letters_replayed_total"); v != 3 {
		t.Errorf("rtcgate_hook_dead_letters_replayed_total = %v", v)
	}
	if out := reg.Run(context.Background(), "remove hook-dead-letters kb"); out != "Removed 1 hook dead letters\n" || dl.Stats().Kept != 0 {
		t.Errorf("remove: %q, kept %d", out, dl.Stats().Kept)
	}
}
