package main

import (
	"encoding/binary"
	"time"
)

// Media packets are what a G.711 phone sends every 20 ms: a 12-byte RTP
// header and 160 bytes of payload. The payload carries what the receiver
// needs to attribute and time each packet without any shared state with the
// sender: a magic number (to ignore anything else arriving on the socket),
// the call index, the direction, a 32-bit sequence number and the send time.
const (
	rtpHeaderLen  = 12
	rtpPayloadLen = 160
	rtpPacketLen  = rtpHeaderLen + rtpPayloadLen

	probeMagic = 0x4e474221 // "NGB!"

	offMagic  = rtpHeaderLen + 0
	offCall   = rtpHeaderLen + 4
	offDir    = rtpHeaderLen + 8
	offSeq    = rtpHeaderLen + 12
	offSendNs = rtpHeaderLen + 16
)

// Directions of a call's media.
const (
	dirToCallee = 0 // caller → relay → callee
	dirToCaller = 1 // callee → relay → caller
)

// monoBase anchors mono(): durations since it come from Go's monotonic
// clock, so send and receive times compare correctly in this one process
// even if the wall clock is stepped.
var monoBase = time.Now()

// mono is nanoseconds on the monotonic clock since program start.
func mono() int64 { return int64(time.Since(monoBase)) }

// streamSSRC gives each (call, direction) its own SSRC, as two phones would
// have, so a relay that tracks SSRCs sees distinct streams.
func streamSSRC(call uint32, dir uint8) uint32 {
	return (call*2+uint32(dir))*2654435761 + 0x1234567
}

// encodeRTP writes a whole packet for packet number seq of a stream into b
// (len ≥ rtpPacketLen); the send time is stamped later by stampSendTime,
// right before the packet goes to the kernel.
func encodeRTP(b []byte, call uint32, dir uint8, seq uint32) {
	ssrc := streamSSRC(call, dir)
	b[0] = 0x80 // V=2, no padding, no extension, no CSRC
	b[1] = 0    // PT 0 (PCMU)
	if seq == 0 {
		b[1] |= 0x80 // marker on the first packet of a talk spurt
	}
	binary.BigEndian.PutUint16(b[2:], uint16(seq))
	binary.BigEndian.PutUint32(b[4:], ssrc^0x5a5a5a5a+seq*160) // 8 kHz × 20 ms
	binary.BigEndian.PutUint32(b[8:], ssrc)
	binary.BigEndian.PutUint32(b[offMagic:], probeMagic)
	binary.BigEndian.PutUint32(b[offCall:], call)
	b[offDir] = dir
	b[offDir+1], b[offDir+2], b[offDir+3] = 0, 0, 0
	binary.BigEndian.PutUint32(b[offSeq:], seq)
	binary.BigEndian.PutUint64(b[offSendNs:], 0)
	// The rest of the payload is left as it is: the relay must not care.
}

// stampSendTime writes the send time into an encoded packet.
func stampSendTime(b []byte, ns int64) {
	binary.BigEndian.PutUint64(b[offSendNs:], uint64(ns))
}

// probe is what a receiver reads back from a packet.
type probe struct {
	call   uint32
	dir    uint8
	seq    uint32
	sendNs int64
}

// decodeProbe parses a received packet; ok is false for anything that is
// not one of ours (wrong size, not RTP version 2, wrong magic).
func decodeProbe(b []byte) (p probe, ok bool) {
	if len(b) != rtpPacketLen || b[0]>>6 != 2 || binary.BigEndian.Uint32(b[offMagic:]) != probeMagic {
		return probe{}, false
	}
	p.call = binary.BigEndian.Uint32(b[offCall:])
	p.dir = b[offDir]
	p.seq = binary.BigEndian.Uint32(b[offSeq:])
	p.sendNs = int64(binary.BigEndian.Uint64(b[offSendNs:]))
	return p, p.dir <= dirToCaller
}
