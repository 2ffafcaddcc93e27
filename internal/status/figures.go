package status

import (
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// figures are the gathered metric families by name: what /metrics shows at
// this moment.
type figures map[string]*dto.MetricFamily

func gathered(mfs []*dto.MetricFamily) figures {
	f := make(figures, len(mfs))
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f
}

// value is the sample of a counter or gauge family (its only one, or the
// sum of all of them).
func (f figures) value(name string) float64 {
	var sum float64
	if mf := f[name]; mf != nil {
		for _, m := range mf.Metric {
			sum += sampleValue(m)
		}
	}
	return sum
}

// by sums a family's samples by the values of labels, joined with " ".
func (f figures) by(name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	if mf := f[name]; mf != nil {
		for _, m := range mf.Metric {
			out[labelKey(m, labels)] += sampleValue(m)
		}
	}
	return out
}

func labelKey(m *dto.Metric, labels []string) string {
	vals := make([]string, len(labels))
	for i, l := range labels {
		for _, lp := range m.Label {
			if lp.GetName() == l {
				vals[i] = lp.GetValue()
			}
		}
	}
	return strings.Join(vals, " ")
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// histogram is a histogram's samples merged: cumulative bucket counts by
// upper bound, the count and the sum.
type histogram struct {
	bounds []float64
	counts []float64 // cumulative, per bound
	count  float64
	sum    float64
}

// histograms merges a histogram family's samples by the value of label.
func (f figures) histograms(name, label string) map[string]*histogram {
	out := map[string]*histogram{}
	mf := f[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.Metric {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		key := labelKey(m, []string{label})
		acc := out[key]
		if acc == nil {
			acc = &histogram{}
			out[key] = acc
		}
		acc.add(h)
	}
	return out
}

func (acc *histogram) add(h *dto.Histogram) {
	acc.count += float64(h.GetSampleCount())
	acc.sum += h.GetSampleSum()
	for _, b := range h.Bucket {
		ub, n := b.GetUpperBound(), float64(b.GetCumulativeCount())
		i := sort.SearchFloat64s(acc.bounds, ub)
		if i < len(acc.bounds) && acc.bounds[i] == ub {
			acc.counts[i] += n
			continue
		}
		acc.bounds = append(acc.bounds, 0)
		acc.counts = append(acc.counts, 0)
		copy(acc.bounds[i+1:], acc.bounds[i:])
		copy(acc.counts[i+1:], acc.counts[i:])
		acc.bounds[i], acc.counts[i] = ub, n
	}
}

func (acc *histogram) mean() float64 {
	if acc.count == 0 {
		return 0
	}
	return acc.sum / acc.count
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket that holds it, the highest finite bound
// when it falls beyond the last one. 0 without samples.
func (acc *histogram) quantile(q float64) float64 {
	if acc.count == 0 || len(acc.bounds) == 0 {
		return 0
	}
	rank := q * acc.count
	lower, below := 0.0, 0.0
	for i, ub := range acc.bounds {
		n := acc.counts[i]
		if n >= rank {
			if math.IsInf(ub, 1) {
				return lower
			}
			if n == below {
				return ub
			}
			return lower + (ub-lower)*(rank-below)/(n-below)
		}
		lower, below = ub, n
	}
	return lower
}
