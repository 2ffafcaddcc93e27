package kernelfwd

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"
)

// The program, written with cilium/ebpf's asm package so that building
// rtcgate needs no C compiler. In C it would read:
//
//	int rtcgate_fwd(struct __sk_buff *skb) {
//		if (skb->gso_size) return TCX_NEXT;
//		parse Ethernet + IPv4 (no options, no fragment) or IPv6 (UDP next),
//		    then UDP; the lengths must agree with skb->len;
//		i = dport - fast.port + fast.slot;                  // per family
//		if (i < slots && (e = &slots[i], seq = e->seq, !(seq & 1))
//		    && e->family == family && e->local == daddr) {
//			rule = copy of e->rule;                     // on the stack
//			if (e->seq != seq) return TCX_NEXT;         // rewritten meanwhile
//		} else if (e->seq & 1) return TCX_NEXT;
//		else rule = lookup(rules, {daddr, dport, family}); // the others
//		if (!rule) return TCX_NEXT;                         // not ours: socket
//		if (!(rule->flags & ANY_SOURCE) && (saddr, sport) != rule->source)
//			return TCX_NEXT;                            // userspace decides
//		if (rule->flags & RTCP_TO_USER && payload looks like RTCP)
//			return TCX_NEXT;
//		fix the IPv4 header checksum and the UDP checksum (addresses as
//		    pseudo-header changes, ports as payload changes), then write
//		    the new addresses and ports;
//		slots[rule->slot].counters: packets++, bytes += payload, last = now;
//		if (rule->flags & LOCAL && skb->ifindex == LOOPBACK_IFINDEX)
//			return TCX_PASS;                            // up the stack to the new destination
//		return bpf_redirect_neigh(rule->ifindex, NULL, 0, 0);
//	}
//
// Most rules sit in the slots array, at the index their destination port
// gives (a single array load, no hash walk), next to their counters; the
// rules whose port's entry holds another address's rule (the same port on
// two addresses) or whose slot is not their port's go to the rules hash map,
// looked up when the entry does not match. Userspace writes entries through
// a shared mapping under a sequence count (odd while it writes), so that the
// program never uses half a rule: it copies the rule and checks the count.
//
// Checksums go through the kernel's helpers, which know the skb's checksum
// state: loopback packets carry CHECKSUM_PARTIAL (only the pseudo-header
// changes matter), packets from a NIC CHECKSUM_COMPLETE or NONE.

// Rule value layout (ruleSize bytes), written by Install.
const (
	ruleSrc     = 0  // [16]byte expected source address (IPv4 in the first 4)
	ruleSport   = 16 // be16 expected source port
	ruleFlags   = 18 // u16 flag* bits
	ruleIfindex = 20 // u32 egress interface
	ruleAddrs6  = 24 // [32]byte new source and destination address, IPv6
	ruleAddrs4  = 48 // [8]byte new source and destination address, IPv4
	rulePorts   = 56 // be16 new source port, be16 new destination port
	ruleSlot    = 60 // u32 counter slot
	ruleSize    = 64
	keySize     = 20 // [16]byte address, be16 port, u16 family (4 or 6)
	// Slot entry layout (entrySize bytes, two cache lines): the rule, then
	// what the program checks it against, then the slot's counters.
	entLocal     = ruleSize // [16]byte the rule's local address (IPv4 in the first 4)
	entSeq       = 80       // u32 sequence count, odd while userspace writes the entry
	entFamily    = 84       // u32 4 or 6; 0: no rule in the entry
	entCounters  = 96       // u64 packets, bytes, last (CLOCK_MONOTONIC ns), errors
	entrySize    = 128
	cntPackets   = entCounters + 0
	cntBytes     = entCounters + 8
	cntLast      = entCounters + 16
	cntErrors    = entCounters + 24
	maxPayload   = 4096 // as the userspace relay's read buffer: longer goes up and is counted there
	loopbackIf   = 1    // LOOPBACK_IFINDEX
	tcxNext      = -1
	tcxPass      = 0
	tcxDrop      = 2
	ethHdr       = 14
	flagAnySrc   = 1 << 0 // no source check (asymmetric)
	flagRTCPUser = 1 << 1 // RTCP-looking packets go to userspace (demultiplexing)
	flagLocal    = 1 << 2 // the destination is this host
)

// Offsets in struct __sk_buff.
const (
	skbLen      = 0
	skbProtocol = 16
	skbIfindex  = 40
	skbData     = 76
	skbDataEnd  = 80
	skbGSOSize  = 176
)

// Helper flags.
const (
	fPseudoHdr    = 1 << 4 // BPF_F_PSEUDO_HDR
	fMarkMangled0 = 1 << 5 // BPF_F_MARK_MANGLED_0
)

// Stack slots (offsets from R10).
const (
	stKey      = -24 // 20 bytes
	stPortDiff = -32
	stPayload  = -40
	stSlot     = -44
	stNow      = -56
	stIndex    = -60
	stRule     = -128 // ruleSize bytes: the rule copied out of its slot entry
)

// ne16 is a big-endian 16-bit value as a native load from the packet sees it.
func ne16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// program builds the instructions; rules and slots are map descriptors,
// slots has n entries; fast4 and fast6 say which entry a port's rule sits in.
func program(rules, slots, n int, fast4, fast6 FastRange) asm.Instructions {
	const (
		ctx, rule, data, end = asm.R6, asm.R7, asm.R8, asm.R9
	)
	var in asm.Instructions
	add := func(i ...asm.Instruction) { in = append(in, i...) }

	// Entry.
	add(
		asm.Mov.Reg(ctx, asm.R1),
		asm.LoadMem(asm.R2, ctx, skbGSOSize, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "next"),
		asm.LoadMem(data, ctx, skbData, asm.Word),
		asm.LoadMem(end, ctx, skbDataEnd, asm.Word),
		asm.LoadMem(asm.R2, ctx, skbProtocol, asm.Word),
		asm.JEq.Imm(asm.R2, ne16(0x0800), "v4"),
		asm.JEq.Imm(asm.R2, ne16(0x86dd), "v6"),
		asm.Ja.Label("next"),
	)

	// lookup looks the key on the stack up; the rule goes to R7.
	lookup := func(family int64) {
		add(
			asm.StoreImm(asm.RFP, stKey+18, family, asm.Half),
			asm.LoadMapPtr(asm.R1, rules),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, stKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "next"),
			asm.Mov.Reg(rule, asm.R0),
		)
	}
	// payloadLen checks that the UDP length (in R3, network order) is the
	// IP payload length (in R2, host order), and keeps the UDP payload's
	// length on the stack.
	payloadLen := func() {
		add(
			asm.HostTo(asm.BE, asm.R3, asm.Half),
			asm.JNE.Reg(asm.R2, asm.R3, "next"),
			asm.Sub.Imm(asm.R3, 8),
			asm.JGT.Imm(asm.R3, maxPayload, "next"),
			asm.StoreMem(asm.RFP, stPayload, asm.R3, asm.DWord),
		)
	}
	// rtcpCheck sends packets that look like RTCP (RFC 5761: version 2,
	// packet type 192-223) to userspace when the rule says so; payload is
	// the UDP payload's offset. R2 holds the rule's flags. It starts at
	// label at and goes on at label.
	rtcpCheck := func(payload int32, at, label string) {
		add(
			asm.Mov.Reg(asm.R3, asm.R2).WithSymbol(at),
			asm.And.Imm(asm.R3, flagRTCPUser),
			asm.JEq.Imm(asm.R3, 0, label),
			asm.Mov.Reg(asm.R1, data),
			asm.Add.Imm(asm.R1, payload+2),
			asm.JGT.Reg(asm.R1, end, label),
			asm.LoadMem(asm.R3, data, int16(payload), asm.Byte),
			asm.And.Imm(asm.R3, 0xc0),
			asm.JNE.Imm(asm.R3, 0x80, label),
			asm.LoadMem(asm.R3, data, int16(payload+1), asm.Byte),
			asm.JLT.Imm(asm.R3, 192, label),
			asm.JGT.Imm(asm.R3, 223, label),
			asm.Ja.Label("next"),
		)
	}
	// buildKey puts the destination address (words 32-bit words at
	// daddr, the rest zero) and port (at dport) on the stack, then looks
	// the rule up.
	buildKey := func(daddr, words, dport int16, family int64) {
		for i := int16(0); i < 4; i++ {
			if i < words {
				add(asm.LoadMem(asm.R2, data, daddr+4*i, asm.Word), asm.StoreMem(asm.RFP, stKey+4*i, asm.R2, asm.Word))
			} else {
				add(asm.StoreImm(asm.RFP, stKey+4*i, 0, asm.Word))
			}
		}
		add(
			asm.LoadMem(asm.R2, data, dport, asm.Half),
			asm.StoreMem(asm.RFP, stKey+16, asm.R2, asm.Half),
		)
		lookup(family)
	}
	// fastRule looks the rule up in its port's slot entry; it goes on at
	// label with the rule copied to the stack in R7, or at miss when the
	// entry holds none for this address (or none can be in the entry).
	fastRule := func(daddr, words, dport int16, family int64, fast FastRange, label, miss string) {
		add(
			asm.LoadMem(asm.R2, data, dport, asm.Half),
			asm.HostTo(asm.BE, asm.R2, asm.Half),
			asm.JLT.Imm(asm.R2, int32(fast.Port), miss),
			asm.Sub.Imm(asm.R2, int32(fast.Port)),
			asm.Add.Imm(asm.R2, int32(fast.Slot)),
			asm.JGE.Imm(asm.R2, int32(n), miss),
			asm.StoreMem(asm.RFP, stIndex, asm.R2, asm.Word),
			asm.LoadMapPtr(asm.R1, slots),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, stIndex),
			asm.FnMapLookupElem.Call(), // inlined by the verifier: an array
			asm.JEq.Imm(asm.R0, 0, miss),
			// The sequence count, read with a full barrier (an atomic
			// fetch), before and after the rule is read.
			asm.Mov.Imm(asm.R5, 0),
			asm.FetchAdd.Mem(asm.R0, asm.R5, asm.Word, entSeq),
			asm.Mov.Reg(asm.R1, asm.R5),
			asm.And.Imm(asm.R1, 1),
			asm.JNE.Imm(asm.R1, 0, "next"), // being written: the socket has it
			asm.LoadMem(asm.R1, asm.R0, entFamily, asm.Word),
			asm.JNE.Imm(asm.R1, int32(family), miss),
		)
		for i := int16(0); i < words; i++ {
			add(
				asm.LoadMem(asm.R1, data, daddr+4*i, asm.Word),
				asm.LoadMem(asm.R2, asm.R0, entLocal+4*i, asm.Word),
				asm.JNE.Reg(asm.R1, asm.R2, miss),
			)
		}
		for i := int16(0); i < ruleSize/8; i++ {
			add(
				asm.LoadMem(asm.R1, asm.R0, 8*i, asm.DWord),
				asm.StoreMem(asm.RFP, stRule+8*i, asm.R1, asm.DWord),
			)
		}
		add(
			asm.Mov.Imm(asm.R1, 0),
			asm.FetchAdd.Mem(asm.R0, asm.R1, asm.Word, entSeq),
			asm.JNE.Reg(asm.R1, asm.R5, "next"), // rewritten meanwhile
			asm.Mov.Reg(rule, asm.RFP),
			asm.Add.Imm(rule, stRule),
			asm.Ja.Label(label),
		)
	}
	// sourceCheck sends packets from anyone but the rule's source to
	// userspace, unless the rule takes any source; it leaves the rule's
	// flags in R2 and goes on at label.
	sourceCheck := func(saddr, words, sport int16, at, label string) {
		add(
			asm.LoadMem(asm.R2, rule, ruleFlags, asm.Half).WithSymbol(at),
			asm.Mov.Reg(asm.R3, asm.R2),
			asm.And.Imm(asm.R3, flagAnySrc),
			asm.JNE.Imm(asm.R3, 0, label),
		)
		for i := int16(0); i < words; i++ {
			add(
				asm.LoadMem(asm.R3, data, saddr+4*i, asm.Word),
				asm.LoadMem(asm.R4, rule, ruleSrc+4*i, asm.Word),
				asm.JNE.Reg(asm.R3, asm.R4, "next"),
			)
		}
		add(
			asm.LoadMem(asm.R3, data, sport, asm.Half),
			asm.LoadMem(asm.R4, rule, ruleSport, asm.Half),
			asm.JNE.Reg(asm.R3, asm.R4, "next"),
		)
	}
	// csumDiff computes bpf_csum_diff(data+from, n, rule+to, n, 0) into R0.
	csumDiff := func(from int32, to int32, n int32) {
		add(
			asm.Mov.Reg(asm.R1, data),
			asm.Add.Imm(asm.R1, from),
			asm.Mov.Imm(asm.R2, n),
			asm.Mov.Reg(asm.R3, rule),
			asm.Add.Imm(asm.R3, to),
			asm.Mov.Imm(asm.R4, n),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnCsumDiff.Call(),
		)
	}
	// l4Replace applies a checksum difference (in reg) to the UDP checksum
	// at off.
	csumReplace := func(fn asm.BuiltinFunc, off int32, diff asm.Register, flags int32) {
		add(
			asm.Mov.Reg(asm.R4, diff),
			asm.Mov.Reg(asm.R1, ctx),
			asm.Mov.Imm(asm.R2, off),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mov.Imm(asm.R5, flags),
			fn.Call(),
			asm.JNE.Imm(asm.R0, 0, "fail"),
		)
	}
	// rewrite fixes the checksums and writes the new addresses and ports:
	// n bytes of addresses at addrOff in the packet (ports follow them),
	// from the rule at ruleAddrs; l4Check is the UDP checksum's offset. It
	// starts at label at.
	rewrite := func(at string, addrOff, n, ruleAddrs, l4Check int32, v4 bool) {
		start := len(in)
		csumDiff(addrOff+n, rulePorts, 4)
		in[start] = in[start].WithSymbol(at)
		add(asm.StoreMem(asm.RFP, stPortDiff, asm.R0, asm.DWord))
		csumDiff(addrOff, ruleAddrs, n)
		add(asm.Mov.Reg(end, asm.R0)) // end is not needed any more: it holds the address difference
		var mangled int32
		if v4 {
			mangled = fMarkMangled0 // IPv4 UDP without checksum keeps none
			csumReplace(asm.FnL3CsumReplace, ethHdr+10, end, 0)
		}
		csumReplace(asm.FnL4CsumReplace, l4Check, end, fPseudoHdr|mangled)
		add(asm.LoadMem(asm.R0, asm.RFP, stPortDiff, asm.DWord))
		csumReplace(asm.FnL4CsumReplace, l4Check, asm.R0, mangled)
		add(
			asm.Mov.Reg(asm.R1, ctx),
			asm.Mov.Imm(asm.R2, addrOff),
			asm.Mov.Reg(asm.R3, rule),
			asm.Add.Imm(asm.R3, ruleAddrs),
			asm.Mov.Imm(asm.R4, n+4),
			asm.Mov.Imm(asm.R5, 0),
			asm.FnSkbStoreBytes.Call(),
			asm.JNE.Imm(asm.R0, 0, "fail"),
			asm.Ja.Label("count"),
		)
	}

	// IPv4: Ethernet 14, IPv4 20 (no options), UDP 8.
	const ip4, udp4 = ethHdr, ethHdr + 20
	add(
		asm.Mov.Reg(asm.R1, data).WithSymbol("v4"),
		asm.Add.Imm(asm.R1, udp4+8),
		asm.JGT.Reg(asm.R1, end, "next"),
		asm.LoadMem(asm.R2, data, ip4, asm.Byte),
		asm.JNE.Imm(asm.R2, 0x45, "next"),
		asm.LoadMem(asm.R2, data, ip4+9, asm.Byte),
		asm.JNE.Imm(asm.R2, 17, "next"),
		asm.LoadMem(asm.R2, data, ip4+6, asm.Half),
		asm.And.Imm(asm.R2, ne16(0x3fff)), // more fragments, fragment offset
		asm.JNE.Imm(asm.R2, 0, "next"),
		asm.LoadMem(asm.R2, data, ip4+2, asm.Half), // total length
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.LoadMem(asm.R3, ctx, skbLen, asm.Word),
		asm.Sub.Imm(asm.R3, ethHdr),
		asm.JNE.Reg(asm.R2, asm.R3, "next"), // no trailer, nothing missing
		asm.Sub.Imm(asm.R2, 20),
		asm.LoadMem(asm.R3, data, udp4+4, asm.Half),
	)
	payloadLen()
	fastRule(ip4+16, 1, udp4+2, 4, fast4, "v4rule", "v4hash")
	hash := len(in)
	buildKey(ip4+16, 1, udp4+2, 4)
	in[hash] = in[hash].WithSymbol("v4hash")
	sourceCheck(ip4+12, 1, udp4, "v4rule", "v4src")
	rtcpCheck(udp4+8, "v4src", "v4go")
	rewrite("v4go", ip4+12, 8, ruleAddrs4, udp4+6, true)

	// IPv6: Ethernet 14, IPv6 40 (UDP as the next header), UDP 8.
	const ip6, udp6 = ethHdr, ethHdr + 40
	add(
		asm.Mov.Reg(asm.R1, data).WithSymbol("v6"),
		asm.Add.Imm(asm.R1, udp6+8),
		asm.JGT.Reg(asm.R1, end, "next"),
		asm.LoadMem(asm.R2, data, ip6, asm.Byte),
		asm.And.Imm(asm.R2, 0xf0),
		asm.JNE.Imm(asm.R2, 0x60, "next"),
		asm.LoadMem(asm.R2, data, ip6+6, asm.Byte),
		asm.JNE.Imm(asm.R2, 17, "next"),
		asm.LoadMem(asm.R2, data, ip6+4, asm.Half), // payload length
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.LoadMem(asm.R3, ctx, skbLen, asm.Word),
		asm.Sub.Imm(asm.R3, udp6),
		asm.JNE.Reg(asm.R2, asm.R3, "next"),
		asm.LoadMem(asm.R3, data, udp6+4, asm.Half),
	)
	payloadLen()
	fastRule(ip6+24, 4, udp6+2, 6, fast6, "v6rule", "v6hash")
	hash = len(in)
	buildKey(ip6+24, 4, udp6+2, 6)
	in[hash] = in[hash].WithSymbol("v6hash")
	sourceCheck(ip6+8, 4, udp6, "v6rule", "v6src")
	rtcpCheck(udp6+8, "v6src", "v6go")
	rewrite("v6go", ip6+8, 32, ruleAddrs6, udp6+6, false)

	// counterOf puts the rule's counters in R0, or goes to missing.
	counterOf := func(at, missing string) {
		first := asm.LoadMem(asm.R2, rule, ruleSlot, asm.Word)
		if at != "" {
			first = first.WithSymbol(at)
		}
		add(
			first,
			asm.StoreMem(asm.RFP, stSlot, asm.R2, asm.Word),
			asm.LoadMapPtr(asm.R1, slots),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, stSlot),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, missing),
		)
	}

	// Count, then send on.
	add(
		asm.FnKtimeGetCoarseNs.Call().WithSymbol("count"),
		asm.StoreMem(asm.RFP, stNow, asm.R0, asm.DWord),
	)
	counterOf("", "send")
	add(
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, cntPackets),
		asm.LoadMem(asm.R1, asm.RFP, stPayload, asm.DWord),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, cntBytes),
		asm.LoadMem(asm.R1, asm.RFP, stNow, asm.DWord),
		asm.StoreMem(asm.R0, cntLast, asm.R1, asm.DWord),

		asm.LoadMem(asm.R2, rule, ruleFlags, asm.Half).WithSymbol("send"),
		asm.And.Imm(asm.R2, flagLocal),
		asm.JEq.Imm(asm.R2, 0, "neigh"),
		asm.LoadMem(asm.R2, ctx, skbIfindex, asm.Word),
		asm.JNE.Imm(asm.R2, loopbackIf, "neigh"),
		// Arrived on the loopback for this host: the stack delivers it to
		// the new destination's socket.
		asm.Mov.Imm(asm.R0, tcxPass),
		asm.Return(),
		asm.LoadMem(asm.R1, rule, ruleIfindex, asm.Word).WithSymbol("neigh"),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),
	)
	// A helper failed half-way through the rewrite: the packet is neither
	// the old one nor the new one, so it is dropped and counted.
	counterOf("fail", "drop")
	add(
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, cntErrors),
		asm.Mov.Imm(asm.R0, tcxDrop).WithSymbol("drop"),
		asm.Return(),

		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	)
	return in
}
