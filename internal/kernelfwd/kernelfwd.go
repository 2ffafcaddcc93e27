// Package kernelfwd is the media relay's kernel path: an eBPF program on
// the interfaces' TCX ingress hook that forwards the UDP packets of
// confirmed streams itself — addresses and ports rewritten, checksums fixed,
// counted per stream — so that they never reach the relay's sockets. It is
// rtcgate's counterpart of rtpengine's kernel module, without a module to
// build: it needs Linux 6.6 (TCX), CAP_BPF and CAP_NET_ADMIN.
//
// The program knows nothing of calls. Userspace installs one rule per relay
// address and port: packets arriving at that address and port from the expected source
// leave for the rule's destination, from the rule's source, and are counted
// in the rule's counter slot. Anything else (no rule, another source, what
// the rule sends up) goes on to the socket as before.
package kernelfwd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Config says how much to prepare and where to attach.
type Config struct {
	// Slots is the number of counter slots, one per relay port.
	Slots int
	// Fast4 and Fast6 say which slot's entry an IPv4 or IPv6 port's rule
	// can sit in, found with one array load: a rule whose Slot is its
	// port's goes there, unless the entry holds another address's rule
	// (the same port on two addresses); other rules go to a hash map that
	// the program searches after the entry. Zero: port i, slot i.
	Fast4, Fast6 FastRange
	// Addresses are the relay's local addresses: besides the loopback, the
	// program is attached to every interface holding one.
	Addresses []netip.Addr
	Log       *slog.Logger
}

// FastRange maps ports onto slots: port Port+i onto slot Slot+i.
type FastRange struct {
	Port uint16
	Slot uint32
}

// Rule forwards the UDP packets arriving at Local from Source to To, sent
// from From, and counts them in counter slot Slot.
type Rule struct {
	Local netip.AddrPort
	// Source is the sender whose packets are forwarded; packets from
	// anyone else go to the socket. Invalid: any sender.
	Source   netip.AddrPort
	From, To netip.AddrPort
	Slot     uint32
	// RTCPToSocket sends packets that look like RTCP (RFC 5761) to the
	// socket instead, for a multiplexing sender whose peer does not
	// multiplex.
	RTCPToSocket bool
}

// Counters are one slot's figures since the forwarder was opened.
type Counters struct {
	Packets, Bytes, Errors uint64
	// Last is the time of the last forwarded packet in Unix nanoseconds,
	// to the kernel's clock tick; 0 when none was.
	Last int64
}

// Forwarder is the loaded program, its maps and its attachments.
type Forwarder struct {
	log     *slog.Logger
	rules   *ebpf.Map // the rules not in their slot's entry, by local address and port
	entries *ebpf.Map // the slots: a rule and the slot's counters each
	prog    *ebpf.Program
	links   []link.Link
	ifaces  []string
	mem     []byte // the slots, mapped
	slots   int
	fast4   FastRange
	fast6   FastRange

	mu     sync.Mutex                // orders rule changes
	placed map[netip.AddrPort]uint32 // where each rule is: its slot's entry, or inHash
	router *router
	// redirectLocal sends packets for this host through
	// bpf_redirect_neigh too, as from any other interface (tests).
	redirectLocal bool

	clockMu  sync.Mutex
	clockAt  time.Time
	clockOff atomic.Int64 // Unix minus CLOCK_MONOTONIC, in nanoseconds
}

// Errors the caller tells apart.
var (
	ErrFamily = errors.New("kernel forwarding: the rule mixes IPv4 and IPv6")
	ErrSlot   = errors.New("kernel forwarding: counter slot out of range")
	ErrClosed = errors.New("kernel forwarding: closed")
)

// Open loads the program and attaches it. The error says why it could not
// (a missing capability, an old kernel, the verifier's reason).
func Open(cfg Config) (_ *Forwarder, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Slots <= 0 {
		return nil, fmt.Errorf("kernel forwarding: no counter slots")
	}
	if err := checkCapabilities(); err != nil {
		return nil, err
	}
	f := &Forwarder{log: cfg.Log, slots: cfg.Slots, fast4: cfg.Fast4, fast6: cfg.Fast6, placed: map[netip.AddrPort]uint32{}}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	// Since Linux 5.11 eBPF memory is charged to the memory cgroup, not
	// RLIMIT_MEMLOCK, so the limit is left alone (raising it would need
	// CAP_SYS_RESOURCE).
	f.rules, err = ebpf.NewMap(&ebpf.MapSpec{Name: RulesName, Type: ebpf.Hash,
		KeySize: keySize, ValueSize: ruleSize, MaxEntries: uint32(cfg.Slots)})
	if err != nil {
		return nil, fmt.Errorf("kernel forwarding: creating the rules map: %w", explain(err))
	}
	f.entries, err = ebpf.NewMap(&ebpf.MapSpec{Name: SlotsName, Type: ebpf.Array,
		KeySize: 4, ValueSize: entrySize, MaxEntries: uint32(cfg.Slots), Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		return nil, fmt.Errorf("kernel forwarding: creating the slots map: %w", explain(err))
	}
	size := cfg.Slots * entrySize
	if page := os.Getpagesize(); size%page != 0 {
		size += page - size%page
	}
	// Writable: rules in the slots are written here, under their
	// sequence count, without a system call.
	f.mem, err = unix.Mmap(f.entries.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.mem = nil
		return nil, fmt.Errorf("kernel forwarding: mapping the slots: %w", err)
	}
	f.prog, err = ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name: ProgramName, Type: ebpf.SchedCLS, AttachType: ebpf.AttachTCXIngress,
		Instructions: program(f.rules.FD(), f.entries.FD(), cfg.Slots, cfg.Fast4, cfg.Fast6), License: "Dual MIT/GPL",
	}, ebpf.ProgramOptions{})
	if err != nil {
		// A verifier error carries the verifier's log; %+v prints all of it.
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("kernel forwarding: the verifier refused the program: %+v", verr)
		}
		return nil, fmt.Errorf("kernel forwarding: loading the program: %w", explain(err))
	}
	if f.router, err = newRouter(); err != nil {
		return nil, fmt.Errorf("kernel forwarding: %w", err)
	}
	ifaces, skipped, err := attachTargets(cfg.Addresses)
	if err != nil {
		return nil, fmt.Errorf("kernel forwarding: %w", err)
	}
	if len(skipped) > 0 {
		f.log.Warn("kernel forwarding: not an Ethernet interface, its packets stay in userspace", "interfaces", skipped)
	}
	for _, itf := range ifaces {
		l, err := link.AttachTCX(link.TCXOptions{Interface: itf.Index, Program: f.prog, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return nil, fmt.Errorf("kernel forwarding: attaching to %s's TCX ingress (Linux 6.6 or later): %w", itf.Name, explain(err))
		}
		f.links = append(f.links, l)
		f.ifaces = append(f.ifaces, itf.Name)
	}
	f.refreshClock(time.Now())
	return f, nil
}

// attachTargets is the loopback and every Ethernet interface holding one of
// addrs: the program reads an Ethernet header, which the loopback has too.
// Other interfaces holding one are skipped: their packets stay in userspace.
func attachTargets(addrs []netip.Addr) (attach []net.Interface, skipped []string, err error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, itf := range all {
		if itf.Flags&net.FlagLoopback != 0 {
			attach = append(attach, itf)
			continue
		}
		if !holds(itf, addrs) {
			continue
		}
		if t, _ := os.ReadFile("/sys/class/net/" + itf.Name + "/type"); strings.TrimSpace(string(t)) != "1" { // ARPHRD_ETHER
			skipped = append(skipped, itf.Name)
			continue
		}
		attach = append(attach, itf)
	}
	if len(attach) == 0 {
		return nil, nil, fmt.Errorf("no loopback interface")
	}
	return attach, skipped, nil
}

func holds(itf net.Interface, addrs []netip.Addr) bool {
	have, err := itf.Addrs()
	if err != nil {
		return false
	}
	for _, a := range have {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		for _, want := range addrs {
			if ip.Unmap() == want.Unmap() {
				return true
			}
		}
	}
	return false
}

// Interfaces names the interfaces the program is attached to.
func (f *Forwarder) Interfaces() []string { return append([]string(nil), f.ifaces...) }

// Slots is the number of counter slots.
func (f *Forwarder) Slots() int { return f.slots }

// Close detaches the program and frees everything; rules vanish with it.
func (f *Forwarder) Close() error {
	for _, l := range f.links {
		l.Close()
	}
	f.links = nil
	f.mu.Lock()
	if f.mem != nil {
		unix.Munmap(f.mem)
		f.mem = nil
	}
	f.mu.Unlock()
	if f.prog != nil {
		f.prog.Close()
	}
	for _, m := range []*ebpf.Map{f.rules, f.entries} {
		if m != nil {
			m.Close()
		}
	}
	if f.router != nil {
		f.router.close()
	}
	return nil
}

func key(local netip.AddrPort) []byte {
	k := make([]byte, keySize)
	a := local.Addr().Unmap()
	copy(k, a.AsSlice())
	binary.BigEndian.PutUint16(k[16:], local.Port())
	family := uint16(4)
	if a.Is6() {
		family = 6
	}
	binary.NativeEndian.PutUint16(k[18:], family)
	return k
}

// Install adds or replaces the rule for r.Local.
func (f *Forwarder) Install(r Rule) error {
	if int(r.Slot) >= f.slots {
		return ErrSlot
	}
	local, from, to := r.Local.Addr().Unmap(), r.From.Addr().Unmap(), r.To.Addr().Unmap()
	v4 := local.Is4()
	if from.Is4() != v4 || to.Is4() != v4 || r.Source.IsValid() && r.Source.Addr().Unmap().Is4() != v4 {
		return ErrFamily
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mem == nil {
		return ErrClosed
	}
	rt, err := f.router.lookup(to)
	if err != nil {
		return fmt.Errorf("kernel forwarding to %s: %w", to, err)
	}
	v := make([]byte, ruleSize)
	var flags uint16
	if r.Source.IsValid() {
		copy(v[ruleSrc:], r.Source.Addr().Unmap().AsSlice())
		binary.BigEndian.PutUint16(v[ruleSport:], r.Source.Port())
	} else {
		flags |= flagAnySrc
	}
	if r.RTCPToSocket {
		flags |= flagRTCPUser
	}
	if rt.local && !f.redirectLocal {
		flags |= flagLocal
	}
	binary.NativeEndian.PutUint16(v[ruleFlags:], flags)
	binary.NativeEndian.PutUint32(v[ruleIfindex:], uint32(rt.ifindex))
	if v4 {
		copy(v[ruleAddrs4:], from.AsSlice())
		copy(v[ruleAddrs4+4:], to.AsSlice())
	} else {
		copy(v[ruleAddrs6:], from.AsSlice())
		copy(v[ruleAddrs6+16:], to.AsSlice())
	}
	binary.BigEndian.PutUint16(v[rulePorts:], r.From.Port())
	binary.BigEndian.PutUint16(v[rulePorts+2:], r.To.Port())
	binary.NativeEndian.PutUint32(v[ruleSlot:], r.Slot)

	l := netip.AddrPortFrom(local, r.Local.Port())
	was, had := f.placed[l]
	if i, ok := f.fastEntry(l); ok && i == r.Slot && f.entryFor(i, l) {
		// In the slot's entry; then out of the hash map, if it was there:
		// the program finds one of the two meanwhile.
		f.writeEntry(i, l, v)
		f.placed[l] = i
		if had && was == inHash {
			return f.deleteHashed(l)
		}
		return nil
	}
	if err := f.rules.Update(key(l), v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("kernel forwarding: installing the rule for %s: %w", r.Local, err)
	}
	f.placed[l] = inHash
	if had && was != inHash {
		f.clearEntry(was)
	}
	return nil
}

// inHash marks a rule kept in the rules hash map.
const inHash = ^uint32(0)

// fastEntry is the slot whose entry local's rule can sit in.
func (f *Forwarder) fastEntry(local netip.AddrPort) (uint32, bool) {
	fr := f.fast4
	if local.Addr().Is6() {
		fr = f.fast6
	}
	if local.Port() < fr.Port {
		return 0, false
	}
	i := uint64(local.Port()-fr.Port) + uint64(fr.Slot)
	return uint32(i), i < uint64(f.slots)
}

// entry points at slot i's entry in the shared mapping.
func (f *Forwarder) entry(i uint32, off uintptr) unsafe.Pointer {
	return unsafe.Pointer(&f.mem[uintptr(i)*entrySize+off])
}

// entryFor says whether slot i's entry is free or holds local's rule
// (under f.mu).
func (f *Forwarder) entryFor(i uint32, local netip.AddrPort) bool {
	if atomic.LoadUint32((*uint32)(f.entry(i, entFamily))) == 0 {
		return true
	}
	at, ok := f.placed[local]
	return ok && at == i
}

// writeEntry puts a rule in slot i's entry: the sequence count is odd
// while the entry changes, so that the program leaves a packet that comes
// meanwhile to the socket instead of reading half a rule. Every store is
// atomic, so that none is seen out of order.
func (f *Forwarder) writeEntry(i uint32, local netip.AddrPort, rule []byte) {
	seq := (*uint32)(f.entry(i, entSeq))
	atomic.AddUint32(seq, 1)
	for o := 0; o < ruleSize; o += 8 {
		atomic.StoreUint64((*uint64)(f.entry(i, uintptr(o))), binary.NativeEndian.Uint64(rule[o:]))
	}
	var a [16]byte
	copy(a[:], local.Addr().AsSlice())
	for o := 0; o < 16; o += 8 {
		atomic.StoreUint64((*uint64)(f.entry(i, entLocal+uintptr(o))), binary.NativeEndian.Uint64(a[o:]))
	}
	family := uint32(4)
	if local.Addr().Is6() {
		family = 6
	}
	atomic.StoreUint32((*uint32)(f.entry(i, entFamily)), family)
	atomic.AddUint32(seq, 1)
}

// clearEntry empties slot i's entry.
func (f *Forwarder) clearEntry(i uint32) {
	seq := (*uint32)(f.entry(i, entSeq))
	atomic.AddUint32(seq, 1)
	atomic.StoreUint32((*uint32)(f.entry(i, entFamily)), 0)
	atomic.AddUint32(seq, 1)
}

func (f *Forwarder) deleteHashed(local netip.AddrPort) error {
	err := f.rules.Delete(key(local))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("kernel forwarding: removing the rule for %s: %w", local, err)
	}
	return nil
}

// Remove deletes the rule for local, if there is one.
func (f *Forwarder) Remove(local netip.AddrPort) error {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mem == nil {
		return ErrClosed
	}
	at, ok := f.placed[local]
	delete(f.placed, local)
	if ok && at != inHash {
		f.clearEntry(at)
		return nil
	}
	return f.deleteHashed(local)
}

// Rules counts the rules in the kernel's maps: the slots' entries holding
// one (read through the mapping) and the hash map, walked.
func (f *Forwarder) Rules() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mem == nil {
		return 0, ErrClosed
	}
	n, err := countEntries(f.rules)
	for i := range uint32(f.slots) {
		if atomic.LoadUint32((*uint32)(f.entry(i, entFamily))) != 0 {
			n++
		}
	}
	return n, err
}

// Counters reads a slot. It makes no system call: the counters map is
// mapped into this process.
func (f *Forwarder) Counters(slot uint32) Counters {
	if int(slot) >= f.slots {
		return Counters{}
	}
	p := f.entry(slot, 0)
	c := Counters{
		Packets: atomic.LoadUint64((*uint64)(unsafe.Add(p, cntPackets))),
		Bytes:   atomic.LoadUint64((*uint64)(unsafe.Add(p, cntBytes))),
		Errors:  atomic.LoadUint64((*uint64)(unsafe.Add(p, cntErrors))),
	}
	if last := int64(atomic.LoadUint64((*uint64)(unsafe.Add(p, cntLast)))); last != 0 {
		c.Last = last + f.clockOffset()
	}
	return c
}

// clockOffset converts the program's CLOCK_MONOTONIC timestamps to Unix
// time; it is measured again at most once a second.
func (f *Forwarder) clockOffset() int64 {
	now := time.Now()
	f.clockMu.Lock()
	stale := now.Sub(f.clockAt) > time.Second
	f.clockMu.Unlock()
	if stale {
		f.refreshClock(now)
	}
	return f.clockOff.Load()
}

func (f *Forwarder) refreshClock(now time.Time) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return
	}
	f.clockMu.Lock()
	f.clockAt = now
	f.clockOff.Store(time.Now().UnixNano() - ts.Nano())
	f.clockMu.Unlock()
}

// Capable says whether this process has the capabilities the kernel path
// needs, naming those it lacks (tests skip on this, and only this).
func Capable() error { return checkCapabilities() }

// checkCapabilities names what is missing before the kernel refuses with a
// bare EPERM.
func checkCapabilities() error {
	have, err := effectiveCaps()
	if err != nil {
		return nil // let the kernel decide
	}
	var missing []string
	admin := have&(1<<unix.CAP_SYS_ADMIN) != 0
	if have&(1<<unix.CAP_BPF) == 0 && !admin {
		missing = append(missing, "CAP_BPF")
	}
	if have&(1<<unix.CAP_NET_ADMIN) == 0 && !admin {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if len(missing) > 0 {
		return fmt.Errorf("kernel forwarding needs %s (missing from this process)", strings.Join(missing, " and "))
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// explain adds a hint to the kernel's bare errors.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (needs CAP_BPF and CAP_NET_ADMIN)", err)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w (needs Linux 6.6 or later)", err)
	}
	return err
}
