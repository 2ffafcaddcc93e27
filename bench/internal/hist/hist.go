// Package hist is the latency histogram the benchmark programs under bench/
// record round trips and packet delays in.
package hist

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, i.e. a relative error under 1/32 ≈ 3 %, which is far finer than
// run-to-run noise of latency on a shared box.
const subBits = 5

// buckets covers every non-negative int64 nanosecond value.
const buckets = (64 - subBits) << subBits

// Histogram is a log-linear latency histogram with fixed memory (about
// 15 KiB) whatever the number of samples, so millions of packets can be
// recorded without sampling. The zero value is an empty histogram. It is not
// safe for concurrent use: each goroutine keeps its own and they are merged
// at the end.
type Histogram struct {
	counts   [buckets]uint64
	n        uint64
	min, max int64
	sum      float64
}

func index(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	n := bits.Len64(v)       // > subBits
	shift := n - subBits - 1 // keep the top subBits+1 bits
	m := v >> uint(shift)    // in [2^subBits, 2^(subBits+1))
	return (shift+1)<<subBits + int(m) - 1<<subBits
}

// lower is the smallest value that falls into bucket i.
func lower(i int) uint64 {
	if i < 2<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	m := uint64(i&(1<<subBits-1)) + 1<<subBits
	return m << uint(shift)
}

// Record adds one sample; negative durations (clock oddities) count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[index(uint64(v))]++
}

// Merge adds all of o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count is the number of samples recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample recorded, exactly; 0 when there is none.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the q-quantile (0 < q ≤ 1) as the midpoint of the bucket
// holding it, clamped to the exact observed min and max; 0 when there are no
// samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo := lower(i)
			hi := lower(i + 1)
			v := int64(lo + (hi-lo)/2)
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Mean is the exact mean of the samples; 0 when there are none.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
