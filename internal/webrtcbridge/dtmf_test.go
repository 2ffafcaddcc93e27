package webrtcbridge

import (
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestSendDTMF sends "1#" into a running call and checks the plain peer's
// view of the browser's stream: RFC 4733 events amid the audio, numbered
// as one stream.
func TestSendDTMF(t *testing.T) {
	o := newOutgoing(t)
	if err := o.bridge.SendDTMF("1", 100*time.Millisecond); !errors.Is(err, ErrNoMedia) {
		t.Errorf("SendDTMF before any audio = %v, want ErrNoMedia", err)
	}

	// The browser talks: PCMU every 20 ms, as a microphone would, until
	// the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			o.browserSends(0, seq, []byte("voice"))
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	next := func(what string) *rtp.Packet {
		t.Helper()
		select {
		case p := <-o.plain.got:
			return p.p
		case <-timeout.C:
			t.Fatalf("%s: nothing within 10 s", what)
		}
		return nil
	}
	first := next("browser audio")
	for first.PayloadType != 0 {
		first = next("browser audio")
	}

	if err := o.bridge.SendDTMF("1x", 100*time.Millisecond); !errors.Is(err, ErrBadDigit) {
		t.Errorf("SendDTMF(1x) = %v, want ErrBadDigit", err)
	}
	if err := o.bridge.SendDTMF("", 100*time.Millisecond); !errors.Is(err, ErrBadDigit) {
		t.Errorf("SendDTMF(\"\") = %v, want ErrBadDigit", err)
	}

	sent := make(chan error, 1)
	go func() { sent <- o.bridge.SendDTMF("1#", 100*time.Millisecond) }()

	// Collect from the first audio packet until SendDTMF is done and
	// three audio packets followed the last end packet.
	pkts := []*rtp.Packet{first}
	done, after := false, 0
	for !done || after < 3 {
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("SendDTMF: %v", err)
			}
			done = true
			continue
		default:
		}
		p := next("packets around the events")
		pkts = append(pkts, p)
		if done && p.PayloadType == 0 {
			after++
		}
		if len(pkts) > 500 {
			t.Fatalf("no end to the events in %d packets", len(pkts))
		}
	}

	// One stream: each packet's number follows the previous one's, across
	// the events and the audio dropped during them.
	for i := 1; i < len(pkts); i++ {
		if got, want := pkts[i].SequenceNumber, pkts[i-1].SequenceNumber+1; got != want {
			t.Errorf("packet %d (PT %d) has sequence number %d, want %d", i, pkts[i].PayloadType, got, want)
		}
		if pkts[i].SSRC != pkts[0].SSRC {
			t.Errorf("packet %d (PT %d) has SSRC %x, want the stream's %x", i, pkts[i].PayloadType, pkts[i].SSRC, pkts[0].SSRC)
		}
	}

	type event struct {
		code      byte
		ts        uint32
		durations []uint16 // of the packets without the E bit
		ends      []uint16 // of the end packets
		marker    int      // index of the packet with the marker bit
		lastAudio uint32   // the audio packet before it
	}
	var events []*event
	var cur *event
	var audioTS uint32
	for i, p := range pkts {
		switch p.PayloadType {
		case 0:
			if cur != nil && len(cur.ends) < 3 {
				t.Errorf("packet %d: audio during event %d", i, cur.code)
			}
			if cur != nil && len(cur.ends) > 0 && p.Timestamp-(cur.ts+uint32(cur.ends[0])) >= 1<<31 {
				t.Errorf("audio after event %d has timestamp %d, within the event from %d", cur.code, p.Timestamp, cur.ts)
			}
			audioTS = p.Timestamp
		case 101:
			if len(p.Payload) != 4 {
				t.Fatalf("packet %d: event payload %x", i, p.Payload)
			}
			code, e, vol, dur := p.Payload[0], p.Payload[1]&0x80 != 0, p.Payload[1]&0x3f, binary.BigEndian.Uint16(p.Payload[2:])
			if cur == nil || cur.ts != p.Timestamp {
				cur = &event{code: code, ts: p.Timestamp, marker: -1, lastAudio: audioTS}
				events = append(events, cur)
			}
			if code != cur.code {
				t.Errorf("packet %d: event %d within event %d's timestamp", i, code, cur.code)
			}
			if vol != 10 {
				t.Errorf("packet %d: volume %d, want 10", i, vol)
			}
			if p.Marker {
				cur.marker = len(cur.durations) + len(cur.ends)
			}
			if e {
				cur.ends = append(cur.ends, dur)
			} else if len(cur.ends) > 0 {
				t.Errorf("packet %d: event %d goes on after its end", i, code)
			} else {
				cur.durations = append(cur.durations, dur)
			}
		default:
			t.Errorf("packet %d: payload type %d, want 0 or 101", i, p.PayloadType)
		}
	}
	if len(events) != 2 || events[0].code != 1 || events[1].code != 11 {
		codes := make([]string, len(events))
		for i, e := range events {
			codes[i] = strconv.Itoa(int(e.code))
		}
		t.Fatalf("events %v, want 1 then 11 (#)", codes)
	}
	for _, e := range events {
		if e.marker != 0 {
			t.Errorf("event %d: marker on packet %d, want the first", e.code, e.marker)
		}
		if len(e.durations) == 0 {
			t.Errorf("event %d: no packet before the end", e.code)
		}
		for i := 1; i < len(e.durations); i++ {
			if e.durations[i] <= e.durations[i-1] {
				t.Errorf("event %d: durations %v do not grow", e.code, e.durations)
				break
			}
		}
		// 100 ms at 8 kHz, three times.
		if len(e.ends) != 3 || e.ends[0] != 800 || e.ends[1] != 800 || e.ends[2] != 800 {
			t.Errorf("event %d: end packets' durations %v, want [800 800 800]", e.code, e.ends)
		}
		if len(e.durations) > 0 && e.durations[len(e.durations)-1] >= 800 {
			t.Errorf("event %d: durations %v reach the end's before it", e.code, e.durations)
		}
		if e.ts-e.lastAudio >= 1<<31 {
			t.Errorf("event %d: timestamp %d before the audio's %d", e.code, e.ts, e.lastAudio)
		}
	}
	if events[1].ts == events[0].ts {
		t.Errorf("both events have timestamp %d", events[0].ts)
	}
}

// TestSendDTMFNoTelephoneEvent: a plain answer without telephone-event
// leaves no way to send events in band.
func TestSendDTMFNoTelephoneEvent(t *testing.T) {
	browser := newBrowser(t, []webrtc.RTPCodecParameters{pcmu, dtmf126}, false)
	if _, err := browser.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	d, err := browser.CreateOffer(nil)
	offer := localSDP(t, browser, d, err)
	b, _, err := NewFromOffer(testConfig(t), []byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	defer closeBridge(t, b)
	if _, err := b.Answer(crlf(`
v=0
o=far 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
`)); err != nil {
		t.Fatal(err)
	}
	if err := b.SendDTMF("1", 100*time.Millisecond); !errors.Is(err, ErrNoTelephoneEvent) {
		t.Errorf("SendDTMF = %v, want ErrNoTelephoneEvent", err)
	}
	if err := b.SendDTMF("E", 100*time.Millisecond); !errors.Is(err, ErrBadDigit) {
		t.Errorf("SendDTMF(E) = %v, want ErrBadDigit", err)
	}
	closeBridge(t, b)
	if err := b.SendDTMF("1", 100*time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("SendDTMF after Close = %v, want ErrClosed", err)
	}
}
