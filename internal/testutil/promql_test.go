package testutil

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePromQL(t *testing.T) {
	for _, c := range []struct {
		expr   string
		names  []string
		labels []string
		match  []Matcher // of the first selector
	}{
		{`rtcgate_client_sessions`, []string{"rtcgate_client_sessions"}, nil, nil},
		{`sum by (type) (rate(rtpengine_packets_total{type="userspace", instance=~"$instance"}[$__rate_interval]))`,
			[]string{"rtpengine_packets_total"}, []string{"type"}, []Matcher{{"type", "=", "userspace"}, {"instance", "=~", "$instance"}}},
		{`histogram_quantile(0.95, sum(rate(rtcgate_hook_request_seconds_bucket[5m])) by (le, app))`,
			[]string{"rtcgate_hook_request_seconds_bucket"}, []string{"le", "app"}, nil},
		{`increase(rtpengine_call_duration_total[1h]) / ignoring(x) group_left increase(rtpengine_sessions_total[1h]) > bool 0`,
			[]string{"rtpengine_call_duration_total", "rtpengine_sessions_total"}, []string{"x"}, nil},
		{`a * on(instance) group_left(version) rtcgate_build_info offset 5m`, []string{"a", "rtcgate_build_info"}, []string{"instance", "version"}, nil},
		{`{__name__="up", job!~'x\'y'}`, []string{"up"}, nil, []Matcher{{"__name__", "=", "up"}, {"job", "!~", "x'y"}}},
		{`max_over_time(x[1h:5m]) and y unless z or w`, []string{"x", "y", "z", "w"}, nil, nil},
		{`label_replace(x, "dst", "$1", "src", "(.*)") + 1e3 - Inf`, []string{"x"}, nil, nil},
		{`rate(x[[[interval]]]) # a comment rate(y)`, []string{"x"}, nil, nil},
		{`x{l=~${v:regex}}`, []string{"x"}, nil, []Matcher{{"l", "=~", "${v:regex}"}}},
	} {
		q, err := ParsePromQL(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		var names []string
		for _, s := range q.Selectors {
			names = append(names, s.Metric)
		}
		if !reflect.DeepEqual(names, c.names) || !reflect.DeepEqual(q.Labels, c.labels) {
			t.Errorf("%s: metrics %q labels %q, want %q %q", c.expr, names, q.Labels, c.names, c.labels)
		}
		if c.match != nil && !reflect.DeepEqual(q.Selectors[0].Matchers, c.match) {
			t.Errorf("%s: matchers %+v, want %+v", c.expr, q.Selectors[0].Matchers, c.match)
		}
	}
	for _, bad := range []string{`sum(x`, `x)`, `x{a="b"`, `x{a b}`, `x{a="b}`, `rate(x[5m)`, `sum by x`, `by (a`, `x ! y`, `{}`, `${x`, strings.Repeat("x", maxPromQL+1)} {
		if q, err := ParsePromQL(bad); err == nil {
			t.Errorf("%q parsed: %+v", bad, q)
		}
	}
}

// FuzzParsePromQL: any input gives an answer or an error, never a panic,
// and every metric name read is an identifier of the input.
func FuzzParsePromQL(f *testing.F) {
	for _, s := range []string{`sum by (a) (rate(x{b="c"}[5m]))`, `{__name__="x"}`, `a and on(b) group_left c`, `x[[i]]`, `"\`, `${a`, `x{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		q, err := ParsePromQL(expr)
		if err != nil {
			return
		}
	next:
		for _, s := range q.Selectors {
			for _, m := range s.Matchers {
				if m.Label == "__name__" {
					continue next // the name is a string's value
				}
			}
			if s.Metric == "" && len(s.Matchers) > 0 {
				continue // {label="value"}: any metric
			}
			if s.Metric == "" || !isIdentStart(s.Metric[0]) || !strings.Contains(expr, s.Metric) {
				t.Fatalf("metric %q read from %q", s.Metric, expr)
			}
			for i := range len(s.Metric) {
				if !isIdentChar(s.Metric[i]) {
					t.Fatalf("metric %q read from %q", s.Metric, expr)
				}
			}
		}
		for _, l := range q.Labels {
			if l == "" || !strings.Contains(expr, l) {
				t.Fatalf("label %q read from %q", l, expr)
			}
		}
	})
}
