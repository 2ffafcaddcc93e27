// Package webrtcbridge terminates WebRTC toward a browser and hands plain
// RTP to rtcgate's media engine.
//
// A browser's call is ICE plus DTLS-SRTP (UDP/TLS/RTP/SAVPF); SIP peers and
// the media engine speak plain RTP/AVP. One Bridge per call sits between
// them: a pion PeerConnection faces the browser (ICE-lite, since rtcgate has
// a known address and the browser, a full ICE agent, does the checks), and
// a plain UDP socket, on loopback by default, exchanges RTP with the engine.
// The bridge never transcodes: each leg is offered only the codecs the other
// leg offered, with the same payload type numbers, so RTP payloads cross
// unchanged. Only what the browser's stream needs is rewritten toward it
// (its SSRC, and sequence and timestamp continuity when the plain source
// changes); toward the engine the browser's packets go out as received,
// except that SendDTMF can put RFC 4733 events into that stream, after
// which the browser's sequence numbers are shifted past them.
//
// An outgoing call (the browser offers):
//
//	b, plainOffer, err := webrtcbridge.NewFromOffer(cfg, browserOffer)
//	// plainOffer → engine offer → SIP INVITE; SIP answer → engine answer →
//	browserAnswer, err := b.Answer(engineAnswer)
//
// An incoming call (the SIP side offers):
//
//	b, browserOffer, err := webrtcbridge.NewForOffer(cfg, engineOffer)
//	// browserOffer → browser; its answer →
//	plainAnswer, err := b.Accept(browserAnswer) // → engine answer → SIP
//
// Close releases everything; every goroutine the Bridge started has ended
// when Close returns.
package webrtcbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// Config configures a Bridge.
type Config struct {
	// Address is the local address the ICE host candidate is bound to
	// and advertised with, e.g. 127.0.0.1 in tests or the public
	// interface's address. It must be an address of this host (unless
	// Announce says what to advertise) and not unspecified: the bridge
	// never listens on all interfaces.
	Address netip.Addr
	// PortMin and PortMax bound the ICE UDP port; 0 leaves that end open.
	PortMin, PortMax uint16
	// Log receives the bridge's and pion's diagnostics; nil discards them.
	Log *slog.Logger

	// PlainAddress is the address of the plain RTP socket the media engine
	// exchanges RTP with; the zero value means 127.0.0.1, which the engine
	// reaches over loopback whatever interface it relays on.
	PlainAddress netip.Addr
	// Announce, if valid, is advertised in the ICE candidate instead of
	// Address, for a host behind a 1:1 NAT.
	Announce netip.Addr
	// GatherTimeout bounds ICE candidate gathering; 0 means 5 seconds.
	// Gathering host candidates on one address takes microseconds: running
	// out means the address cannot be bound.
	GatherTimeout time.Duration
}

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("webrtcbridge: bridge closed")

// Bridge relays one call's audio between a browser (WebRTC) and the media
// engine (plain RTP). Its methods are safe for concurrent use.
type Bridge struct {
	cfg   Config
	log   *slog.Logger
	conn  *net.UDPConn // plain RTP toward the engine
	port  int          // conn's port
	track *relayTrack  // the browser-bound audio

	// The plain peer: from the SDP until the first packet arrives, then
	// latched to that packet's source (the engine relays symmetrically,
	// but may send from an address other than the one it advertises).
	peer    atomic.Pointer[netip.AddrPort]
	latched atomic.Bool
	peerMu  sync.Mutex // serialises latching against SDP updates

	out      plainOut                           // the browser→plain stream's numbering
	dtmfMu   sync.Mutex                         // one SendDTMF at a time
	route    atomic.Pointer[route]              // payload type mapping
	receiver atomic.Pointer[webrtc.RTPReceiver] // the bridged section's

	// mu serialises the signalling methods.
	mu           sync.Mutex
	browserOffer string        // outgoing: the browser's offer …
	offer        *browserOffer // … and what it offers
	browserAns   []byte        // outgoing: the answer given, for repeats
	plainOffer   *plainSection // incoming: the engine's offer
	plainAns     []byte        // incoming: the answer given, for repeats

	// gmu guards closed and pc and the goroutine count: a goroutine that
	// starts after Close began would escape wg.Wait.
	gmu    sync.Mutex
	closed bool
	quit   chan struct{} // closed when Close begins: SendDTMF stops waiting
	pc     *webrtc.PeerConnection
	wg     sync.WaitGroup
}

// NewFromOffer starts a bridge for an outgoing call. It takes the
// browser's WebRTC offer and returns the plain RTP/AVP offer to give the
// media engine: c= is the plain socket's address, and m=audio its port and
// the payload types of the browser's first audio section that the bridge
// relays (opus, PCMU, PCMA, G722, telephone-event), with the browser's
// numbers, rtpmap and fmtp. Other sections (video, data) are not offered
// on; the browser's answer refuses them.
func NewFromOffer(cfg Config, browserOffer []byte) (b *Bridge, plainOffer []byte, err error) {
	o, err := parseBrowserOffer(browserOffer)
	if err != nil {
		return nil, nil, err
	}
	b, err = newBridge(cfg)
	if err != nil {
		return nil, nil, err
	}
	b.browserOffer, b.offer = string(browserOffer), o
	// rtcp-mux: the engine then sends RTCP to the one socket, where the
	// bridge drops it (pion keeps its own RTCP with the browser), rather
	// than to port+1, which nobody binds.
	plain := plainSDP(b.plainAddr(), b.port, o.codecs, o.direction, true, nil, 0, o.ptime, o.maxptime)
	b.log.Debug("webrtc bridge: outgoing call", "plain_port", b.port, "codecs", len(o.codecs))
	return b, plain, nil
}

// Answer takes the plain answer (the far end's choice, rewritten by the
// engine to point at the engine's port) and returns the WebRTC answer for
// the browser, limited to the codecs the plain answer chose. From then on
// media flows: browser SRTP ⇄ bridge ⇄ plain RTP to the address in
// plainAnswer.
//
// Answer may be called again, e.g. for the final answer after an early one
// (183 then 200): the browser has already been answered, so it returns the
// same answer and takes only the address from the new plain answer.
func (b *Bridge) Answer(plainAnswer []byte) (browserAnswer []byte, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isClosed() {
		return nil, ErrClosed
	}
	if b.offer == nil {
		return nil, errors.New("webrtcbridge: Answer on a bridge made by NewForOffer (use Accept)")
	}
	p, err := parsePlain(plainAnswer)
	if err != nil {
		return nil, err
	}
	if b.browserAns != nil {
		b.setPeer(p.peer)
		return b.browserAns, nil
	}
	pairs := negotiate(b.offer.codecs, p.codecs, true)
	browserCodecs := make([]codec, len(pairs))
	for i, pr := range pairs {
		browserCodecs[i] = pr.browser
	}
	if !hasVoice(browserCodecs) {
		return nil, fmt.Errorf("%w: plain answer chose %v", ErrNoCodec, p.codecs)
	}
	b.setPeer(p.peer)
	b.route.Store(newRoute(pairs))

	pc, err := b.newPC(browserCodecs)
	if err != nil {
		return nil, err
	}
	// A failed attempt leaves nothing behind, so the gateway may try
	// again with another answer (the final one after a bad early one).
	answered := false
	defer func() {
		if !answered {
			b.dropPC(pc)
		}
	}()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: b.browserOffer}); err != nil {
		return nil, fmt.Errorf("%w: browser offer: %v", ErrBadSDP, err)
	}
	// The browser chose the direction; a browser that only sends gets no
	// track back (pion answers recvonly), any other gets the far end's.
	var tr *webrtc.RTPTransceiver
	if b.offer.direction != "sendonly" {
		sender, err := pc.AddTrack(b.track)
		if err != nil {
			return nil, fmt.Errorf("webrtcbridge: add audio track: %w", err)
		}
		b.drainRTCP(sender)
		for _, t := range pc.GetTransceivers() {
			if t.Sender() == sender {
				tr = t
			}
		}
	} else {
		for _, t := range pc.GetTransceivers() {
			if t.Kind() == webrtc.RTPCodecTypeAudio && tr == nil {
				tr = t
			}
		}
	}
	if tr == nil {
		return nil, fmt.Errorf("%w: browser offer has no audio transceiver", ErrBadSDP)
	}
	b.receiver.Store(tr.Receiver())
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: create answer: %w", err)
	}
	sdp, err := b.setLocal(pc, ans)
	if err != nil {
		return nil, err
	}
	b.browserAns, answered = sdp, true
	b.log.Debug("webrtc bridge: answered browser", "plain_peer", p.peer, "codecs", len(pairs))
	return sdp, nil
}

// NewForOffer starts a bridge for an incoming call. It takes the engine's
// plain offer and returns a WebRTC offer for the browser carrying the
// relayable codecs of the plain offer's first audio section, with the same
// payload type numbers. The engine's address in the plain offer is where
// the bridge sends the browser's RTP.
func NewForOffer(cfg Config, plainOffer []byte) (b *Bridge, browserOffer []byte, err error) {
	p, err := parsePlain(plainOffer)
	if errors.Is(err, ErrRejected) {
		return nil, nil, fmt.Errorf("%w: plain offer has no audio section", ErrBadSDP)
	}
	if err != nil {
		return nil, nil, err
	}
	if !hasVoice(p.codecs) {
		return nil, nil, fmt.Errorf("%w: plain offer has %v", ErrNoCodec, p.codecs)
	}
	b, err = newBridge(cfg)
	if err != nil {
		return nil, nil, err
	}
	sdp, err := b.offerBrowser(p)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, sdp, nil
}

func (b *Bridge) offerBrowser(p *plainSection) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.plainOffer = p
	b.setPeer(p.peer)
	pc, err := b.newPC(p.codecs)
	if err != nil {
		return nil, err
	}
	// The bridge stands in for the SIP side, so it offers the browser the
	// SIP side's direction.
	dir := webrtc.NewRTPTransceiverDirection(p.direction)
	var tr *webrtc.RTPTransceiver
	if dir == webrtc.RTPTransceiverDirectionSendrecv || dir == webrtc.RTPTransceiverDirectionSendonly {
		tr, err = pc.AddTransceiverFromTrack(b.track, webrtc.RTPTransceiverInit{Direction: dir})
		if err == nil {
			b.drainRTCP(tr.Sender())
		}
	} else {
		if dir == webrtc.RTPTransceiverDirectionUnknown {
			dir = webrtc.RTPTransceiverDirectionInactive
		}
		tr, err = pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: dir})
	}
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: add audio transceiver: %w", err)
	}
	b.receiver.Store(tr.Receiver())
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: create offer: %w", err)
	}
	b.log.Debug("webrtc bridge: incoming call", "plain_port", b.port, "plain_peer", p.peer, "codecs", len(p.codecs))
	return b.setLocal(pc, offer)
}

// Accept takes the browser's answer and returns the plain answer for the
// engine: the plain offer's payload types for the codecs the browser
// accepted, at the bridge's plain socket, every other offered section
// refused with port 0. A repeated call returns the same answer.
func (b *Bridge) Accept(browserAnswer []byte) (plainAnswer []byte, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isClosed() {
		return nil, ErrClosed
	}
	if b.plainOffer == nil {
		return nil, errors.New("webrtcbridge: Accept on a bridge made by NewFromOffer (use Answer)")
	}
	if b.plainAns != nil {
		return b.plainAns, nil
	}
	ans := string(browserAnswer)
	answered, err := answeredCodecs(ans)
	if err != nil {
		return nil, err
	}
	pairs := negotiate(b.plainOffer.codecs, answered, false)
	plainCodecs := make([]codec, len(pairs))
	for i, pr := range pairs {
		plainCodecs[i] = pr.plain
	}
	if !hasVoice(plainCodecs) {
		return nil, fmt.Errorf("%w: browser answered %v", ErrNoCodec, answered)
	}
	b.route.Store(newRoute(pairs))
	b.gmu.Lock()
	pc := b.pc
	b.gmu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
		return nil, fmt.Errorf("%w: browser answer: %v", ErrBadSDP, err)
	}
	p := b.plainOffer
	b.plainAns = plainSDP(b.plainAddr(), b.port, plainCodecs, audioDirection(ans), p.rtcpMux, p.sections, p.index, "", "")
	return b.plainAns, nil
}

// Close releases the PeerConnection and the plain socket and waits for
// every goroutine the bridge started. It is idempotent.
func (b *Bridge) Close() error {
	b.gmu.Lock()
	if b.closed {
		b.gmu.Unlock()
		return nil
	}
	b.closed = true
	close(b.quit)
	pc := b.pc
	b.gmu.Unlock()
	var errs []error
	if pc != nil {
		// Graceful: pion waits for its own goroutines, so none outlives
		// the call.
		if err := pc.GracefulClose(); err != nil {
			errs = append(errs, fmt.Errorf("webrtcbridge: close peer connection: %w", err))
		}
	}
	if err := b.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("webrtcbridge: close plain socket: %w", err))
	}
	b.wg.Wait()
	return errors.Join(errs...)
}

// PlainAddr returns the plain RTP socket's address, the one the plain SDPs
// carry.
func (b *Bridge) PlainAddr() netip.AddrPort {
	return netip.AddrPortFrom(b.plainAddr(), uint16(b.port))
}

func newBridge(cfg Config) (*Bridge, error) {
	if !cfg.Address.IsValid() || cfg.Address.IsUnspecified() {
		return nil, fmt.Errorf("webrtcbridge: ICE address %v is not a usable local address", cfg.Address)
	}
	if cfg.PortMin != 0 && cfg.PortMax != 0 && cfg.PortMax < cfg.PortMin {
		return nil, fmt.Errorf("webrtcbridge: ICE port range %d-%d is empty", cfg.PortMin, cfg.PortMax)
	}
	if !cfg.PlainAddress.IsValid() {
		cfg.PlainAddress = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if cfg.PlainAddress.IsUnspecified() {
		return nil, fmt.Errorf("webrtcbridge: plain address %v is unspecified", cfg.PlainAddress)
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 5 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.PlainAddress, 0)))
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: plain RTP socket: %w", err)
	}
	b := &Bridge{
		cfg:   cfg,
		log:   log,
		conn:  conn,
		port:  conn.LocalAddr().(*net.UDPAddr).Port,
		track: &relayTrack{},
		quit:  make(chan struct{}),
	}
	b.route.Store(newRoute(nil))
	b.peer.Store(&netip.AddrPort{})
	b.goroutine(b.fromPlain)
	return b, nil
}

func (b *Bridge) plainAddr() netip.Addr { return b.cfg.PlainAddress }

func (b *Bridge) isClosed() bool {
	b.gmu.Lock()
	defer b.gmu.Unlock()
	return b.closed
}

// goroutine runs fn in a goroutine that Close waits for, unless Close has
// begun, in which case fn does not run at all.
func (b *Bridge) goroutine(fn func()) bool {
	b.gmu.Lock()
	defer b.gmu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
	return true
}

// newPC makes the browser-facing PeerConnection, knowing only codecs, with
// their payload types, so that pion's SDP and the relayed packets agree
// with the plain leg without any renumbering.
func (b *Bridge) newPC(codecs []codec) (*webrtc.PeerConnection, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range codecs {
		err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: c.mime(), ClockRate: c.clock, Channels: c.channels, SDPFmtpLine: c.fmtp,
			},
			PayloadType: webrtc.PayloadType(c.pt),
		}, webrtc.RTPCodecTypeAudio)
		if err != nil {
			return nil, fmt.Errorf("webrtcbridge: register %s: %w", c.rtpmap(), err)
		}
	}
	// No header extensions and no feedback (NACK, TWCC) are registered:
	// the plain side has no use for them and a relay cannot retransmit.
	// RTCP sender and receiver reports keep the browser's statistics and
	// round-trip estimates working.
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("webrtcbridge: RTCP reports: %w", err)
	}

	se := webrtc.SettingEngine{LoggerFactory: pionLogs{b.log}}
	se.SetLite(true)
	if b.cfg.Address.Is4() || b.cfg.Address.Is4In6() {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP6})
	}
	want := b.cfg.Address.Unmap()
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		return ok && a.Unmap() == want
	})
	// pion skips loopback interfaces unless told otherwise; tests and
	// same-host setups bind ICE to 127.0.0.1.
	se.SetIncludeLoopbackCandidate(want.IsLoopback())
	// mDNS would listen on 0.0.0.0:5353; candidates carry real addresses.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if b.cfg.PortMin != 0 || b.cfg.PortMax != 0 {
		lo, hi := b.cfg.PortMin, b.cfg.PortMax
		if lo == 0 {
			lo = 1
		}
		if hi == 0 {
			hi = 65535
		}
		if err := se.SetEphemeralUDPPortRange(lo, hi); err != nil {
			return nil, fmt.Errorf("webrtcbridge: ICE port range: %w", err)
		}
	}
	if b.cfg.Announce.IsValid() {
		se.SetNAT1To1IPs([]string{b.cfg.Announce.Unmap().String()}, webrtc.ICECandidateTypeHost)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("webrtcbridge: peer connection: %w", err)
	}
	b.gmu.Lock()
	if b.closed {
		b.gmu.Unlock()
		_ = pc.Close()
		return nil, ErrClosed
	}
	b.pc = pc
	b.gmu.Unlock()

	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		if r != b.receiver.Load() {
			return // a section the bridge does not relay
		}
		b.goroutine(func() { b.fromBrowser(t) })
	})
	pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		b.log.Debug("webrtc bridge: ICE state", "state", s.String())
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			b.log.Warn("webrtc bridge: connection to the browser failed")
		}
	})
	return pc, nil
}

// dropPC closes a PeerConnection that failed to negotiate.
func (b *Bridge) dropPC(pc *webrtc.PeerConnection) {
	b.gmu.Lock()
	if b.pc == pc {
		b.pc = nil
	}
	b.gmu.Unlock()
	b.receiver.Store(nil)
	_ = pc.GracefulClose()
}

// setLocal applies a local description and returns it with every ICE
// candidate in it: the Web SDK does not trickle candidates from the
// server, so the SDP must carry them.
func (b *Bridge) setLocal(pc *webrtc.PeerConnection, d webrtc.SessionDescription) ([]byte, error) {
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		return nil, fmt.Errorf("webrtcbridge: set local description: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.GatherTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("webrtcbridge: ICE gathering on %v did not complete in %v", b.cfg.Address, b.cfg.GatherTimeout)
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return nil, ErrClosed
	}
	if !strings.Contains(ld.SDP, "a=candidate:") {
		return nil, fmt.Errorf("webrtcbridge: no ICE candidate on %v: is it an address of this host?", b.cfg.Address)
	}
	return []byte(ld.SDP), nil
}

// drainRTCP reads the RTCP the browser sends about the bridge's stream:
// pion processes it (reports) only while someone reads.
func (b *Bridge) drainRTCP(s *webrtc.RTPSender) {
	if s == nil {
		return
	}
	b.goroutine(func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := s.Read(buf); err != nil {
				return
			}
		}
	})
}

// setPeer takes the plain peer's address from an SDP, unless a packet has
// already shown where it really is.
func (b *Bridge) setPeer(ap netip.AddrPort) {
	b.peerMu.Lock()
	defer b.peerMu.Unlock()
	if !b.latched.Load() {
		b.peer.Store(&ap)
	}
}

// pionLogs hands pion's logging to slog. pion reports routine trouble
// (unknown packets, retries) as warnings, so only its errors are warnings
// here; the rest is debug.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(msg string)                  {}
func (l pionLogger) Tracef(format string, args ...any) {}
func (l pionLogger) Debug(msg string)                  { l.log.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args) }
func (l pionLogger) Info(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args) }
func (l pionLogger) Warn(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelDebug, format, args) }
func (l pionLogger) Error(msg string)                  { l.log.Warn(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf(slog.LevelWarn, format, args) }

func (l pionLogger) logf(level slog.Level, format string, args []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}
