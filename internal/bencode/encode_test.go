package bencode

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestMarshal(t *testing.T) {
	nested := &Dict{}
	nested.Set("z", 1)
	nested.Set("a", []string{"x"})

	tests := []struct {
		name string
		in   any
		want string
	}{
		{"string", "spam", "4:spam"},
		{"empty string", "", "0:"},
		{"binary string", "\x00\xff", "2:\x00\xff"},
		{"bytes", []byte("spam"), "4:spam"},
		{"nil bytes", []byte(nil), "0:"},
		{"int", 42, "i42e"},
		{"int8", int8(-128), "i-128e"},
		{"int16", int16(-300), "i-300e"},
		{"int32", int32(1 << 30), "i1073741824e"},
		{"int64 min", int64(math.MinInt64), "i-9223372036854775808e"},
		{"int64 max", int64(math.MaxInt64), "i9223372036854775807e"},
		{"uint", uint(7), "i7e"},
		{"uint8", uint8(255), "i255e"},
		{"uint16", uint16(65535), "i65535e"},
		{"uint32", uint32(math.MaxUint32), "i4294967295e"},
		{"uint64", uint64(math.MaxInt64), "i9223372036854775807e"},
		{"uintptr", uintptr(9), "i9e"},
		{"zero", 0, "i0e"},
		{"true", true, "i1e"},
		{"false", false, "i0e"},
		{"empty list", []any{}, "le"},
		{"nil list", []any(nil), "le"},
		{"list", []any{"a", 1, []any{}}, "l1:ai1elee"},
		{"string list", []string{"trust-address", "symmetric"}, "l13:trust-address9:symmetrice"},
		{"dict list", []map[string]any{{"b": 1, "a": 2}, {}}, "ld1:ai2e1:bi1eedee"},
		{"empty map", map[string]any{}, "de"},
		{"nil map", map[string]any(nil), "de"},
		{"map sorted", map[string]any{"foo": 42, "bar": "spam", "Baz": 1, "": 0}, "d0:i0e3:Bazi1e3:bar4:spam3:fooi42ee"},
		{"map byte order", map[string]any{"b": 1, "\xff": 2, "a\x00": 3, "a": 4}, "d1:ai4e2:a\x00i3e1:bi1e1:\xffi2ee"},
		{"string map sorted", map[string]string{"to-tag": "t", "from-tag": "f", "call-id": "c"}, "d7:call-id1:c8:from-tag1:f6:to-tag1:te"},
		{"big map sorted", map[string]any{"q": 1, "w": 1, "e": 1, "r": 1, "t": 1, "y": 1, "u": 1, "i": 1, "o": 1, "p": 1, "a": 1, "s": 1, "d": 1, "f": 1, "g": 1, "h": 1, "j": 1, "k": 1},
			"d1:ai1e1:di1e1:ei1e1:fi1e1:gi1e1:hi1e1:ii1e1:ji1e1:ki1e1:oi1e1:pi1e1:qi1e1:ri1e1:si1e1:ti1e1:ui1e1:wi1e1:yi1ee"},
		{"dict insertion order", nested, "d1:zi1e1:al1:xee"},
		{"dict value", *nested, "d1:zi1e1:al1:xee"},
		{"zero dict", &Dict{}, "de"},
		{"nested mix", map[string]any{"d": nested, "l": []any{map[string]string{"k": "v"}, true}}, "d1:dd1:zi1e1:al1:xee1:lld1:k1:vei1eee"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Marshal = %q, want %q", got, tt.want)
			}
			// Append must produce the same bytes after existing content.
			got2, err := Append([]byte("prefix"), tt.in)
			if err != nil || string(got2) != "prefix"+tt.want {
				t.Fatalf("Append = %q, %v", got2, err)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	type point struct{ X int }
	cyclic := []any{nil}
	cyclic[0] = cyclic
	cyclicMap := map[string]any{}
	cyclicMap["self"] = cyclicMap

	tests := []struct {
		name    string
		in      any
		errPart string
	}{
		{"nil", nil, "cannot encode nil"},
		{"nil dict", (*Dict)(nil), "nil *Dict"},
		{"float64", 1.5, "unsupported type float64"},
		{"float32", float32(1), "unsupported type float32"},
		{"struct", point{1}, "unsupported type bencode.point"},
		{"pointer", new(int), "unsupported type *int"},
		{"chan", make(chan int), "unsupported type chan int"},
		{"func", func() {}, "unsupported type func()"},
		{"map[string]int", map[string]int{"a": 1}, "unsupported type map[string]int"},
		{"[]int", []int{1}, "unsupported type []int"},
		{"uint64 overflow", uint64(math.MaxInt64) + 1, "exceeds int64 range"},
		{"uint overflow", uint(math.MaxUint), "exceeds int64 range"},
		{"nested in list", []any{"ok", []any{1.5}}, "unsupported type float64"},
		{"nested in map", map[string]any{"a": 1, "b": map[string]any{"c": nil}}, "cannot encode nil"},
		{"nested in dict", func() *Dict { d := &Dict{}; d.Set("x", struct{}{}); return d }(), "unsupported type struct {}"},
		{"nested in dict list", []map[string]any{{"x": complex(1, 1)}}, "unsupported type complex128"},
		{"cyclic list", cyclic, "cyclic"},
		{"cyclic map", cyclicMap, "cyclic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err == nil {
				t.Fatalf("Marshal = %q, want error", got)
			}
			if got != nil {
				t.Errorf("Marshal returned %q alongside error", got)
			}
			if !strings.Contains(err.Error(), tt.errPart) {
				t.Errorf("error %q does not contain %q", err, tt.errPart)
			}
			dst := []byte("keep")
			out, err := Append(dst, tt.in)
			if err == nil || string(out) != "keep" {
				t.Errorf("Append on error = %q, %v; want original dst and error", out, err)
			}
		})
	}
}

func TestDictOrder(t *testing.T) {
	var d Dict
	if d.Len() != 0 || len(d.Keys()) != 0 {
		t.Fatal("zero Dict not empty")
	}
	d.Set("result", "pong")
	d.Set("b", 1)
	d.Set("a", 2)
	d.Set("result", "ok") // replace keeps position
	if d.Len() != 3 {
		t.Fatalf("Len = %d, want 3", d.Len())
	}
	if keys := d.Keys(); !reflect.DeepEqual(keys, []string{"result", "b", "a"}) {
		t.Fatalf("Keys = %q", keys)
	}
	if v, ok := d.Get("result"); !ok || v != "ok" {
		t.Fatalf("Get(result) = %v, %v", v, ok)
	}
	if _, ok := d.Get("missing"); ok {
		t.Fatal("Get(missing) ok")
	}
	got, err := Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d6:result2:ok1:bi1e1:ai2ee"; string(got) != want {
		t.Fatalf("Marshal = %q, want %q", got, want)
	}

	// Keys returns a copy.
	keys := d.Keys()
	keys[0] = "mutated"
	if d.Keys()[0] != "result" {
		t.Fatal("Keys aliases internal storage")
	}

	// A nil *Dict reads as empty.
	var nd *Dict
	if nd.Len() != 0 || nd.Keys() != nil {
		t.Fatal("nil Dict not empty")
	}
	if _, ok := nd.Get("x"); ok {
		t.Fatal("nil Dict Get ok")
	}
}

// TestRoundTrip checks Decode(Marshal(v)) == v for values already in the
// decoded model, and Marshal(Decode(b)) == b for canonical input.
func TestRoundTrip(t *testing.T) {
	values := []any{
		"",
		"\x00\r\n\xff",
		int64(0), int64(-1), int64(math.MinInt64), int64(math.MaxInt64),
		[]any{},
		map[string]any{},
		offerValue,
		[]any{map[string]any{"a": []any{[]any{"x", int64(3)}}, "": ""}, "tail"},
	}
	for _, v := range values {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%q): %v", b, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip of %#v gave %#v", v, got)
		}
		if !isCanonical(b) {
			t.Fatalf("Marshal produced non-canonical %q", b)
		}
		b2, err := Marshal(got)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-marshal = %q, %v; want %q", b2, err, b)
		}
	}

	// A reply built with Dict decodes to the equivalent map.
	b, err := Marshal(replyDict())
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeDict(b)
	if err != nil {
		t.Fatal(err)
	}
	if m["sdp"] != offerSDP || m["result"] != "ok" || m["created"] != int64(1700000000) {
		t.Fatalf("reply decoded to %#v", m)
	}
	if rtp := m["totals"].(map[string]any)["RTP"].(map[string]any); rtp["packets"] != int64(0) {
		t.Fatalf("totals decoded to %#v", m["totals"])
	}
	if !strings.HasPrefix(string(b), "d3:sdp"+bs(offerSDP)+"6:result2:ok") {
		t.Fatalf("reply does not start with sdp: %.20q", b)
	}
}

// TestOfferMessage decodes a realistic ng offer (unsorted keys, SDP with CRLF
// and raw binary bytes), checks the SDP survives byte for byte, and that
// re-encoding yields the canonical (sorted) form of the same message.
func TestOfferMessage(t *testing.T) {
	m, err := DecodeDict([]byte(offerMsg))
	if err != nil {
		t.Fatal(err)
	}
	sdp, ok := m["sdp"].(string)
	if !ok || sdp != offerSDP || !strings.Contains(sdp, "\r\n") || !strings.Contains(sdp, "\x00\x01\xfe\xff") {
		t.Fatalf("SDP not preserved: %q", sdp)
	}
	if isCanonical([]byte(offerMsg)) {
		t.Fatal("test message should have unsorted keys")
	}
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(offerMsg) || !isCanonical(b) {
		t.Fatalf("re-encoded offer: len %d (want %d), canonical %v", len(b), len(offerMsg), isCanonical(b))
	}
	again, err := DecodeDict(b)
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Fatalf("re-decoded offer differs: %v", err)
	}
}

func TestAppendReuseNoAlloc(t *testing.T) {
	d := replyDict() // includes nested maps, whose keys are sorted on the stack
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = Append(buf[:0], d)
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Append into a reused buffer allocated %v times", allocs)
	}
}
