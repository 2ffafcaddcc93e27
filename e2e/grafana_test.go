package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/internal/ng"
	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/testutil"
)

// dashboardFile is the Grafana dashboard of examples/grafana.
const dashboardFile = "../examples/grafana/rtcgate.json"

// dashboardQuery is one PromQL expression of the dashboard and where.
type dashboardQuery struct {
	where, expr string
}

// dashboardQueries reads every query of the dashboard: the panels'
// targets (rows' nested panels included) and the query variables'
// label_values(METRIC, LABEL), checking the dashboard's shape on the way.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		RefID, Expr string
		Datasource  struct{ Type, UID string }
	}
	type panel struct {
		Type, Title string
		ID          int
		Datasource  *struct{ Type, UID string }
		GridPos     struct{ H, W, X, Y int }
		Targets     []target
		Panels      []json.RawMessage
	}
	var d struct {
		UID, Title string
		Panels     []json.RawMessage
		Templating struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no uid, title or panels", dashboardFile)
	}
	vars := map[string]string{}
	var qs []dashboardQuery
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil {
			json.Unmarshal(v.Query, &q.Query)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(METRIC, LABEL)", v.Name, q.Query)
			continue
		}
		qs = append(qs, dashboardQuery{"variable " + v.Name, m[1]})
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("the dashboard needs a datasource variable and an instance query variable: %v", vars)
	}
	ids := map[int]bool{}
	var walk func(raws []json.RawMessage)
	walk = func(raws []json.RawMessage) {
		for _, r := range raws {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("a panel: %v", err)
			}
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d missing or used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("panel %q: datasource %v, %d targets: want ${datasource} and at least one", p.Title, p.Datasource, len(p.Targets))
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" {
					t.Errorf("panel %q: a target without expr or refId", p.Title)
				}
				qs = append(qs, dashboardQuery{fmt.Sprintf("panel %q %s", p.Title, tg.RefID), tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return qs
}

// families parses /metrics: each family's samples' label sets.
func families(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// family finds the family a selector reads: its name, or a histogram's
// or summary's _bucket, _sum, _count.
func family(mfs map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, string) {
	if mf := mfs[name]; mf != nil {
		return mf, ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if mf := mfs[base]; mf != nil && (mf.GetType() == dto.MetricType_HISTOGRAM || (suffix != "_bucket" && mf.GetType() == dto.MetricType_SUMMARY)) {
				return mf, suffix
			}
		}
	}
	return nil, ""
}

// scrapeLabels are added by Prometheus when it scrapes; /metrics has none.
var scrapeLabels = map[string]bool{"instance": true, "job": true}

func hasLabel(mf *dto.MetricFamily, suffix, label, value string, anyValue bool) bool {
	if label == "le" && suffix == "_bucket" {
		return true
	}
	for _, m := range mf.Metric {
		for _, lp := range m.Label {
			if lp.GetName() == label && (anyValue || lp.GetValue() == value) {
				return true
			}
		}
	}
	return false
}

// TestGrafanaDashboard: every metric the Grafana dashboard of
// examples/grafana queries exists in a running rtcgate's /metrics, with the
// labels it groups by and the label values it matches: rtcgate, a cluster
// node on a real Redis, is made to produce every family — a client
// registered through Kamailio messages itself and calls a sipp echo with
// RTP, an ng call relays RTP and an ng error is answered, a foreign Origin
// and bad ng input are refused, a client address goes over its cap, the
// client leaves, and Redis dies.
func TestGrafanaDashboard(t *testing.T) {
	queries := dashboardQueries(t)
	type use struct {
		where string
		sel   testutil.Selector
	}
	var uses []use
	grouped := map[string][]string{} // where → labels grouped by, for the metrics of that query
	for _, q := range queries {
		p, err := testutil.ParsePromQL(q.expr)
		if err != nil {
			t.Fatalf("%s: %q: %v", q.where, q.expr, err)
		}
		if len(p.Selectors) == 0 {
			t.Errorf("%s: %q reads no metric", q.where, q.expr)
		}
		for _, s := range p.Selectors {
			uses = append(uses, use{q.where, s})
		}
		grouped[q.where] = p.Labels
	}

	red := testpeer.StartRedis(t, testpeer.RedisOptions{})
	uas := testpeer.StartSipp(t, "uas_echo")
	e := newSIPEnv(t, map[string]string{"echo": uas.Addr}, "--cluster-redis", red.URL, "--cluster-heartbeat", "250ms",
		"--cluster-node-ttl", "2s", "--client-max-sessions-per-ip", "1")
	base := "http://" + e.r.addr(t, "listen-http")

	// SIP: register, a message to oneself, a call to the echo with RTP.
	c := e.connect(t, "alice", testpeer.DefaultUsers["alice"], true)
	c.expect(t, "registered", nil)
	c.send(t, "sendMessage", map[string]any{"id": "m1", "to": "alice", "body": "hi"})
	c.expect(t, "MessageStatusEvent", status("ACCEPTED"))
	peer := newRTPPeer(t)
	c.send(t, "call", map[string]any{"callId": "g-1", "callee": "echo", "sdp": peer.offer()})
	var sdp string
	json.Unmarshal(c.expect(t, "setRemoteSDP", nil).Data[1], &sdp)
	c.expect(t, "talk", status("ESTABLISHED"))
	peer.echo(t, sdp)
	c.send(t, "hangup", map[string]any{"callId": "g-1"})
	c.expect(t, "finish", status("FINISH"))

	// ng: a call with RTP both ways, deleted; an error.
	ngc := httpNG{base, false, ng.Bencode}
	playCall(t, ngc, "grafana-ng-1")
	if q := ngc.Do(t, map[string]any{"command": "query", "call-id": "no-such-call"}); q["result"] != "error" {
		t.Fatalf("query of an unknown call = %v", q)
	}
	// Refused input: a foreign Origin, ng garbage over UDP.
	if code, _ := rawHTTP(t, e.r.addr(t, "listen-http"), "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n"); code != 403 {
		t.Fatalf("foreign Origin = %d", code)
	}
	if conn, err := net.Dial("udp", e.r.addr(t, "listen-ng")); err == nil {
		conn.Write([]byte("garbage"))
		conn.Close()
	}
	// Over the client listener's per-address cap (4 × 1 connections).
	var held []net.Conn
	for range 6 {
		if conn, err := net.Dial("tcp", e.r.addr(t, "listen-client")); err == nil {
			held = append(held, conn)
		}
	}
	eventually(t, 10*time.Second, "a connection refused at the per-address cap", func() bool {
		return strings.Contains(scrape(t, base), "rtcgate_listener_refused_total{")
	})
	for _, conn := range held {
		conn.Close()
	}
	// The client leaves; Redis dies.
	c.ws.Close(websocket.StatusNormalClosure, "")
	eventually(t, 10*time.Second, "the session closed", func() bool {
		return strings.Contains(scrape(t, base), "rtcgate_client_sessions_closed_total{")
	})
	red.Kill()
	eventually(t, 10*time.Second, "a Redis error counted", func() bool {
		return strings.Contains(scrape(t, base), "rtcgate_cluster_redis_errors_total{")
	})

	mfs := families(t, scrape(t, base))
	used := map[string]bool{}
	for _, u := range uses {
		name := u.sel.Metric
		if name == "" {
			t.Errorf("%s: a selector without a metric name", u.where)
			continue
		}
		mf, suffix := family(mfs, name)
		if mf == nil {
			t.Errorf("%s: %s is not in /metrics", u.where, name)
			continue
		}
		used[mf.GetName()] = true
		for _, m := range u.sel.Matchers {
			if scrapeLabels[m.Label] {
				continue
			}
			exact := m.Op == "="
			if !hasLabel(mf, suffix, m.Label, m.Value, !exact) {
				t.Errorf("%s: %s has no series with %s%s%q", u.where, name, m.Label, m.Op, m.Value)
			}
		}
	}
	// Labels grouped by are on one of the query's metrics.
	for _, q := range queries {
		p, _ := testutil.ParsePromQL(q.expr)
		for _, l := range grouped[q.where] {
			if scrapeLabels[l] {
				continue
			}
			found := false
			for _, s := range p.Selectors {
				if mf, suffix := family(mfs, s.Metric); mf != nil && hasLabel(mf, suffix, l, "", true) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: grouped by %q, which none of its metrics has: %s", q.where, l, q.expr)
			}
		}
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	if !t.Failed() {
		t.Logf("%d queries over %d metric families, all in /metrics: %s", len(queries), len(names), strings.Join(names, " "))
	}
}
