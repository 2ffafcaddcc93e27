package bencode

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// maxEncodeDepth bounds recursion in the encoder. Go maps and slices can
// contain themselves, and an unbounded recursion on such a cycle would crash
// the process with a stack overflow instead of returning an error. The limit
// is far above anything a reply needs.
const maxEncodeDepth = 10000

var errEncodeDepth = errors.New("bencode: value nests deeper than " + strconv.Itoa(maxEncodeDepth) + " levels (cyclic?)")

// Append appends the bencoding of v to dst and returns the extended slice.
// Append itself does not allocate beyond growing dst (maps of more than 16
// keys need a heap slice to sort their keys), so reusing dst across calls
// makes encoding allocation-free.
//
// Supported types, also when nested inside lists and dictionaries:
//   - string and []byte → byte string
//   - int, int8…int64, uint, uint8…uint64, uintptr → integer; unsigned
//     values above math.MaxInt64 are an error because Decode, like most
//     bencode peers, reads integers as signed 64-bit and could not read them
//     back
//   - bool → integer 1 or 0, because bencode has no boolean type and 1/0 is
//     the conventional mapping; it decodes back as int64, not bool
//   - []any, []string, []map[string]any → list
//   - map[string]any, map[string]string → dictionary with keys in sorted
//     byte order, the canonical bencode form
//   - Dict, *Dict → dictionary with keys in insertion order
//
// Any other type (nil, floats, structs, pointers other than *Dict, …) is an
// error naming the type. On error dst is returned with its original length.
func Append(dst []byte, v any) ([]byte, error) {
	out, err := appendValue(dst, v, 0)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// marshalBufs recycles Marshal's working buffers, so that Marshal costs one
// exact-size allocation for its result instead of a series of growths.
var marshalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledBuf keeps a rare huge message from pinning a huge buffer in the
// pool.
const maxPooledBuf = 64 << 10

// Marshal returns the bencoding of v. See Append for supported types.
func Marshal(v any) ([]byte, error) {
	bp := marshalBufs.Get().(*[]byte)
	b, err := Append((*bp)[:0], v)
	var out []byte
	if err == nil {
		out = append(make([]byte, 0, len(b)), b...)
	}
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		marshalBufs.Put(bp)
	}
	return out, err
}

func appendString(dst []byte, s string) []byte {
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

func appendUint(dst []byte, n uint64) ([]byte, error) {
	if n > math.MaxInt64 {
		return dst, fmt.Errorf("bencode: unsigned integer %d exceeds int64 range", n)
	}
	return appendInt(dst, int64(n)), nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendString(dst, x), nil
	case []byte:
		dst = strconv.AppendInt(dst, int64(len(x)), 10)
		dst = append(dst, ':')
		return append(dst, x...), nil
	case int64:
		return appendInt(dst, x), nil
	case int:
		return appendInt(dst, int64(x)), nil
	case int32:
		return appendInt(dst, int64(x)), nil
	case int16:
		return appendInt(dst, int64(x)), nil
	case int8:
		return appendInt(dst, int64(x)), nil
	case uint64:
		return appendUint(dst, x)
	case uint:
		return appendUint(dst, uint64(x))
	case uintptr:
		return appendUint(dst, uint64(x))
	case uint32:
		return appendInt(dst, int64(x)), nil
	case uint16:
		return appendInt(dst, int64(x)), nil
	case uint8:
		return appendInt(dst, int64(x)), nil
	case bool:
		if x {
			return append(dst, "i1e"...), nil
		}
		return append(dst, "i0e"...), nil
	case []string:
		dst = append(dst, 'l')
		for _, s := range x {
			dst = appendString(dst, s)
		}
		return append(dst, 'e'), nil
	case map[string]string:
		return appendStringMap(dst, x), nil
	}

	// Container types that recurse.
	if depth >= maxEncodeDepth {
		return dst, errEncodeDepth
	}
	var err error
	switch x := v.(type) {
	case []any:
		dst = append(dst, 'l')
		for _, e := range x {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case []map[string]any:
		dst = append(dst, 'l')
		for _, m := range x {
			if dst, err = appendMap(dst, m, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		return appendMap(dst, x, depth)
	case *Dict:
		if x == nil {
			return dst, errors.New("bencode: cannot encode nil *Dict")
		}
		return appendDict(dst, x, depth)
	case Dict:
		return appendDict(dst, &x, depth)
	case nil:
		return dst, errors.New("bencode: cannot encode nil")
	}
	return dst, fmt.Errorf("bencode: unsupported type %T", v)
}

// sortedKeys returns m's keys in sorted order, using buf as backing storage
// when it is large enough so typical small maps need no heap allocation.
func sortedKeys[V any](buf []string, m map[string]V) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendMap(dst []byte, m map[string]any, depth int) ([]byte, error) {
	var buf [16]string
	keys := sortedKeys(buf[:], m)
	dst = append(dst, 'd')
	var err error
	for _, k := range keys {
		dst = appendString(dst, k)
		if dst, err = appendValue(dst, m[k], depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, 'e'), nil
}

func appendStringMap(dst []byte, m map[string]string) []byte {
	var buf [16]string
	keys := sortedKeys(buf[:], m)
	dst = append(dst, 'd')
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, m[k])
	}
	return append(dst, 'e')
}

func appendDict(dst []byte, d *Dict, depth int) ([]byte, error) {
	dst = append(dst, 'd')
	var err error
	for i := range d.entries {
		e := &d.entries[i]
		dst = appendString(dst, e.key)
		if dst, err = appendValue(dst, e.val, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, 'e'), nil
}
