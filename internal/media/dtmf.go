package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rtcgate/rtcgate/internal/sdp"
)

// DTMF injection: digits played as RFC 4733 telephone-events into the RTP
// stream a party sends, toward that party's peer, as if the party had sent
// them (rtpengine's `play DTMF`; the SIP gateway's browser calls). The
// party's own packets keep flowing around the events: their sequence
// numbers are shifted past the events, and the party's audio is dropped
// while an event lasts, as RFC 4733 senders do, so that no speech the far
// end's detector could take for a second digit mixes with the tone.
//
// The relay thread pays one atomic load per RTP packet for this on streams
// that never had DTMF (side.dtmf is nil). Once a party had digits played,
// its stream is renumbered under the injector's lock for the rest of the
// call, and stays in userspace (keepDTMF): the kernel path cannot renumber.

// Errors of PlayDTMF and QueueDTMF; where rtpengine has a reason for the
// case, the text is rtpengine's.
var (
	// ErrNoTelephoneEvent: the receiving party did not negotiate
	// telephone-event, so it would not understand the events (rtcgate does
	// not transcode to in-band tones); the caller should signal the digits
	// another way (SIP INFO).
	ErrNoTelephoneEvent = errors.New("No telephone-event payload type negotiated by the receiving party")
	// ErrNoMedia: the party has sent no RTP yet: the events belong in its
	// stream, and until it exists there is no SSRC, sequence number or
	// timestamp to continue.
	ErrNoMedia = errors.New("No SSRC context present for DTMF injection")
	// ErrNoAudio: the party has no audio m= section with a peer.
	ErrNoAudio = errors.New("Monologue has no media capable of DTMF injection")
	// ErrBadDigit: a digit that is not 0-9, *, #, A-D, or no digits at all.
	ErrBadDigit = errors.New("Out of range 'code' specified")
	// ErrUnknownLabel: no party has the label.
	ErrUnknownLabel = errors.New("No monologue matching the given label")
	// ErrCallEnded: the call was deleted before the digits were all sent.
	ErrCallEnded = errors.New("Call deleted while playing DTMF")
	// ErrDTMFQueueFull: more digits are waiting for the party than the
	// queue holds (MaxDTMFQueue).
	ErrDTMFQueueFull = errors.New("Too many DTMF events queued")
)

// DTMFDigits are the RFC 4733 events 0-15 in order: a digit's index is its
// event code.
const DTMFDigits = "0123456789*#ABCD"

const (
	// eventPacket is the interval between an event's packets, the usual
	// audio packetisation, so the event's updates pace like audio.
	eventPacket = 20 * time.Millisecond
	// DTMFGap separates consecutive digits by default, so the receiver
	// sees two events even for a repeated digit; 50 ms is what ITU-T Q.24
	// receivers expect at least between tones. It is also the shortest
	// pause QueueDTMF takes.
	DTMFGap = 50 * time.Millisecond
	// minEvent and maxEvent bound a digit's duration: receivers ignore
	// tones shorter than about 40 ms, and a longer event would need the
	// RFC 4733 long-event segmentation, which no keypad needs.
	minEvent = 40 * time.Millisecond
	maxEvent = 5 * time.Second
	// endRepeats is how often the end packet goes out (RFC 4733 §2.5.1.4):
	// it is the only packet that says the event is over, so it is
	// repeated against loss.
	endRepeats = 3
	// DTMFVolume is the power level PlayDTMF's events carry (-dBm0, RFC
	// 4733 §2.3.4); 10 is what phones and WebRTC stacks send.
	DTMFVolume = 10
	// mediaWait bounds the wait for the party's next packet when digits
	// are queued for it the first time (its SSRC, sequence number and
	// timestamp come from that packet; a kernel-forwarded stream comes
	// back to userspace for it): a party that sent media but went silent
	// (hold, DTX) gets ErrNoMedia.
	mediaWait = time.Second
)

// eventCode maps a DTMF digit to its RFC 4733 event code.
func eventCode(d rune) (byte, bool) {
	if d >= 'a' && d <= 'd' {
		d -= 'a' - 'A'
	}
	i := strings.IndexRune(DTMFDigits, d)
	return byte(i), i >= 0
}

// DTMF is digits to play into a party's stream.
type DTMF struct {
	CallID string
	// The party the digits come from: FromTag, else the party labelled
	// Label, else, with All, every party of the call.
	FromTag, Label string
	All            bool
	Digits         string        // 0-9, *, #, A-D (a-d too)
	Duration       time.Duration // each digit's, clamped to 40 ms – 5 s
	Pause          time.Duration // between digits, at least DTMFGap
	Volume         uint8         // -dBm0, 0-63 (RFC 4733's volume field)
}

// PlayDTMF sends digits as RFC 4733 telephone-events in the RTP stream the
// party fromTag sends, toward its peer, as if the party had sent them: the
// events take the receiving party's telephone-event payload type (the one
// at the audio's clock rate when there are several) and the party's SSRC,
// their sequence numbers continue the stream and the party's later packets
// are renumbered after them. Each digit lasts duration (clamped to 40 ms –
// 5 s, and to what the event's 16-bit duration field holds) with DTMFGap
// between digits; the party's audio is dropped while an event lasts.
//
// It blocks until the last digit's end packets are sent, about
// len(digits)×(duration+20 ms) plus the gaps; digits for one party take turns with
// those queued before (QueueDTMF). It returns ErrBadDigit, ErrUnknownCallID,
// ErrUnknownTag, ErrNoAudio, ErrNoTelephoneEvent or ErrNoMedia before
// sending anything, ErrDTMFQueueFull, and ErrCallEnded as soon as the call
// is deleted.
func (e *Engine) PlayDTMF(callID, fromTag, digits string, duration time.Duration) error {
	jobs, err := e.queueDTMF(DTMF{CallID: callID, FromTag: fromTag, Digits: digits, Duration: duration, Pause: DTMFGap, Volume: DTMFVolume})
	if err != nil {
		return err
	}
	return <-jobs[0].done
}

// QueueDTMF checks d and queues its digits behind those already waiting
// for the party (or parties), returning at once: the events go out in the
// background, as rtpengine's `play DTMF` does. The errors are
// PlayDTMF's, and ErrUnknownLabel.
func (e *Engine) QueueDTMF(d DTMF) error {
	_, err := e.queueDTMF(d)
	return err
}

// dtmfJob is one request's digits for one party.
type dtmfJob struct {
	codes           []byte
	duration, pause time.Duration
	volume          uint8
	done            chan error // the outcome; buffered
}

func (e *Engine) queueDTMF(d DTMF) ([]*dtmfJob, error) {
	if d.Digits == "" {
		return nil, fmt.Errorf("%w: no digits", ErrBadDigit)
	}
	codes := make([]byte, 0, len(d.Digits))
	for _, r := range d.Digits {
		c, ok := eventCode(r)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrBadDigit, r)
		}
		codes = append(codes, c)
	}
	c := e.lookup(d.CallID)
	if c == nil {
		return nil, ErrUnknownCallID
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrUnknownCallID
	}
	var parties []*monologue
	switch {
	case d.FromTag != "":
		m := c.monologues[d.FromTag]
		if m == nil {
			return nil, ErrUnknownTag
		}
		parties = append(parties, m)
	case d.Label != "":
		for _, m := range c.order {
			if m.label == d.Label {
				parties = append(parties, m)
				break
			}
		}
		if parties == nil {
			return nil, ErrUnknownLabel
		}
	case d.All:
		for _, m := range c.order {
			if m.tag != "" {
				parties = append(parties, m)
			}
		}
	}
	if len(parties) == 0 {
		return nil, ErrUnknownTag
	}
	// Every party is checked before any digit is queued.
	sides := make([]*side, len(parties))
	for i, m := range parties {
		sd, err := dtmfSide(m)
		if err != nil {
			return nil, err
		}
		sides[i] = sd
	}
	jobs := make([]*dtmfJob, len(sides))
	for i, sd := range sides {
		j := sd.dtmf.Load()
		if j == nil {
			j = &injector{seen: make(chan struct{})}
			sd.dtmf.Store(j)
			// Renumbering from now on: the kernel cannot do it.
			sd.k.block.Or(keepDTMF)
			e.kernel.sync(sd)
		}
		jobs[i] = &dtmfJob{codes: codes, duration: min(max(d.Duration, minEvent), maxEvent),
			pause: max(d.Pause, DTMFGap), volume: min(d.Volume, 63), done: make(chan error, 1)}
		start, err := j.enqueue(jobs[i], e.dtmfQueue())
		if err != nil {
			return nil, err
		}
		if start {
			go e.playQueue(c, sd, j)
		}
	}
	return jobs, nil
}

// dtmfSide is the party's first audio section with a peer that takes
// telephone-event, after RTP from the party (under call.mu).
func dtmfSide(m *monologue) (*side, error) {
	var found *side
	for _, sd := range m.sides {
		if sd != nil && !sd.rejected && strings.EqualFold(sd.mediaType, "audio") && sd.peer.Load() != nil {
			found = sd
			break
		}
	}
	if found == nil {
		return nil, ErrNoAudio
	}
	if !hasEvent(found.peer.Load().formats) {
		return nil, ErrNoTelephoneEvent
	}
	if c, _ := found.rtp.counters(); c.Packets == 0 {
		return nil, ErrNoMedia
	}
	return found, nil
}

// dtmfQueue is how many digits may wait for one party.
func (e *Engine) dtmfQueue() int {
	if e.cfg.MaxDTMFQueue > 0 {
		return e.cfg.MaxDTMFQueue
	}
	return DefaultMaxDTMFQueue
}

// DefaultMaxDTMFQueue is Config.MaxDTMFQueue's default.
const DefaultMaxDTMFQueue = 64

// rtpFormat is one payload type of a party's SDP: what it receives.
type rtpFormat struct {
	pt    uint8
	event bool   // telephone-event
	clock uint32 // 0: unknown
}

// rtpFormats reads a section's payload types, from its rtpmap lines or
// RFC 3551's static table.
func rtpFormats(m *sdp.Media) []rtpFormat {
	names := codecNames(m)
	var out []rtpFormat
	for _, f := range m.Formats() {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		name, rest, _ := strings.Cut(names[f], "/")
		rate, _, _ := strings.Cut(rest, "/")
		clock, _ := strconv.ParseUint(rate, 10, 32)
		out = append(out, rtpFormat{pt: uint8(pt), event: strings.EqualFold(name, "telephone-event"), clock: uint32(clock)})
	}
	return out
}

func hasEvent(fs []rtpFormat) bool {
	for _, f := range fs {
		if f.event {
			return true
		}
	}
	return false
}

// clockOf is pt's clock rate in fs, 0 if unknown.
func clockOf(fs []rtpFormat, pt uint8) uint32 {
	for _, f := range fs {
		if f.pt == pt {
			return f.clock
		}
	}
	return 0
}

// eventFormat picks the telephone-event format at the audio's clock rate
// (RFC 4733 §2.1), else the first one.
func eventFormat(fs []rtpFormat, clock uint32) (rtpFormat, bool) {
	var first *rtpFormat
	for i, f := range fs {
		if !f.event {
			continue
		}
		if f.clock == clock {
			return f, true
		}
		if first == nil {
			first = &fs[i]
		}
	}
	if first == nil {
		return rtpFormat{}, false
	}
	return *first, true
}

// injector numbers a party's RTP stream once digits were played into it:
// the party's packets, renumbered by the relay thread (relayed), and the
// events the player sends (next) share one sequence under mu.
//
// Until the first event the party's numbers go out unchanged. An event
// packet takes the number after the last one sent and a dropped packet of
// the party's gives up its own, so the party's later packets are shifted
// by (injected − dropped): the receiver sees neither a gap nor a
// duplicate. A late (reordered) packet from before the shift is dropped,
// since its number may have gone to an event.
type injector struct {
	mu       sync.Mutex
	seen     chan struct{} // closed at the party's first packet since
	started  bool          // a packet of the party's has been seen
	ssrc     uint32        // the party's SSRC
	maxIn    uint16        // the party's newest sequence number
	lastOut  uint16        // the newest sequence number sent
	seqOff   uint16        // added to the party's sequence numbers
	shifted  bool          // seqOff has changed: packets up to floor are stale
	floor    uint16
	ts       uint32 // the party's newest packet's timestamp …
	at       int64  // … when it arrived (unix nanoseconds) …
	pt       uint8  // … and its payload type
	suppress bool   // an event is going out: the party's packets are dropped

	qmu     sync.Mutex
	queue   []*dtmfJob
	queued  int  // digits in queue
	playing bool // a playQueue goroutine serves the queue

	// lastEnd is when the last event ended, for the pause before the next
	// (only the playQueue goroutine, one at a time, uses it).
	lastEnd time.Time
}

// newer reports whether sequence number a comes after b (RFC 1982).
func newer(a, b uint16) bool { return a != b && a-b < 0x8000 }

// relayed renumbers one RTP packet of the party's (plain: after SRTP) in
// place, or reports false when it is to be dropped. The relay thread calls
// it.
func (j *injector) relayed(pkt []byte, now int64) bool {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return true
	}
	seq := binary.BigEndian.Uint16(pkt[2:])
	ssrc := binary.BigEndian.Uint32(pkt[8:])
	j.mu.Lock()
	if !j.started || ssrc != j.ssrc {
		// A new stream numbers itself; the receiver tracks it afresh.
		if !j.started {
			close(j.seen)
		}
		j.started, j.ssrc = true, ssrc
		j.maxIn, j.lastOut, j.seqOff, j.shifted = seq-1, seq-1, 0, false
	}
	newest := newer(seq, j.maxIn)
	if newest {
		// Dropped packets too: they tell where the media clock is.
		j.maxIn, j.ts, j.at, j.pt = seq, binary.BigEndian.Uint32(pkt[4:]), now, pkt[1]&0x7f
	} else if j.shifted && !newer(seq, j.floor) {
		j.mu.Unlock()
		return false
	}
	if j.suppress {
		j.shift()
		j.mu.Unlock()
		return false
	}
	out := seq + j.seqOff
	if newest {
		j.lastOut = out
	}
	j.mu.Unlock()
	binary.BigEndian.PutUint16(pkt[2:], out)
	return true
}

// shift makes the party's next packet follow the last one sent.
func (j *injector) shift() {
	j.seqOff = j.lastOut - j.maxIn
	j.floor, j.shifted = j.maxIn, true
}

// begin starts an event: the party's packets are dropped until end. It
// returns the newest packet's timestamp, arrival time and payload type.
func (j *injector) begin() (ts uint32, at int64, pt uint8) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.suppress = true
	return j.ts, j.at, j.pt
}

func (j *injector) end() {
	j.mu.Lock()
	j.suppress = false
	j.mu.Unlock()
}

// next writes the next event packet's header into pkt[:12].
func (j *injector) next(pkt []byte, pt uint8, marker bool, ts uint32) {
	j.mu.Lock()
	j.lastOut++
	j.shift()
	seq, ssrc := j.lastOut, j.ssrc
	j.mu.Unlock()
	pkt[0] = 0x80 // version 2
	pkt[1] = pt & 0x7f
	if marker {
		pkt[1] |= 0x80 // RFC 4733 §2.5.1.3: the event's first packet
	}
	binary.BigEndian.PutUint16(pkt[2:], seq)
	binary.BigEndian.PutUint32(pkt[4:], ts)
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
}

// enqueue adds a job; start says the caller must start playQueue.
func (j *injector) enqueue(job *dtmfJob, limit int) (start bool, err error) {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	if j.queued+len(job.codes) > limit {
		return false, fmt.Errorf("%w (%d digits wait, at most %d)", ErrDTMFQueueFull, j.queued, limit)
	}
	j.queue = append(j.queue, job)
	j.queued += len(job.codes)
	start, j.playing = !j.playing, true
	return start, nil
}

// dequeue takes the next job, or nil when there is none: playQueue ends.
func (j *injector) dequeue() *dtmfJob {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	if len(j.queue) == 0 {
		j.playing = false
		return nil
	}
	job := j.queue[0]
	j.queue[0] = nil
	j.queue = j.queue[1:]
	j.queued -= len(job.codes)
	return job
}

// playQueue plays a party's queued digits in order, one goroutine per
// party while there are any.
func (e *Engine) playQueue(c *call, sd *side, j *injector) {
	for job := j.dequeue(); job != nil; job = j.dequeue() {
		job.done <- e.playJob(c, sd, j, job)
	}
}

func (e *Engine) playJob(c *call, sd *side, j *injector, job *dtmfJob) error {
	select {
	case <-j.seen:
	case <-c.done:
		return ErrCallEnded
	case <-time.After(mediaWait):
		return ErrNoMedia
	}
	for _, code := range job.codes {
		if !sleepUntil(c.done, j.lastEnd.Add(job.pause)) {
			return ErrCallEnded
		}
		err := e.playEvent(c, sd, j, code, job)
		j.lastEnd = time.Now()
		if err != nil {
			return err
		}
	}
	return nil
}

// playEvent sends one digit: packets every 20 ms with a growing duration,
// then the end packet three times, all with the timestamp the stream had
// when the event began.
func (e *Engine) playEvent(c *call, sd *side, j *injector, code byte, job *dtmfJob) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrCallEnded
	}
	peer := sd.peer.Load()
	if peer == nil {
		c.mu.Unlock()
		return ErrNoAudio
	}
	// The formats are replaced, never changed, by signalling.
	theirs, mine := peer.formats, sd.formats
	c.mu.Unlock()

	ts, at, pt := j.begin()
	defer j.end()
	clock := clockOf(theirs, pt)
	if clock == 0 {
		clock = clockOf(mine, pt)
	}
	if clock == 0 {
		clock = 8000
	}
	ev, ok := eventFormat(theirs, clock)
	if !ok {
		return ErrNoTelephoneEvent // a re-INVITE took it away
	}
	// The stream's current media timestamp: the newest packet's, advanced
	// by the time since it arrived.
	if elapsed := time.Now().UnixNano() - at; elapsed > 0 {
		ts += uint32(uint64(elapsed) * uint64(clock) / uint64(time.Second))
	}
	evClock := ev.clock
	if evClock == 0 {
		evClock = 8000
	}
	// The duration field is 16 bits of the event clock: 8.19 s at 8 kHz,
	// 1.36 s at 48 kHz.
	d := min(job.duration, time.Duration(0xffff)*time.Second/time.Duration(evClock))
	units := func(d time.Duration) uint16 { return uint16(uint64(d) * uint64(evClock) / uint64(time.Second)) }
	// Packet k (from 1) goes out at (k-1)×20 ms and reports the event up
	// to the end of its 20 ms, as an audio packet covers the time after
	// its timestamp; the last one is the end packet with the whole
	// duration.
	n := int((d + eventPacket - 1) / eventPacket)
	start := time.Now()
	pkt := make([]byte, 16)
	pkt[12] = code
	var out []byte // SRTP's output
	for k := 1; k <= n-1+endRepeats; k++ {
		if k > 1 && !sleepUntil(c.done, start.Add(time.Duration(k-1)*eventPacket)) {
			return ErrCallEnded
		}
		flags, dur := job.volume, units(time.Duration(k)*eventPacket)
		if k >= n {
			flags, dur = 0x80|job.volume, units(d) // E bit
		}
		pkt[13] = flags
		binary.BigEndian.PutUint16(pkt[14:], dur)
		var err error
		if out, err = e.sendEvent(c, sd, j, pkt, ev.pt, k == 1, ts, out); err != nil {
			return err
		}
	}
	return nil
}

// sendEvent numbers one event packet and sends it the way the relay sends
// the party's packets (relay()): from the peer's socket to the peer's
// endpoint, through the peer's SRTP if it has one. It holds call.mu so
// that the socket and the transport outlive the send. Injected packets
// count as relayed for the party.
func (e *Engine) sendEvent(c *call, sd *side, j *injector, pkt []byte, pt uint8, marker bool, ts uint32, buf []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return buf, ErrCallEnded
	}
	j.next(pkt, pt, marker, ts)
	s, peer := sd.rtp, sd.peer.Load()
	s.packets.Add(1)
	s.bytes.Add(uint64(len(pkt)))
	if peer == nil {
		s.errors.Add(1)
		return buf, nil
	}
	dst := peer.rtp.ep.Load()
	if dst == nil || !dst.addr.IsValid() {
		s.errors.Add(1)
		return buf, nil
	}
	out := pkt
	if x := peer.rtp.transport(); x != nil {
		var ok bool
		if out, ok = x.OutboundTo(buf[:0], pkt); !ok {
			s.errors.Add(1)
			return buf, nil
		}
		buf = out
	}
	if err := peer.rtp.send(out, dst.addr); err != nil {
		s.errors.Add(1)
	}
	return buf, nil
}

// sleepUntil waits until t, or returns false at once if done closes.
func sleepUntil(done <-chan struct{}, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-done:
		return false
	}
}
