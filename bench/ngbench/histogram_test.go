package main

import (
	"math"
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	vals := []uint64{0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 999_999, 1 << 40, math.MaxInt64}
	for _, v := range vals {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if lo, hi := histLower(i), histLower(i+1); v < lo || v >= hi {
			t.Fatalf("v=%d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
	}
	for i := 1; i < histBuckets; i++ {
		if histLower(i) <= histLower(i-1) {
			t.Fatalf("bucket bounds not increasing at %d", i)
		}
		if histIndex(histLower(i)) != i {
			t.Fatalf("histIndex(histLower(%d)) = %d", i, histIndex(histLower(i)))
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var a, b histogram
	// 1..10000 µs split over two histograms, as two receivers would.
	for i := 1; i <= 10000; i++ {
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.record(time.Duration(i) * time.Microsecond)
	}
	a.merge(&b)
	if a.n != 10000 || a.min != int64(time.Microsecond) || a.max != int64(10*time.Millisecond) {
		t.Fatalf("n=%d min=%d max=%d", a.n, a.min, a.max)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := a.quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.04 {
			t.Errorf("q%.2f = %v, want %v ± 4%%", tc.q, got, tc.want)
		}
	}
	if m := a.mean(); m < 4990*time.Microsecond || m > 5010*time.Microsecond {
		t.Errorf("mean = %v", m)
	}
	var empty histogram
	if empty.quantile(0.99) != 0 {
		t.Error("empty histogram quantile != 0")
	}
	empty.record(-5)
	if empty.min != 0 || empty.max != 0 {
		t.Error("negative sample not clamped to 0")
	}
}
