package main

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: 2^histSubBits buckets per
// power of two, i.e. a relative error under 1/32 ≈ 3 %, which is far finer
// than run-to-run noise of latency on a shared box.
const histSubBits = 5

// histBuckets covers every non-negative int64 nanosecond value.
const histBuckets = (64 - histSubBits) << histSubBits

// histogram (copied from bench/ngbench) is a log-linear latency histogram
// with fixed memory (about 15 KiB)
// whatever the number of samples, so millions of packets can be recorded
// without sampling. It is not safe for concurrent use: each goroutine keeps
// its own and they are merged at the end.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max int64
	sum      float64
}

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	n := bits.Len64(v)           // > histSubBits
	shift := n - histSubBits - 1 // keep the top histSubBits+1 bits
	m := v >> uint(shift)        // in [2^subBits, 2^(subBits+1))
	return (shift+1)<<histSubBits + int(m) - 1<<histSubBits
}

// histLower is the smallest value that falls into bucket i.
func histLower(i int) uint64 {
	if i < 2<<histSubBits {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	m := uint64(i&(1<<histSubBits-1)) + 1<<histSubBits
	return m << uint(shift)
}

// record adds one sample; negative durations (clock oddities) count as 0.
func (h *histogram) record(d time.Duration) {
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
	h.counts[histIndex(uint64(v))]++
}

func (h *histogram) merge(o *histogram) {
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

// quantile returns the q-quantile (0 < q ≤ 1) as the midpoint of the bucket
// holding it, clamped to the exact observed min and max.
func (h *histogram) quantile(q float64) time.Duration {
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
			lo := histLower(i)
			hi := histLower(i + 1)
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

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
