package ng

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/media"
)

// TestParseDTMF: rtpengine's ways of naming the digit, its defaults and
// clamps, and its order of party selection.
func TestParseDTMF(t *testing.T) {
	ms := time.Millisecond
	base := message{"call-id": "c", "from-tag": "a"}
	with := func(kv ...any) message {
		m := message{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name string
		m    message
		want media.DTMF
		err  string
	}{
		{"string digit", with("code", "5"), media.DTMF{CallID: "c", FromTag: "a", Digits: "5", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"event number", with("code", int64(11)), media.DTMF{CallID: "c", FromTag: "a", Digits: "#", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"event number as string", with("code", "12"), media.DTMF{CallID: "c", FromTag: "a", Digits: "A", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"character code", with("code", int64('D')), media.DTMF{CallID: "c", FromTag: "a", Digits: "D", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"digit key", with("digit", "*"), media.DTMF{CallID: "c", FromTag: "a", Digits: "*", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"clamped low", with("code", "1", "duration", int64(10), "pause", "20", "volume", int64(-20)),
			media.DTMF{CallID: "c", FromTag: "a", Digits: "1", Duration: 100 * ms, Pause: 100 * ms, Volume: 20}, ""},
		{"clamped high", with("code", "1", "duration", "9000", "pause", int64(7000), "volume", int64(99)),
			media.DTMF{CallID: "c", FromTag: "a", Digits: "1", Duration: 5000 * ms, Pause: 5000 * ms, Volume: 63}, ""},
		{"label before from-tag", with("code", "1", "label", "caller"),
			media.DTMF{CallID: "c", Label: "caller", Digits: "1", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"all flag", with("code", "1", "flags", []any{"all"}),
			media.DTMF{CallID: "c", All: true, Digits: "1", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"all key", message{"call-id": "c", "all": "all", "code": "1"},
			media.DTMF{CallID: "c", All: true, Digits: "1", Duration: 250 * ms, Pause: 100 * ms, Volume: 8}, ""},
		{"lower case", with("code", "a"), media.DTMF{}, "Out of range 'code' specified"},
		{"out of range", with("code", int64(16)), media.DTMF{}, "Out of range 'code' specified"},
		{"negative", with("code", int64(-1)), media.DTMF{}, "Out of range 'code' specified"},
		{"no code", with(), media.DTMF{}, "Out of range 'code' specified"},
		{"list code", with("code", []any{"1"}), media.DTMF{}, "Out of range 'code' specified"},
		{"no party", message{"call-id": "c", "code": "1"}, media.DTMF{}, "No participant party specified"},
		{"no call", message{"from-tag": "a", "code": "1"}, media.DTMF{}, "No call-id in message"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDTMF(c.m)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "request", got, c.want)
		})
	}
}

// TestPlayDTMFCommand: `play DTMF` answers at once and the event reaches
// the other party in the caller's stream; the failures carry rtpengine's
// reasons.
func TestPlayDTMFCommand(t *testing.T) {
	env := newTestEnv(t)
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := listen(), listen()
	sdpOf := func(c *net.UDPConn, events bool) string {
		formats, event := "0", ""
		if events {
			formats, event = "0 101", "a=rtpmap:101 telephone-event/8000\r\n"
		}
		return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\na=rtcp-mux\r\n%s",
			c.LocalAddr().(*net.UDPAddr).Port, formats, event)
	}
	offer := env.call(t, "command", "offer", "call-id", "d", "from-tag", "a", "sdp", sdpOf(a, true))
	mustOK(t, offer)
	answer := env.call(t, "command", "answer", "call-id", "d", "from-tag", "a", "to-tag", "b", "sdp", sdpOf(b, true))
	mustOK(t, answer)
	toA := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sdpMediaPort(t, answer["sdp"].(string))))

	for _, c := range []struct {
		kv   []any
		want string
	}{
		{[]any{"call-id", "nope", "from-tag", "a", "code", "1"}, "Unknown call-ID"},
		{[]any{"call-id", "d", "from-tag", "zz", "code", "1"}, "From-tag given, but no such tag exists"},
		{[]any{"call-id", "d", "label", "zz", "code", "1"}, media.ErrUnknownLabel.Error()},
		{[]any{"call-id", "d", "from-tag", "a", "code", "E"}, "Out of range 'code' specified"},
		{[]any{"call-id", "d", "from-tag", "a", "code", "1"}, media.ErrNoMedia.Error()},
	} {
		wantEqual(t, fmt.Sprint(c.kv), env.call(t, append([]any{"command", "play DTMF"}, c.kv...)...), errReply(c.want))
	}
	// The same with a receiver that has no telephone-event.
	c2, d2 := listen(), listen()
	mustOK(t, env.call(t, "command", "offer", "call-id", "p", "from-tag", "a", "sdp", sdpOf(c2, true)))
	mustOK(t, env.call(t, "command", "answer", "call-id", "p", "from-tag", "a", "to-tag", "b", "sdp", sdpOf(d2, false)))
	wantEqual(t, "no telephone-event", env.call(t, "command", "play DTMF", "call-id", "p", "from-tag", "a", "code", "1"),
		errReply(media.ErrNoTelephoneEvent.Error()))

	// a sends audio; the digit is played into its stream.
	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		pkt := make([]byte, 12+160)
		pkt[0] = 0x80
		binary.BigEndian.PutUint32(pkt[8:], 0xa0a0a0a0)
		for i := range 250 {
			binary.BigEndian.PutUint16(pkt[2:], uint16(i))
			binary.BigEndian.PutUint32(pkt[4:], uint32(i*160))
			a.WriteToUDPAddrPort(pkt, toA)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	buf := make([]byte, 2048)
	read := func(want func([]byte) bool) []byte {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := b.Read(buf)
			if err == nil && want(buf[:n]) {
				return buf[:n]
			}
		}
		t.Fatal("expected packet never arrived")
		return nil
	}
	read(func(p []byte) bool { return p[1]&0x7f == 0 })
	start := time.Now()
	mustOK(t, env.call(t, "command", "play DTMF", "call-id", "d", "from-tag", "a", "code", "7", "volume", int64(-12)))
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("play DTMF took %v: it should answer before the event is played", took)
	}
	end := read(func(p []byte) bool { return len(p) == 16 && p[1]&0x7f == 101 && p[13]&0x80 != 0 })
	if ssrc := binary.BigEndian.Uint32(end[8:]); end[12] != 7 || end[13]&0x3f != 12 || binary.BigEndian.Uint16(end[14:]) != 2000 || ssrc != 0xa0a0a0a0 {
		t.Errorf("end packet %x: want event 7, volume 12, 250 ms at 8 kHz, a's SSRC", end)
	}
}

// sdpMediaPort is the first m= line's port.
func sdpMediaPort(t *testing.T, sdp string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^m=audio (\d+) `).FindStringSubmatch(sdp)
	if m == nil {
		t.Fatalf("no m=audio in\n%s", sdp)
	}
	port, _ := strconv.Atoi(m[1])
	return port
}
