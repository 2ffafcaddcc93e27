package bencode

import "strconv"

// The accessors below fetch typed fields from a decoded ng request. Each
// returns false when the key is absent or holds a different type, so the
// dispatcher can tell "missing" from "wrong type" only where it cares and
// otherwise fall back to a default with a single check.

// String returns m[key] if it is a byte string.
func String(m map[string]any, key string) (string, bool) {
	s, ok := m[key].(string)
	return s, ok
}

// Int returns m[key] as an integer. It accepts a bencode integer or a byte
// string holding a base-10 int64 (as parsed by strconv.ParseInt), because ng
// clients send numeric options both ways.
func Int(m map[string]any, key string) (int64, bool) {
	switch v := m[key].(type) {
	case int64:
		return v, true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// List returns m[key] if it is a list.
func List(m map[string]any, key string) ([]any, bool) {
	l, ok := m[key].([]any)
	return l, ok
}

// Dictionary returns m[key] if it is a dictionary.
func Dictionary(m map[string]any, key string) (map[string]any, bool) {
	d, ok := m[key].(map[string]any)
	return d, ok
}
