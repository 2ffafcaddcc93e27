package media

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/rtcgate/rtcgate/internal/config"
)

// The DTMF tests' relay ports: 25800-25999, 20 per engine, in turn (an
// engine is closed when its test ends, and the tests run one by one).
var dtmfEngines atomic.Int32

func dtmfEngine(t *testing.T) *Engine { return dtmfEngineQueue(t, 0) }

// dtmfEngineQueue is dtmfEngine with Config.MaxDTMFQueue.
func dtmfEngineQueue(t *testing.T, queue int) *Engine {
	t.Helper()
	base := 25800 + 20*int((dtmfEngines.Add(1)-1)%10)
	return newEngineWith(t, Config{
		Interfaces: []config.Interface{{Name: "default", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
		PortMin:    base, PortMax: base + 19, KernelForwarding: KernelAuto, MaxDTMFQueue: queue,
	})
}

// withEvents adds telephone-event/8000 as payload type 101 to an SDP of
// sdpFor's.
func withEvents(sdp []byte) []byte {
	s := strings.Replace(string(sdp), "RTP/AVP 0\r\n", "RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n", 1)
	return []byte(s)
}

// dtmfCall sets up a plain call a → b (b's SDP with telephone-event when
// events) and returns the relay addresses a and b send to.
func dtmfCall(t *testing.T, e *Engine, id string, a, b *peer, events bool) (toA, toB netip.AddrPort) {
	t.Helper()
	toB = relayAddr(t)(e.Offer(&Request{CallID: id, FromTag: "a", SDP: withEvents(a.sdp())}))
	bSDP := b.sdp()
	if events {
		bSDP = withEvents(bSDP)
	}
	toA = relayAddr(t)(e.Answer(&Request{CallID: id, FromTag: "a", ToTag: "b", SDP: bSDP}))
	return toA, toB
}

// audioSource sends PCMU-sized RTP from conn to dst every 20 ms, at most
// n packets, until stop; its timestamps follow the wall clock, as a
// phone's sound card does, however late a busy machine wakes it; each
// payload starts with the packet's own sequence number.
func audioSource(conn *net.UDPConn, dst netip.AddrPort, ssrc uint32, n int, stop <-chan struct{}) {
	start := time.Now()
	for i := range n {
		seq := uint16(60000 + i) // wraps during the test
		ts := 1000 + uint32(time.Since(start)*8000/time.Second)
		pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
			Payload: binary.BigEndian.AppendUint16(make([]byte, 0, 160), seq)}).Marshal()
		conn.WriteToUDPAddrPort(pkt, dst)
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// collect reads RTP on conn until stop, handing each packet to got.
func collect(conn *net.UDPConn, stop <-chan struct{}, got func(*rtp.Packet)) {
	buf := make([]byte, 2048)
	for {
		select {
		case <-stop:
			return
		default:
		}
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil || looksLikeRTCP(buf[:n]) {
			continue
		}
		var p rtp.Packet
		if p.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
			got(&p)
		}
	}
}

// event is a telephone-event payload.
type event struct {
	code, volume byte
	end          bool
	duration     uint16
}

func parseEvent(t *testing.T, p *rtp.Packet) event {
	t.Helper()
	if len(p.Payload) != 4 {
		t.Fatalf("event payload %x", p.Payload)
	}
	return event{p.Payload[0], p.Payload[1] & 0x3f, p.Payload[1]&0x80 != 0, binary.BigEndian.Uint16(p.Payload[2:])}
}

// checkStream asserts what the receiver of an injected stream sees: one
// SSRC; sequence numbers without gap or duplicate (in sequence order,
// which reordering on the way may change) although the events took
// numbers and the party's dropped audio gave some up, so the party's
// later audio was renumbered; per digit 4 packets then 3 end packets at
// 100 ms (the marker on the first, one timestamp, a growing duration), no
// audio inside an event; the event's timestamp between its neighbours'
// (which the sender takes from the wall clock).
func checkStream(t *testing.T, pkts []*rtp.Packet, ssrc uint32, eventPT uint8, codes []byte) {
	t.Helper()
	slices.SortFunc(pkts, func(a, b *rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
	for i, p := range pkts {
		if p.SSRC != ssrc {
			t.Fatalf("packet %d: SSRC %x, want %x", i, p.SSRC, ssrc)
		}
		if i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("sequence %d follows %d", p.SequenceNumber, pkts[i-1].SequenceNumber)
		}
	}
	var digits []byte
	for i := 0; i < len(pkts); i++ {
		p := pkts[i]
		if p.PayloadType == 0 {
			continue
		}
		if p.PayloadType != eventPT {
			t.Fatalf("payload type %d", p.PayloadType)
		}
		// One event: 100 ms at 8 kHz in 20 ms packets, the fifth the
		// first end packet.
		if i+7 >= len(pkts) || i == 0 {
			t.Fatalf("event at %d of %d packets: not whole, or no audio before", i, len(pkts))
		}
		first := parseEvent(t, p)
		digits = append(digits, first.code)
		for k := range 7 {
			q := pkts[i+k]
			ev := parseEvent(t, q)
			if q.PayloadType != eventPT || q.Timestamp != p.Timestamp || ev.code != first.code || ev.volume != DTMFVolume {
				t.Fatalf("event packet %d: %+v %+v", k, q.Header, ev)
			}
			if q.Marker != (k == 0) {
				t.Errorf("event packet %d: marker %v", k, q.Marker)
			}
			wantDur, wantEnd := uint16(160*(k+1)), k >= 4
			if wantEnd {
				wantDur = 800
			}
			if ev.duration != wantDur || ev.end != wantEnd {
				t.Errorf("event packet %d: duration %d end %v, want %d %v", k, ev.duration, ev.end, wantDur, wantEnd)
			}
		}
		before, after := pkts[i-1], pkts[i+7]
		if before.PayloadType != 0 || after.PayloadType != 0 {
			t.Fatalf("event not between audio packets")
		}
		// The event's timestamp is the stream's clock when it began: from
		// the last audio packet's, advanced by the time since.
		if !(int32(p.Timestamp-before.Timestamp) >= 0 && int32(after.Timestamp-p.Timestamp) > 0) {
			t.Errorf("event timestamp %d, audio around it %d and %d", p.Timestamp, before.Timestamp, after.Timestamp)
		}
		i += 6
	}
	if !slices.Equal(digits, codes) {
		t.Errorf("events %v, want %v", digits, codes)
	}
}

// TestPlayDTMFPlain: digits played into a's stream reach b as RFC 4733
// events in a's stream, with a's audio renumbered around them; the
// injected packets count as a's. With kernel forwarding, the stream comes
// back from the kernel for it, and `list sessions` tells why it stays in
// userspace.
func TestPlayDTMFPlain(t *testing.T) {
	e := dtmfEngine(t)
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	toA, _ := dtmfCall(t, e, "d", a, b, true)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	var mu sync.Mutex
	var pkts []*rtp.Packet
	firstAudio := make(chan struct{})
	var once sync.Once
	wg.Add(2)
	go func() { defer wg.Done(); audioSource(a.rtp, toA, 0x11223344, 150, stop) }()
	go func() {
		defer wg.Done()
		collect(b.rtp, stop, func(p *rtp.Packet) {
			mu.Lock()
			pkts = append(pkts, p)
			mu.Unlock()
			once.Do(func() { close(firstAudio) })
		})
	}()
	select {
	case <-firstAudio:
	case <-time.After(5 * time.Second):
		t.Fatal("no audio through the relay")
	}
	if e.kernel != nil {
		// The kernel forwards a's stream until the digits come.
		for deadline := time.Now().Add(5 * time.Second); streamInfo(t, e, "d", "a", false).Path != PathKernel; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a's stream never kernel-forwarded: %s", streamInfo(t, e, "d", "a", false).Path)
			}
		}
	}
	before := userPackets(e, "d", "a", false)
	start := time.Now()
	if err := e.PlayDTMF("d", "a", "1#", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// 2 × 120 ms (7 packets 20 ms apart) + 50 ms between them.
	if took := time.Since(start); took < 280*time.Millisecond || took > 3*time.Second {
		t.Errorf("PlayDTMF took %v", took)
	}
	// Audio after the events, then stop.
	seen := func() int { mu.Lock(); defer mu.Unlock(); return len(pkts) }
	n := seen()
	deadline := time.Now().Add(5 * time.Second)
	for seen() < n+5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	mu.Lock()
	checkStream(t, pkts, 0x11223344, 101, []byte{1, 11})
	mu.Unlock()
	if got := userPackets(e, "d", "a", false) - before; got < 12 {
		t.Errorf("a's stream counts %d packets since the events began, want the 12 events at least", got)
	}
	if e.kernel != nil {
		if si := streamInfo(t, e, "d", "a", false); si.Path != "userspace (DTMF)" {
			t.Errorf("a's stream path %q, want userspace (DTMF)", si.Path)
		}
	}
}

// TestPlayDTMFErrors: nothing is sent for a bad digit, an unknown call or
// party, a receiver without telephone-event, or a party that sent no RTP
// yet; a call deleted while digits play ends PlayDTMF at once.
func TestPlayDTMFErrors(t *testing.T) {
	e := dtmfEngine(t)
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	toA, _ := dtmfCall(t, e, "d", a, b, true)
	for _, c := range []struct {
		callID, tag, digits string
		want                error
	}{
		{"d", "a", "1x", ErrBadDigit},
		{"d", "a", "", ErrBadDigit},
		{"nope", "a", "1", ErrUnknownCallID},
		{"d", "zz", "1", ErrUnknownTag},
		{"d", "a", "1", ErrNoMedia},
	} {
		if err := e.PlayDTMF(c.callID, c.tag, c.digits, 100*time.Millisecond); !errors.Is(err, c.want) {
			t.Errorf("PlayDTMF(%q, %q, %q) = %v, want %v", c.callID, c.tag, c.digits, err, c.want)
		}
	}
	if err := e.QueueDTMF(DTMF{CallID: "d", Label: "none", Digits: "1"}); !errors.Is(err, ErrUnknownLabel) {
		t.Errorf("unknown label: %v", err)
	}
	c2a, c2b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	dtmfCall(t, e, "plain", c2a, c2b, false)
	if err := e.PlayDTMF("plain", "a", "1", 100*time.Millisecond); !errors.Is(err, ErrNoTelephoneEvent) {
		t.Errorf("receiver without telephone-event: %v", err)
	}

	// a sends; b sees the first event; the call is deleted.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); audioSource(a.rtp, toA, 0x5555, 250, stop) }()
	readUntil(t, b.rtp, func(p []byte) bool { return len(p) > 1 && p[1]&0x7f == 0 })
	done := make(chan error, 1)
	go func() { done <- e.PlayDTMF("d", "a", "123", 2*time.Second) }()
	readUntil(t, b.rtp, func(p []byte) bool { return len(p) > 1 && p[1]&0x7f == 101 })
	if _, err := e.Delete("d", "", "", 0, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrCallEnded) {
			t.Errorf("PlayDTMF during delete = %v, want ErrCallEnded", err)
		}
	case <-time.After(time.Second):
		t.Fatal("PlayDTMF did not return when the call was deleted")
	}
}

// TestQueueDTMF: queued requests play in order behind each other and
// QueueDTMF returns at once; past the queue's bound it refuses.
func TestQueueDTMF(t *testing.T) {
	e := dtmfEngineQueue(t, 4)
	a, b := newPeer(t, "127.0.0.1"), newPeer(t, "127.0.0.1")
	toA, _ := dtmfCall(t, e, "q", a, b, true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); audioSource(a.rtp, toA, 0x7777, 150, stop) }()
	readUntil(t, b.rtp, func(p []byte) bool { return len(p) > 1 && p[1]&0x7f == 0 })
	start := time.Now()
	for _, d := range []string{"9", "A", "*"} {
		if err := e.QueueDTMF(DTMF{CallID: "q", FromTag: "a", Digits: d, Duration: 100 * time.Millisecond, Volume: 8}); err != nil {
			t.Fatal(err)
		}
	}
	// 2 or 3 digits wait (the first may be playing already).
	if err := e.QueueDTMF(DTMF{CallID: "q", FromTag: "a", Digits: "123", Duration: 100 * time.Millisecond}); !errors.Is(err, ErrDTMFQueueFull) {
		t.Errorf("over the queue: %v", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("QueueDTMF took %v", took)
	}
	var codes []byte
	for len(codes) < 3 {
		p := readUntil(t, b.rtp, func(p []byte) bool { return len(p) == 16 && p[1] == 0x80|101 })
		if p[13] != 8 {
			t.Errorf("volume %d, want 8", p[13])
		}
		codes = append(codes, p[12])
	}
	if !slices.Equal(codes, []byte{9, 12, 10}) {
		t.Errorf("events %v, want 9 A * in order", codes)
	}
}

// TestPlayDTMFWebRTC: in a call between a browser (pion, DTLS-SRTP) and a
// SIP party, digits played into the SIP party's stream go through the
// browser's SRTP, concurrently with the SIP party's audio, and arrive
// decrypted in the browser's track in the SIP party's stream; digits
// played into the browser's stream (the SIP gateway's case) join its
// decrypted audio toward the SIP party.
func TestPlayDTMFWebRTC(t *testing.T) {
	e := dtmfEngine(t)
	pc, track := browserPC(t, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"}, PayloadType: 101})
	offer := gatheredOffer(t, pc)
	toSIP := mustOK(t)(e.Offer(&Request{CallID: "w", FromTag: "browser", SDP: []byte(offer),
		Secure: Secure{Protocol: "RTP/AVP", ICE: ICERemove}, RTCPMux: RTCPMux{Demux: true}}))
	sip := newPlainPeer(t)
	toBrowser := mustOK(t)(e.Answer(&Request{CallID: "w", FromTag: "browser", ToTag: "sip", SDP: withEvents(sdpFor(sip.port(), "a=rtcp-mux")),
		Secure: Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: ICEForce, DTLS: DTLSPassive}, RTCPMux: RTCPMux{Require: true}}))
	got := connectBrowser(t, pc, toBrowser)
	toRelay := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sdpPort(t, toSIP)))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); audioSource(sip.conn, toRelay, 0xabcd, 250, stop) }()
	timeout := time.After(10 * time.Second)
	var pkts []*rtp.Packet // from the last audio packet before the event
	for len(pkts) == 0 {
		select {
		case p := <-got:
			if p.PayloadType == 0 {
				pkts = append(pkts, p)
			}
		case <-timeout:
			t.Fatal("browser got no audio")
		}
	}
	done := make(chan error, 1)
	go func() { done <- e.PlayDTMF("w", "sip", "5", 100*time.Millisecond) }()
	ends := 0
	for ends < 3 {
		select {
		case p := <-got:
			pkts = append(pkts, p)
			if p.PayloadType == 101 && parseEvent(t, p).end {
				ends++
			}
		case <-timeout:
			t.Fatalf("browser got %d end packets", ends)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Audio again after the event.
	for len(pkts) < 2 || pkts[len(pkts)-1].PayloadType != 0 {
		select {
		case p := <-got:
			pkts = append(pkts, p)
		case <-timeout:
			t.Fatal("no audio after the event")
		}
	}
	checkStream(t, pkts, 0xabcd, 101, []byte{5})

	// From the browser.
	var mu sync.Mutex
	var toSIPParty []*rtp.Packet
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(toSIPParty) }
	wg.Add(2)
	go func() {
		defer wg.Done()
		start := time.Now()
		for i := range 250 {
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i),
				Timestamp: uint32(time.Since(start) * 8000 / time.Second)}, Payload: make([]byte, 160)})
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer wg.Done()
		collect(sip.conn, stop, func(p *rtp.Packet) { mu.Lock(); toSIPParty = append(toSIPParty, p); mu.Unlock() })
	}()
	for deadline := time.Now().Add(10 * time.Second); received() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the SIP party got no audio from the browser")
		}
	}
	if err := e.PlayDTMF("w", "browser", "#", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	n := received()
	for deadline := time.Now().Add(5 * time.Second); received() < n+3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no audio from the browser after the event")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	checkStream(t, toSIPParty, toSIPParty[0].SSRC, 101, []byte{11})
}
