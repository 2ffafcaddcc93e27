package ng

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// bencodeError is an error reply as the dispatcher writes it in bencode.
func bencodeError(reason string) string {
	return fmt.Sprintf("d6:result5:error12:error-reason%d:%se", len(reason), reason)
}

func TestProcessExactReplies(t *testing.T) {
	env := newTestEnv(t)
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ping", "d7:command4:pinge", "d6:result4:ponge"},
		{"ping json", `{"command":"ping"}`, `{"result":"pong"}`},
		{"ping json spaced", " \n{ \"command\" : \"ping\" }\n", `{"result":"pong"}`},
		{"ping with other keys", "d7:call-id1:x7:command4:ping5:flagsl1:xee", "d6:result4:ponge"},
		{"key spelling", "d7:COMMAND4:pinge", "d6:result4:ponge"},
		{"no command", "de", bencodeError(`Dictionary contains no key "command"`)},
		{"no command json", `{"call-id":"x"}`, `{"result":"error","error-reason":"Dictionary contains no key \"command\""}`},
		{"command is a list", "d7:commandl4:pingee", bencodeError(`Dictionary contains no key "command"`)},
		{"command is a dictionary", `{"command":{"a":1}}`, `{"result":"error","error-reason":"Dictionary contains no key \"command\""}`},
		{"command is an integer", "d7:commandi1ee", bencodeError("Unrecognized command")},
		{"unknown", "d7:command3:fooe", bencodeError("Unrecognized command")},
		{"unknown json", `{"command":"foo"}`, `{"result":"error","error-reason":"Unrecognized command"}`},
		{"command names are case-sensitive", "d7:command4:PINGe", bencodeError("Unrecognized command")},
		{"empty command", "d7:command0:e", bencodeError("Unrecognized command")},
		{"start recording", "d7:command15:start recordinge", bencodeError("Unsupported command")},
		{"play media", "d7:command10:play mediae", bencodeError("Unsupported command")},
		{"play media json", `{"command":"play media"}`, `{"result":"error","error-reason":"Unsupported command"}`},
		{"pause recording", "d7:command15:pause recordinge", bencodeError("Unsupported command")},
		{"subscribe request", "d7:command17:subscribe requeste", bencodeError("Unsupported command")},
		{"garbage", "garbage", bencodeError("Invalid NG data format")},
		{"empty", "", bencodeError("Invalid NG data format")},
		{"bencode list", "l7:command4:pinge", bencodeError("Invalid NG data format")},
		{"bencode truncated", "d7:command4:pin", bencodeError("Invalid NG data format")},
		{"bencode trailing", "d7:command4:pingee", bencodeError("Invalid NG data format")},
		{"json array", `["ping"]`, bencodeError("Invalid NG data format")},
		{"broken json", `{"command":`, `{"result":"error","error-reason":"Invalid NG data format"}`},
		{"broken json value", `{"command":ping}`, `{"result":"error","error-reason":"Invalid NG data format"}`},
		{"json trailing brace", `{"command":"ping"}}`, `{"result":"error","error-reason":"Invalid NG data format"}`},
		{"list empty", "d7:command4:liste", "d5:callsle6:result2:oke"},
		{"list empty json", `{"command":"list"}`, `{"calls":[],"result":"ok"}`},
		{"delete unknown", "d7:call-id1:x7:command6:deletee", "d7:warning38:Call-ID not found or tags didn't match6:result2:oke"},
		{"delete unknown json", `{"command":"delete","call-id":"x"}`, `{"warning":"Call-ID not found or tags didn't match","result":"ok"}`},
		{"delete unknown fatal", "d7:call-id1:x7:command6:delete5:flagsl5:fatalee", bencodeError("Call-ID not found or tags didn't match")},
		{"delete unknown fatal json", `{"command":"delete","call-id":"x","flags":["fatal"]}`, `{"result":"error","error-reason":"Call-ID not found or tags didn't match"}`},
		{"query unknown", "d7:call-id1:x7:command5:querye", bencodeError("Unknown call-id")},
		{"query unknown json", `{"command":"query","call-id":"x"}`, `{"result":"error","error-reason":"Unknown call-id"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := env.process([]byte(tc.in)); string(got) != tc.want {
				t.Errorf("Process(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
	if n := env.engine.NumCalls(); n != 0 {
		t.Errorf("%d calls left", n)
	}
}

func TestProcessRequestErrors(t *testing.T) {
	env := newTestEnv(t)
	for _, tc := range []struct {
		name string
		kv   []any
		want string
	}{
		{"offer without sdp", []any{"command", "offer", "call-id", "c", "from-tag", "f"}, "No SDP body in message"},
		{"offer with empty sdp", []any{"command", "offer", "call-id", "c", "from-tag", "f", "sdp", ""}, "No SDP body in message"},
		{"offer without call-id", []any{"command", "offer", "from-tag", "f", "sdp", offerSDP}, "No call-id in message"},
		{"offer with empty call-id", []any{"command", "offer", "call-id", "", "from-tag", "f", "sdp", offerSDP}, "No call-id in message"},
		{"offer without from-tag", []any{"command", "offer", "call-id", "c", "sdp", offerSDP}, "No from-tag in message"},
		{"offer with a bad option", []any{"command", "offer", "call-id", "c", "from-tag", "f", "sdp", offerSDP, "media address", "x"}, `media address: "x" is not an IP address`},
		{"offer with three directions", []any{"command", "offer", "call-id", "c", "from-tag", "f", "sdp", offerSDP, "direction", []any{"a", "b", "c"}}, "direction has 3 interfaces, want at most 2"},
		{"offer on an unknown interface", []any{"command", "offer", "call-id", "c", "from-tag", "f", "sdp", offerSDP, "direction", []any{"nope"}}, "Unknown interface 'nope'"},
		{"answer without sdp", []any{"command", "answer", "call-id", "c", "from-tag", "f", "to-tag", "t"}, "No SDP body in message"},
		{"answer without to-tag", []any{"command", "answer", "call-id", "c", "from-tag", "f", "sdp", answerSDP}, "No to-tag in message"},
		{"answer for an unknown call", []any{"command", "answer", "call-id", "c", "from-tag", "f", "to-tag", "t", "sdp", answerSDP}, "Unknown call-id"},
		{"query without call-id", []any{"command", "query"}, "No call-id in message"},
		{"query of an unknown call", []any{"command", "query", "call-id", "nope"}, "Unknown call-id"},
		{"delete without call-id", []any{"command", "delete", "from-tag", "f"}, "No call-id in message"},
		{"delete with a bad delay", []any{"command", "delete", "call-id", "c", "delete-delay", "x"}, `delete delay "x": want a number of seconds`},
		{"list with a bad limit", []any{"command", "list", "limit", "x"}, `limit "x": want a number`},
		{"list with a negative limit", []any{"command", "list", "limit", int64(-1)}, `limit "-1": want a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantEqual(t, "reply", env.call(t, tc.kv...), errReply(tc.want))
		})
	}
	// An SDP the parser refuses.
	r := env.call(t, "command", "offer", "call-id", "c", "from-tag", "f", "sdp", "hello")
	if r["result"] != "error" || !strings.HasPrefix(fmt.Sprint(r["error-reason"]), "Failed to parse SDP: ") || len(r) != 2 {
		t.Errorf("offer of a bad SDP: %v", r)
	}
	if n := env.engine.NumCalls(); n != 0 {
		t.Errorf("%d calls left after failed requests", n)
	}
}

var mLine = regexp.MustCompile(`(?m)^m=audio (\d+) RTP/AVP 0\r$`)

// relayPort is the port of the m= line of an SDP the relay wrote.
func relayPort(t *testing.T, sdp string) int64 {
	t.Helper()
	m := mLine.FindStringSubmatch(sdp)
	if m == nil {
		t.Fatalf("no audio m= line in %q", sdp)
	}
	p, _ := strconv.ParseInt(m[1], 10, 64)
	return p
}

// rewritten is what the relay sends on of offerSDP or answerSDP: the media
// port and address are the relay's, with a=rtcp for the port above.
func rewritten(origin string, port int64) string {
	return crlf(fmt.Sprintf(`v=0
o=%s
s=tester
t=0 0
m=audio %d RTP/AVP 0
c=IN IP4 127.0.0.1
a=sendrecv
a=rtcp:%d
`, origin, port, port+1))
}

// checkTimes replaces the time stamps of a query or delete reply with 0
// after checking them against [lo, hi], so that the rest compares exactly.
func checkTimes(t *testing.T, v any, lo, hi time.Time) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch k {
			case "created", "last signal", "last packet":
				n, ok := e.(int64)
				if !ok || n < lo.Unix() || n > hi.Unix() {
					t.Errorf("%q = %v, want a time between %d and %d", k, e, lo.Unix(), hi.Unix())
				}
				x[k] = int64(0)
			case "created_us":
				n, ok := e.(int64)
				if !ok || n < 0 || n > 999999 {
					t.Errorf("created_us = %v", e)
				}
				x[k] = int64(0)
			default:
				checkTimes(t, e, lo, hi)
			}
		}
	case []any:
		for _, e := range x {
			checkTimes(t, e, lo, hi)
		}
	}
}

func zeroCounters() map[string]any {
	return map[string]any{"packets": int64(0), "bytes": int64(0), "errors": int64(0)}
}

func endpoint(addr string, port int64) map[string]any {
	return map[string]any{"family": "IPv4", "address": addr, "port": port}
}

// party is one tag of the query reply for offerSDP/answerSDP: local is the
// relay port facing it, addr:port where it said it receives.
func party(tag, peer string, local int64, addr string, port int64) map[string]any {
	stream := func(rtcp bool) map[string]any {
		kind, off := "RTP", int64(0)
		if rtcp {
			kind, off = "RTCP", 1
		}
		return map[string]any{
			"local port": local + off, "local address": "127.0.0.1", "family": "IPv4",
			"endpoint": endpoint(addr, port+off), "advertised endpoint": endpoint(addr, port+off),
			"last packet": int64(0), "flags": []any{kind, "filled"}, "stats": zeroCounters(),
		}
	}
	sub := []any{map[string]any{"tag": peer, "type": "offer/answer"}}
	return map[string]any{
		"tag": tag, "created": int64(0), "subscriptions": sub, "subscribers": sub, "in dialogue with": peer,
		"medias": []any{map[string]any{
			"index": int64(1), "type": "audio", "protocol": "RTP/AVP",
			"streams": []any{stream(false), stream(true)},
			"flags":   []any{"initialized", "send", "recv"},
		}},
	}
}

// jsonKeys lists the keys of a JSON object in their order.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		default:
			if s, ok := tok.(string); ok && depth == 1 && dec.More() {
				keys = append(keys, s)
				// Skip the value.
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestCallSequence: offer, answer, query, list, statistics, delete and
// statistics again, with the replies checked in full.
func TestCallSequence(t *testing.T) {
	env := newTestEnv(t)
	start := time.Now()

	// Offer: the SDP for the answerer points at the relay.
	r := env.call(t, "command", "offer", "call-id", "call1", "from-tag", "ft", "sdp", offerSDP, "flags", []any{"trust-address"}, "replace", []any{"origin"})
	mustOK(t, r)
	if len(r) != 2 {
		t.Errorf("offer reply has keys %v, want sdp and result", r)
	}
	offerPort := relayPort(t, r["sdp"].(string))
	if offerPort%2 != 0 || offerPort < int64(env.min) || offerPort+1 > int64(env.max) {
		t.Errorf("offer port %d: not an even port of %d-%d", offerPort, env.min, env.max)
	}
	wantEqual(t, "offer sdp", r["sdp"], rewritten("- 1545997027 1 IN IP4 127.0.0.1", offerPort))

	// The same offer again (a re-INVITE, or a retransmission over TCP)
	// keeps the ports.
	r2 := env.call(t, "command", "offer", "call-id", "call1", "from-tag", "ft", "sdp", offerSDP, "flags", []any{"trust-address"}, "replace", []any{"origin"})
	wantEqual(t, "repeated offer", r2, r)

	// Answer: the SDP for the offerer points at the relay's other port.
	r = env.call(t, "command", "answer", "call-id", "call1", "from-tag", "ft", "to-tag", "tt", "sdp", answerSDP)
	mustOK(t, r)
	answerPort := relayPort(t, r["sdp"].(string))
	if answerPort == offerPort || answerPort%2 != 0 || answerPort < int64(env.min) || answerPort+1 > int64(env.max) {
		t.Errorf("answer port %d (offer port %d, range %d-%d)", answerPort, offerPort, env.min, env.max)
	}
	wantEqual(t, "answer", r, map[string]any{"sdp": rewritten("- 1545997028 1 IN IP4 198.51.100.2", answerPort), "result": "ok"})

	// Query, in JSON: every key in rtpengine's order, the tags with their
	// medias and streams.
	out := env.process([]byte(`{"command":"query","call-id":"call1"}`))
	wantEqual(t, "query keys", jsonKeys(t, out), []string{"created", "created_us", "last signal", "SSRC", "tags", "totals", "result"})
	q, enc, err := Decode(out)
	if err != nil || enc != JSON {
		t.Fatalf("query reply %s: %v", out, err)
	}
	checkTimes(t, q, start, time.Now())
	wantQuery := map[string]any{
		"created": int64(0), "created_us": int64(0), "last signal": int64(0), "SSRC": map[string]any{},
		"tags": map[string]any{
			// The offerer sends to answerPort, and receives at 198.51.100.1:2000.
			"ft": party("ft", "tt", answerPort, "198.51.100.1", 2000),
			"tt": party("tt", "ft", offerPort, "198.51.100.2", 3000),
		},
		"totals": map[string]any{"RTP": zeroCounters(), "RTCP": zeroCounters()},
		"result": "ok",
	}
	wantEqual(t, "query", q, wantQuery)

	// List.
	wantEqual(t, "list", env.call(t, "command", "list"), map[string]any{"calls": []any{"call1"}, "result": "ok"})
	wantEqual(t, "list limit 0", env.call(t, "command", "list", "limit", int64(0)), map[string]any{"calls": []any{}, "result": "ok"})
	wantEqual(t, "list limit 1", env.call(t, "command", "list", "limit", "1"), map[string]any{"calls": []any{"call1"}, "result": "ok"})

	// Statistics: one call, two media sides, four ports in use.
	s := env.call(t, "command", "statistics")
	mustOK(t, s)
	cur := path(t, s, "statistics", "currentstatistics").(map[string]any)
	wantEqual(t, "sessions", []any{cur["sessionsown"], cur["sessionstotal"], cur["media_userspace"]}, []any{int64(1), int64(1), int64(2)})
	wantEqual(t, "interfaces", path(t, s, "statistics", "interfaces"), []any{map[string]any{
		"name": "default", "address": "127.0.0.1",
		"ports": map[string]any{"min": int64(env.min), "max": int64(env.max), "used": int64(4), "used_pct": "4.00", "free": int64(testPorts - 4), "totals": int64(testPorts)},
	}})
	ctl := path(t, s, "statistics", "controlstatistics").(map[string]any)
	proxy := path(t, ctl, "proxies", 0).(map[string]any)
	wantEqual(t, "proxies", len(ctl["proxies"].([]any)), 1)
	for k, want := range map[string]any{
		"proxy": "127.0.0.1", "offercount": int64(2), "answercount": int64(1), "querycount": int64(1), "listcount": int64(3),
		"deletecount": int64(0), "statscount": int64(0), "pingcount": int64(0), "errorcount": int64(0),
	} {
		if proxy[k] != want {
			t.Errorf("controlstatistics proxy %s = %v, want %v", k, proxy[k], want)
		}
	}
	for k, want := range map[string]any{"totaloffercount": int64(2), "totalanswercount": int64(1), "totalquerycount": int64(1), "totallistcount": int64(3), "totalstatscount": int64(0)} {
		if ctl[k] != want {
			t.Errorf("controlstatistics %s = %v, want %v", k, ctl[k], want)
		}
	}

	// Delete: the query shape, as the call was, with result ok.
	d := env.call(t, "command", "delete", "call-id", "call1", "from-tag", "ft", "delete-delay", int64(0))
	checkTimes(t, d, start, time.Now())
	wantEqual(t, "delete", d, wantQuery)
	if n := env.engine.NumCalls(); n != 0 {
		t.Errorf("%d calls after delete", n)
	}
	// The relay thread closes the sockets and returns the ports.
	eventually(t, "the call's ports to be freed", func() bool { return portsUsed(env) == 0 })
	wantEqual(t, "query after delete", env.call(t, "command", "query", "call-id", "call1"), errReply("Unknown call-id"))
	wantEqual(t, "list after delete", env.call(t, "command", "list"), map[string]any{"calls": []any{}, "result": "ok"})

	// Statistics again: the call is in the totals.
	s = env.call(t, "command", "statistics")
	total := path(t, s, "statistics", "totalstatistics").(map[string]any)
	for k, want := range map[string]any{"managedsessions": int64(1), "regularterminatedsessions": int64(1), "forcedterminatedsessions": int64(0), "zerowaystreams": int64(2)} {
		if total[k] != want {
			t.Errorf("totalstatistics %s = %v, want %v", k, total[k], want)
		}
	}
	cur = path(t, s, "statistics", "currentstatistics").(map[string]any)
	wantEqual(t, "sessions after delete", []any{cur["sessionsown"], cur["media_userspace"]}, []any{int64(0), int64(0)})
	ctl = path(t, s, "statistics", "controlstatistics").(map[string]any)
	wantEqual(t, "stats and delete counts", []any{ctl["totalstatscount"], ctl["totaldeletecount"], path(t, ctl, "proxies", 0, "statscount")},
		[]any{int64(1), int64(1), int64(1)})
}

// TestStatisticsShape: the statistics reply has rtpengine's sections and
// keys, in order.
func TestStatisticsShape(t *testing.T) {
	env := newTestEnv(t)
	out := env.process([]byte(`{"command":"statistics"}`))
	wantEqual(t, "keys", jsonKeys(t, out), []string{"statistics", "result"})
	s, _, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := json.Marshal(path(t, s, "statistics"))
	wantEqual(t, "sections", sortedKeys(t, inner), []string{"controlstatistics", "currentstatistics", "interfaces", "totalstatistics"})
	cur := path(t, s, "statistics", "currentstatistics").(map[string]any)
	wantKeys(t, "currentstatistics", cur, "sessionsown", "sessionsforeign", "sessionstotal", "transcodedmedia",
		"packetrate_user", "byterate_user", "errorrate_user", "packetrate_kernel", "byterate_kernel", "errorrate_kernel",
		"packetrate", "byterate", "errorrate", "media_userspace", "media_kernel", "media_mixed")
	for k, v := range cur {
		if v != int64(0) {
			t.Errorf("currentstatistics %s = %v on an idle relay", k, v)
		}
	}
	total := path(t, s, "statistics", "totalstatistics").(map[string]any)
	wantKeys(t, "totalstatistics", total, "uptime", "managedsessions", "rejectedsessions", "timeoutsessions",
		"silenttimeoutsessions", "finaltimeoutsessions", "offertimeoutsessions", "regularterminatedsessions",
		"forcedterminatedsessions", "relayedpackets_user", "relayedpacketerrors_user", "relayedbytes_user",
		"relayedpackets_kernel", "relayedpacketerrors_kernel", "relayedbytes_kernel", "relayedpackets",
		"relayedpacketerrors", "relayedbytes", "zerowaystreams", "onewaystreams", "avgcallduration",
		"totalcallsduration", "totalcallsduration2", "totalcallsduration_stddev")
	wantEqual(t, "avgcallduration", total["avgcallduration"], "0.000000")
	ctl := path(t, s, "statistics", "controlstatistics").(map[string]any)
	// No request had finished when the reply was built: no proxy yet.
	wantEqual(t, "proxies", ctl["proxies"], []any{})
	var wantCtl []string
	for _, k := range []string{"ping", "offer", "answer", "delete", "query", "list", "startrec", "stoprec", "startfwd",
		"stopfwd", "blkdtmf", "unblkdtmf", "blkmedia", "unblkmedia", "playmedia", "stopmedia", "playdtmf", "stats",
		"slnmedia", "unslnmedia", "pub", "subreq", "subans", "unsub"} {
		wantCtl = append(wantCtl, "total"+k+"count")
	}
	wantKeys(t, "controlstatistics", ctl, append(wantCtl, "proxies")...)

	// One more request from another proxy, and an error from a third.
	env.d.Process(context.Background(), []byte("d7:command4:pinge"), "192.0.2.1:5060", "192.0.2.1")
	env.d.Process(context.Background(), []byte("junk"), "192.0.2.2:5060", "192.0.2.2")
	s, _, _ = Decode(env.process([]byte("d7:command10:statisticse")))
	proxies := path(t, s, "statistics", "controlstatistics", "proxies").([]any)
	if len(proxies) != 3 {
		t.Fatalf("proxies %v, want 3", proxies)
	}
	// Sorted by address; 127.0.0.1 asked for the first statistics.
	p0, p1, p2 := proxies[0].(map[string]any), proxies[1].(map[string]any), proxies[2].(map[string]any)
	wantEqual(t, "proxy 0", []any{p0["proxy"], p0["statscount"], p0["errorcount"]}, []any{"127.0.0.1", int64(1), int64(0)})
	wantEqual(t, "proxy 1", []any{p1["proxy"], p1["pingcount"], p1["errorcount"], p1["pingduration"] != nil}, []any{"192.0.2.1", int64(1), int64(0), true})
	wantEqual(t, "proxy 2", []any{p2["proxy"], p2["pingcount"], p2["errorcount"]}, []any{"192.0.2.2", int64(0), int64(1)})
	var wantProxy []string
	for _, k := range wantCtl {
		k = strings.TrimSuffix(strings.TrimPrefix(k, "total"), "count")
		wantProxy = append(wantProxy, k+"count", k+"duration")
	}
	wantKeys(t, "proxy", p1, append(wantProxy, "proxy", "errorcount")...)
	if _, err := strconv.ParseFloat(p1["pingduration"].(string), 64); err != nil || !regexp.MustCompile(`^\d+\.\d{6}$`).MatchString(p1["pingduration"].(string)) {
		t.Errorf("pingduration %q: want seconds with 6 decimals", p1["pingduration"])
	}
}

func sortedKeys(t *testing.T, b []byte) []string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func wantKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	if len(m) != len(keys) {
		t.Errorf("%s has %d keys, want %d", what, len(m), len(keys))
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s has no key %q", what, k)
		}
	}
}

// TestOfferOptions: options and warnings reach the engine and the reply.
func TestOfferOptions(t *testing.T) {
	env := newTestEnv(t)
	r := env.call(t, "command", "offer", "call-id", "c2", "from-tag", "ft", "sdp", offerSDP,
		"flags", []any{"bogus", "no-rtcp-attribute"}, "media address", "192.0.2.9", "ICE", "remove")
	mustOK(t, r)
	port := relayPort(t, r["sdp"].(string))
	wantEqual(t, "reply", r, map[string]any{
		"sdp": crlf(fmt.Sprintf(`v=0
o=- 1545997027 1 IN IP4 198.51.100.1
s=tester
t=0 0
m=audio %d RTP/AVP 0
c=IN IP4 192.0.2.9
a=sendrecv
`, port)),
		"warning": `Unknown flag encountered: 'bogus'`,
		"result":  "ok",
	})

	// JSON in, JSON out; rtpp_flags.
	out := env.process([]byte(`{"command":"offer","call-id":"c3","from-tag":"ft","sdp":` + strconv.Quote(offerSDP) +
		`,"rtpp_flags":"replace-origin full-rtcp-attribute"}`))
	if !bytes.HasPrefix(out, []byte(`{"sdp":"v=0\r\no=- 1545997027 1 IN IP4 127.0.0.1\r\n`)) || !bytes.HasSuffix(out, []byte(`","result":"ok"}`)) {
		t.Errorf("JSON offer reply %s", out)
	}
	m, _, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	port = relayPort(t, m["sdp"].(string))
	if want := fmt.Sprintf("a=rtcp:%d IN IP4 127.0.0.1\r\n", port+1); !strings.HasSuffix(m["sdp"].(string), want) {
		t.Errorf("sdp %q does not end in %q", m["sdp"], want)
	}

	// Delete with a from-tag the call does not have.
	wantEqual(t, "delete, wrong tag", env.call(t, "command", "delete", "call-id", "c2", "from-tag", "nope"),
		map[string]any{"warning": "Call-ID not found or tags didn't match", "result": "ok"})
	wantEqual(t, "delete, wrong tag, fatal", env.call(t, "command", "delete", "call-id", "c2", "from-tag", "nope", "flags", []any{"fatal"}),
		errReply("Call-ID not found or tags didn't match"))
	// An answer naming an unknown offerer.
	wantEqual(t, "answer, unknown from-tag", env.call(t, "command", "answer", "call-id", "c2", "from-tag", "x", "to-tag", "tt", "sdp", answerSDP),
		errReply("Unknown from-tag"))
	if n := env.engine.NumCalls(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
	// A delete with warnings and a delay: the call stays until the delay
	// passes (the engine's Run is not running here).
	d := env.call(t, "command", "delete", "call-id", "c3", "flags", []any{"bogus"}, "delete delay", "30")
	wantEqual(t, "delayed delete", []any{d["result"], d["warning"], d["tags"] != nil}, []any{"ok", "Unknown flag encountered: 'bogus'", true})
	if n := env.engine.NumCalls(); n != 2 {
		t.Errorf("%d calls after a delayed delete, want 2", n)
	}
	// Calls are listed oldest first.
	wantEqual(t, "list", env.call(t, "command", "list"), map[string]any{"calls": []any{"c2", "c3"}, "result": "ok"})
}

// TestPortsExhausted: a call that needs more ports than the range has gets
// an error, and nothing stays bound.
func TestPortsExhausted(t *testing.T) {
	env := newTestEnv(t)
	var sdp strings.Builder
	sdp.WriteString("v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n")
	for i := range testPorts/4 + 1 { // two pairs per m= section
		fmt.Fprintf(&sdp, "m=audio %d RTP/AVP 0\r\n", 2000+2*i)
	}
	wantEqual(t, "reply", env.call(t, "command", "offer", "call-id", "big", "from-tag", "f", "sdp", sdp.String()), errReply("Ran out of ports"))
	if n := env.engine.NumCalls(); n != 0 {
		t.Errorf("%d calls after a failed offer", n)
	}
	if used := portsUsed(env); used != 0 {
		t.Errorf("%d ports in use after a failed offer", used)
	}
	// The ports are back: a normal call works.
	mustOK(t, env.call(t, "command", "offer", "call-id", "small", "from-tag", "f", "sdp", offerSDP))
}

// TestHandlerPanic: a panicking handler is an "Internal error" reply, and
// the request is still counted (as an error).
func TestHandlerPanic(t *testing.T) {
	d := New(nil)
	d.Handle("start recording", func(context.Context, *Request) (*bencode.Dict, error) {
		panic("boom")
	})
	var nilMap map[string]int
	d.Handle("stop recording", func(context.Context, *Request) (*bencode.Dict, error) {
		nilMap["x"]++ // a runtime error, not a panic call
		return nil, nil
	})
	for _, tc := range []struct{ in, want string }{
		{"d7:command15:start recordinge", bencodeError("Internal error")},
		{`{"command":"start recording"}`, `{"result":"error","error-reason":"Internal error"}`},
		{"d7:command14:stop recordinge", bencodeError("Internal error")},
	} {
		if got := d.Process(context.Background(), []byte(tc.in), "192.0.2.1:1", "192.0.2.1"); string(got) != tc.want {
			t.Errorf("Process(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The dispatcher still works.
	if got := d.Process(context.Background(), []byte("d7:command4:pinge"), "192.0.2.1:1", "192.0.2.1"); string(got) != "d6:result4:ponge" {
		t.Errorf("ping after a panic: %q", got)
	}
	cs := d.controlStatistics()
	out, _ := Encode(nil, cs, JSON)
	m, _, _ := Decode(out)
	wantEqual(t, "counts", []any{m["totalstartreccount"], m["totalstopreccount"], m["totalpingcount"], path(t, m, "proxies", 0, "errorcount")},
		[]any{int64(2), int64(1), int64(1), int64(3)})
}

// TestHandlerResults: what a handler returns becomes the reply.
func TestHandlerResults(t *testing.T) {
	d := New(nil)
	d.Handle("offer", func(context.Context, *Request) (*bencode.Dict, error) { return nil, nil })
	d.Handle("answer", func(context.Context, *Request) (*bencode.Dict, error) {
		r := &bencode.Dict{}
		r.Set("result", "load limit")
		r.Set("message", "x")
		return r, nil
	})
	d.Handle("delete", func(context.Context, *Request) (*bencode.Dict, error) {
		r := &bencode.Dict{}
		r.Set("x", make(chan int)) // not encodable
		return r, nil
	})
	d.Handle("query", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		out := &bencode.Dict{}
		out.Set("command", r.Command)
		out.Set("source", r.Source)
		out.Set("proxy", r.Proxy)
		out.Set("call-id", r.Dict["call-id"])
		return out, errors.New("reason: \"quoted\"")
	})
	d.Handle("list", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		out := &bencode.Dict{}
		out.Set("command", r.Command)
		out.Set("source", r.Source)
		out.Set("proxy", r.Proxy)
		out.Set("call-id", r.Dict["call-id"])
		return out, nil
	})
	for _, tc := range []struct{ in, want string }{
		{"d7:command5:offere", "d6:result2:oke"},
		{`{"command":"offer"}`, `{"result":"ok"}`},
		{"d7:command6:answere", "d6:result10:load limit7:message1:xe"},
		{"d7:command6:deletee", bencodeError("Internal error")},
		{`{"command":"delete"}`, `{"result":"error","error-reason":"Internal error"}`},
		{"d7:command5:querye", bencodeError(`reason: "quoted"`)},
		{`{"command":"query"}`, `{"result":"error","error-reason":"reason: \"quoted\""}`},
		{"d7:call id1:c7:command4:liste", "d7:command4:list6:source8:src:50605:proxy3:src7:call-id1:c6:result2:oke"},
	} {
		if got := d.Process(context.Background(), []byte(tc.in), "src:5060", "src"); string(got) != tc.want {
			t.Errorf("Process(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestControlStatisticsTotals: the "Control statistics" section of `list
// totals`.
func TestControlStatisticsTotals(t *testing.T) {
	columns := []string{"Ping", "Offer", "Answer", "Delete", "Query", "List", "StartRec", "StopRec", "StartFwd", "StopFwd",
		"BlkDTMF", "UnblkDTMF", "BlkMedia", "UnblkMedia", "PlayMedia", "StopMedia", "PlayDTMF", "Stats", "SlnMedia",
		"UnslnMedia", "Pub", "SubReq", "SubAns", "Unsub"}
	header := fmt.Sprintf(" %20s ", "Proxy")
	for _, c := range columns {
		header += fmt.Sprintf("| %10s ", c)
	}
	header += fmt.Sprintf("| %10s \n", "Errors")
	row := func(proxy string, counts map[int]int, errs int) string {
		s := fmt.Sprintf(" %20s ", proxy)
		for i := range columns {
			s += fmt.Sprintf("| %10d ", counts[i])
		}
		return s + fmt.Sprintf("| %10d \n", errs)
	}

	d := New(nil)
	st := stats.New()
	d.RegisterTotals(st)
	section := func() string {
		var buf bytes.Buffer
		st.WriteTotals(&buf)
		out := buf.String()
		i := strings.Index(out, "\n\nControl statistics:\n\n")
		if i < 0 {
			t.Fatalf("no Control statistics section in\n%s", out)
		}
		return out[i:]
	}
	if got, want := section(), "\n\nControl statistics:\n\n"+header+"\n"; got != want {
		t.Errorf("empty section:\n got %q\nwant %q", got, want)
	}

	ctx := context.Background()
	d.Process(ctx, []byte("d7:command4:pinge"), "10.0.0.2:1", "10.0.0.2")
	d.Process(ctx, []byte("d7:command4:pinge"), "10.0.0.2:2", "10.0.0.2")
	d.Process(ctx, []byte(`{"command":"ping"}`), "10.0.0.10:1", "10.0.0.10")
	d.Process(ctx, []byte("d7:command10:play mediae"), "10.0.0.10:1", "10.0.0.10") // unsupported: an error
	d.Process(ctx, []byte("junk"), "10.0.0.2:1", "10.0.0.2")
	d.Process(ctx, []byte("d7:command5:offere"), "[2001:db8::1]:5", "2001:db8::1") // no handler here
	want := "\n\nControl statistics:\n\n" + header +
		row("10.0.0.10", map[int]int{0: 1, 14: 1}, 1) + // refused requests are counted too, as rtpengine does
		row("10.0.0.2", map[int]int{0: 2}, 1) +
		row("2001:db8::1", map[int]int{1: 1}, 1) + "\n"
	if got := section(); got != want {
		t.Errorf("section:\n got %q\nwant %q", got, want)
	}
}

// TestProcessConcurrent: whole calls from several goroutines at once.
func TestProcessConcurrent(t *testing.T) {
	env := newTestEnv(t)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("cc%d", i)
			for _, body := range [][]byte{
				bdict(t, "command", "offer", "call-id", id, "from-tag", "a", "sdp", offerSDP),
				bdict(t, "command", "answer", "call-id", id, "from-tag", "a", "to-tag", "b", "sdp", answerSDP),
				bdict(t, "command", "query", "call-id", id),
				bdict(t, "command", "statistics"),
				bdict(t, "command", "delete", "call-id", id, "delete-delay", int64(0)),
			} {
				m, _, err := Decode(env.process(body))
				if err == nil && m["result"] != "ok" {
					err = fmt.Errorf("%s: %v", id, m)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-deadline:
			t.Fatal("concurrent requests did not finish")
		}
	}
	if c := env.engine.NumCalls(); c != 0 {
		t.Errorf("%d calls left", c)
	}
}

// TestUnknownHandlerNotCountedAsPing: a handler for a command rtpengine does
// not have is not counted under any rtpengine command.
func TestUnknownHandlerNotCountedAsPing(t *testing.T) {
	d := New(nil)
	d.Handle("custom", func(context.Context, *Request) (*bencode.Dict, error) { return nil, nil })
	if got := d.Process(context.Background(), []byte("d7:command6:custome"), "192.0.2.1:1", "192.0.2.1"); string(got) != "d6:result2:oke" {
		t.Fatalf("reply %q", got)
	}
	out, _ := Encode(nil, d.controlStatistics(), JSON)
	m, _, _ := Decode(out)
	wantEqual(t, "ping count", m["totalpingcount"], int64(0))
}
