package ng

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// testPorts is the size of each test engine's port range: 50 pairs, enough
// for every test here and small enough to probe.
const testPorts = 100

// nextRange spreads the ranges probed by this process; the process id seeds
// it so that concurrent test binaries (go test ./..., fuzz workers) start in
// different places.
var nextRange atomic.Int64

func init() { nextRange.Store(int64(os.Getpid() % 97)) }

// rangeFree reports whether every port of [base, base+testPorts) can be bound
// on 127.0.0.1 right now.
func rangeFree(base int) bool {
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for p := base; p < base+testPorts; p++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p))))
		if err != nil {
			return false
		}
		conns = append(conns, c)
	}
	return true
}

// freePortRange finds a port range free on 127.0.0.1, starting at a
// random-ish base between 40000 and 59900 and moving on when a port of it is
// taken.
func freePortRange() (int, error) {
	for range 200 {
		base := 40000 + int(nextRange.Add(1)%200)*testPorts
		if rangeFree(base) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free range of %d UDP ports on 127.0.0.1", testPorts)
}

type testEnv struct {
	engine *media.Engine
	stats  *stats.Stats
	d      *Dispatcher
	min    int
	max    int
}

// newEngine builds a media engine on 127.0.0.1 over a free port range. The
// caller closes it.
func newEngine() (*media.Engine, *stats.Stats, int, error) {
	base, err := freePortRange()
	if err != nil {
		return nil, nil, 0, err
	}
	itf, err := config.ParseInterface("127.0.0.1")
	if err != nil {
		return nil, nil, 0, err
	}
	st := stats.New()
	e, err := media.New(media.Config{
		Interfaces: []config.Interface{itf},
		PortMin:    base,
		PortMax:    base + testPorts - 1,
		Live:       config.NewLive(config.Defaults()),
		Stats:      st,
	})
	if err != nil {
		return nil, nil, 0, err
	}
	return e, st, base, nil
}

// newTestEnv is a dispatcher with the media commands over a fresh engine,
// closed when the test ends.
func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	e, st, base, err := newEngine()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	d := New(nil)
	d.RegisterMedia(e, st)
	return &testEnv{engine: e, stats: st, d: d, min: base, max: base + testPorts - 1}
}

// bdict bencodes a request built from key/value pairs, keeping their order.
func bdict(t testing.TB, kv ...any) []byte {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("bdict: odd number of arguments")
	}
	d := &bencode.Dict{}
	for i := 0; i < len(kv); i += 2 {
		d.Set(kv[i].(string), kv[i+1])
	}
	b, err := bencode.Marshal(d)
	if err != nil {
		t.Fatalf("bdict: %v", err)
	}
	return b
}

// process runs one request through the dispatcher from the proxy 127.0.0.1.
func (env *testEnv) process(body []byte) []byte {
	return env.d.Process(context.Background(), body, "127.0.0.1:5060", "127.0.0.1")
}

// call runs a bencode request and decodes its reply.
func (env *testEnv) call(t testing.TB, kv ...any) map[string]any {
	t.Helper()
	out := env.process(bdict(t, kv...))
	m, enc, err := Decode(out)
	if err != nil || enc != Bencode {
		t.Fatalf("reply %q: encoding %v, err %v", out, enc, err)
	}
	return m
}

// mustOK fails unless the reply's result is "ok".
func mustOK(t testing.TB, r map[string]any) {
	t.Helper()
	if r["result"] != "ok" {
		t.Fatalf("result %v (error-reason %v), want ok", r["result"], r["error-reason"])
	}
}

// errReply is the decoded form of an error reply.
func errReply(reason string) map[string]any {
	return map[string]any{"result": "error", "error-reason": reason}
}

func wantEqual(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

// crlf turns an LF-separated SDP into CRLF text.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// offerSDP and answerSDP are a minimal audio call between two phones.
var (
	offerSDP = crlf(`v=0
o=- 1545997027 1 IN IP4 198.51.100.1
s=tester
t=0 0
m=audio 2000 RTP/AVP 0
c=IN IP4 198.51.100.1
a=sendrecv
`)
	answerSDP = crlf(`v=0
o=- 1545997028 1 IN IP4 198.51.100.2
s=tester
t=0 0
m=audio 3000 RTP/AVP 0
c=IN IP4 198.51.100.2
a=sendrecv
`)
)

// path walks a decoded reply: string elements index dictionaries, ints
// lists.
func path(t testing.TB, v any, keys ...any) any {
	t.Helper()
	for i, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("path %v: element %d is %T, not a dictionary", keys, i, v)
			}
			if v, ok = m[k]; !ok {
				t.Fatalf("path %v: no key %q in %v", keys, k, m)
			}
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("path %v: element %d is %T (len %d), not a list long enough", keys, i, v, len(l))
			}
			v = l[k]
		}
	}
	return v
}

// eventually waits, up to a deadline, for cond: for what the engine's relay
// threads do after a call ends (closing its sockets, returning its ports).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

// portsUsed is the number of relay ports bound on the engine's interface.
func portsUsed(env *testEnv) int { return env.engine.Interfaces()[0].Used }
