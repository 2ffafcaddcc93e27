package bencode

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// isCanonical reports whether data, which must already be known to decode
// successfully, is in canonical form: every dictionary's keys appear in
// strictly increasing byte order. The strict decoder already rejects every
// other non-canonical spelling (leading zeros, -0, trailing data), so key
// order is the only way valid input can differ from what Marshal emits for
// its decoded value. It is an independent byte scanner on purpose, so it
// does not share bugs with the decoder under test.
func isCanonical(data []byte) bool {
	_, ok := canonicalAt(data, 0)
	return ok
}

// canonicalAt scans the value at data[i:] and returns the offset after it.
func canonicalAt(data []byte, i int) (int, bool) {
	switch c := data[i]; {
	case c == 'i':
		return bytes.IndexByte(data[i:], 'e') + i + 1, true
	case c == 'l':
		i++
		for data[i] != 'e' {
			var ok bool
			if i, ok = canonicalAt(data, i); !ok {
				return 0, false
			}
		}
		return i + 1, true
	case c == 'd':
		i++
		var prev []byte
		first := true
		for data[i] != 'e' {
			key, next := stringAt(data, i)
			if !first && bytes.Compare(prev, key) >= 0 {
				return 0, false
			}
			prev, first = key, false
			var ok bool
			if i, ok = canonicalAt(data, next); !ok {
				return 0, false
			}
		}
		return i + 1, true
	default:
		_, next := stringAt(data, i)
		return next, true
	}
}

// stringAt returns the byte string at data[i:] and the offset after it.
func stringAt(data []byte, i int) ([]byte, int) {
	colon := bytes.IndexByte(data[i:], ':') + i
	n := 0
	for _, c := range data[i:colon] {
		n = n*10 + int(c-'0')
	}
	return data[colon+1 : colon+1+n], colon + 1 + n
}

func FuzzDecode(f *testing.F) {
	seeds := []string{
		// Valid.
		"d7:command4:ping7:call-id3:abce",
		"d7:command4:pinge",
		"d6:result4:ponge",
		"d3:bar4:spam3:fooi42ee",
		"d3:fooi42e3:bar4:spame", // unsorted keys
		"l4:spami42ee",
		"i-9223372036854775808e",
		"i9223372036854775807e",
		"0:",
		"le",
		"de",
		"d1:ald1:xli1ei2eeed1:yleee1:bdee",
		offerMsg,
		bigDict(20, true),
		strings.Repeat("l", DefaultMaxDepth) + strings.Repeat("e", DefaultMaxDepth),
		// Invalid.
		"d7:command4:ping8:call-id3:abce", // miscounted key length: "call-id" is 7 bytes
		"",
		"i03e",
		"i-0e",
		"ie",
		"i9223372036854775808e",
		"01:a",
		"5:abc",
		"99999999999999999999:",
		"d1:ai1e1:ai2ee",
		"di1ei2ee",
		"d3:fooe",
		"i1ei2e",
		"x",
		strings.Repeat("l", DefaultMaxDepth+1),
		offerMsg[:len(offerMsg)-1],
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	limited := Decoder{MaxDepth: 3, MaxStringLen: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)

		// Tighter limits may only turn successes into failures.
		lv, lerr := limited.Decode(data)
		if lerr == nil && (err != nil || !reflect.DeepEqual(lv, v)) {
			t.Fatalf("limited decoder accepted %q (%#v) but default gave %#v, %v", data, lv, v, err)
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is %T, want *SyntaxError", err, err)
			}
			if se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("error offset %d outside input of %d bytes", se.Offset, len(data))
			}
			if v != nil {
				t.Fatalf("value %#v returned with error", v)
			}
			return
		}

		out, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal of decoded %q: %v", data, err)
		}
		v2, err := Decode(out)
		if err != nil {
			t.Fatalf("Decode of re-marshaled %q: %v", out, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip differs: %#v vs %#v", v, v2)
		}
		if !isCanonical(out) {
			t.Fatalf("Marshal output %q is not canonical", out)
		}
		if isCanonical(data) && !bytes.Equal(data, out) {
			t.Fatalf("canonical input %q re-encoded as %q", data, out)
		}
		if _, isDict := v.(map[string]any); isDict {
			if _, err := DecodeDict(data); err != nil {
				t.Fatalf("DecodeDict rejected a dictionary: %v", err)
			}
		}
	})
}
