package hist

import (
	"math"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	vals := []uint64{0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 999_999, 1 << 40, math.MaxInt64}
	for _, v := range vals {
		i := index(v)
		if i < 0 || i >= buckets {
			t.Fatalf("index(%d) = %d out of range", v, i)
		}
		if lo, hi := lower(i), lower(i+1); v < lo || v >= hi {
			t.Fatalf("v=%d in bucket %d = [%d, %d)", v, i, lo, hi)
		}
	}
	for i := 1; i < buckets; i++ {
		if lower(i) <= lower(i-1) {
			t.Fatalf("bucket bounds not increasing at %d", i)
		}
		if index(lower(i)) != i {
			t.Fatalf("index(lower(%d)) = %d", i, index(lower(i)))
		}
	}
}

func TestQuantiles(t *testing.T) {
	var a, b Histogram
	// 1..10000 µs split over two histograms, as two receivers would.
	for i := 1; i <= 10000; i++ {
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.Record(time.Duration(i) * time.Microsecond)
	}
	a.Merge(&b)
	if a.Count() != 10000 || a.min != int64(time.Microsecond) || a.Max() != 10*time.Millisecond {
		t.Fatalf("n=%d min=%d max=%d", a.n, a.min, a.max)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := a.Quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.04 {
			t.Errorf("q%.2f = %v, want %v ± 4%%", tc.q, got, tc.want)
		}
	}
	if m := a.Mean(); m < 4990*time.Microsecond || m > 5010*time.Microsecond {
		t.Errorf("mean = %v", m)
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 || empty.Max() != 0 {
		t.Error("empty histogram quantile, mean or max != 0")
	}
	empty.Record(-5)
	if empty.min != 0 || empty.max != 0 {
		t.Error("negative sample not clamped to 0")
	}
}
