package webrtcbridge

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// maxPacket bounds one RTP packet on either leg; audio packets are a few
// hundred bytes, and a UDP datagram on loopback never needs more.
const maxPacket = 2048

// route maps payload types between the legs. Both legs normally use the
// same numbers (the bridge offers each side the other's), so the maps are
// the identity except when an answerer renumbered a dynamic type.
type route struct {
	toPlain   [128]uint8  // by browser payload type
	toBrowser [128]uint8  // by plain payload type
	clock     [128]uint32 // RTP clock rate by browser payload type
	events    []codec     // the plain leg's telephone-event formats, for SendDTMF
}

func newRoute(pairs []pair) *route {
	r := &route{}
	for i := range 128 {
		r.toPlain[i], r.toBrowser[i] = uint8(i), uint8(i)
	}
	for _, p := range pairs {
		r.toPlain[p.browser.pt] = p.plain.pt
		r.toBrowser[p.plain.pt] = p.browser.pt
		r.clock[p.browser.pt] = p.browser.clock
		if p.plain.isDTMF() {
			r.events = append(r.events, p.plain)
		}
	}
	return r
}

// fromPlain relays RTP from the engine to the browser until the plain
// socket is closed.
func (b *Bridge) fromPlain() {
	buf := make([]byte, maxPacket)
	for {
		n, src, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || b.isClosed() {
				return
			}
			continue // a transient error on one datagram
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue // not RTP version 2
		}
		if pt := buf[1]; pt >= 192 && pt <= 223 {
			continue // RTCP (rtcp-mux): pion runs its own with the browser
		}
		if !b.latch(src) {
			continue
		}
		b.track.write(buf[:n], b.route.Load())
	}
}

// latch accepts a packet from src if it comes from the plain peer. The
// first packet fixes the peer, whatever the SDP said: the engine may send
// from an address other than the one it advertises, and from then on
// packets from anywhere else are not the call's.
func (b *Bridge) latch(src netip.AddrPort) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if !b.latched.Load() {
		b.peerMu.Lock()
		if !b.latched.Load() {
			b.peer.Store(&src)
			b.latched.Store(true)
			b.log.Debug("webrtc bridge: plain peer latched", "peer", src)
		}
		b.peerMu.Unlock()
	}
	return *b.peer.Load() == src
}

// fromBrowser relays the browser's RTP, already decrypted by pion, to the
// plain peer until the PeerConnection closes. Packets go out as received
// except for a payload type the plain answerer renumbered and, around
// the events SendDTMF injects, audio dropped during an event and sequence
// numbers shifted past the events (see plainOut).
func (b *Bridge) fromBrowser(t *webrtc.TrackRemote) {
	buf := make([]byte, maxPacket)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || b.isClosed() {
				return
			}
			// A payload type pion does not know (not negotiated) or a
			// runt: drop that packet, keep the stream.
			continue
		}
		if n < 12 {
			continue
		}
		peer := *b.peer.Load()
		if !peer.IsValid() || peer.Port() == 0 {
			continue
		}
		r := b.route.Load()
		clock := r.clock[buf[1]&0x7f]
		buf[1] = buf[1]&0x80 | r.toPlain[buf[1]&0x7f]
		b.out.relay(b.conn, buf[:n], peer, clock)
	}
}

// relayTrack is the audio track the bridge sends the browser. Unlike
// pion's TrackLocalStaticRTP, which stamps every packet with the one
// payload type of its codec, it keeps each packet's payload type, so
// telephone-event and a switch between negotiated codecs reach the browser
// as the far end sent them.
type relayTrack struct {
	mu   sync.Mutex
	w    webrtc.TrackLocalWriter // nil until pion binds the track
	ssrc uint32                  // the SSRC pion signalled to the browser

	// The browser knows one SSRC for the track, so every plain source is
	// sent as that one; when the source changes, sequence numbers and
	// timestamps continue from the last packet sent so the browser's
	// jitter buffer sees one stream.
	started bool
	src     uint32
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
}

func (t *relayTrack) ID() string                { return "audio" }
func (t *relayTrack) RID() string               { return "" }
func (t *relayTrack) StreamID() string          { return "rtcgate" }
func (t *relayTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// Bind is called by pion once the browser's answer fixed the codecs.
func (t *relayTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	cs := ctx.CodecParameters()
	if len(cs) == 0 {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	// pion keys the stream's reports on one codec: the first voice one.
	c := cs[0]
	for _, x := range cs {
		if x.MimeType != "audio/telephone-event" {
			c = x
			break
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w, t.ssrc = ctx.WriteStream(), uint32(ctx.SSRC())
	return c, nil
}

// Unbind is called by pion when the sender stops.
func (t *relayTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w = nil
	return nil
}

// write sends one plain RTP packet to the browser, or drops it while the
// track is not bound (before DTLS is up, after Close).
func (t *relayTrack) write(pkt []byte, r *route) {
	var p rtp.Packet
	if p.Unmarshal(pkt) != nil {
		return
	}
	// Padding is filler (SRTP alignment, probing) that means nothing to the
	// receiver, and pion refuses to write a padded header without its own
	// padding bookkeeping: send the packet without it.
	h, payload := &p.Header, p.Payload
	h.Padding, h.PaddingSize, p.PaddingSize = false, 0, 0
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	h.PayloadType = r.toBrowser[h.PayloadType&0x7f]
	now := time.Now()
	switch {
	case !t.started:
		t.started, t.src = true, h.SSRC
	case h.SSRC != t.src:
		clock := r.clock[h.PayloadType]
		if clock == 0 {
			clock = 8000
		}
		elapsed := uint32(now.Sub(t.lastAt).Seconds()*float64(clock)) + 1
		t.seqOff = t.lastSeq + 1 - h.SequenceNumber
		t.tsOff = t.lastTS + elapsed - h.Timestamp
		t.src = h.SSRC
	}
	h.SequenceNumber += t.seqOff
	h.Timestamp += t.tsOff
	t.lastSeq, t.lastTS, t.lastAt = h.SequenceNumber, h.Timestamp, now
	h.SSRC = t.ssrc
	_, _ = t.w.WriteRTP(h, payload)
}
