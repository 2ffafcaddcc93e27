package bencode

import "testing"

func BenchmarkDecodeOffer(b *testing.B) {
	msg := []byte(offerMsg)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := DecodeDict(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePing(b *testing.B) {
	msg := []byte("d7:command4:ping7:call-id3:abce")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeDict(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalReply measures encoding a typical offer reply into a fresh
// slice, as handed to the network layer.
func BenchmarkMarshalReply(b *testing.B) {
	d := replyDict()
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

// BenchmarkBuildAndMarshalReply adds building the reply Dict, the full
// per-request encoding cost in the dispatcher.
func BenchmarkBuildAndMarshalReply(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(replyDict()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendReply isolates the encoder: a prebuilt reply appended into
// a reused buffer.
func BenchmarkAppendReply(b *testing.B) {
	d := replyDict()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], d); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}
