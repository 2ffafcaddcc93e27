package main

import (
	"io"
	"net"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/rtcgate/rtcgate/internal/kernelfwd"
)

// The kernel path's own cost, exactly: with kernel.bpf_stats enabled the
// kernel times every run of every eBPF program. Only the rtcgate-kernel
// target has a program; it runs for every packet arriving on the loopback,
// the relay's and anyone else's.

// enableBPFStats turns the run-time statistics on until the returned
// closer is closed (nil when they cannot be: then the rows stay empty).
func enableBPFStats() io.Closer {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil
	}
	return c
}

// bpfProgram is a target's forwarding program, or nothing.
type bpfProgram struct{ in *kernelfwd.Inspection }

func kernelProgram(pid int) bpfProgram {
	if pid <= 0 {
		return bpfProgram{}
	}
	in, err := kernelfwd.Inspect(pid)
	if err != nil || in.Program == nil {
		if in != nil {
			in.Close()
		}
		return bpfProgram{}
	}
	return bpfProgram{in}
}

func (p bpfProgram) Close() {
	if p.in != nil {
		p.in.Close()
	}
}

type bpfRun struct {
	runtime time.Duration
	runs    uint64
	ok      bool
}

func (p bpfProgram) stats() bpfRun {
	if p.in == nil {
		return bpfRun{}
	}
	s, err := p.in.Program.Stats()
	if err != nil {
		return bpfRun{}
	}
	return bpfRun{s.Runtime, s.RunCount, true}
}

// loIngressPrograms counts the eBPF programs attached to the loopback's
// TCX ingress (-1 if it cannot tell). Each runs on every loopback packet,
// whoever sent it: on a shared box other people's relays with a kernel
// path make every packet of this run dearer, the sink's too.
func loIngressPrograms() int {
	lo, err := net.InterfaceByName(loopbackIface)
	if err != nil {
		return -1
	}
	r, err := link.QueryPrograms(link.QueryOptions{Target: lo.Index, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return -1
	}
	return len(r.Programs)
}

// loopbackIface is the interface the benchmark's packets go through.
const loopbackIface = "lo"
