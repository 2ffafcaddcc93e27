package main

import (
	"context"
	"testing"
	"time"
)

// The generator against the sink: every packet of every stream comes back,
// on the right side, timed by the kernel.
func TestGeneratorSink(t *testing.T) {
	socks, err := openMediaSockets(3)
	if err != nil {
		t.Fatal(err)
	}
	defer socks.close()
	const calls, rate = 50, 100
	t0 := mono() + int64(20*time.Millisecond)
	m := &mediaLoad{socks: socks, calls: socks.sinkCalls(calls), plan: mediaPlan{
		rate: rate, t0: t0, ws: t0 + int64(100*time.Millisecond), we: t0 + int64(400*time.Millisecond),
		drain: int64(200 * time.Millisecond), hardStop: t0 + int64(5*time.Second), tick: time.Millisecond,
	}}
	var atWS, atWE bool
	r := m.run(context.Background(), func() { atWS = true }, func() { atWE = true })
	if r.firstErr != nil {
		t.Fatal(r.firstErr)
	}
	// 0.3 s at 100/s: 30 packets per stream, give or take one at the edges.
	if !atWS || !atWE || r.sentWin < 2*calls*29 || r.sentWin > 2*calls*31 || r.sent != 2*calls*40 {
		t.Fatalf("window: %v %v, %d packets sent in it, %d in all", atWS, atWE, r.sentWin, r.sent)
	}
	if r.recvWin != r.sentWin || r.recv != r.sent || r.silentStreams != 0 || r.misrouted != 0 || r.foreign != 0 {
		t.Fatalf("sent %d/%d, received %d/%d, %d silent, %d misrouted, %d foreign",
			r.sentWin, r.sent, r.recvWin, r.recv, r.silentStreams, r.misrouted, r.foreign)
	}
	if r.userStamps != 0 || r.lat.Count() != r.recvWin || r.lat.Quantile(0.5) <= 0 || r.lat.Quantile(0.5) > r.readLat.Quantile(0.5) {
		t.Fatalf("%d packets without a kernel time; kernel p50 %v, read p50 %v", r.userStamps, r.lat.Quantile(0.5), r.readLat.Quantile(0.5))
	}
}

// An interrupted run stops at once, whatever its plan.
func TestGeneratorAbort(t *testing.T) {
	socks, err := openMediaSockets(1)
	if err != nil {
		t.Fatal(err)
	}
	defer socks.close()
	t0 := mono()
	m := &mediaLoad{socks: socks, calls: socks.sinkCalls(10), plan: mediaPlan{
		rate: 50, t0: t0, ws: t0, we: t0 + int64(time.Hour), drain: int64(time.Second),
		hardStop: t0 + int64(2*time.Hour), tick: time.Millisecond,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	m.run(ctx, func() {}, func() {})
	if d := time.Duration(mono() - t0); d > 5*time.Second {
		t.Fatalf("run took %v after its context ended", d)
	}
}
