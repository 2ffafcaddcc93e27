package bencode

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"empty string", "0:", ""},
		{"string", "4:spam", "spam"},
		{"string with structural bytes", "6:i1e:le", "i1e:le"},
		{"binary string", "4:\x00\xff\r\n", "\x00\xff\r\n"},
		{"multi-digit length", "10:0123456789", "0123456789"},
		{"zero", "i0e", int64(0)},
		{"positive", "i42e", int64(42)},
		{"negative", "i-42e", int64(-42)},
		{"int64 max", "i9223372036854775807e", int64(math.MaxInt64)},
		{"int64 min", "i-9223372036854775808e", int64(math.MinInt64)},
		{"empty list", "le", []any{}},
		{"empty dict", "de", map[string]any{}},
		{"list", "l4:spami42ee", []any{"spam", int64(42)}},
		{"sorted dict", "d3:bar4:spam3:fooi42ee", map[string]any{"bar": "spam", "foo": int64(42)}},
		{"unsorted dict", "d3:fooi42e3:bar4:spame", map[string]any{"bar": "spam", "foo": int64(42)}},
		{"empty key", "d0:i1ee", map[string]any{"": int64(1)}},
		{"ping", "d7:command4:pinge", map[string]any{"command": "ping"}},
		{"nested", "d1:ald1:xli1ei2eeed1:yleee1:bdee", map[string]any{
			"a": []any{
				map[string]any{"x": []any{int64(1), int64(2)}},
				map[string]any{"y": []any{}},
			},
			"b": map[string]any{},
		}},
		{"list of lists", "llleleee", []any{[]any{[]any{}, []any{}}}},
		{"max depth", strings.Repeat("l", DefaultMaxDepth) + strings.Repeat("e", DefaultMaxDepth), nest(DefaultMaxDepth)},
		{"big dict", bigDict(40, false), bigDictValue(40)},
		{"big unsorted dict", bigDict(40, true), bigDictValue(40)},
		{"ng offer", offerMsg, offerValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// nest returns n nested empty lists.
func nest(n int) any {
	v := []any{}
	for i := 1; i < n; i++ {
		v = []any{v}
	}
	return v
}

// bigDict encodes a dictionary of n entries, large enough to exercise the
// decoder's switch from scratch-stack to map mode.
func bigDict(n int, reverse bool) string {
	var b strings.Builder
	b.WriteString("d")
	for i := range n {
		if reverse {
			i = n - 1 - i
		}
		fmt.Fprintf(&b, "%s%s", bs(fmt.Sprintf("k%03d", i)), "li"+fmt.Sprint(i)+"ee")
	}
	b.WriteString("e")
	return b.String()
}

func bigDictValue(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("k%03d", i)] = []any{int64(i)}
	}
	return m
}

func TestDecodeErrors(t *testing.T) {
	deep := strings.Repeat("l", 1<<20) // 1 MiB of list openers
	tests := []struct {
		name    string
		dec     Decoder
		in      string
		offset  int
		msgPart string
	}{
		// Truncation.
		{"empty input", Decoder{}, "", 0, "unexpected end of input"},
		{"bare i", Decoder{}, "i", 1, "unexpected end of input"},
		{"unterminated int", Decoder{}, "i42", 3, "unexpected end of input"},
		{"bare length", Decoder{}, "1", 1, "unexpected end of input"},
		{"unterminated list", Decoder{}, "l", 1, "unexpected end of input"},
		{"unterminated dict", Decoder{}, "d", 1, "unexpected end of input"},
		{"dict missing value at eof", Decoder{}, "d3:foo", 6, "unexpected end of input"},
		{"unterminated nested", Decoder{}, "d1:al1:b", 8, "unexpected end of input"},

		// Integers.
		{"empty int", Decoder{}, "ie", 0, "integer has no digits"},
		{"sign only", Decoder{}, "i-e", 0, "integer has no digits"},
		{"leading zero", Decoder{}, "i03e", 0, "leading zero"},
		{"double zero", Decoder{}, "i00e", 0, "leading zero"},
		{"negative leading zero", Decoder{}, "i-03e", 0, "leading zero"},
		{"negative zero", Decoder{}, "i-0e", 0, "negative zero"},
		{"int64 max+1", Decoder{}, "i9223372036854775808e", 0, "overflows int64"},
		{"int64 min-1", Decoder{}, "i-9223372036854775809e", 0, "overflows int64"},
		{"huge int", Decoder{}, "i" + strings.Repeat("9", 100) + "e", 0, "overflows int64"},
		{"decimal point", Decoder{}, "i1.5e", 2, "unexpected byte '.' in integer"},
		{"plus sign", Decoder{}, "i+1e", 1, "unexpected byte '+' in integer"},
		{"double minus", Decoder{}, "i--1e", 2, "unexpected byte '-' in integer"},
		{"space", Decoder{}, "i 1e", 1, "unexpected byte ' ' in integer"},
		{"binary in int", Decoder{}, "i1\xffe", 2, "unexpected byte 0xff in integer"},
		{"nested bad int", Decoder{}, "d3:fooi01ee", 6, "leading zero"},

		// String lengths.
		{"length leading zero", Decoder{}, "01:a", 0, "string length has a leading zero"},
		{"length double zero", Decoder{}, "00:", 0, "string length has a leading zero"},
		{"length too long", Decoder{}, "5:abc", 0, "exceeds remaining input of 3 bytes"},
		{"nested length too long", Decoder{}, "l5:abce", 1, "exceeds remaining input"},
		{"length missing colon", Decoder{}, "1a", 1, "unexpected byte 'a' in string length"},
		{"length overflow", Decoder{}, "99999999999999999999:", 0, "string length overflows"},
		{"length over limit", Decoder{MaxStringLen: 3}, "4:spam", 0, "exceeds limit of 3"},
		{"key over limit", Decoder{MaxStringLen: 3}, "d3:abc4:wxyze", 6, "exceeds limit of 3"},
		{"negative length", Decoder{}, "-1:a", 0, "unexpected byte '-'"},

		// Structure.
		{"unknown type byte", Decoder{}, "x", 0, "unexpected byte 'x', expected a value"},
		{"unknown byte in list", Decoder{}, "li1ex", 4, "unexpected byte 'x'"},
		{"binary type byte", Decoder{}, "\x00", 0, "unexpected byte 0x00"},
		{"stray e", Decoder{}, "e", 0, "outside any list or dictionary"},
		{"trailing data", Decoder{}, "i1ei2e", 3, "trailing data"},
		{"trailing after string", Decoder{}, "4:spamx", 6, "trailing data"},
		{"trailing e", Decoder{}, "lee", 2, "trailing data"},
		{"integer key", Decoder{}, "di1ei2ee", 1, "dictionary key must be a byte string, found an integer"},
		{"list key", Decoder{}, "dlei1ee", 1, "found a list"},
		{"dict key", Decoder{}, "ddei1ee", 1, "found a dictionary"},
		{"missing value", Decoder{}, "d3:fooe", 6, "dictionary key at offset 1 has no value"},
		{"duplicate key", Decoder{}, "d1:ai1e1:ai2ee", 7, `duplicate dictionary key "a"`},
		{"duplicate key, unsorted", Decoder{}, "d1:bi1e1:ai2e1:bi3ee", 13, `duplicate dictionary key "b"`},
		{"duplicate key before later error", Decoder{}, "d1:ai1e1:ai01ee", 7, "duplicate"},
		{"duplicate key in big dict", Decoder{}, bigDict(40, false)[:len(bigDict(40, false))-1] + bs("k007") + "i1ee", len(bigDict(40, false)) - 1, `duplicate dictionary key "k007"`},
		{"nested duplicate key", Decoder{}, "ld1:xi1e1:xi1eee", 8, "duplicate"},

		// Depth.
		{"too deep", Decoder{}, strings.Repeat("l", DefaultMaxDepth+1) + strings.Repeat("e", DefaultMaxDepth+1), DefaultMaxDepth, "nesting depth exceeds limit of 32"},
		{"1 MiB of l", Decoder{}, deep, DefaultMaxDepth, "nesting depth exceeds limit"},
		{"1 MiB of l, generous limit", Decoder{MaxDepth: 1 << 30}, deep, 1 << 20, "unexpected end of input"},
		{"custom depth", Decoder{MaxDepth: 2}, "llleee", 2, "nesting depth exceeds limit of 2"},
		{"custom depth dicts", Decoder{MaxDepth: 2}, "d1:ad1:bd1:ci1eeee", 8, "nesting depth exceeds limit of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.dec.Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%.40q) = %#v, want error", tt.in, v)
			}
			if v != nil {
				t.Errorf("Decode returned value %#v alongside error", v)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is %T, want *SyntaxError", err, err)
			}
			if se.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d (%v)", se.Offset, tt.offset, err)
			}
			if !strings.Contains(se.Msg, tt.msgPart) {
				t.Errorf("Msg = %q, want it to contain %q", se.Msg, tt.msgPart)
			}
			if want := fmt.Sprintf("at offset %d", se.Offset); !strings.HasSuffix(err.Error(), want) {
				t.Errorf("Error() = %q, want suffix %q", err.Error(), want)
			}
		})
	}
}

func TestSyntaxErrorString(t *testing.T) {
	_, err := Decode([]byte("i03e"))
	if got, want := err.Error(), "bencode: integer has a leading zero at offset 0"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestDuplicateKeyMessageTruncated(t *testing.T) {
	k := strings.Repeat("k", 1000)
	_, err := Decode([]byte("d" + bs(k) + "i1e" + bs(k) + "i2ee"))
	var se *SyntaxError
	if !errors.As(err, &se) || len(se.Msg) > 200 {
		t.Fatalf("want short duplicate-key error, got %v", err)
	}
}

func TestDecodeDict(t *testing.T) {
	m, err := DecodeDict([]byte("d7:command4:ping7:call-id3:abce"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"command": "ping", "call-id": "abc"}; !reflect.DeepEqual(m, want) {
		t.Fatalf("got %#v, want %#v", m, want)
	}

	for _, tc := range []struct {
		in, msgPart string
		offset      int
	}{
		{"l4:pinge", "top-level value is a list, expected a dictionary", 0},
		{"i1e", "top-level value is an integer", 0},
		{"4:ping", "top-level value is a byte string", 0},
		{"x", "top-level value is byte 'x'", 0},
		{"", "unexpected end of input", 0},
		{"d4:ping", "unexpected end of input", 7},
		{"dei1e", "trailing data", 2},
		// A miscounted key length ("call-id" is 7 bytes, not 8) swallows
		// the following length digit and leaves a stray ':'.
		{"d7:command4:ping8:call-id3:abce", "unexpected byte ':', expected a value", 26},
	} {
		m, err := DecodeDict([]byte(tc.in))
		var se *SyntaxError
		if !errors.As(err, &se) || m != nil {
			t.Errorf("DecodeDict(%q) = %v, %v; want nil, *SyntaxError", tc.in, m, err)
			continue
		}
		if se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msgPart) {
			t.Errorf("DecodeDict(%q) error = %v, want %q at offset %d", tc.in, err, tc.msgPart, tc.offset)
		}
	}

	d := Decoder{MaxStringLen: 2}
	if _, err := d.DecodeDict([]byte("d7:command4:pinge")); err == nil {
		t.Error("Decoder.DecodeDict ignored MaxStringLen")
	}
}

func TestNilDecoderUsesDefaults(t *testing.T) {
	var d *Decoder
	if v, err := d.Decode([]byte("i1e")); err != nil || v != int64(1) {
		t.Fatalf("nil Decoder: %v, %v", v, err)
	}
}

// TestDecodeCopiesInput checks that decoded strings do not alias the input
// buffer, which ng servers reuse for the next datagram.
func TestDecodeCopiesInput(t *testing.T) {
	buf := []byte("d3:key5:valuee")
	m, err := DecodeDict(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'X'
	}
	if !reflect.DeepEqual(m, map[string]any{"key": "value"}) {
		t.Fatalf("decoded value changed with input buffer: %#v", m)
	}
}

// TestDecodeResultsIndependent checks that pooled scratch space never leaks
// between results: earlier results stay intact after later decodes, also
// after a failed decode left the scratch stacks half full.
func TestDecodeResultsIndependent(t *testing.T) {
	first, err := Decode([]byte("ll1:a1:bed1:xl1:ceee"))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{[]any{"a", "b"}, map[string]any{"x": []any{"c"}}}
	if _, err := Decode([]byte("ll1:x1:yd1:zl1:w")); err == nil {
		t.Fatal("want error for truncated input")
	}
	second, err := Decode([]byte("l1:pe"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, want) || !reflect.DeepEqual(second, []any{"p"}) {
		t.Fatalf("results interfere: %#v, %#v", first, second)
	}
}

func TestDecodeConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				m, err := DecodeDict([]byte(offerMsg))
				if err != nil || !reflect.DeepEqual(m, offerValue) {
					t.Errorf("concurrent decode: %v", err)
					return
				}
				if _, err := Decode([]byte("d1:al1:b")); err == nil {
					t.Error("want error")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestReleaseDropsReferences(t *testing.T) {
	for _, msg := range []string{offerMsg, bigDict(40, false), "d1:ad1:bi1eee", "d1:al1:x"} {
		st := &state{s: msg, maxDepth: DefaultMaxDepth, maxStr: len(msg)}
		st.run()
		st.release()
		for i, f := range st.frames[:cap(st.frames)] {
			if f.m != nil || f.key != "" || f.dict || f.start != 0 || f.keyOff != 0 || f.haveKey {
				t.Fatalf("%.20q: frame %d not cleared: %+v", msg, i, f)
			}
		}
		for _, v := range st.vals[:cap(st.vals)] {
			if v != nil {
				t.Fatalf("%.20q: list scratch not cleared", msg)
			}
		}
		for _, e := range st.kv[:cap(st.kv)] {
			if e.key != "" || e.val != nil {
				t.Fatalf("%.20q: dict scratch not cleared", msg)
			}
		}
		if st.s != "" || st.chunk != nil {
			t.Fatalf("%.20q: input or chunk retained", msg)
		}
	}
}
