// Package bencode is a strict, allocation-conscious bencode codec for
// rtpengine's "ng" control protocol, where every request and reply is a
// bencoded dictionary such as
//
//	d7:command4:ping7:call-id3:abce
//
// Decoded values use a small, fixed model so callers can type-switch without
// reflection:
//
//	byte string → string
//	integer     → int64
//	list        → []any
//	dictionary  → map[string]any
//
// The decoder is strict because its input arrives from the network: it rejects
// every non-canonical number form, duplicate dictionary keys, trailing bytes,
// and nesting beyond a configurable depth, and reports each problem as a
// *SyntaxError carrying the byte offset. The one deliberate leniency is that
// dictionary keys may appear in any order, because ng clients do not sort
// them.
//
// The encoder writes map keys in sorted (canonical) order and Dict keys in
// insertion order, the latter matching what rtpengine itself emits.
package bencode

import "strconv"

// DefaultMaxDepth is the nesting limit used by Decode, DecodeDict and a
// Decoder whose MaxDepth is not positive. ng messages nest at most three or
// four levels (a dictionary holding lists such as "flags" or "replace"), so 32
// leaves ample room while bounding the decoder's work on hostile input.
const DefaultMaxDepth = 32

// SyntaxError describes malformed or rejected bencode input. It is the only
// error type returned by the decoding functions, so callers can log Offset to
// locate the problem in a captured packet.
type SyntaxError struct {
	// Offset is the zero-based byte offset in the input where the problem
	// was detected: the start of the offending value for value-level
	// problems (bad integer, over-long string, duplicate key), the
	// offending byte for character-level problems, and len(input) for a
	// truncated message.
	Offset int
	// Msg describes the problem without the offset.
	Msg string
}

// Error implements the error interface.
func (e *SyntaxError) Error() string {
	return "bencode: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}
