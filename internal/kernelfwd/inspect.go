package kernelfwd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"github.com/cilium/ebpf"
)

// Names the kernel shows for the program and the maps (bpftool, fdinfo).
const (
	ProgramName = "rtcgate_fwd"
	RulesName   = "rtcgate_rules"
	SlotsName   = "rtcgate_slots"
)

// Inspection is another process's kernel path as the kernel holds it, found
// through that process's file descriptors: for tests that check what is in
// the kernel (not what rtcgate believes) and for benchmarks that read the
// program's run time.
type Inspection struct {
	Program *ebpf.Program // nil if the process has none
	Rules   *ebpf.Map     // the rules hash map; nil if the process has none
	Slots   *ebpf.Map     // the slots' entries, most rules in them; nil if none
}

var fdinfoID = regexp.MustCompile(`(?m)^(prog|map)_id:\s*(\d+)$`)

// Inspect looks at process pid's descriptors (/proc/PID/fdinfo names the
// eBPF objects' ids). It needs the same privileges as loading the path.
func Inspect(pid int) (*Inspection, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	in := &Inspection{}
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		m := fdinfoID.FindSubmatch(b)
		if m == nil {
			continue
		}
		id, _ := strconv.ParseUint(string(m[2]), 10, 32)
		if string(m[1]) == "prog" && in.Program == nil {
			p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if err != nil {
				continue
			}
			if info, err := p.Info(); err == nil && info.Name == ProgramName {
				in.Program = p
				continue
			}
			p.Close()
		}
		if string(m[1]) == "map" && (in.Rules == nil || in.Slots == nil) {
			mp, err := ebpf.NewMapFromID(ebpf.MapID(id))
			if err != nil {
				continue
			}
			if info, err := mp.Info(); err == nil && info.Name == RulesName && in.Rules == nil {
				in.Rules = mp
				continue
			} else if err == nil && info.Name == SlotsName && in.Slots == nil {
				in.Slots = mp
				continue
			}
			mp.Close()
		}
	}
	return in, nil
}

// RuleCount walks the rules map and the slots' entries.
func (in *Inspection) RuleCount() (int, error) {
	if in.Rules == nil || in.Slots == nil {
		return 0, errors.New("no rules map in that process")
	}
	n, err := countEntries(in.Rules)
	if err != nil {
		return 0, err
	}
	var k uint32
	var v []byte
	it := in.Slots.Iterate()
	for it.Next(&k, &v) {
		if len(v) == entrySize && binary.NativeEndian.Uint32(v[entFamily:]) != 0 {
			n++
		}
	}
	return n, it.Err()
}

// Close releases the handles.
func (in *Inspection) Close() {
	if in.Program != nil {
		in.Program.Close()
	}
	for _, m := range []*ebpf.Map{in.Rules, in.Slots} {
		if m != nil {
			m.Close()
		}
	}
}

func countEntries(m *ebpf.Map) (int, error) {
	n := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}
