package bencode

import (
	"math"
	"strconv"
	"sync"
)

// Decoder decodes bencode with configurable limits. The zero value is ready
// to use and behaves like the package-level functions. A Decoder holds no
// per-call state, so one value may be shared by many goroutines.
type Decoder struct {
	// MaxDepth is the maximum number of nested lists and dictionaries
	// (a top-level dictionary is depth 1; strings and integers do not
	// count). Values <= 0 mean DefaultMaxDepth.
	MaxDepth int
	// MaxStringLen is the maximum length of any single byte string,
	// including dictionary keys. Values <= 0 mean no limit beyond the
	// size of the input, which already bounds every string.
	MaxStringLen int
}

// Decode decodes exactly one bencoded value from data using the default
// limits. Trailing bytes after the value are an error. Any error is a
// *SyntaxError.
//
// The decoded strings share one copy of data (it is converted to a string
// once, not once per value), which is what keeps decoding cheap. The flip
// side is that keeping any decoded string alive keeps that whole copy alive;
// use strings.Clone on small pieces (such as a call-id) that are stored for
// the lifetime of a call.
func Decode(data []byte) (any, error) {
	var d Decoder
	return d.Decode(data)
}

// DecodeDict is like Decode but requires the top-level value to be a
// dictionary, which every ng request is. It checks the first byte before
// decoding, so non-dictionary input is rejected without further work.
func DecodeDict(data []byte) (map[string]any, error) {
	var d Decoder
	return d.DecodeDict(data)
}

// Decode decodes exactly one bencoded value from data, enforcing d's
// limits. See the package-level Decode for the value model and memory
// sharing.
func (d *Decoder) Decode(data []byte) (any, error) {
	maxDepth, maxStr := DefaultMaxDepth, len(data)
	if d != nil {
		if d.MaxDepth > 0 {
			maxDepth = d.MaxDepth
		}
		if d.MaxStringLen > 0 && d.MaxStringLen < maxStr {
			maxStr = d.MaxStringLen
		}
	}
	st := statePool.Get().(*state)
	st.s, st.pos, st.maxDepth, st.maxStr = string(data), 0, maxDepth, maxStr
	v, err := st.run()
	st.release()
	return v, err
}

// DecodeDict is like Decode but requires the top-level value to be a
// dictionary. It exists on Decoder too so a dispatcher with custom limits
// does not have to repeat the type check.
func (d *Decoder) DecodeDict(data []byte) (map[string]any, error) {
	if len(data) > 0 && data[0] != 'd' {
		return nil, &SyntaxError{Offset: 0, Msg: "top-level value is " + describe(data[0]) + ", expected a dictionary"}
	}
	v, err := d.Decode(data)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// smallDictMax is the number of entries up to which a dictionary being
// decoded is kept in the scratch stack, with duplicate keys found by a linear
// scan. ng dictionaries are mostly this small, and collecting entries first
// lets the final map be allocated at its exact size. Larger dictionaries
// switch to a real map so duplicate detection stays linear overall instead
// of quadratic on hostile input.
const smallDictMax = 16

// maxPooledScratch caps the scratch stacks a state may keep when it goes back
// to the pool, so one huge message does not pin memory forever.
const maxPooledScratch = 1024

// listChunk is the number of list slots allocated at once for small lists;
// see closeList.
const listChunk = 32

// kvPair is one decoded dictionary entry waiting on the scratch stack.
type kvPair struct {
	key string
	val any
}

// frame is one open list or dictionary. An explicit stack of frames, rather
// than recursion, makes the depth limit a simple length check and keeps the
// goroutine stack flat however deep the input claims to nest.
type frame struct {
	dict    bool
	start   int            // first index of this container's items in state.vals or state.kv
	m       map[string]any // non-nil once a dictionary outgrows smallDictMax
	key     string         // pending key whose value is being decoded
	keyOff  int            // offset of the pending key, for error messages
	haveKey bool
}

// state is the per-call decoding state. It is pooled so the scratch stacks
// are reused across messages instead of regrown for each one.
type state struct {
	s        string
	pos      int
	maxDepth int
	maxStr   int
	frames   []frame
	vals     []any    // scratch for list items of all open lists
	kv       []kvPair // scratch for entries of all open small dictionaries
	chunk    []any    // unused tail of the current chunk for small lists
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// release clears references held by the scratch stacks (so pooled states do
// not keep decoded values or the message alive) and returns st to the pool.
// It clears up to capacity because popped frames still hold their last key
// and, for large dictionaries, the finished map.
func (st *state) release() {
	clear(st.frames[:cap(st.frames)])
	clear(st.vals[:cap(st.vals)])
	clear(st.kv[:cap(st.kv)])
	st.s = ""
	// The chunk's remaining slots are never shared, but dropping it keeps a
	// list retained from the next message from pinning this one's chunk.
	st.chunk = nil
	if cap(st.frames) > maxPooledScratch || cap(st.vals) > maxPooledScratch || cap(st.kv) > maxPooledScratch {
		return
	}
	st.frames, st.vals, st.kv = st.frames[:0], st.vals[:0], st.kv[:0]
	statePool.Put(st)
}

func (st *state) errAt(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg}
}

func (st *state) errEOF() error {
	return st.errAt(len(st.s), "unexpected end of input")
}

// run decodes one value starting at st.pos and requires it to end the input.
func (st *state) run() (any, error) {
	s := st.s
	for {
		if st.pos >= len(s) {
			return nil, st.errEOF()
		}
		c := s[st.pos]
		top := len(st.frames) - 1
		var v any
		switch {
		case top >= 0 && st.frames[top].dict && !st.frames[top].haveKey:
			// Expecting a key or the end of the dictionary.
			f := &st.frames[top]
			if c == 'e' {
				v = st.closeDict(f)
				st.frames = st.frames[:top]
				st.pos++
				break
			}
			if c < '0' || c > '9' {
				return nil, st.errAt(st.pos, "dictionary key must be a byte string, found "+describe(c))
			}
			off := st.pos
			k, err := st.parseString()
			if err != nil {
				return nil, err
			}
			if st.isDuplicate(f, k) {
				return nil, st.errAt(off, "duplicate dictionary key "+quote(k))
			}
			f.key, f.keyOff, f.haveKey = k, off, true
			continue
		case c >= '0' && c <= '9':
			str, err := st.parseString()
			if err != nil {
				return nil, err
			}
			v = str
		case c == 'i':
			n, err := st.parseInt()
			if err != nil {
				return nil, err
			}
			v = n
		case c == 'l' || c == 'd':
			if len(st.frames) >= st.maxDepth {
				return nil, st.errAt(st.pos, "nesting depth exceeds limit of "+strconv.Itoa(st.maxDepth))
			}
			f := frame{dict: c == 'd', start: len(st.vals)}
			if f.dict {
				f.start = len(st.kv)
			}
			st.frames = append(st.frames, f)
			st.pos++
			continue
		case c == 'e' && top >= 0 && !st.frames[top].dict:
			v = st.closeList(st.frames[top].start)
			st.frames = st.frames[:top]
			st.pos++
		case c == 'e' && top >= 0:
			return nil, st.errAt(st.pos, "dictionary key at offset "+strconv.Itoa(st.frames[top].keyOff)+" has no value")
		case c == 'e':
			return nil, st.errAt(st.pos, "unexpected 'e' outside any list or dictionary")
		default:
			return nil, st.errAt(st.pos, "unexpected "+describe(c)+", expected a value")
		}

		if len(st.frames) == 0 {
			if st.pos != len(s) {
				return nil, st.errAt(st.pos, "trailing data after value")
			}
			return v, nil
		}
		f := &st.frames[len(st.frames)-1]
		if !f.dict {
			st.vals = append(st.vals, v)
			continue
		}
		f.haveKey = false
		if f.m != nil {
			f.m[f.key] = v
			continue
		}
		st.kv = append(st.kv, kvPair{f.key, v})
		if n := len(st.kv) - f.start; n > smallDictMax {
			f.m = make(map[string]any, 2*n)
			for _, e := range st.kv[f.start:] {
				f.m[e.key] = e.val
			}
			clear(st.kv[f.start:])
			st.kv = st.kv[:f.start]
		}
	}
}

// isDuplicate reports whether k was already seen in the dictionary f.
func (st *state) isDuplicate(f *frame, k string) bool {
	if f.m != nil {
		_, dup := f.m[k]
		return dup
	}
	for _, e := range st.kv[f.start:] {
		if e.key == k {
			return true
		}
	}
	return false
}

// closeDict builds the finished dictionary f, sized exactly when it is still
// on the scratch stack.
func (st *state) closeDict(f *frame) map[string]any {
	if f.m != nil {
		return f.m
	}
	entries := st.kv[f.start:]
	m := make(map[string]any, len(entries))
	for _, e := range entries {
		m[e.key] = e.val
	}
	clear(entries)
	st.kv = st.kv[:f.start]
	return m
}

// closeList copies the finished list's items off the scratch stack into a
// slice of exactly the right length and capacity. Small lists are carved
// from a per-message chunk so that the several short lists of an ng request
// ("flags", "replace", "rtcp-mux", …) cost one allocation together. The
// capacity limit keeps an append to one list from overwriting its neighbour.
func (st *state) closeList(start int) []any {
	items := st.vals[start:]
	n := len(items)
	var out []any
	switch {
	case n == 0:
		out = []any{}
	case n > listChunk/2:
		out = make([]any, n)
	default:
		if n > len(st.chunk) {
			st.chunk = make([]any, listChunk)
		}
		out, st.chunk = st.chunk[:n:n], st.chunk[n:]
	}
	copy(out, items)
	clear(items)
	st.vals = st.vals[:start]
	return out
}

// parseString decodes "<len>:<bytes>" at st.pos, whose first byte the caller
// has checked is a digit.
func (st *state) parseString() (string, error) {
	s := st.s
	start := st.pos
	p := start
	n, overflow := 0, false
	for p < len(s) && s[p] >= '0' && s[p] <= '9' {
		d := int(s[p] - '0')
		if n > (math.MaxInt-d)/10 {
			overflow = true
		} else if !overflow {
			n = n*10 + d
		}
		p++
	}
	if p >= len(s) {
		return "", st.errEOF()
	}
	if s[p] != ':' {
		return "", st.errAt(p, "unexpected "+quoteByte(s[p])+" in string length, expected ':'")
	}
	if s[start] == '0' && p-start > 1 {
		return "", st.errAt(start, "string length has a leading zero")
	}
	if overflow {
		return "", st.errAt(start, "string length overflows")
	}
	p++ // skip ':'
	if n > len(s)-p {
		return "", st.errAt(start, "string length "+strconv.Itoa(n)+" exceeds remaining input of "+strconv.Itoa(len(s)-p)+" bytes")
	}
	if n > st.maxStr {
		return "", st.errAt(start, "string length "+strconv.Itoa(n)+" exceeds limit of "+strconv.Itoa(st.maxStr))
	}
	st.pos = p + n
	return s[p : p+n], nil
}

// parseInt decodes "i<digits>e" at st.pos. It accepts exactly the canonical
// decimal form of an int64: optional '-', no leading zeros, no "-0".
func (st *state) parseInt() (int64, error) {
	s := st.s
	start := st.pos
	p := start + 1
	neg := false
	if p < len(s) && s[p] == '-' {
		neg = true
		p++
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // magnitude of math.MinInt64
	}
	digits := p
	var u uint64
	overflow := false
	for p < len(s) && s[p] >= '0' && s[p] <= '9' {
		d := uint64(s[p] - '0')
		if u > (limit-d)/10 {
			overflow = true
		} else if !overflow {
			u = u*10 + d
		}
		p++
	}
	if p >= len(s) {
		return 0, st.errEOF()
	}
	if s[p] != 'e' {
		return 0, st.errAt(p, "unexpected "+quoteByte(s[p])+" in integer")
	}
	switch nd := p - digits; {
	case nd == 0:
		return 0, st.errAt(start, "integer has no digits")
	case s[digits] == '0' && nd > 1:
		return 0, st.errAt(start, "integer has a leading zero")
	case neg && s[digits] == '0':
		return 0, st.errAt(start, "integer is negative zero")
	case overflow:
		return 0, st.errAt(start, "integer overflows int64")
	}
	st.pos = p + 1
	if neg {
		return int64(-u), nil // -u wraps correctly for math.MinInt64
	}
	return int64(u), nil
}

// describe names the value type a byte starts, or quotes the byte, for error
// messages.
func describe(c byte) string {
	switch {
	case c == 'i':
		return "an integer"
	case c == 'l':
		return "a list"
	case c == 'd':
		return "a dictionary"
	case c >= '0' && c <= '9':
		return "a byte string"
	}
	return quoteByte(c)
}

// quoteByte renders a single input byte for an error message; bytes outside
// printable ASCII are shown in hex because the input may be arbitrary binary.
func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "byte '" + string(rune(c)) + "'"
	}
	const hex = "0123456789abcdef"
	return "byte 0x" + string([]byte{hex[c>>4], hex[c&0xf]})
}

// quote quotes a key for an error message, truncating it because keys come
// from the network and may be huge or binary.
func quote(k string) string {
	const max = 64
	if len(k) > max {
		return strconv.Quote(k[:max]) + "..."
	}
	return strconv.Quote(k)
}
