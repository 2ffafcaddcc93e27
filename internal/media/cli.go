package media

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// RegisterCLI adds `list sessions` and `terminate`, in rtpengine-ctl's
// formats.
func (e *Engine) RegisterCLI(r *cli.Registry) {
	r.Handle("list sessions", "all|own|foreign|<callid>", "print one line per session, or one session in detail",
		func(_ context.Context, args []string, w io.Writer) {
			if len(args) == 0 {
				io.WriteString(w, "More parameters required.\n")
				return
			}
			switch args[0] {
			case "all", "own":
				e.writeSessionLines(w, args[0])
			case "foreign":
				io.WriteString(w, "No foreign sessions on this media relay.\n")
			default:
				e.writeSession(w, args[0])
			}
		})
	r.Handle("terminate", "<callid>|all|own|foreign", "end a session, or all of them, now", func(_ context.Context, args []string, w io.Writer) {
		if len(args) == 0 {
			io.WriteString(w, "More parameters required.\n")
			return
		}
		switch args[0] {
		case "all", "own":
			e.TerminateAll()
			fmt.Fprintf(w, "All %scalls terminated by operator.\n", map[string]string{"all": "", "own": "own "}[args[0]])
		case "foreign":
			io.WriteString(w, "All foreign calls terminated by operator.\n")
		default:
			if e.Terminate(args[0]) {
				fmt.Fprintf(w, "\nCall Id (%s) successfully terminated by operator.\n\n", args[0])
			} else {
				fmt.Fprintf(w, "\nCall Id not found (%s).\n\n", args[0])
			}
		}
	})
}

func (e *Engine) writeSessionLines(w io.Writer, which string) {
	ids := e.List(int(^uint(0) >> 1))
	found := false
	for _, id := range ids {
		c := e.lookup(id)
		if c == nil {
			continue
		}
		c.mu.Lock()
		deleting := "no"
		if !c.deleteAt.IsZero() {
			deleting = "yes"
		}
		fmt.Fprintf(w, "callid: %60s | deletionmark:%4s | created:%12d | proxy:%s | redis_keyspace:%d | foreign:%s\n",
			c.id, deleting, c.created.Unix(), c.source, 0, "no")
		c.mu.Unlock()
		found = true
	}
	if !found {
		if which == "all" {
			io.WriteString(w, "No sessions on this media relay.\n")
		} else {
			fmt.Fprintf(w, "No %s sessions on this media relay.\n", which)
		}
	}
}

func (e *Engine) writeSession(w io.Writer, id string) {
	c := e.lookup(id)
	if c == nil {
		fmt.Fprintf(w, "\nCall ID not found (%s).\n\n", id)
		return
	}
	c.mu.Lock()
	now := time.Now()
	info := c.info(now)
	deleting := "no"
	if !c.deleteAt.IsZero() {
		deleting = "yes"
	}
	roles := map[string]string{}
	for _, m := range c.order {
		roles[m.tag] = m.role
	}
	source := c.source
	c.mu.Unlock()

	fmt.Fprintf(w, "\ncallid: %s\ndeletionmark: %s\ncreated: %d\nproxy: %s\ntos: 0\nlast_signal: %d\nredis_keyspace: 0\nforeign: no\n\n",
		info.CallID, deleting, info.Created.Unix(), source, info.LastSignal.Unix())
	for _, t := range info.Tags {
		role := roles[t.Tag]
		if role == "" {
			role = "UNKNOWN"
		}
		fmt.Fprintf(w, "--- Tag '%s', type: %s, label '%s', branch '%s', callduration %.6f\n",
			t.Tag, role, t.Label, t.ViaBranch, now.Sub(t.Created).Seconds())
		fmt.Fprintf(w, "---     subscribed to '%s'\n", t.PeerTag)
		fmt.Fprintf(w, "---     subscription of '%s'\n", t.PeerTag)
		for _, m := range t.Medias {
			fmt.Fprintf(w, "------ Media #%d (%s over %s) using unknown codec\n", m.Index, m.Type, m.Protocol)
			if m.Secured() {
				fmt.Fprintf(w, "------ %s: %d DTLS handshake failures, %d ICE checks answered, %d SRTP auth failures, %d ICE restarts\n",
					cmp.Or(m.Secure, "plain"), m.DTLSFailures, m.Checks, m.AuthFailures, m.ICERestarts)
			}
			for _, s := range m.Streams {
				rtcp := ""
				if s.RTCP {
					rtcp = " (RTCP)"
				}
				// rtpengine's line, then the path and what the kernel
				// forwarded of the totals.
				fmt.Fprintf(w, "-------- Port %15s:%-5d <> %15s:%-5d%s, SSRC 0, %d p, %d b, %d e, %d ts, %s, kernel %d p %d b\n",
					addrText(s.Local), s.Local.Port(), addrText(s.Endpoint), s.Endpoint.Port(), rtcp,
					s.Packets, s.Bytes, s.Errors, s.LastPacket.Unix(), s.Path, s.Kernel.Packets, s.Kernel.Bytes)
			}
		}
	}
	io.WriteString(w, "\n\n")
}

func addrText(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return ""
	}
	return ap.Addr().String()
}

// Port metrics use rtpengine's names and labels.
var (
	descPortsUsed = prometheus.NewDesc("rtpengine_ports_used", "Media ports in use", []string{"name", "address"}, nil)
	descPortsFree = prometheus.NewDesc("rtpengine_ports_free", "Media ports free", []string{"name", "address"}, nil)
	descPorts     = prometheus.NewDesc("rtpengine_ports", "Media ports configured", []string{"name", "address"}, nil)
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPortsUsed
	ch <- descPortsFree
	ch <- descPorts
	e.describeKernel(ch)
}

// Collect implements prometheus.Collector.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	for _, i := range e.ifaces {
		total := 2 * i.pool.Pairs()
		used := i.pool.Used()
		labels := []string{i.name, i.addr.String()}
		ch <- prometheus.MustNewConstMetric(descPortsUsed, prometheus.GaugeValue, float64(used), labels...)
		ch <- prometheus.MustNewConstMetric(descPortsFree, prometheus.GaugeValue, float64(total-used), labels...)
		ch <- prometheus.MustNewConstMetric(descPorts, prometheus.GaugeValue, float64(total), labels...)
	}
	e.collectKernel(ch)
}

// InterfaceInfo is one local address's port usage, for ng statistics.
type InterfaceInfo struct {
	Name                    string
	Address                 netip.Addr
	PortMin, PortMax        int
	Used, Free, Total, Last int
}

// Interfaces reports port usage per interface address.
func (e *Engine) Interfaces() []InterfaceInfo {
	out := make([]InterfaceInfo, 0, len(e.ifaces))
	for _, i := range e.ifaces {
		total := 2 * i.pool.Pairs()
		used := i.pool.Used()
		out = append(out, InterfaceInfo{Name: i.name, Address: i.addr, PortMin: i.pool.min, PortMax: i.pool.max,
			Used: used, Free: total - used, Total: total})
	}
	return out
}
