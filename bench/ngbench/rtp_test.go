package main

import (
	"encoding/binary"
	"testing"
)

func TestRTPRoundTrip(t *testing.T) {
	b := make([]byte, rtpPacketLen)
	for i := range b {
		b[i] = 0xff // encodeRTP must overwrite every header and probe byte
	}
	encodeRTP(b, 499, dirToCaller, 70000)
	stampSendTime(b, 123456789012)

	if b[0] != 0x80 || b[1] != 0 {
		t.Fatalf("first bytes %#x %#x, want V=2 PT=0 no marker", b[0], b[1])
	}
	if seq := binary.BigEndian.Uint16(b[2:]); seq != 70000&0xffff {
		t.Fatalf("RTP seq %d, want %d", seq, 70000&0xffff)
	}
	if ssrc := binary.BigEndian.Uint32(b[8:]); ssrc != streamSSRC(499, dirToCaller) {
		t.Fatalf("SSRC %#x", ssrc)
	}
	if streamSSRC(499, dirToCaller) == streamSSRC(499, dirToCallee) {
		t.Fatal("both directions share an SSRC")
	}
	p, ok := decodeProbe(b)
	if !ok {
		t.Fatal("decodeProbe rejected our own packet")
	}
	want := probe{call: 499, dir: dirToCaller, seq: 70000, sendNs: 123456789012}
	if p != want {
		t.Fatalf("decoded %+v, want %+v", p, want)
	}

	// Timestamps advance by 160 per packet (8 kHz, 20 ms).
	c := make([]byte, rtpPacketLen)
	encodeRTP(c, 499, dirToCaller, 70001)
	if d := binary.BigEndian.Uint32(c[4:]) - binary.BigEndian.Uint32(b[4:]); d != 160 {
		t.Fatalf("timestamp step %d, want 160", d)
	}
	encodeRTP(c, 1, dirToCallee, 0)
	if c[1]&0x80 == 0 {
		t.Fatal("first packet has no marker bit")
	}
}

func TestDecodeProbeRejectsForeign(t *testing.T) {
	b := make([]byte, rtpPacketLen)
	encodeRTP(b, 1, dirToCallee, 1)
	cases := map[string][]byte{
		"short":     b[:rtpPacketLen-1],
		"long":      append(append([]byte{}, b...), 0),
		"version 1": func() []byte { c := append([]byte{}, b...); c[0] = 0x40; return c }(),
		"magic":     func() []byte { c := append([]byte{}, b...); c[offMagic] ^= 1; return c }(),
		"direction": func() []byte { c := append([]byte{}, b...); c[offDir] = 7; return c }(),
	}
	for name, pkt := range cases {
		if _, ok := decodeProbe(pkt); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
