package webrtcbridge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
)

// Transport is one party's end of a relayed media stream when that party
// speaks ICE, DTLS-SRTP or SDES-SRTP: the media engine's secure side. The
// engine reads the party's datagrams from its relay socket and hands them
// to Inbound, which answers ICE connectivity checks, runs the DTLS
// handshake and decrypts SRTP and SRTCP into plain RTP and RTCP for the
// other party; what the other party sends goes through Outbound, which
// encrypts it. Plain RTP on the other side stays untouched: no transcoding,
// payloads cross byte for byte.
//
// Inbound and Outbound are called by one relay thread (the poller that owns
// the call's sockets) and share no lock with signalling; OutboundTo may
// also be called from other goroutines (the engine's DTMF injection). The
// DTLS handshake and ICE checks run on goroutines of their own until
// Close.
type Transport struct {
	cfg TransportConfig
	log *slog.Logger

	rx, tx atomic.Pointer[srtp.Context] // decrypt from / encrypt to the party
	txMu   sync.Mutex                   // tx's use: an srtp.Context is not safe for concurrent use
	inBuf  []byte                       // Inbound's output (one relay thread)
	outBuf []byte                       // Outbound's output (one relay thread)

	ice     atomic.Pointer[ICEParams] // replaced on an ICE restart
	iceGen  atomic.Uint64             // counts ICE restarts, for sendChecks
	nominee atomic.Pointer[netip.AddrPort]
	checked atomic.Pointer[[]netip.AddrPort] // the last maxChecked addresses a valid check came from or was answered by
	// iceGate: DTLS records count only from an address ICE checked, so
	// the DTLS server needs no cookie round trip (HelloVerifyRequest) to
	// know the ClientHello's source is real. Off when neither side sends
	// checks (both ICE-lite).
	iceGate bool

	dtlsIn    *packetConn // DTLS records from the party, for pion/dtls
	dtlsStart sync.Once
	dtlsDone  chan struct{} // closed when the handshake ended, either way

	// Counters for listings.
	HandshakeFailures atomic.Uint64
	AuthFailures      atomic.Uint64 // SRTP/SRTCP packets that did not authenticate
	Checks            atomic.Uint64 // connectivity checks answered

	quit   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
}

// TransportConfig says what a party speaks.
type TransportConfig struct {
	// Send writes a datagram to the party from the relay socket the party
	// talks to. It must be safe to call from any goroutine.
	Send func(pkt []byte, dst netip.AddrPort)
	// ICE, if set, makes rtcgate an ICE agent toward the party.
	ICE *ICEParams
	// DTLS, if set, keys SRTP by a DTLS handshake (RFC 5764).
	DTLS *DTLSParams
	// SDES, if set (and DTLS not), keys SRTP from a=crypto (RFC 4568).
	SDES *SDESParams
	// HandshakeTimeout bounds the DTLS handshake; 0 means 30 s.
	HandshakeTimeout time.Duration
	Log              *slog.Logger
}

// ICEParams are both sides' ICE credentials.
type ICEParams struct {
	LocalUfrag, LocalPwd   string
	RemoteUfrag, RemotePwd string
	// Lite: rtcgate is an ICE-lite agent toward the party, answering
	// checks and sending none. Otherwise it is a full agent and also sends
	// checks to Remote until one succeeds: with USE-CANDIDATE when
	// Controlling (its success nominates), as the controlled agent
	// without (the party's USE-CANDIDATE nominates; RFC 8445 §7.2.5.3).
	Lite, Controlling bool
	Remote            []netip.AddrPort // the party's candidates for component 1
}

// DTLSParams configure the handshake.
type DTLSParams struct {
	Cert   *Certificate
	Client bool        // rtcgate is the DTLS client (a=setup:active)
	Remote Fingerprint // the certificate the party must present
}

// SDESParams are the two a=crypto lines negotiated.
type SDESParams struct {
	Local  Crypto // rtcgate encrypts toward the party with it
	Remote Crypto // the party encrypts with it
}

// Verdict says what Inbound did with a datagram.
type Verdict uint8

const (
	// Media: the returned packet is plain RTP or RTCP to relay.
	Media Verdict = iota
	// Consumed: the datagram was for the transport (DTLS, STUN).
	Consumed
	// Latch: a valid connectivity check or response came from src, which
	// is where the party's media goes from now on.
	Latch
	// Dropped: the datagram failed authentication, came before the keys
	// or is not RTP, STUN or DTLS.
	Dropped
)

// maxDatagram bounds a packet through the transport.
const maxDatagram = 4096 + 64

// NewTransport starts a transport. With DTLS as server it waits for the
// party's ClientHello; as client it starts with StartDTLS or with the
// first packet the party sends.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Send == nil {
		return nil, errors.New("webrtcbridge: transport without Send")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	t := &Transport{cfg: cfg, log: cfg.Log, inBuf: make([]byte, maxDatagram), outBuf: make([]byte, maxDatagram),
		quit: make(chan struct{}), dtlsDone: make(chan struct{})}
	if cfg.ICE != nil {
		p := *cfg.ICE
		t.ice.Store(&p)
		t.iceGate = !(p.Lite && p.Controlling)
	}
	switch {
	case cfg.DTLS != nil:
		if cfg.DTLS.Cert == nil {
			return nil, errors.New("webrtcbridge: DTLS without a certificate")
		}
		t.dtlsIn = newPacketConn(cfg.Send, t.quit)
		// As server, rtcgate's last flight (ChangeCipherSpec, Finished)
		// waits until its SRTP keys are in place: the party, done when
		// that flight arrives, sends SRTP at once, and rtcgate must not
		// drop it for want of keys pion has but rtcgate has not yet taken.
		t.dtlsIn.holdLast = !cfg.DTLS.Client
		if !cfg.DTLS.Client {
			t.StartDTLS(netip.AddrPort{})
		}
	case cfg.SDES != nil:
		close(t.dtlsDone)
		rx, err := srtp.CreateContext(cfg.SDES.Remote.Key, cfg.SDES.Remote.Salt, cfg.SDES.Remote.Suite.Profile)
		if err != nil {
			return nil, fmt.Errorf("webrtcbridge: SRTP from the party: %w", err)
		}
		tx, err := srtp.CreateContext(cfg.SDES.Local.Key, cfg.SDES.Local.Salt, cfg.SDES.Local.Suite.Profile)
		if err != nil {
			return nil, fmt.Errorf("webrtcbridge: SRTP to the party: %w", err)
		}
		t.rx.Store(rx)
		t.tx.Store(tx)
	default:
		close(t.dtlsDone)
	}
	if p := t.ice.Load(); p != nil && !p.Lite {
		t.goroutine(t.sendChecks)
	}
	return t, nil
}

// Secure reports whether the transport encrypts (DTLS or SDES); a
// transport for ICE alone passes RTP through.
func (t *Transport) Secure() bool { return t.cfg.DTLS != nil || t.cfg.SDES != nil }

// Kind names what the transport speaks: "DTLS-SRTP", "SDES-SRTP" or "ICE".
func (t *Transport) Kind() string {
	switch {
	case t.cfg.DTLS != nil:
		return "DTLS-SRTP"
	case t.cfg.SDES != nil:
		return "SDES-SRTP"
	}
	return "ICE"
}

// Ready reports whether SRTP keys are in place (always, without security).
func (t *Transport) Ready() bool { return !t.Secure() || t.tx.Load() != nil }

// HandshakeDone is closed when the DTLS handshake ended, well or not (at
// once without DTLS).
func (t *Transport) HandshakeDone() <-chan struct{} { return t.dtlsDone }

// SetICE takes both sides' credentials and the party's candidates after
// an answer. New remote credentials are an ICE restart (RFC 8445 §9): the
// nomination starts over (checks toward the new candidates, and the first
// address that checks with the new credentials is latched), while the
// DTLS association and the SRTP keys stay, and media keeps flowing to the
// address nominated before until a check moves it.
func (t *Transport) SetICE(localUfrag, localPwd, remoteUfrag, remotePwd string, remote []netip.AddrPort) {
	p := t.ice.Load()
	if p == nil {
		return
	}
	q := *p
	q.LocalUfrag, q.LocalPwd = localUfrag, localPwd
	q.RemoteUfrag, q.RemotePwd, q.Remote = remoteUfrag, remotePwd, slices.Clone(remote) // the caller's to reuse
	restart := q.RemoteUfrag != p.RemoteUfrag || q.RemotePwd != p.RemotePwd || q.LocalUfrag != p.LocalUfrag
	t.ice.Store(&q)
	if restart {
		t.nominee.Store(nil)
		t.iceGen.Add(1)
	}
}

// Nominated is the address the party's checks or our checks settled on.
func (t *Transport) Nominated() netip.AddrPort {
	if a := t.nominee.Load(); a != nil {
		return *a
	}
	return netip.AddrPort{}
}

// Inbound handles one datagram from the party (RFC 7983 demultiplexing).
// The returned slice, for Media, is valid until the next Inbound call.
func (t *Transport) Inbound(pkt []byte, src netip.AddrPort) ([]byte, Verdict) {
	if len(pkt) == 0 {
		return nil, Dropped
	}
	switch b := pkt[0]; {
	case b <= 3:
		return nil, t.stun(pkt, src)
	case b >= 20 && b <= 63:
		if t.dtlsIn == nil || t.iceGate && !t.verified(src) {
			return nil, Dropped
		}
		if t.cfg.DTLS.Client {
			t.StartDTLS(src)
		}
		t.dtlsIn.deliver(pkt, src)
		return nil, Consumed
	case b >= 128 && b <= 191:
		if !t.Secure() {
			return pkt, Media
		}
		rx := t.rx.Load()
		if rx == nil {
			return nil, Dropped
		}
		var out []byte
		var err error
		if isRTCP(pkt) {
			out, err = rx.DecryptRTCP(t.inBuf[:0], pkt, nil)
		} else {
			out, err = rx.DecryptRTP(t.inBuf[:0], pkt, nil)
		}
		if err != nil {
			t.AuthFailures.Add(1)
			return nil, Dropped
		}
		return out, Media
	}
	return nil, Dropped
}

// maxChecked bounds the addresses remembered as checked: a browser checks
// a pair per candidate and may start DTLS on any that answered before it
// nominates one.
const maxChecked = 8

// verified: src passed an ICE check, ours or the party's.
func (t *Transport) verified(src netip.AddrPort) bool {
	if a := t.nominee.Load(); a != nil && *a == src {
		return true
	}
	if l := t.checked.Load(); l != nil {
		return slices.Contains(*l, src)
	}
	return false
}

// markChecked remembers src as an address that passed a check.
func (t *Transport) markChecked(src netip.AddrPort) {
	var l []netip.AddrPort
	if p := t.checked.Load(); p != nil {
		if slices.Contains(*p, src) {
			return
		}
		l = *p
	}
	l = append([]netip.AddrPort{src}, l[:min(len(l), maxChecked-1)]...)
	t.checked.Store(&l)
}

// Outbound protects one plain RTP or RTCP packet for the party. ok is
// false while the keys are not there (DTLS not done) or the packet is not
// RTP: the caller drops it. The returned slice is valid until the next
// Outbound call: only the relay thread calls it.
func (t *Transport) Outbound(pkt []byte) (out []byte, ok bool) {
	return t.OutboundTo(t.outBuf[:0], pkt)
}

// OutboundTo is Outbound into dst's memory (overwritten from dst[0],
// reallocated if too small), safe to call from any goroutine: the relay thread and an injector of packets
// into the party's stream (DTMF) take turns on the SRTP context. Without
// SRTP, out is pkt itself.
func (t *Transport) OutboundTo(dst, pkt []byte) (out []byte, ok bool) {
	if !t.Secure() {
		return pkt, true
	}
	tx := t.tx.Load()
	if tx == nil || len(pkt) < 8 || pkt[0]>>6 != 2 {
		return nil, false
	}
	var err error
	t.txMu.Lock()
	if isRTCP(pkt) {
		out, err = tx.EncryptRTCP(dst, pkt, nil)
	} else {
		out, err = tx.EncryptRTP(dst, pkt, nil)
	}
	t.txMu.Unlock()
	return out, err == nil
}

func isRTCP(pkt []byte) bool { return len(pkt) >= 2 && pkt[1] >= 192 && pkt[1] <= 223 }

// Close stops the handshake and the checks; every goroutine has ended when
// it returns.
func (t *Transport) Close() {
	t.closed.Do(func() { close(t.quit) })
	t.wg.Wait()
}

func (t *Transport) goroutine(fn func()) {
	select {
	case <-t.quit:
		return
	default:
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn()
	}()
}

// StartDTLS starts the handshake (once): as client toward remote, as
// server toward whoever sends the ClientHello.
func (t *Transport) StartDTLS(remote netip.AddrPort) {
	if t.dtlsIn == nil {
		return
	}
	t.dtlsStart.Do(func() {
		if remote.IsValid() {
			t.dtlsIn.setRemote(remote)
		}
		t.goroutine(t.handshake)
	})
}

// flightInterval is the DTLS handshake's first retransmission timeout.
const flightInterval = 100 * time.Millisecond

var srtpProfiles = []dtls.SRTPProtectionProfile{
	dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AEAD_AES_128_GCM,
	dtls.SRTP_AES128_CM_HMAC_SHA1_80, dtls.SRTP_AES128_CM_HMAC_SHA1_32,
}

func (t *Transport) handshake() {
	defer close(t.dtlsDone)
	p := t.cfg.DTLS
	// A refused certificate ends the handshake at once rather than at its
	// deadline.
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.HandshakeTimeout)
	defer cancel()
	conf := &dtls.Config{
		Certificates:           []tls.Certificate{p.Cert.tls},
		SRTPProtectionProfiles: srtpProfiles,
		ExtendedMasterSecret:   dtls.RequestExtendedMasterSecret,
		InsecureSkipVerify:     true, // self-signed: the SDP fingerprint is the check
		ClientAuth:             dtls.RequireAnyClientCert,
		// With ICE, the ClientHello's source passed a check (iceGate): the
		// cookie exchange would only add a round trip to every setup.
		InsecureSkipVerifyHello: t.iceGate,
		// A lost flight is sent again after 100 ms, doubling each time,
		// rather than after pion's default second.
		FlightInterval: flightInterval,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !p.Remote.Matches(raw[0]) {
				cancel()
				return errors.New("certificate does not match a=fingerprint")
			}
			return nil
		},
	}
	var conn *dtls.Conn
	var err error
	if p.Client {
		conn, err = dtls.Client(t.dtlsIn, t.dtlsIn.remoteAddr(), conf)
	} else {
		conn, err = dtls.Server(t.dtlsIn, t.dtlsIn.remoteAddr(), conf)
	}
	if err == nil {
		go func() {
			select {
			case <-t.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		err = conn.HandshakeContext(ctx)
	}
	if err == nil {
		err = t.keys(conn, p.Client)
	}
	t.dtlsIn.release()
	if err != nil {
		select {
		case <-t.quit: // closed during the handshake: not a failure
		default:
			t.HandshakeFailures.Add(1)
			t.log.Info("DTLS handshake failed", "err", err)
		}
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	// Keep reading: alerts and retransmitted handshake flights.
	t.goroutine(func() {
		<-t.quit
		_ = conn.Close()
	})
	t.goroutine(func() {
		buf := make([]byte, 1500)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	})
}

// keys derives the SRTP contexts from the handshake (RFC 5764 §4.2).
func (t *Transport) keys(conn *dtls.Conn, client bool) error {
	profile, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return errors.New("no SRTP profile negotiated")
	}
	var sp srtp.ProtectionProfile
	switch profile {
	case dtls.SRTP_AEAD_AES_256_GCM:
		sp = srtp.ProtectionProfileAeadAes256Gcm
	case dtls.SRTP_AEAD_AES_128_GCM:
		sp = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		sp = srtp.ProtectionProfileAes128CmHmacSha1_80
	case dtls.SRTP_AES128_CM_HMAC_SHA1_32:
		sp = srtp.ProtectionProfileAes128CmHmacSha1_32
	default:
		return fmt.Errorf("SRTP profile %v not supported", profile)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("no DTLS state")
	}
	c := srtp.Config{Profile: sp}
	if err := c.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return err
	}
	rx, err := srtp.CreateContext(c.Keys.RemoteMasterKey, c.Keys.RemoteMasterSalt, sp)
	if err != nil {
		return err
	}
	tx, err := srtp.CreateContext(c.Keys.LocalMasterKey, c.Keys.LocalMasterSalt, sp)
	if err != nil {
		return err
	}
	t.rx.Store(rx)
	t.tx.Store(tx)
	return nil
}

// stun answers a connectivity check (RFC 8445 §7.3) or takes the response
// to one of ours.
func (t *Transport) stun(pkt []byte, src netip.AddrPort) Verdict {
	p := t.ice.Load()
	if p == nil || !stun.IsMessage(pkt) {
		return Dropped
	}
	m := &stun.Message{Raw: append([]byte(nil), pkt...)}
	if err := m.Decode(); err != nil {
		return Dropped
	}
	switch m.Type {
	case stun.BindingRequest:
		var user stun.Username
		if user.GetFrom(m) != nil || len(user) <= len(p.LocalUfrag) || string(user[:len(p.LocalUfrag)+1]) != p.LocalUfrag+":" {
			return Dropped
		}
		if stun.NewShortTermIntegrity(p.LocalPwd).Check(m) != nil || stun.Fingerprint.Check(m) != nil {
			return Dropped
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: src.Addr().AsSlice(), Port: int(src.Port())},
			stun.NewShortTermIntegrity(p.LocalPwd), stun.Fingerprint)
		if err != nil {
			return Dropped
		}
		t.cfg.Send(resp.Raw, src)
		t.Checks.Add(1)
		t.markChecked(src)
		if t.cfg.DTLS != nil && t.cfg.DTLS.Client {
			t.StartDTLS(src)
		}
		// The controlling agent nominates; until it does, the first
		// address that checks is as good as any.
		if m.Contains(stun.AttrUseCandidate) || t.nominee.Load() == nil {
			t.nominate(src)
			return Latch
		}
		return Consumed
	case stun.BindingSuccess:
		if stun.NewShortTermIntegrity(p.RemotePwd).Check(m) != nil {
			return Dropped
		}
		t.markChecked(src)
		if t.cfg.DTLS != nil && t.cfg.DTLS.Client {
			t.StartDTLS(src)
		}
		// The controlling agent's success nominates; the controlled
		// agent's only checks the pair, unless nothing is nominated yet.
		if p.Controlling || t.nominee.Load() == nil {
			t.nominate(src)
			return Latch
		}
		return Consumed
	}
	return Consumed
}

// nominate makes src the party's address, for media (the caller latches
// it) and for the DTLS records pion sends after the handshake.
func (t *Transport) nominate(src netip.AddrPort) {
	t.nominee.Store(&src)
	if t.dtlsIn != nil {
		t.dtlsIn.setRemote(src)
	}
}

// sendChecks sends connectivity checks (with USE-CANDIDATE when
// controlling) to the party's candidates, the first at once and then every 50 ms until one is answered, for at most 10 s, then
// once a second as consent freshness (RFC 7675) until Close. An ICE
// restart starts the fast checks over.
func (t *Transport) sendChecks() {
	var tie [8]byte
	_, _ = rand.Read(tie[:])
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	slow := false
	gen := t.iceGen.Load()
	for first := true; ; first = false {
		// The first check goes at once: the party's answer is there, and
		// waiting a tick would add it to every call's setup.
		if !first {
			select {
			case <-t.quit:
				return
			case <-tick.C:
			}
		}
		if g := t.iceGen.Load(); g != gen {
			gen, start, slow = g, time.Now(), false
			tick.Reset(50 * time.Millisecond)
		}
		p := t.ice.Load()
		if p.RemoteUfrag == "" {
			continue
		}
		if !slow && (t.nominee.Load() != nil || time.Since(start) > 10*time.Second) {
			tick.Reset(time.Second)
			slow = true
		}
		targets := p.Remote
		if n := t.nominee.Load(); n != nil {
			targets = []netip.AddrPort{*n}
		}
		var prio [4]byte
		binary.BigEndian.PutUint32(prio[:], 110<<24|65535<<8|255)
		var tid [stun.TransactionIDSize]byte
		_, _ = rand.Read(tid[:])
		role := []stun.Setter{stun.RawAttribute{Type: stun.AttrICEControlled, Value: tie[:]}}
		if p.Controlling {
			role = []stun.Setter{stun.RawAttribute{Type: stun.AttrICEControlling, Value: tie[:]},
				stun.RawAttribute{Type: stun.AttrUseCandidate}}
		}
		setters := append([]stun.Setter{stun.NewTransactionIDSetter(tid), stun.BindingRequest,
			stun.NewUsername(p.RemoteUfrag + ":" + p.LocalUfrag),
			stun.RawAttribute{Type: stun.AttrPriority, Value: prio[:]}}, role...)
		m, err := stun.Build(append(setters, stun.NewShortTermIntegrity(p.RemotePwd), stun.Fingerprint)...)
		if err != nil {
			continue
		}
		for _, a := range targets {
			t.cfg.Send(m.Raw, a)
		}
	}
}

// packetConn is the net.PacketConn pion/dtls runs on: records the relay
// hands over come out of ReadFrom, and WriteTo sends from the relay socket.
type packetConn struct {
	send      func([]byte, netip.AddrPort)
	in        chan datagram
	quit      chan struct{} // the transport's
	closed    chan struct{} // Close: pion is done with it
	closeOnce sync.Once
	mu        sync.Mutex
	remote    netip.AddrPort
	dl        time.Time
	dlChanged chan struct{} // closed and replaced by SetReadDeadline

	// holdLast: datagrams from the first ChangeCipherSpec on are held
	// (held) until release; set before the handshake starts.
	holdLast, holding, released bool
	held                        [][]byte
	heldTo                      []netip.AddrPort
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

func newPacketConn(send func([]byte, netip.AddrPort), quit chan struct{}) *packetConn {
	return &packetConn{send: send, in: make(chan datagram, 64), quit: quit, closed: make(chan struct{}), dlChanged: make(chan struct{})}
}

func (c *packetConn) setRemote(a netip.AddrPort) {
	c.mu.Lock()
	c.remote = a
	c.mu.Unlock()
}

func (c *packetConn) remoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return net.UDPAddrFromAddrPort(c.remote)
}

// deliver queues a record; a full queue drops it (DTLS retransmits).
func (c *packetConn) deliver(b []byte, from netip.AddrPort) {
	c.mu.Lock()
	if !c.remote.IsValid() {
		c.remote = from
	}
	c.mu.Unlock()
	select {
	case c.in <- datagram{append([]byte(nil), b...), from}:
	default:
	}
}

// ReadFrom waits for a record; like a socket's, it returns at Close and
// at the read deadline, including one set while it waits (pion relies on
// that to end a failed handshake).
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, changed := c.dl, c.dlChanged
		c.mu.Unlock()
		var timeout <-chan time.Time
		if !dl.IsZero() {
			tm := time.NewTimer(time.Until(dl))
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case d := <-c.in:
			return copy(b, d.b), net.UDPAddrFromAddrPort(d.from), nil
		case <-c.quit:
			return 0, nil, net.ErrClosed
		case <-c.closed:
			return 0, nil, net.ErrClosed
		case <-timeout:
			return 0, nil, timeoutError{}
		case <-changed:
		}
	}
}

func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.quit:
		return 0, net.ErrClosed
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	// The party's current address (ICE may have moved it since pion took
	// its remote address at the start of the handshake), else pion's.
	c.mu.Lock()
	dst := c.remote
	c.mu.Unlock()
	if u, ok := addr.(*net.UDPAddr); (!dst.IsValid() || dst.Port() == 0) && ok && u != nil {
		dst = u.AddrPort()
	}
	if !dst.IsValid() {
		return 0, errors.New("webrtcbridge: DTLS peer address unknown")
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	c.mu.Lock()
	if c.holdLast && !c.released && (c.holding || len(b) > 0 && b[0] == recordChangeCipherSpec) && len(c.held) < maxHeld {
		c.holding = true
		c.held = append(c.held, append([]byte(nil), b...))
		c.heldTo = append(c.heldTo, dst)
		c.mu.Unlock()
		return len(b), nil
	}
	c.mu.Unlock()
	c.send(b, dst)
	return len(b), nil
}

// recordChangeCipherSpec is the DTLS record content type that opens the
// server's last flight; maxHeld bounds the datagrams held with it.
const (
	recordChangeCipherSpec = 20
	maxHeld                = 8
)

// release sends the held datagrams and holds no more.
func (c *packetConn) release() {
	c.mu.Lock()
	held, to := c.held, c.heldTo
	c.held, c.heldTo, c.released = nil, nil, true
	c.mu.Unlock()
	for i, b := range held {
		c.send(b, to[i])
	}
}

func (c *packetConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
func (c *packetConn) LocalAddr() net.Addr                { return &net.UDPAddr{} }
func (c *packetConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *packetConn) SetWriteDeadline(t time.Time) error { return nil }
func (c *packetConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.dl = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	c.mu.Unlock()
	return nil
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
