// Package ng is rtpengine's ng control protocol: the message codec (a cookie,
// then a bencode or JSON dictionary), one dispatcher for every transport, the
// commands that drive the media engine, and the UDP, HTTP and WebSocket
// transports. rtpengine's docs/ng_control_protocol.md is the reference.
package ng

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/rtcgate/rtcgate/internal/bencode"
)

// Encoding is how a dictionary is written on the wire; a reply always uses
// the request's.
type Encoding uint8

const (
	Bencode Encoding = iota
	JSON
)

// SplitCookie separates "<cookie> <dictionary>". A message without the
// space, or with an empty cookie, has no cookie.
func SplitCookie(msg []byte) (cookie, body []byte, ok bool) {
	i := bytes.IndexByte(msg, ' ')
	if i <= 0 {
		return nil, nil, false
	}
	return msg[:i], msg[i+1:], true
}

// maxJSONDepth bounds JSON nesting like bencode.DefaultMaxDepth bounds
// bencode: ng dictionaries are shallow.
const maxJSONDepth = bencode.DefaultMaxDepth

var errBadData = errors.New("Invalid NG data format")

// Decode reads a dictionary in either encoding: bencode when it starts with
// 'd', JSON when it starts with '{'.
func Decode(body []byte) (map[string]any, Encoding, error) {
	// Surrounding white space is forgiven: `echo ... | nc -u` adds a newline.
	body = bytes.Trim(body, " \t\r\n")
	switch {
	case len(body) > 0 && body[0] == 'd':
		d, err := bencode.DecodeDict(body)
		if err != nil {
			return nil, Bencode, fmt.Errorf("%w: %v", errBadData, err)
		}
		return d, Bencode, nil
	case len(body) > 0 && body[0] == '{':
		d, err := decodeJSON(body)
		if err != nil {
			return nil, JSON, fmt.Errorf("%w: %v", errBadData, err)
		}
		return d, JSON, nil
	}
	return nil, Bencode, errBadData
}

// decodeJSON maps JSON onto bencode's value model (string, int64, []any,
// map[string]any) so that the dispatcher sees one shape. Booleans become 1
// or 0 and non-integral numbers their decimal text, as bencode has neither.
func decodeJSON(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	// Fix: dec.More() reports false for a trailing '}' or ']', so
	// `{"command":"ping"}}` used to be accepted; everything after the
	// object must be JSON whitespace.
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("trailing data after the JSON object")
	}
	conv, err := fromJSON(v, 0)
	if err != nil {
		return nil, err
	}
	m, ok := conv.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func fromJSON(v any, depth int) (any, error) {
	switch v.(type) {
	case []any, map[string]any:
		// Fix: count containers only, as bencode's limit does (the
		// top-level object is the first of at most maxJSONDepth). The old
		// check counted scalars too and let an empty container one level
		// deeper through.
		if depth >= maxJSONDepth {
			return nil, errors.New("JSON nested too deeply")
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		return x.String(), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case nil:
		return "", nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := fromJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := fromJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected JSON value %T", v)
}

// Encode writes a reply dictionary in the given encoding.
func Encode(dst []byte, reply *bencode.Dict, enc Encoding) ([]byte, error) {
	if enc == JSON {
		return appendJSON(dst, reply)
	}
	return bencode.Append(dst, reply)
}

// appendJSON writes the bencode value model as JSON, keeping a Dict's key
// order as the bencode encoder does.
func appendJSON(dst []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case string:
		return appendJSONString(dst, x), nil
	case []byte:
		return appendJSONString(dst, string(x)), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("JSON cannot carry NaN or infinity")
		}
		return strconv.AppendFloat(dst, x, 'f', -1, 64), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendJSON(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, e)
		}
		return append(dst, ']'), nil
	case *bencode.Dict:
		dst = append(dst, '{')
		for i, k := range x.Keys() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			val, _ := x.Get(k)
			if dst, err = appendJSON(dst, val); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			if dst, err = appendJSON(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	return nil, fmt.Errorf("cannot encode %T as JSON", v)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as JSON does; bytes that are not UTF-8 become
// U+FFFD, as encoding/json does, since JSON text cannot carry them.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
