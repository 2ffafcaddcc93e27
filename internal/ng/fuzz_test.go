package ng

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/rtcgate/rtcgate/internal/bencode"
)

// fuzzCallID names the call FuzzProcess sets up before an input that
// mentions it, so that answers, queries and deletes reach a real call.
const fuzzCallID = "fz"

func processSeeds(f *testing.F) [][]byte {
	q := strconv.Quote
	b := func(kv ...any) []byte { return bdict(f, kv...) }
	return [][]byte{
		[]byte("d7:command4:pinge"),
		[]byte(`{"command":"ping"}`),
		b("command", "offer", "call-id", "c1", "from-tag", "ft", "sdp", offerSDP),
		b("command", "offer", "call-id", "c1", "from-tag", "ft", "sdp", offerSDP,
			"flags", []any{"trust-address", "symmetric", "asymmetric", "strict-source", "media-handover", "full-rtcp-attribute",
				"replace-origin", "rtcp-mux-demux", "ICE-remove", "direction=internal", "address-family=IP6", "media-address=192.0.2.1",
				"received-from=IP4 1.2.3.4", "SIP-source-address", "bogus"},
			"replace", []any{"origin", "session-connection", "sdp-version", "username", "session-name", "zero-address"},
			"rtcp-mux", []any{"offer", "require"}, "ICE", "remove", "label", "caller", "via-branch", "z9"),
		b("command", "offer", "call-id", "c1", "from-tag", "ft", "sdp", offerSDP, "rtpp_flags",
			"trust-address replace-origin replace-session-connection ICE=remove rtcp-mux-demux direction=internal direction=external"),
		[]byte(`{"command":"offer","call-id":"c2","from-tag":"ft","sdp":` + q(offerSDP) + `,"flags":["trust-address"],"replace":["origin"]}`),
		b("command", "offer", "call-id", "c3", "from-tag", "ft", "sdp", offerSDP, "transport-protocol", "UDP/TLS/RTP/SAVPF",
			"ICE", []any{"force", "trickle", "lite-both"}, "DTLS", "passive", "DTLS-fingerprint", "sha-1", "SDES", []any{"no-AES_CM_128_HMAC_SHA1_32", "pad", "lifetime", "static", "order:AES_CM_128_HMAC_SHA1_32;;AEAD_AES_128_GCM;"},
			"OSRTP", []any{"offer"}, "codec", map[string]any{"strip": []any{"all"}, "except": []any{"PCMU"}, "offer": "PCMA", "mask": []any{"G722"}},
			"extmap", map[string]any{"strip": []any{"all"}}, "flags", []any{"generate-mid", "strip-extmap", "trickle-ICE", "WebRTC", "SDES-only-AEAD_AES_128_GCM", "codec-strip-PCMA"}),
		b("command", "offer", "call-id", "c4", "from-tag", "ft", "sdp", offerSDP, "rtpp_flags",
			"RTP/SAVP ICE=remove DTLS=off SDES-off OSRTP-accept ICE-lite=forward codec-except-PCMU generate-mid ICE=force-relay"),
		b("command", "answer", "call-id", fuzzCallID, "from-tag", "ft", "to-tag", "tt", "sdp", answerSDP),
		[]byte(`{"command":"answer","call-id":"fz","from-tag":"ft","to-tag":"tt","sdp":` + q(answerSDP) + `}`),
		b("command", "offer", "call-id", fuzzCallID, "from-tag", "ft", "to-tag", "tt", "sdp", offerSDP, "replace", []any{"force-increment-sdp-ver"}),
		b("command", "query", "call-id", fuzzCallID),
		[]byte(`{"command":"query","call-id":"fz"}`),
		b("command", "delete", "call-id", fuzzCallID, "from-tag", "ft"),
		b("command", "delete", "call-id", fuzzCallID, "delete-delay", int64(5)),
		b("command", "delete", "call-id", "nope", "flags", []any{"fatal"}),
		b("command", "list", "limit", int64(2)),
		b("command", "play DTMF", "call-id", fuzzCallID, "from-tag", "ft", "code", "5", "duration", int64(300), "volume", int64(-10), "pause", "150"),
		b("command", "play DTMF", "call-id", fuzzCallID, "label", "caller", "digit", int64(11)),
		b("command", "play DTMF", "call-id", fuzzCallID, "flags", []any{"all"}, "code", "15", "duration", "-1"),
		[]byte(`{"command":"play DTMF","call-id":"fz","all":"all","code":"#","volume":99999999999}`),
		b("command", "statistics"),
		[]byte(`{"command":"statistics"}`),
		b("command", "start recording", "call-id", "x"),
		b("command", "bogus"),
		b("call-id", "x"),
		[]byte("de"),
		[]byte("{}"),
		[]byte(""),
		[]byte("junk"),
		[]byte("d7:command"),
		[]byte(`{"command":`),
		[]byte(`{"command":"ping"}}`),
		[]byte(`[1,2,3]`),
		[]byte("d7:command5:offer3:sdp3:v=07:call-id1:x8:from-tag1:fe"),
		[]byte(`{"command":"offer","sdp":"v=0\r\nm=audio 1 RTP/AVP 0\r\n","call-id":1,"from-tag":true,"flags":[null,1.5,{}]}`),
	}
}

// FuzzProcess: whatever the input, the dispatcher answers with a
// dictionary holding "result", in the request's encoding, and leaves no
// port behind once the calls are gone.
func FuzzProcess(f *testing.F) {
	for _, s := range processSeeds(f) {
		f.Add(s)
	}
	env := newTestEnv(f)
	ctx := context.Background()
	setup := bdict(f, "command", "offer", "call-id", fuzzCallID, "from-tag", "ft", "sdp", offerSDP)
	f.Fuzz(func(t *testing.T, body []byte) {
		defer func() {
			// Clean up after every input, so that ports never run out.
			if env.engine.NumCalls() > 0 {
				env.engine.TerminateAll()
			}
			// Ports come back once the relay thread has closed the sockets.
			eventually(t, "ports to be freed with no call left", func() bool { return portsUsed(env) == 0 })
			if n := env.stats.StreamsUser.Load(); n != 0 {
				t.Fatalf("%d media streams counted with no call", n)
			}
			if n := env.stats.SessionsOwn.Load(); n != 0 {
				t.Fatalf("%d sessions counted with no call", n)
			}
		}()
		if bytes.Contains(body, []byte(fuzzCallID)) {
			if r := env.d.Process(ctx, setup, "127.0.0.1:5060", "127.0.0.1"); !bytes.HasSuffix(r, []byte("6:result2:oke")) {
				t.Fatalf("setup offer: %q", r)
			}
		}
		out := env.d.Process(ctx, body, "127.0.0.1:5060", "127.0.0.1")
		if len(out) == 0 {
			t.Fatal("empty reply")
		}
		m, enc, err := Decode(out)
		if err != nil {
			t.Fatalf("reply %q does not decode: %v", out, err)
		}
		want := Bencode
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
			want = JSON
		}
		if enc != want {
			t.Fatalf("reply %q in encoding %v, want %v", out, enc, want)
		}
		result, ok := m["result"].(string)
		if !ok || result == "" {
			t.Fatalf("reply %q has no result", out)
		}
		if result == "error" {
			if reason, ok := m["error-reason"].(string); !ok || reason == "" {
				t.Fatalf("error reply %q has no error-reason", out)
			}
		}
	})
}

func decodeSeeds() []string {
	return []string{
		"d7:command4:pinge",
		"d1:ai-5e1:bl1:x1:yi7ee1:cd1:di0eee",
		" \r\n\td1:s3:\x00\xff\ne",
		`{"command":"ping"}`,
		`{"s":"x","i":42,"t":true,"f":false,"n":null,"fl":1.5,"exp":1e3,"big":123456789012345678901,"l":[1,"a",[true]],"m":{"k":null}}`,
		`{"e":"\u00e9\n\"\\\/\ud83d\ude00\ud800"}`,
		"{\"bad\":\"\xff\xfe\"}",
		`{"a":1}}`,
		`{"a":1} `,
		`[1]`,
		nestJSON(bencode.DefaultMaxDepth, "1"),
		nestJSON(bencode.DefaultMaxDepth+1, ""),
		nestBencode(bencode.DefaultMaxDepth, "i1e"),
		"",
		"junk",
	}
}

// FuzzDecode: Decode never panics; what it accepts re-encodes (in its own
// encoding, and as JSON) and decodes to the same values.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, enc, err := Decode(body)
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		isJSON := len(trimmed) > 0 && trimmed[0] == '{'
		if (enc == JSON) != isJSON {
			t.Fatalf("encoding %v for %q", enc, body)
		}
		if err != nil {
			if !errors.Is(err, errBadData) || m != nil {
				t.Fatalf("error %v, value %v", err, m)
			}
			return
		}
		if m == nil {
			t.Fatal("nil dictionary without an error")
		}
		checkValueModel(t, m)

		// In its own encoding.
		var again []byte
		if enc == JSON {
			again, err = appendJSON(nil, m)
		} else {
			again, err = bencode.Marshal(m)
		}
		if err != nil {
			t.Fatalf("re-encoding %v: %v", m, err)
		}
		m2, enc2, err := Decode(again)
		if err != nil || enc2 != enc {
			t.Fatalf("re-decoding %q: %v, %v", again, enc2, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the value:\n%#v\n%#v", m, m2)
		}

		// As JSON, which a bencode request's values must survive too (but
		// for invalid UTF-8).
		js, err := appendJSON(nil, m)
		if err != nil {
			t.Fatalf("JSON encoding %v: %v", m, err)
		}
		if !json.Valid(js) {
			t.Fatalf("invalid JSON %q", js)
		}
		if _, enc3, err := Decode(js); err != nil || enc3 != JSON {
			t.Fatalf("JSON %q does not decode: %v", js, err)
		}
		forStrings(m, func(s string) { checkJSONString(t, s) })
	})
}

// checkValueModel: only string, int64, []any and map[string]any.
func checkValueModel(t *testing.T, v any) {
	t.Helper()
	switch x := v.(type) {
	case string, int64:
	case []any:
		for _, e := range x {
			checkValueModel(t, e)
		}
	case map[string]any:
		for _, e := range x {
			checkValueModel(t, e)
		}
	default:
		t.Fatalf("value %#v of type %T outside the value model", v, v)
	}
}

func forStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case []any:
		for _, e := range x {
			forStrings(e, fn)
		}
	case map[string]any:
		for k, e := range x {
			fn(k)
			forStrings(e, fn)
		}
	}
}
