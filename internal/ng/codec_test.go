package ng

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/bencode"
)

func TestSplitCookie(t *testing.T) {
	for _, tc := range []struct {
		in           string
		cookie, body string
		ok           bool
	}{
		{"abc d7:command4:pinge", "abc", "d7:command4:pinge", true},
		{`5300_1 {"command":"ping"}`, "5300_1", `{"command":"ping"}`, true},
		{"abc ", "abc", "", true},                     // empty body: still a cookie
		{"a b c", "a", "b c", true},                   // only the first space splits
		{"abc  d1:ae", "abc", " d1:ae", true},         // the body keeps a second space
		{"x\td7:command4:pinge", "", "", false},       // a tab is no separator
		{" d7:command4:pinge", "", "", false},         // empty cookie
		{"d7:command4:pinge", "", "", false},          // no space at all
		{"", "", "", false},                           // nothing
		{" ", "", "", false},                          // a lone space
		{"\x00\xff d1:ae", "\x00\xff", "d1:ae", true}, // any bytes make a cookie
	} {
		cookie, body, ok := SplitCookie([]byte(tc.in))
		if ok != tc.ok || string(cookie) != tc.cookie || string(body) != tc.body {
			t.Errorf("SplitCookie(%q) = %q, %q, %v; want %q, %q, %v", tc.in, cookie, body, ok, tc.cookie, tc.body, tc.ok)
		}
		if !ok && (cookie != nil || body != nil) {
			t.Errorf("SplitCookie(%q): no cookie but non-nil parts", tc.in)
		}
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]any
		enc  Encoding
	}{
		{"bencode ping", "d7:command4:pinge", map[string]any{"command": "ping"}, Bencode},
		{"bencode empty", "de", map[string]any{}, Bencode},
		{"bencode value model", "d1:ai-5e1:bl1:x1:yi7ee1:cd1:di0eee",
			map[string]any{"a": int64(-5), "b": []any{"x", "y", int64(7)}, "c": map[string]any{"d": int64(0)}}, Bencode},
		{"bencode unsorted keys", "d1:bi2e1:ai1ee", map[string]any{"a": int64(1), "b": int64(2)}, Bencode},
		{"bencode binary string", "d1:s3:\x00\xff\ne", map[string]any{"s": "\x00\xff\n"}, Bencode},
		{"bencode leading whitespace", " \t\r\nd7:command4:pinge", map[string]any{"command": "ping"}, Bencode},
		{"bencode trailing newline (echo | nc -u)", "d7:command4:pinge\n", map[string]any{"command": "ping"}, Bencode},
		{"json ping", `{"command":"ping"}`, map[string]any{"command": "ping"}, JSON},
		{"json empty", `{}`, map[string]any{}, JSON},
		{"json leading and trailing whitespace", " \r\n\t{ \"command\" : \"ping\" } \r\n\t", map[string]any{"command": "ping"}, JSON},
		{"json value model", `{"s":"x","i":42,"neg":-7,"zero":-0,"t":true,"f":false,"n":null,` +
			`"fl":1.5,"exp":1e3,"negfl":-0.25,"big":123456789012345678901,"max":9223372036854775807,` +
			`"l":[1,"a",[true,null]],"m":{"k":null,"l":[]}}`,
			map[string]any{
				"s": "x", "i": int64(42), "neg": int64(-7), "zero": int64(0),
				"t": int64(1), "f": int64(0), "n": "",
				"fl": "1.5", "exp": "1e3", "negfl": "-0.25",
				"big": "123456789012345678901", "max": int64(math.MaxInt64),
				"l": []any{int64(1), "a", []any{int64(1), ""}},
				"m": map[string]any{"k": "", "l": []any{}},
			}, JSON},
		{"json escapes", `{"e":"\u00e9\n\"\\\/\ud83d\ude00"}`, map[string]any{"e": "é\n\"\\/😀"}, JSON},
		{"json duplicate key: last wins", `{"a":1,"a":2}`, map[string]any{"a": int64(2)}, JSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, enc, err := Decode([]byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%q): %v", tc.in, err)
			}
			if enc != tc.enc {
				t.Errorf("encoding %v, want %v", enc, tc.enc)
			}
			wantEqual(t, "value", got, tc.want)
		})
	}
}

// nestJSON is an object holding n-1 nested arrays (n containers in all)
// around inner.
func nestJSON(n int, inner string) string {
	return `{"a":` + strings.Repeat("[", n-1) + inner + strings.Repeat("]", n-1) + "}"
}

// nestBencode is the same in bencode.
func nestBencode(n int, inner string) string {
	return "d1:a" + strings.Repeat("l", n-1) + inner + strings.Repeat("e", n-1) + "e"
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		enc  Encoding // the encoding an error reply is written in
	}{
		{"empty", "", Bencode},
		{"whitespace only", " \r\n\t", Bencode},
		{"garbage", "hello world", Bencode},
		{"bencode list top-level", "l7:command4:pinge", Bencode},
		{"bencode string top-level", "4:ping", Bencode},
		{"bencode integer top-level", "i1e", Bencode},
		{"bencode truncated", "d7:command4:pin", Bencode},
		{"bencode unterminated", "d7:command4:ping", Bencode},
		{"bencode trailing data", "d7:command4:pingee", Bencode},
		{"bencode duplicate key", "d1:ai1e1:ai2ee", Bencode},
		{"bencode non-canonical integer", "d1:ai01ee", Bencode},
		{"bencode non-string key", "di1ei2ee", Bencode},
		{"json array top-level", `[{"command":"ping"}]`, Bencode},
		{"json string top-level", `"ping"`, Bencode},
		{"json truncated", `{"command":`, JSON},
		{"json unterminated", `{"command":"ping"`, JSON},
		{"json bad token", `{"command":ping}`, JSON},
		{"json trailing garbage", `{"command":"ping"} x`, JSON},
		{"json second object", `{"command":"ping"}{"command":"ping"}`, JSON},
		{"json trailing brace", `{"command":"ping"}}`, JSON},
		{"json trailing bracket", `{"command":"ping"} ]`, JSON},
		{"json control character in string", "{\"a\":\"x\x01y\"}", JSON},
		{"json single quotes", `{'command':'ping'}`, JSON},
		{"json nested too deeply", nestJSON(bencode.DefaultMaxDepth+1, "1"), JSON},
		{"json nested too deeply, empty innermost", nestJSON(bencode.DefaultMaxDepth+1, ""), JSON},
		{"json nested too deeply, object innermost", nestJSON(bencode.DefaultMaxDepth, "{}"), JSON},
		{"bencode nested too deeply", nestBencode(bencode.DefaultMaxDepth+1, "i1e"), Bencode},
		{"bencode nested too deeply, empty innermost", nestBencode(bencode.DefaultMaxDepth+1, ""), Bencode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, enc, err := Decode([]byte(tc.in))
			if err == nil {
				t.Fatalf("Decode(%.60q) = %v, want an error", tc.in, got)
			}
			if !errors.Is(err, errBadData) {
				t.Errorf("error %v does not wrap errBadData", err)
			}
			if got != nil {
				t.Errorf("value %v with the error, want nil", got)
			}
			if enc != tc.enc {
				t.Errorf("encoding %v, want %v", enc, tc.enc)
			}
		})
	}
}

// TestDecodeDepthLimit: JSON and bencode accept the same nesting, at most
// bencode.DefaultMaxDepth containers including the top-level dictionary.
func TestDecodeDepthLimit(t *testing.T) {
	for _, n := range []int{2, 3, bencode.DefaultMaxDepth - 1, bencode.DefaultMaxDepth} {
		for _, in := range []string{nestJSON(n, "1"), nestJSON(n, ""), nestBencode(n, "i1e"), nestBencode(n, ""), nestJSON(n-1, "{}"), nestBencode(n-1, "de")} {
			if _, _, err := Decode([]byte(in)); err != nil {
				t.Errorf("%d containers: Decode(%.50q...): %v", n, in, err)
			}
		}
	}
	// The value itself, at the limit.
	got, _, err := Decode([]byte(nestJSON(3, `"x"`)))
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "nested", got, map[string]any{"a": []any{[]any{"x"}}})
}

func TestEncodeJSON(t *testing.T) {
	inner := &bencode.Dict{}
	inner.Set("z", int64(1))
	inner.Set("a", "b")
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"string", "pong", `"pong"`},
		{"empty string", "", `""`},
		{"bytes", []byte("a\"b"), `"a\"b"`},
		{"int", 42, `42`},
		{"int64", int64(-7), `-7`},
		{"int64 max", int64(math.MaxInt64), `9223372036854775807`},
		{"uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"float", 1.5, `1.5`},
		{"float integral", float64(3), `3`},
		{"bool", true, `true`},
		{"list", []any{int64(1), "a", []any{}}, `[1,"a",[]]`},
		{"empty list", []any{}, `[]`},
		{"string list", []string{"a", "b\n"}, `["a","b\n"]`},
		{"dict keeps insertion order", inner, `{"z":1,"a":"b"}`},
		{"empty dict", &bencode.Dict{}, `{}`},
		{"map sorted", map[string]any{"b": int64(2), "a": []any{inner}, "c": map[string]any{}}, `{"a":[{"z":1,"a":"b"}],"b":2,"c":{}}`},
		{"quote and backslash", `a"b\c/d`, `"a\"b\\c/d"`},
		{"named control characters", "\n\r\t", `"\n\r\t"`},
		{"other control characters", "\x00\x01\x08\x0b\x0c\x1f", `"\u0000\u0001\u0008\u000b\u000c\u001f"`},
		{"DEL and printable ASCII", "\x7f ~", "\"\x7f ~\""},
		{"valid UTF-8 kept", "é€😀\u2028", "\"é€😀\u2028\""},
		{"invalid UTF-8", "a\xffb\xc3", `"a\ufffdb\ufffd"`},
		{"truncated multibyte then ASCII", "\xe2\x82x", `"\ufffd\ufffdx"`},
		{"surrogate half bytes", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"U+FFFD itself", "\uFFFD", "\"\uFFFD\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendJSON(nil, tc.v)
			if err != nil {
				t.Fatalf("appendJSON: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("appendJSON(%#v) = %s, want %s", tc.v, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("%s is not valid JSON", got)
			}
		})
	}
}

func TestEncodeJSONErrors(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), math.Inf(-1), struct{}{}, nil, []any{int64(1), math.NaN()}, map[string]any{"a": complex(1, 1)}} {
		d := &bencode.Dict{}
		d.Set("result", "ok")
		d.Set("x", v)
		if out, err := Encode(nil, d, JSON); err == nil {
			t.Errorf("Encode(%#v) = %s, want an error", v, out)
		}
	}
}

// TestEncodeJSONStringsMatchEncodingJSON: every string, valid UTF-8 or not,
// reads back as what encoding/json makes of it.
func TestEncodeJSONStringsMatchEncodingJSON(t *testing.T) {
	var all strings.Builder
	for c := range 256 {
		all.WriteByte(byte(c))
	}
	for _, s := range []string{all.String(), "\xc0\x80", "\xf4\x90\x80\x80", "\xef\xbf\xbd\xff", "<>&", strings.Repeat("\"\\", 100)} {
		checkJSONString(t, s)
	}
}

func checkJSONString(t testing.TB, s string) {
	t.Helper()
	ours := appendJSONString(nil, s)
	var got string
	if err := json.Unmarshal(ours, &got); err != nil {
		t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, ours, err)
	}
	std, _ := json.Marshal(s)
	var want string
	if err := json.Unmarshal(std, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("appendJSONString(%q) reads back as %q, encoding/json's as %q", s, got, want)
	}
}

func replyDict() *bencode.Dict {
	stream := &bencode.Dict{}
	stream.Set("local port", int64(30000))
	stream.Set("flags", []any{"RTP", "filled"})
	tags := &bencode.Dict{}
	tags.Set("ft", stream)
	d := &bencode.Dict{}
	d.Set("sdp", "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n")
	d.Set("warning", "Unknown flag encountered: 'x\"y'")
	d.Set("tags", tags)
	d.Set("created", int64(1700000000))
	d.Set("negative", -1)
	d.Set("calls", []any{"a", "b\x01"})
	d.Set("empty", []any{})
	d.Set("result", "ok")
	return d
}

func TestEncodeReply(t *testing.T) {
	d := replyDict()
	const wantJSON = `{"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n","warning":"Unknown flag encountered: 'x\"y'",` +
		`"tags":{"ft":{"local port":30000,"flags":["RTP","filled"]}},"created":1700000000,"negative":-1,` +
		`"calls":["a","b\u0001"],"empty":[],"result":"ok"}`
	const wantBencode = "d3:sdp31:v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n7:warning31:Unknown flag encountered: 'x\"y'" +
		"4:tagsd2:ftd10:local porti30000e5:flagsl3:RTP6:filledeee7:createdi1700000000e8:negativei-1e" +
		"5:callsl1:a2:b\x01e5:emptyle6:result2:oke"
	want := map[string]any{
		"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "warning": "Unknown flag encountered: 'x\"y'",
		"tags":    map[string]any{"ft": map[string]any{"local port": int64(30000), "flags": []any{"RTP", "filled"}}},
		"created": int64(1700000000), "negative": int64(-1), "calls": []any{"a", "b\x01"}, "empty": []any{}, "result": "ok",
	}
	for _, tc := range []struct {
		enc  Encoding
		want string
	}{{JSON, wantJSON}, {Bencode, wantBencode}} {
		out, err := Encode([]byte("cookie "), d, tc.enc)
		if err != nil {
			t.Fatalf("Encode(%v): %v", tc.enc, err)
		}
		if string(out) != "cookie "+tc.want {
			t.Errorf("Encode(%v):\n got %q\nwant %q", tc.enc, out, "cookie "+tc.want)
		}
		cookie, body, ok := SplitCookie(out)
		if !ok || string(cookie) != "cookie" {
			t.Fatalf("SplitCookie(%q) failed", out)
		}
		got, enc, err := Decode(body)
		if err != nil || enc != tc.enc {
			t.Fatalf("Decode(Encode(%v)): %v, %v", tc.enc, enc, err)
		}
		wantEqual(t, "round trip", got, want)
	}
}

// TestEncodeJSONReplyRedecodes: a JSON reply, whatever its strings hold,
// decodes to the same values (invalid UTF-8 becoming U+FFFD).
func TestEncodeJSONReplyRedecodes(t *testing.T) {
	d := &bencode.Dict{}
	d.Set("ctl", "\x00\x1f\"\\\n")
	d.Set("utf8", "é😀")
	d.Set("bad", "\xffx")
	d.Set("list", []any{"\t", int64(-3), []any{"\xc3"}})
	out, err := Encode(nil, d, JSON)
	if err != nil {
		t.Fatal(err)
	}
	got, enc, err := Decode(out)
	if err != nil || enc != JSON {
		t.Fatalf("Decode(%s): %v, %v", out, enc, err)
	}
	wantEqual(t, "redecoded", got, map[string]any{
		"ctl": "\x00\x1f\"\\\n", "utf8": "é😀", "bad": "\uFFFDx", "list": []any{"\t", int64(-3), []any{"\uFFFD"}},
	})
}
