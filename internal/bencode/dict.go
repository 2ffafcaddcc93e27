package bencode

// Dict is an insertion-ordered dictionary for building replies. Encoding a
// Go map has to collect and sort its keys; a Dict is encoded straight from a
// slice in the order keys were first set, which is also the order rtpengine
// uses in its own replies (its clients accept any order).
//
// The zero value is an empty Dict ready to use. Lookups are linear scans,
// which beats hashing for the dozen or so keys of an ng reply; Dict is not
// meant for large dictionaries. Like a slice, a Dict shares its storage when
// copied, so pass *Dict around. A Dict is not safe for concurrent mutation.
type Dict struct {
	entries []dictEntry
}

type dictEntry struct {
	key string
	val any
}

// Set sets key to v. A new key is appended at the end; an existing key keeps
// its position and only its value changes, so building a reply and then
// overriding a field (say "result") does not reorder it.
func (d *Dict) Set(key string, v any) {
	if i := d.index(key); i >= 0 {
		d.entries[i].val = v
		return
	}
	d.entries = append(d.entries, dictEntry{key, v})
}

// Get returns the value stored under key and whether it was present.
func (d *Dict) Get(key string) (any, bool) {
	if i := d.index(key); i >= 0 {
		return d.entries[i].val, true
	}
	return nil, false
}

// Len returns the number of keys in d.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.entries)
}

// Keys returns d's keys in insertion order, in a new slice the caller may
// modify.
func (d *Dict) Keys() []string {
	if d == nil {
		return nil
	}
	keys := make([]string, len(d.entries))
	for i, e := range d.entries {
		keys[i] = e.key
	}
	return keys
}

func (d *Dict) index(key string) int {
	if d == nil {
		return -1
	}
	for i := range d.entries {
		if d.entries[i].key == key {
			return i
		}
	}
	return -1
}
