package stats

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rtcgate/rtcgate/internal/cli"
)

var numbers = regexp.MustCompile(`:[0-9.]+`)

// TestTotalsMatchRtpengine compares `list totals` with what rtpengine 10.5
// (Debian) printed for the same sections, numbers masked: same headers, same
// labels in the same order, same " %-48s:%s" layout.
func TestTotalsMatchRtpengine(t *testing.T) {
	want, err := os.ReadFile("testdata/rtpengine-10.5-list-totals.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	New().WriteTotals(&got)
	mask := func(b []byte) string { return numbers.ReplaceAllString(string(b), ":N") }
	gotText, wantText := mask(got.Bytes()), mask(want)
	if !strings.HasPrefix(gotText, wantText) {
		t.Fatalf("list totals differs from rtpengine's.\n--- got\n%s\n--- want prefix\n%s", gotText, wantText)
	}
}

func TestTotalsShowLiveCounters(t *testing.T) {
	s := New()
	s.SessionsOwn.Add(3)
	s.Packets.Add(1000)
	s.Bytes.Add(172000)
	s.PacketErrors.Add(2)
	s.Rejected.Add(1)
	s.SessionClosed(ClosedTerminated, 10*time.Second)
	s.SessionClosed(ClosedTimeout, 20*time.Second)
	s.SessionClosed(ClosedForceTerminated, 30*time.Second)

	var out bytes.Buffer
	s.WriteTotals(&out)
	for _, line := range []string{
		" Owned sessions                                  :3\n",
		" Total sessions                                  :3\n",
		" Total managed sessions                          :3\n",
		" Total rejected sessions                         :1\n",
		" Total timed-out sessions via TIMEOUT            :1\n",
		" Total regular terminated sessions               :1\n",
		" Total forced terminated sessions                :1\n",
		" Total relayed packets (userspace)               :1000\n",
		" Total relayed bytes                             :172000\n",
		" Total relayed packet errors                     :2\n",
		" Average call duration                           :20.000000 seconds\n",
		" Total calls duration                            :60.000000 seconds\n",
		" Total calls duration squared                    :1400.000000 seconds squared\n",
		" Total calls duration standard deviation         :8.164966 seconds\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("list totals lacks %q", line)
		}
	}

	out.Reset()
	s.WriteNumSessions(&out)
	want := "Current sessions own: 3\nCurrent sessions foreign: 0\nCurrent sessions total: 3\nCurrent transcoded media: 0\n" +
		"Current sessions ipv4 only media: 0\nCurrent sessions ipv6 only media: 0\nCurrent sessions ip mixed  media: 0\n"
	if out.String() != want {
		t.Errorf("list numsessions =\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRatesSample(t *testing.T) {
	s := New()
	s.Packets.Add(500)
	s.Bytes.Add(86000)
	s.sample(500 * time.Millisecond)
	if r := s.Rates().User; r.Packets != 1000 || r.Bytes != 172000 || r.Errors != 0 {
		t.Fatalf("rates after 500 packets in 0.5 s = %+v", r)
	}
	s.sample(time.Second)
	if r := s.Rates().Total(); r.Packets != 0 {
		t.Fatalf("rates with no new packets = %+v", r)
	}
}

// TestKernelFigures: kernel-forwarded traffic has its own rates and totals
// in `list totals`, and the totals add both paths.
func TestKernelFigures(t *testing.T) {
	s := New()
	s.Packets.Add(10)
	s.KernelPackets.Add(990)
	s.KernelBytes.Add(170280)
	live := Traffic{Packets: 100, Bytes: 17200}
	s.SetLive(func() (Traffic, Traffic) { return Traffic{}, live })
	s.sample(time.Second)
	live.Packets += 400
	s.sample(time.Second)
	if r := s.Rates(); r.Kernel.Packets != 400 || r.User.Packets != 0 || r.Total().Packets != 400 {
		t.Fatalf("rates = %+v", r)
	}
	var out bytes.Buffer
	s.WriteTotals(&out)
	for _, line := range []string{
		" Packets per second (kernel)                     :400\n",
		" Packets per second (total)                      :400\n",
		" Total relayed packets (userspace)               :10\n",
		" Total relayed packets (kernel)                  :990\n",
		" Total relayed bytes (kernel)                    :170280\n",
		" Total relayed packets                           :1000\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("list totals lacks %q", line)
		}
	}
}

func TestSectionsAndCLI(t *testing.T) {
	s := New()
	s.AddSection(Section{Title: "Control statistics", Write: func(w io.Writer) { Line(w, "Offers", 7) }})
	r := cli.New(nil)
	s.RegisterCLI(r)
	out := r.Run(context.Background(), "list totals")
	if !strings.Contains(out, "\n\nControl statistics:\n\n Offers                                          :7\n") {
		t.Fatalf("added section missing:\n%s", out)
	}
	if got := r.Run(context.Background(), "list numsessions"); !strings.HasPrefix(got, "Current sessions own: 0\n") {
		t.Fatalf("list numsessions = %q", got)
	}
}

// TestMetrics scrapes the collector over HTTP and parses the text with the
// Prometheus parser: rtpengine's names, labels and types, live values.
func TestMetrics(t *testing.T) {
	s := New()
	s.SessionsOwn.Add(2)
	s.Packets.Add(42)
	s.KernelPackets.Add(1000)
	s.SetLive(func() (Traffic, Traffic) { return Traffic{Packets: 8}, Traffic{Packets: 500, Bytes: 86000} })
	s.StreamsUser.Add(5)
	s.StreamsKernel.Store(3)
	s.StreamsMixed.Store(1)
	s.SessionClosed(ClosedSilentTimeout, time.Second)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	value := func(name string, labels map[string]string) (float64, dto.MetricType) {
		mf, ok := families[name]
		if !ok {
			t.Fatalf("no metric %s", name)
		}
	next:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.Counter.GetValue(), mf.GetType()
			case dto.MetricType_GAUGE:
				return m.Gauge.GetValue(), mf.GetType()
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return math.NaN(), 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
		typ    dto.MetricType
	}{
		{"rtpengine_sessions", map[string]string{"type": "own"}, 2, dto.MetricType_GAUGE},
		{"rtpengine_sessions", map[string]string{"type": "foreign"}, 0, dto.MetricType_GAUGE},
		{"rtpengine_sessions_total", nil, 1, dto.MetricType_COUNTER},
		{"rtpengine_closed_sessions_total", map[string]string{"reason": "silent_timeout"}, 1, dto.MetricType_COUNTER},
		{"rtpengine_closed_sessions_total", map[string]string{"reason": "rejected"}, 0, dto.MetricType_COUNTER},
		{"rtpengine_packets_total", map[string]string{"type": "userspace"}, 50, dto.MetricType_COUNTER},
		{"rtpengine_packets_total", map[string]string{"type": "kernel"}, 1500, dto.MetricType_COUNTER},
		{"rtpengine_bytes_total", map[string]string{"type": "kernel"}, 86000, dto.MetricType_COUNTER},
		{"rtpengine_mediastreams", map[string]string{"type": "userspace"}, 1, dto.MetricType_GAUGE},
		{"rtpengine_mediastreams", map[string]string{"type": "kernel"}, 3, dto.MetricType_GAUGE},
		{"rtpengine_mediastreams", map[string]string{"type": "mixed"}, 1, dto.MetricType_GAUGE},
		{"rtpengine_uptime_seconds", nil, 0, dto.MetricType_GAUGE},
		{"rtpengine_call_duration_total", nil, 1, dto.MetricType_COUNTER},
	} {
		got, typ := value(c.name, c.labels)
		if got != c.want || typ != c.typ {
			t.Errorf("%s%v = %v (%v), want %v (%v)", c.name, c.labels, got, typ, c.want, c.typ)
		}
	}
}
