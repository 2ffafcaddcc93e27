package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rtcgate/rtcgate/bench/internal/proc"
	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// Scenario (c): WebRTC ⇄ plain RTP calls, as a Kamailio deployment makes
// them. Each call's browser is webrtcbridge.Transport on its own socket —
// pion's ICE (controlling, USE-CANDIDATE), DTLS client and SRTP, the same
// code rtcgate uses on its side, so both relays face one browser
// implementation — and its SIP party a plain UDP socket. The offer from
// the browser goes out with ICE=remove RTP/AVP rtcp-mux-demux, the plain
// answer back with ICE=force DTLS=passive UDP/TLS/RTP/SAVPF
// rtcp-mux-require. Then both sides send PCMU-sized RTP at -rate packets/s
// each way: the browser SRTP, the plain party RTP.
//
// Calls arrive at -cps-c per second, as a proxy's calls do, the same for
// every target; -cps-c 0 fires them from -workers goroutines at once, a
// burst of 200 handshakes on the box's cores, where setup time is the
// queue for CPU (the generator's browsers do as much DTLS work as the
// relay). Each call's setup is split into phases: answer received, first
// connectivity check answered, the browser's handshake done, first packet.

// cResult is scenario (c)'s figures.
type cResult struct {
	Calls       int     `json:"calls"`
	SetupErrors int     `json:"setup_errors"`
	FirstError  string  `json:"first_error,omitempty"`
	CPS         float64 `json:"calls_per_s"`  // setup pacing; 0: as fast as -workers go
	SetupP50Ms  float64 `json:"setup_p50_ms"` // offer sent → first packet decrypted by the browser
	SetupP95Ms  float64 `json:"setup_p95_ms"`
	SetupP99Ms  float64 `json:"setup_p99_ms"`
	SetupMaxMs  float64 `json:"setup_max_ms"`
	// Where the setup time goes, each from the offer sent: the answer
	// received (offer and answer), the first connectivity check answered,
	// the browser's DTLS handshake done. p50/p95/p99 each.
	PhaseNgMs   [3]float64 `json:"phase_answer_ms"`
	PhaseICEMs  [3]float64 `json:"phase_ice_ms"`
	PhaseDTLSMs [3]float64 `json:"phase_dtls_ms"`
	Rate        int        `json:"rate_per_stream"`
	DurationS   float64    `json:"duration_s"`
	SentWin     uint64     `json:"sent_window"`
	RecvWin     uint64     `json:"received_window"`
	SentTotal   uint64     `json:"sent_total"`
	RecvTotal   uint64     `json:"received_total"`
	LostToPlain int64      `json:"lost_browser_to_plain"`
	LostToBrow  int64      `json:"lost_plain_to_browser"`
	LossPct     float64    `json:"loss_pct"`
	AuthErrors  uint64     `json:"browser_auth_errors"`
	RelayCPUS   float64    `json:"relay_cpu_s"`
	CPUSPer1M   float64    `json:"cpu_s_per_1m_packets"`
	GenCPUS     float64    `json:"gen_cpu_s"`
	HostBusyPct float64    `json:"host_busy_pct"`
	OtherCPUS   float64    `json:"other_cpu_s"`
	DeleteErrs  int        `json:"delete_errors"`
	// With -rounds: how many, and the spread of setup p99 over them (this
	// result is the median round's).
	Rounds      int     `json:"rounds,omitempty"`
	SetupP99Min float64 `json:"setup_p99_min_ms,omitempty"`
	SetupP99Max float64 `json:"setup_p99_max_ms,omitempty"`
}

// webrtcCall is one call of scenario (c).
type webrtcCall struct {
	idx                int
	browser, plain     *net.UDPConn
	tr                 *webrtcbridge.Transport
	toRelayB, toRelayP netip.AddrPort // the relay's ports facing the browser and the plain party
	started            time.Time
	// ns since started: the answer received, the first check answered,
	// the handshake done, the first packet decrypted at the browser.
	answerAt, iceAt, dtlsAt, firstAt atomic.Int64
	sentB, sentP                     atomic.Uint64
	recvB, recvP                     atomic.Uint64 // received by the browser (decrypted), by the plain party
}

func browserOffer(sessID uint64, port int, ufrag, pwd, fp string) string {
	return "v=0\r\no=- " + strconv.FormatUint(sessID, 10) + " 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"a=group:BUNDLE 0\r\nm=audio " + strconv.Itoa(port) + " UDP/TLS/RTP/SAVPF 0 101\r\nc=IN IP4 127.0.0.1\r\n" +
		"a=rtcp:" + strconv.Itoa(port) + "\r\n" +
		"a=candidate:1 1 udp 2122260223 127.0.0.1 " + strconv.Itoa(port) + " typ host\r\n" +
		"a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + pwd + "\r\na=fingerprint:" + fp + "\r\na=setup:actpass\r\n" +
		"a=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
}

// browserSide reads what the relay's answer tells the browser.
func browserSide(body string) (ufrag, pwd string, fp webrtcbridge.Fingerprint, cand netip.AddrPort, err error) {
	s, err := sdp.Parse([]byte(body))
	if err != nil || len(s.Media) == 0 {
		return "", "", fp, cand, fmt.Errorf("answer to the browser: %v", err)
	}
	m := s.Media[0]
	ufrag, _ = m.Attr("ice-ufrag")
	pwd, _ = m.Attr("ice-pwd")
	v, _ := m.Attr("fingerprint")
	if fp, err = webrtcbridge.ParseFingerprint(v); err != nil {
		return "", "", fp, cand, err
	}
	for _, cv := range m.Attrs("candidate") {
		if c, err := webrtcbridge.ParseCandidate(cv); err == nil && c.Component == 1 && c.Addr.Addr().Is4() {
			return ufrag, pwd, fp, c.Addr, nil
		}
	}
	return "", "", fp, cand, errors.New("answer to the browser has no IPv4 candidate")
}

func listenLoopback() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}

// setupWebRTC makes call i: sockets, offer, answer, the browser's transport.
func setupWebRTC(ctx context.Context, c *ngClient, cert *webrtcbridge.Certificate, i int, id string) (*webrtcCall, error) {
	wc := &webrtcCall{idx: i, started: time.Now()}
	var err error
	if wc.browser, err = listenLoopback(); err != nil {
		return nil, err
	}
	if wc.plain, err = listenLoopback(); err != nil {
		wc.browser.Close()
		return nil, err
	}
	fail := func(err error) (*webrtcCall, error) {
		wc.close()
		return nil, err
	}
	ufrag, pwd := webrtcbridge.NewICECredentials()
	bport := wc.browser.LocalAddr().(*net.UDPAddr).Port
	r, _, err := c.do(ctx, map[string]any{"command": "offer", "call-id": id, "from-tag": "browser",
		"sdp": browserOffer(uint64(2*i+1), bport, ufrag, pwd, cert.Fingerprint("sha-256")),
		"ICE": "remove", "transport-protocol": "RTP/AVP", "rtcp-mux": []any{"demux"}})
	if err != nil {
		return fail(err)
	}
	toP, err := relayAddr(fmt.Sprint(r["sdp"]))
	if err != nil {
		return fail(err)
	}
	r, _, err = c.do(ctx, map[string]any{"command": "answer", "call-id": id, "from-tag": "browser", "to-tag": "plain",
		"sdp": makeSDP(uint64(2*i+2), wc.plain.LocalAddr().(*net.UDPAddr).Port),
		"ICE": "force", "DTLS": "passive", "transport-protocol": "UDP/TLS/RTP/SAVPF", "rtcp-mux": []any{"require"}})
	if err != nil {
		return fail(err)
	}
	rufrag, rpwd, fp, cand, err := browserSide(fmt.Sprint(r["sdp"]))
	if err != nil {
		return fail(err)
	}
	wc.answerAt.Store(int64(time.Since(wc.started)))
	wc.toRelayP, wc.toRelayB = toP.AddrPort(), cand
	wc.tr, err = webrtcbridge.NewTransport(webrtcbridge.TransportConfig{
		Send: func(pkt []byte, dst netip.AddrPort) { _, _ = wc.browser.WriteToUDPAddrPort(pkt, dst) },
		ICE: &webrtcbridge.ICEParams{LocalUfrag: ufrag, LocalPwd: pwd, RemoteUfrag: rufrag, RemotePwd: rpwd,
			Controlling: true, Remote: []netip.AddrPort{cand}},
		DTLS:             &webrtcbridge.DTLSParams{Cert: cert, Client: true, Remote: fp},
		HandshakeTimeout: 10 * time.Second,
	})
	if err != nil {
		return fail(err)
	}
	go wc.readBrowser()
	go wc.readPlain()
	go func() { // ends at the handshake's end, or at Close
		<-wc.tr.HandshakeDone()
		if wc.tr.Ready() {
			wc.dtlsAt.Store(int64(time.Since(wc.started)))
		}
	}()
	return wc, nil
}

func (wc *webrtcCall) readBrowser() {
	buf := make([]byte, 2048)
	for {
		n, src, err := wc.browser.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		switch _, v := wc.tr.Inbound(buf[:n], src); v {
		case webrtcbridge.Media:
			if wc.recvB.Add(1) == 1 {
				wc.firstAt.Store(int64(time.Since(wc.started)))
			}
		case webrtcbridge.Latch:
			wc.iceAt.CompareAndSwap(0, int64(time.Since(wc.started)))
		}
	}
}

func (wc *webrtcCall) readPlain() {
	buf := make([]byte, 2048)
	for {
		n, _, err := wc.plain.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n >= 12 && buf[0]>>6 == 2 && buf[1]&0x7f == 0 {
			wc.recvP.Add(1)
		}
	}
}

func (wc *webrtcCall) close() {
	if wc.tr != nil {
		wc.tr.Close()
	}
	wc.browser.Close()
	wc.plain.Close()
}

// scenarioC runs scenario (c) against target t.
func scenarioC(ctx context.Context, t *target, c *ngClient, cfg *config) (*cResult, error) {
	cert, err := webrtcbridge.NewCertificate()
	if err != nil {
		return nil, err
	}
	r := &cResult{Rate: cfg.rate, DurationS: cfg.durationB.Seconds(), CPS: cfg.cpsC}
	calls := make([]*webrtcCall, cfg.callsC)
	errs := make([]error, cfg.callsC)
	callID := func(i int) string { return "ngbench-c-" + c.prefix + strconv.Itoa(i) }
	// Media starts at once: the plain party sends from the answer on, so
	// the browser's first packet measures offer → answer → ICE → DTLS →
	// first SRTP packet decrypted.
	var mu sync.Mutex
	var live []*webrtcCall
	stop := make(chan struct{})
	var sendWG sync.WaitGroup
	sendWG.Add(1)
	go func() {
		defer sendWG.Done()
		sendLoop(cfg.rate, stop, func() []*webrtcCall {
			mu.Lock()
			defer mu.Unlock()
			return live
		})
	}()
	defer func() {
		close(stop)
		sendWG.Wait()
		for _, wc := range calls {
			if wc != nil {
				wc.close()
			}
		}
	}()
	paced(cfg.callsC, cfg.cpsC, cfg.workers, func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		wc, err := setupWebRTC(ctx, c, cert, i, callID(i))
		if err != nil {
			errs[i] = err
			return
		}
		calls[i] = wc
		mu.Lock()
		live = append(live, wc)
		mu.Unlock()
	})
	defer func() {
		if ctx.Err() != nil || !t.Alive() {
			return
		}
		var delErrs atomic.Int64
		forEach(cfg.callsC, cfg.workers, func(i int) {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := c.del(dctx, callID(i), "browser"); err != nil && calls[i] != nil {
				delErrs.Add(1)
			}
		})
		r.DeleteErrs = int(delErrs.Load())
	}()
	for i, wc := range calls {
		if wc == nil {
			r.SetupErrors++
			if r.FirstError == "" && errs[i] != nil {
				r.FirstError = errs[i].Error()
			}
		}
	}
	r.Calls = cfg.callsC - r.SetupErrors
	if r.Calls == 0 {
		return r, fmt.Errorf("no call could be set up (first error: %s)", r.FirstError)
	}
	// Warm-up: every call's first packet, or the warm-up bound.
	deadline := time.Now().Add(max(cfg.warmupB, 10*time.Second))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, wc := range live {
			all = all && wc.firstAt.Load() != 0
		}
		if all {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(cfg.warmupB)
	counts := func() (sent, recv uint64) {
		for _, wc := range live {
			sent += wc.sentB.Load() + wc.sentP.Load()
			recv += wc.recvB.Load() + wc.recvP.Load()
		}
		return
	}
	s0 := snapCPU(t.Pid(), true)
	sent0, recv0 := counts()
	select {
	case <-time.After(cfg.durationB):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	s1 := snapCPU(t.Pid(), true)
	sent1, recv1 := counts()
	if s0.err != nil || s1.err != nil {
		return r, fmt.Errorf("reading CPU counters: %v", errors.Join(s0.err, s1.err))
	}
	r.SentWin, r.RecvWin = sent1-sent0, recv1-recv0
	r.RelayCPUS, r.GenCPUS = s1.relay-s0.relay, s1.self-s0.self
	r.HostBusyPct, r.OtherCPUS = proc.BusyPercent(s0.host, s1.host), otherCPUSeconds(s0, s1)
	if r.RecvWin > 0 {
		r.CPUSPer1M = r.RelayCPUS / float64(r.RecvWin) * 1e6
	}
	// Stop sending, let packets in flight arrive, then count losses.
	close(stop)
	sendWG.Wait()
	stop = make(chan struct{}) // the deferred close has its own
	time.Sleep(cfg.drain)
	var setup, phNg, phICE, phDTLS []time.Duration
	never := func(v int64) time.Duration {
		if v == 0 {
			return time.Hour // never: counts as the worst
		}
		return time.Duration(v)
	}
	for _, wc := range live {
		phNg = append(phNg, never(wc.answerAt.Load()))
		phICE = append(phICE, never(wc.iceAt.Load()))
		phDTLS = append(phDTLS, never(wc.dtlsAt.Load()))
		r.LostToPlain += int64(wc.sentB.Load()) - int64(wc.recvP.Load())
		r.LostToBrow += int64(wc.sentP.Load()) - int64(wc.recvB.Load())
		r.SentTotal += wc.sentB.Load() + wc.sentP.Load()
		r.RecvTotal += wc.recvB.Load() + wc.recvP.Load()
		r.AuthErrors += wc.tr.AuthFailures.Load()
		setup = append(setup, never(wc.firstAt.Load()))
	}
	if r.SentTotal > 0 {
		r.LossPct = 100 * float64(r.LostToPlain+r.LostToBrow) / float64(r.SentTotal)
	}
	r.SetupP50Ms, r.SetupP95Ms, r.SetupP99Ms = quantiles(setup)
	r.SetupMaxMs = ms(setup[len(setup)-1])
	for _, ph := range []struct {
		to *[3]float64
		d  []time.Duration
	}{{&r.PhaseNgMs, phNg}, {&r.PhaseICEMs, phICE}, {&r.PhaseDTLSMs, phDTLS}} {
		ph.to[0], ph.to[1], ph.to[2] = quantiles(ph.d)
	}
	if r.RecvWin == 0 {
		return r, errors.New("no media packet came back through the relay")
	}
	return r, nil
}

// quantiles sorts d and returns its p50, p95 and p99 in ms.
func quantiles(d []time.Duration) (p50, p95, p99 float64) {
	slices.Sort(d)
	q := func(p float64) float64 { return ms(d[min(len(d)-1, int(p*float64(len(d))))]) }
	return q(0.50), q(0.95), q(0.99)
}

// paced runs fn(i) for i in [0, n): at cps calls per second, each call on
// its own goroutine from its start time on (calls arrive at a proxy's call
// rate, whether or not earlier ones are done); with cps 0, as fast as
// `workers` goroutines go (a burst).
func paced(n int, cps float64, workers int, fn func(i int)) {
	if cps <= 0 {
		forEach(n, workers, fn)
		return
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(float64(i) * float64(time.Second) / cps))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

// sendLoop sends, every 1/rate s, one packet each way on every live call:
// SRTP from the browser (once its keys are there), RTP from the plain
// party.
func sendLoop(rate int, stop <-chan struct{}, live func() []*webrtcCall) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	pkt := make([]byte, 12+160)
	for seq := uint32(0); ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for _, wc := range live() {
			if !wc.tr.Ready() {
				continue // both wait for the keys: what DTLS-SRTP needs is not loss
			}
			for dir := uint8(0); dir < 2; dir++ {
				pkt[0], pkt[1] = 0x80, 0
				binary.BigEndian.PutUint16(pkt[2:], uint16(seq))
				binary.BigEndian.PutUint32(pkt[4:], seq*160)
				binary.BigEndian.PutUint32(pkt[8:], streamSSRC(uint32(wc.idx), dir))
				if dir == 0 {
					out, ok := wc.tr.Outbound(pkt)
					if !ok {
						continue
					}
					if _, err := wc.browser.WriteToUDPAddrPort(out, wc.toRelayB); err == nil {
						wc.sentB.Add(1)
					}
				} else if _, err := wc.plain.WriteToUDPAddrPort(pkt, wc.toRelayP); err == nil {
					wc.sentP.Add(1)
				}
			}
		}
	}
}
