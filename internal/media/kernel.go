package media

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/kernelfwd"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// The kernel path (kernel-forwarding): once a stream's sender is confirmed
// by a packet at the socket (latching stays here), a rule in the kernel
// forwards its packets to the peer without waking the relay; counters come
// back from the kernel's map. Everything here is per stream and leaves the
// userspace relay as it was: a stream without a rule is relayed as before.

// Kernel forwarding modes (config key kernel-forwarding).
const (
	KernelAuto     = "auto"     // use it when it loads, else userspace with one log line
	KernelOff      = "off"      // userspace only
	KernelRequired = "required" // refuse to start without it
)

// Reasons a side keeps its packets in userspace whatever its state: bits
// of kside.block. The packet path of such a side does work a rule cannot.
const (
	keepRecording uint32 = 1 << iota // record-call: the recorder reads every packet
	keepWebRTC                       // SRTP, DTLS, ICE: the bridge works on every packet
	keepDTMF                         // DTMF was injected: the party's packets are renumbered, for the rest of the call
)

var keepNames = []struct {
	bit  uint32
	name string
}{{keepRecording, "recording"}, {keepWebRTC, "WebRTC"}, {keepDTMF, "DTMF"}}

// maxFailureLogs bounds the log lines about refused rules.
const maxFailureLogs = 10

// kernelPath is the engine's forwarder and the lock that orders rule
// changes (from signalling and from the relay threads on latching).
type kernelPath struct {
	fwd       *kernelfwd.Forwarder
	log       *slog.Logger
	mu        sync.Mutex
	installed atomic.Int64
	failures  atomic.Uint64 // rules the kernel refused (the stream stays in userspace)
}

// kstream is a stream's kernel state.
type kstream struct {
	path *kernelPath // nil: no kernel forwarding
	slot uint32      // counter slot: the stream's port's
	base kernelfwd.Counters
	rule kernelfwd.Rule // in place when on (under path.mu)
	on   atomic.Bool
	why  atomic.Pointer[string] // why there is no rule, for listings
}

// kside is a side's kernel state.
type kside struct {
	// block holds keepXxx bits: the side's rules, and its peer's towards
	// it, go at the next sync (set the bit, then sync the side).
	block atomic.Uint32
	dead  bool // the call ended: no more rules (under path.mu)
}

// openKernel loads the kernel path as mode says; nil when it is off or
// could not load in auto mode.
func openKernel(cfg Config, ifaces []*iface, log *slog.Logger) (*kernelPath, error) {
	mode := cfg.KernelForwarding
	if mode == "" || mode == KernelOff {
		return nil, nil
	}
	kcfg := kernelfwd.Config{Log: log}
	var fast4, fast6 bool
	for _, i := range ifaces {
		i.slotBase = uint32(kcfg.Slots)
		// The first interface of each family has its rules found by
		// port (slot = port - port-min); the others' share those ports on
		// other addresses, and the program finds them in the hash map.
		fr := kernelfwd.FastRange{Port: uint16(i.pool.min), Slot: i.slotBase}
		if i.addr.Unmap().Is4() && !fast4 {
			kcfg.Fast4, fast4 = fr, true
		} else if i.addr.Is6() && !i.addr.Is4In6() && !fast6 {
			kcfg.Fast6, fast6 = fr, true
		}
		kcfg.Slots += 2 * i.pool.Pairs()
		kcfg.Addresses = append(kcfg.Addresses, i.addr)
	}
	fwd, err := kernelfwd.Open(kcfg)
	if err != nil {
		if mode == KernelRequired {
			return nil, &config.Error{Key: "kernel-forwarding", Msg: "required, but " + err.Error()}
		}
		log.Warn("kernel forwarding unavailable: relaying in userspace", "reason", err.Error())
		return nil, nil
	}
	log.Info("kernel forwarding on", "interfaces", fwd.Interfaces(), "slots", kcfg.Slots)
	return &kernelPath{fwd: fwd, log: log}, nil
}

func (k *kernelPath) close() {
	if k != nil {
		k.fwd.Close()
	}
}

// initStreams gives a new side's streams their counter slots.
func (k *kernelPath) initStreams(sd *side) {
	if k == nil {
		return
	}
	for _, s := range []*stream{sd.rtp, sd.rtcp} {
		s.k.path = k
		s.k.slot = sd.itf.slotBase + uint32(int(s.local.Port())-sd.itf.pool.min)
		// The slot outlives its port's previous streams: count from here.
		s.k.base = k.fwd.Counters(s.k.slot)
	}
}

// sync brings the rules of sd's m= section, both parties' streams, in
// line with what signalling and latching decided. Every change to an
// endpoint, an option or the peer is followed by a sync, and sync reads
// the latest state under the lock, so the last sync leaves the right rules.
func (k *kernelPath) sync(sd *side) {
	if k == nil || sd == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range []*side{sd, sd.peer.Load()} {
		if x == nil {
			continue
		}
		k.syncStream(x.rtp)
		k.syncStream(x.rtcp)
	}
}

// close removes a side's rules for good (the call ends); k.mu is not held.
func (k *kernelPath) closeSide(sd *side) {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	sd.k.dead = true
	k.syncStream(sd.rtp)
	k.syncStream(sd.rtcp)
}

func (k *kernelPath) syncStream(s *stream) {
	want, why := s.wantRule()
	if why == "" && s.k.on.Load() && want == s.k.rule {
		return
	}
	if why == "" {
		if err := k.fwd.Install(want); err != nil {
			why = "no rule: " + err.Error()
			// Counted always, logged for the first few only: a sender
			// hopping between sources could otherwise log per packet.
			if n := k.failures.Add(1); n <= maxFailureLogs {
				k.log.Warn("kernel forwarding: rule refused, the stream stays in userspace", "local", s.local.String(), "err", err.Error(),
					"logged", fmt.Sprintf("%d of the first %d; rtcgate_kernel_rule_failures_total counts them all", n, maxFailureLogs))
			}
		} else {
			if !s.k.on.Load() {
				k.installed.Add(1)
			}
			s.k.rule = want
			s.k.on.Store(true)
			s.k.why.Store(nil)
			return
		}
	}
	if s.k.on.Load() {
		if err := k.fwd.Remove(s.local); err != nil {
			k.log.Warn("kernel forwarding: rule not removed", "local", s.local.String(), "err", err.Error())
		}
		k.installed.Add(-1)
		s.k.on.Store(false)
		s.k.rule = kernelfwd.Rule{}
	}
	s.k.why.Store(&why)
}

// wantRule is the rule s should have, or why it should have none. It
// mirrors relay(): what the packet path would do with the confirmed
// sender's packets, the kernel does.
func (s *stream) wantRule() (kernelfwd.Rule, string) {
	sd := s.side
	if sd.k.dead {
		return kernelfwd.Rule{}, "call ended"
	}
	peer := sd.peer.Load()
	if why := keepReason(sd, peer); why != "" {
		return kernelfwd.Rule{}, why
	}
	ep := s.ep.Load()
	if ep == nil || !ep.confirmed {
		return kernelfwd.Rule{}, "sender not confirmed yet"
	}
	if peer == nil {
		return kernelfwd.Rule{}, "no peer"
	}
	out := peer.rtp
	if s.rtcp && !peer.mux.Load() {
		out = peer.rtcp
	}
	dst := out.ep.Load()
	if dst == nil || !dst.addr.IsValid() || dst.addr.Addr().IsUnspecified() || dst.addr.Port() == 0 {
		return kernelfwd.Rule{}, "no destination"
	}
	if v4 := s.local.Addr().Is4(); out.local.Addr().Is4() != v4 || dst.addr.Addr().Is4() != v4 {
		return kernelfwd.Rule{}, "IPv4/IPv6 translation"
	}
	r := kernelfwd.Rule{Local: s.local, Source: ep.addr, From: out.local, To: dst.addr, Slot: s.k.slot,
		// A multiplexing sender's RTCP goes to the peer's RTCP port: the
		// relay sorts it out.
		RTCPToSocket: !s.rtcp && sd.mux.Load() && !peer.mux.Load()}
	if sd.opts.Load()&optAsymmetric != 0 {
		r.Source = netip.AddrPort{} // never latched: any sender
	}
	return r, ""
}

func keepReason(sides ...*side) string {
	for _, sd := range sides {
		if sd == nil {
			continue
		}
		b := sd.k.block.Load()
		for _, k := range keepNames {
			if b&k.bit != 0 {
				return k.name
			}
		}
	}
	return ""
}

// kernelCounters is what the kernel forwarded for s.
func (s *stream) kernelCounters() kernelfwd.Counters {
	if s.k.path == nil {
		return kernelfwd.Counters{}
	}
	c := s.k.path.fwd.Counters(s.k.slot)
	c.Packets -= s.k.base.Packets
	c.Bytes -= s.k.base.Bytes
	c.Errors -= s.k.base.Errors
	if c.Packets == 0 {
		c.Last = 0
	}
	return c
}

// userCounters is what the relay forwarded for s.
func (s *stream) userCounters() Counters {
	return Counters{s.packets.Load(), s.bytes.Load(), s.errors.Load()}
}

// counters is s's traffic on both paths and the time of its last packet
// (unix nanoseconds; its creation time until the first).
func (s *stream) counters() (Counters, int64) {
	c, last := s.userCounters(), s.lastPacket.Load()
	if s.k.path != nil {
		kc := s.kernelCounters()
		c.add(Counters{kc.Packets, kc.Bytes, kc.Errors})
		last = max(last, kc.Last)
	}
	return c, last
}

// path says which way s's packets take, for listings.
func (s *stream) path() string {
	if s.k.on.Load() {
		return "kernel"
	}
	if s.k.path == nil {
		return "userspace"
	}
	if why := s.k.why.Load(); why != nil {
		return "userspace (" + *why + ")"
	}
	return "userspace (sender not confirmed yet)"
}

// blocked says whether s stays in userspace whatever happens (rtpengine's
// "no kernel support").
func (s *stream) blocked() bool {
	return s.k.path != nil && keepReason(s.side, s.side.peer.Load()) != ""
}

// traffic splits a call's figures by path, for the totals.
func (c *call) traffic() (user, kernel stats.Traffic) {
	c.streams(func(s *stream) {
		u := s.userCounters()
		user.Packets += u.Packets
		user.Bytes += u.Bytes
		user.Errors += u.Errors
		k := s.kernelCounters()
		kernel.Packets += k.Packets
		kernel.Bytes += k.Bytes
		kernel.Errors += k.Errors
	})
	return
}

// sweepKernel classifies the sides of the calls in progress as rtpengine
// does, by where their RTP moved in the last two seconds: kernel only,
// kernel and userspace (mixed), or userspace.
func (e *Engine) sweepKernel(calls []*call, now time.Time) {
	if e.kernel == nil {
		return
	}
	recent := now.Add(-2 * time.Second).UnixNano()
	var kernelOnly, mixed int64
	for _, c := range calls {
		c.mu.Lock()
		for _, m := range c.order {
			for _, sd := range m.sides {
				if sd == nil {
					continue
				}
				if sd.rtp.kernelCounters().Last < recent {
					continue
				}
				if sd.rtp.packets.Load() > 0 && sd.rtp.lastPacket.Load() >= recent {
					mixed++
				} else {
					kernelOnly++
				}
			}
		}
		c.mu.Unlock()
	}
	e.stats.StreamsKernel.Store(kernelOnly)
	e.stats.StreamsMixed.Store(mixed)
}

var (
	descKernel      = prometheus.NewDesc("rtcgate_kernel_forwarding", "1 when the eBPF kernel path is loaded and attached", nil, nil)
	descKernelRules = prometheus.NewDesc("rtcgate_kernel_rules", "Streams forwarded in the kernel (rules installed)", nil, nil)
	descKernelFails = prometheus.NewDesc("rtcgate_kernel_rule_failures_total", "Rules the kernel refused; those streams stayed in userspace", nil, nil)
)

func (e *Engine) describeKernel(ch chan<- *prometheus.Desc) {
	ch <- descKernel
	ch <- descKernelRules
	ch <- descKernelFails
}

func (e *Engine) collectKernel(ch chan<- prometheus.Metric) {
	on, rules, fails := 0.0, 0.0, 0.0
	if k := e.kernel; k != nil {
		on, rules, fails = 1, float64(k.installed.Load()), float64(k.failures.Load())
	}
	ch <- prometheus.MustNewConstMetric(descKernel, prometheus.GaugeValue, on)
	ch <- prometheus.MustNewConstMetric(descKernelRules, prometheus.GaugeValue, rules)
	ch <- prometheus.MustNewConstMetric(descKernelFails, prometheus.CounterValue, fails)
}

// KernelForwarding reports whether the kernel path is on, and where.
func (e *Engine) KernelForwarding() (bool, []string) {
	if e.kernel == nil {
		return false, nil
	}
	return true, e.kernel.fwd.Interfaces()
}

// KernelRules counts the rules in the kernel's map itself (not this
// engine's bookkeeping), for tests and checks.
func (e *Engine) KernelRules() (int, error) {
	if e.kernel == nil {
		return 0, fmt.Errorf("kernel forwarding is off")
	}
	return e.kernel.fwd.Rules()
}
