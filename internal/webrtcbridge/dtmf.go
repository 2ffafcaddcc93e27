package webrtcbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

var (
	// ErrNoTelephoneEvent is returned by SendDTMF when the plain leg did
	// not negotiate telephone-event: the far end would not understand the
	// events, so the caller should signal the digits another way (SIP
	// INFO).
	ErrNoTelephoneEvent = errors.New("webrtcbridge: no telephone-event on the plain leg")
	// ErrNoMedia is returned by SendDTMF before the browser has sent any
	// audio: the events belong in the browser's stream, and until it
	// exists there is no SSRC, sequence number or timestamp to continue.
	ErrNoMedia = errors.New("webrtcbridge: no audio from the browser yet")
	// ErrBadDigit is returned by SendDTMF for a digit that is not 0-9, *,
	// #, A-D, or for no digits at all.
	ErrBadDigit = errors.New("webrtcbridge: not a DTMF digit")
)

const (
	// eventPacket is the interval between an event's packets, the usual
	// audio packetisation, so the event's updates pace like audio.
	eventPacket = 20 * time.Millisecond
	// digitGap separates consecutive digits, so the receiver sees two
	// events even for a repeated digit; 50 ms is what ITU-T Q.24 receivers
	// expect at least between tones.
	digitGap = 50 * time.Millisecond
	// minEvent and maxEvent bound a digit's duration: receivers ignore
	// tones shorter than about 40 ms, and a longer event would need the
	// RFC 4733 long-event segmentation, which no keypad needs.
	minEvent = 40 * time.Millisecond
	maxEvent = 5 * time.Second
	// endRepeats is how often the end packet goes out (RFC 4733 §2.5.1.4):
	// it is the only packet that says the event is over, so it is
	// repeated against loss.
	endRepeats = 3
	// eventVolume is the power level in the events (-dBm0, RFC 4733
	// §2.3.4); 10 is what phones and WebRTC stacks send.
	eventVolume = 10
)

// eventCode maps a DTMF digit to its RFC 4733 event code.
func eventCode(d rune) (byte, bool) {
	switch {
	case d >= '0' && d <= '9':
		return byte(d - '0'), true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return byte(d-'A') + 12, true
	case d >= 'a' && d <= 'd':
		return byte(d-'a') + 12, true
	}
	return 0, false
}

// SendDTMF sends digits as RFC 4733 telephone-events in the browser's
// stream toward the plain peer (the engine relays that stream to the SIP
// side), each lasting duration (clamped to 40 ms – 5 s, and to what the
// event's 16-bit duration field holds), with 50 ms between digits.
//
// The events use the plain leg's telephone-event payload type (the one
// with the audio's clock rate when there are several) and the browser
// stream's SSRC; their sequence numbers continue the stream and the
// browser's later packets are renumbered after them, so the receiver sees
// one gapless stream. The browser's audio is dropped while an event lasts,
// as RFC 4733 senders do: the tone must not be mixed with speech the far
// end's detector or IVR could take for a second, conflicting digit, and
// the event's timestamps cover that time.
//
// SendDTMF blocks until the last digit's end packets are sent, about
// len(digits)×(duration+90 ms); concurrent calls take turns. It returns
// ErrBadDigit before sending anything if any digit is invalid,
// ErrNoTelephoneEvent if the plain leg has no telephone-event, ErrNoMedia
// if the browser has sent no audio yet, and ErrClosed if the bridge is or
// gets closed.
func (b *Bridge) SendDTMF(digits string, duration time.Duration) error {
	if b.isClosed() {
		return ErrClosed
	}
	if digits == "" {
		return fmt.Errorf("%w: no digits", ErrBadDigit)
	}
	codes := make([]byte, 0, len(digits))
	for _, d := range digits {
		c, ok := eventCode(d)
		if !ok {
			return fmt.Errorf("%w: %q", ErrBadDigit, d)
		}
		codes = append(codes, c)
	}
	events := b.route.Load().events
	if len(events) == 0 {
		return ErrNoTelephoneEvent
	}
	duration = min(max(duration, minEvent), maxEvent)

	b.dtmfMu.Lock()
	defer b.dtmfMu.Unlock()
	if !b.out.hasStream() {
		return ErrNoMedia
	}
	for i, code := range codes {
		if i > 0 && !b.sleepUntil(time.Now().Add(digitGap)) {
			return ErrClosed
		}
		if err := b.sendEvent(code, duration, events); err != nil {
			return err
		}
	}
	return nil
}

// sendEvent sends one digit: packets every 20 ms with a growing duration,
// then the end packet three times, all with the timestamp the stream had
// when the event began.
func (b *Bridge) sendEvent(code byte, d time.Duration, events []codec) error {
	ts, mediaClock := b.out.begin()
	defer b.out.end()
	ev := events[0]
	for _, e := range events {
		if e.clock == mediaClock {
			ev = e // RFC 4733 §2.1: the event clock is the audio's
			break
		}
	}
	clock := ev.clock
	if clock == 0 {
		clock = 8000
	}
	// The duration field is 16 bits of the event clock: 8.19 s at 8 kHz,
	// 1.36 s at 48 kHz.
	d = min(d, time.Duration(0xffff)*time.Second/time.Duration(clock))
	units := func(d time.Duration) uint16 { return uint16(uint64(d) * uint64(clock) / uint64(time.Second)) }
	// Packet k (from 1) goes out at (k-1)×20 ms and reports the event up
	// to the end of its 20 ms, as an audio packet covers the time after
	// its timestamp; the last one is the end packet with the whole
	// duration.
	n := int((d + eventPacket - 1) / eventPacket)
	start := time.Now()
	payload := make([]byte, 4)
	payload[0] = code
	for k := 1; k <= n-1+endRepeats; k++ {
		if k > 1 && !b.sleepUntil(start.Add(time.Duration(k-1)*eventPacket)) {
			return ErrClosed
		}
		flags, dur := byte(eventVolume), units(time.Duration(k)*eventPacket)
		if k >= n {
			flags, dur = 0x80|eventVolume, units(d) // E bit
		}
		payload[1] = flags
		binary.BigEndian.PutUint16(payload[2:], dur)
		b.out.inject(b.conn, *b.peer.Load(), ev.pt, k == 1, ts, payload)
	}
	return nil
}

// sleepUntil waits until t, or returns false at once if the bridge closes.
func (b *Bridge) sleepUntil(t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-b.quit:
		return false
	}
}

// plainOut numbers the browser→plain stream as the engine sees it: the
// browser's packets relayed by fromBrowser and the events SendDTMF
// injects go out under one lock, so each packet's sequence number is
// decided and sent in order.
//
// Until the first event the browser's numbers go out unchanged. An
// injected packet takes the number after the last one sent and a dropped
// browser packet gives up its own, so later browser packets are shifted
// by (injected − dropped): the receiver sees neither a gap nor a
// duplicate. A late (reordered) browser packet from before the shift is
// dropped, since its number may have gone to an event.
type plainOut struct {
	mu       sync.Mutex
	started  bool   // a browser packet has been seen
	ssrc     uint32 // the browser stream's SSRC
	maxIn    uint16 // the browser's newest sequence number
	lastOut  uint16 // the newest sequence number sent
	seqOff   uint16 // added to the browser's sequence numbers
	shifted  bool   // seqOff has changed: packets up to floor are stale
	floor    uint16
	ts       uint32    // the newest browser packet's timestamp …
	at       time.Time // … when it arrived …
	clock    uint32    // … and its clock rate
	suppress bool      // an event is going out: the browser's audio is dropped
}

// newer reports whether sequence number a comes after b (RFC 1982).
func newer(a, b uint16) bool { return a != b && a-b < 0x8000 }

func (o *plainOut) hasStream() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started
}

// relay sends one browser packet (payload type already mapped) to peer,
// renumbered, or drops it during an event. clock is its RTP clock rate,
// 0 if unknown.
func (o *plainOut) relay(conn *net.UDPConn, pkt []byte, peer netip.AddrPort, clock uint32) {
	seq := binary.BigEndian.Uint16(pkt[2:])
	ts := binary.BigEndian.Uint32(pkt[4:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.started || ssrc != o.ssrc {
		// A new stream numbers itself; the receiver tracks it afresh.
		o.started, o.ssrc = true, ssrc
		o.maxIn, o.lastOut, o.seqOff, o.shifted = seq-1, seq-1, 0, false
	}
	newest := newer(seq, o.maxIn)
	if newest {
		// Dropped packets too: they tell where the media clock is.
		o.maxIn, o.ts, o.at = seq, ts, time.Now()
		if clock != 0 {
			o.clock = clock
		}
	} else if o.shifted && !newer(seq, o.floor) {
		return
	}
	if o.suppress {
		o.shift()
		return
	}
	out := seq + o.seqOff
	if newest {
		o.lastOut = out
	}
	binary.BigEndian.PutUint16(pkt[2:], out)
	_, _ = conn.WriteToUDPAddrPort(pkt, peer)
}

// shift makes the browser's next packet follow the last one sent.
func (o *plainOut) shift() {
	o.seqOff = o.lastOut - o.maxIn
	o.floor, o.shifted = o.maxIn, true
}

// begin starts an event: the browser's audio is dropped until end, and
// it returns the stream's current media timestamp (the newest packet's,
// advanced by the time since it arrived) and the media's clock rate.
func (o *plainOut) begin() (ts, clock uint32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.suppress = true
	clock = o.clock
	if clock == 0 {
		clock = 8000
	}
	elapsed := time.Since(o.at)
	return o.ts + uint32(uint64(elapsed)*uint64(clock)/uint64(time.Second)), clock
}

func (o *plainOut) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.suppress = false
}

// inject sends one event packet as the stream's next.
func (o *plainOut) inject(conn *net.UDPConn, peer netip.AddrPort, pt uint8, marker bool, ts uint32, payload []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastOut++
	o.shift()
	pkt := make([]byte, 12+len(payload))
	pkt[0] = 0x80 // version 2
	pkt[1] = pt & 0x7f
	if marker {
		pkt[1] |= 0x80 // RFC 4733 §2.5.1.3: the event's first packet
	}
	binary.BigEndian.PutUint16(pkt[2:], o.lastOut)
	binary.BigEndian.PutUint32(pkt[4:], ts)
	binary.BigEndian.PutUint32(pkt[8:], o.ssrc)
	copy(pkt[12:], payload)
	_, _ = conn.WriteToUDPAddrPort(pkt, peer)
}
