package ng

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/media"
	"github.com/rtcgate/rtcgate/internal/stats"
)

// defaultListLimit is rtpengine's default for `list` without `limit`.
const defaultListLimit = 32

// RegisterMedia adds the commands that drive the media engine.
func (d *Dispatcher) RegisterMedia(e *media.Engine, st *stats.Stats) {
	d.Handle("offer", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		return negotiate(r, e.Offer, false)
	})
	d.Handle("answer", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		return negotiate(r, e.Answer, true)
	})
	d.Handle("delete", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		o, err := parseOptions(r.Dict)
		if err != nil {
			return nil, err
		}
		if o.req.CallID == "" {
			return nil, errors.New("No call-id in message")
		}
		info, err := e.Delete(o.req.CallID, o.req.FromTag, o.req.ToTag, o.deleteDelay, !o.hasDelay)
		if errors.Is(err, media.ErrNotFound) && !o.fatal {
			// rtpengine answers a delete of an unknown call with success
			// and a warning, unless the "fatal" flag asks for an error.
			reply := &bencode.Dict{}
			reply.Set("warning", err.Error())
			return reply, nil
		}
		if err != nil {
			return nil, err
		}
		reply := callDict(info)
		addWarnings(reply, o.warnings)
		return reply, nil
	})
	d.Handle("query", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		id, ok := r.Dict.str("call-id")
		if !ok {
			return nil, errors.New("No call-id in message")
		}
		info, err := e.Query(id)
		if err != nil {
			return nil, err
		}
		return callDict(info), nil
	})
	d.Handle("list", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		limit := defaultListLimit
		if v, ok := r.Dict.str("limit"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("limit %q: want a number", v)
			}
			limit = n
		}
		ids := e.List(limit)
		calls := make([]any, len(ids))
		for i, id := range ids {
			calls[i] = id
		}
		reply := &bencode.Dict{}
		reply.Set("calls", calls)
		return reply, nil
	})
	d.Handle("play DTMF", func(_ context.Context, r *Request) (*bencode.Dict, error) {
		return playDTMF(e, r.Dict)
	})
	d.Handle("statistics", func(context.Context, *Request) (*bencode.Dict, error) {
		snap := st.Snapshot()
		s := &bencode.Dict{}
		s.Set("currentstatistics", currentStatistics(snap))
		s.Set("totalstatistics", totalStatistics(snap))
		s.Set("controlstatistics", d.controlStatistics())
		s.Set("interfaces", interfaces(e))
		reply := &bencode.Dict{}
		reply.Set("statistics", s)
		return reply, nil
	})
}

func negotiate(r *Request, run func(*media.Request) (*media.Result, error), answer bool) (*bencode.Dict, error) {
	o, err := parseOptions(r.Dict)
	if err != nil {
		return nil, err
	}
	req := &o.req
	switch {
	case len(req.SDP) == 0:
		return nil, errors.New("No SDP body in message")
	case req.CallID == "":
		return nil, errors.New("No call-id in message")
	case req.FromTag == "":
		return nil, errors.New("No from-tag in message")
	case answer && req.ToTag == "":
		return nil, errors.New("No to-tag in message")
	}
	req.Source = r.Source
	res, err := run(req)
	if err != nil {
		return nil, err
	}
	reply := &bencode.Dict{}
	reply.Set("sdp", string(res.SDP))
	addWarnings(reply, append(o.warnings, res.Warnings...))
	return reply, nil
}

// addWarnings puts the request's warnings in the reply, as one string.
func addWarnings(reply *bencode.Dict, warnings []string) {
	if len(warnings) == 0 {
		return
	}
	w := warnings[0]
	for _, x := range warnings[1:] {
		w += "; " + x
	}
	reply.Set("warning", w)
}

// callDict is rtpengine's query/delete reply shape.
func callDict(ci *media.CallInfo) *bencode.Dict {
	d := &bencode.Dict{}
	d.Set("created", ci.Created.Unix())
	d.Set("created_us", int64(ci.Created.Nanosecond()/1000))
	d.Set("last signal", ci.LastSignal.Unix())
	d.Set("SSRC", &bencode.Dict{})
	tags := &bencode.Dict{}
	for _, t := range ci.Tags {
		td := &bencode.Dict{}
		td.Set("tag", t.Tag)
		if t.Label != "" {
			td.Set("label", t.Label)
		}
		if t.ViaBranch != "" {
			td.Set("via-branch", t.ViaBranch)
		}
		td.Set("created", t.Created.Unix())
		if t.HasPeer {
			peer := &bencode.Dict{}
			peer.Set("tag", t.PeerTag)
			peer.Set("type", "offer/answer")
			td.Set("subscriptions", []any{peer})
			td.Set("subscribers", []any{peer})
			td.Set("in dialogue with", t.PeerTag)
		}
		medias := make([]any, 0, len(t.Medias))
		for _, m := range t.Medias {
			md := &bencode.Dict{}
			md.Set("index", int64(m.Index))
			md.Set("type", m.Type)
			md.Set("protocol", m.Protocol)
			streams := make([]any, 0, len(m.Streams))
			for _, s := range m.Streams {
				sd := &bencode.Dict{}
				sd.Set("local port", int64(s.Local.Port()))
				sd.Set("local address", s.Local.Addr().String())
				sd.Set("family", family(s.Local.Addr()))
				if s.Endpoint.IsValid() {
					sd.Set("endpoint", endpointDict(s.Endpoint))
				}
				if s.Advertised.IsValid() {
					sd.Set("advertised endpoint", endpointDict(s.Advertised))
				}
				sd.Set("last packet", s.LastPacket.Unix())
				flags := []any{"RTP"}
				if s.RTCP {
					flags[0] = "RTCP"
				}
				if s.Endpoint.IsValid() {
					flags = append(flags, "filled")
				}
				if s.Confirmed {
					flags = append(flags, "confirmed")
				}
				if s.Path == media.PathKernel {
					flags = append(flags, "kernelized")
				}
				if s.NoKernel {
					flags = append(flags, "no kernel support")
				}
				sd.Set("flags", flags)
				sd.Set("stats", countersDict(s.Counters))
				streams = append(streams, sd)
			}
			md.Set("streams", streams)
			flags := []any{"initialized"}
			switch m.Direction {
			case "sendonly":
				flags = append(flags, "send")
			case "recvonly":
				flags = append(flags, "recv")
			case "inactive":
			default:
				flags = append(flags, "send", "recv")
			}
			if m.RTCPMux {
				flags = append(flags, "rtcp-mux")
			}
			md.Set("flags", flags)
			if m.Secured() {
				// Named as `list sessions` names them, in rtpengine's
				// style of spelled-out keys.
				md.Set("DTLS handshake failures", int64(m.DTLSFailures))
				md.Set("ICE checks answered", int64(m.Checks))
				md.Set("SRTP auth failures", int64(m.AuthFailures))
				md.Set("ICE restarts", int64(m.ICERestarts))
			}
			medias = append(medias, md)
		}
		td.Set("medias", medias)
		tags.Set(t.Tag, td)
	}
	d.Set("tags", tags)
	totals := &bencode.Dict{}
	totals.Set("RTP", countersDict(ci.RTP))
	totals.Set("RTCP", countersDict(ci.RTCP))
	d.Set("totals", totals)
	return d
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func endpointDict(ap netip.AddrPort) *bencode.Dict {
	d := &bencode.Dict{}
	d.Set("family", family(ap.Addr()))
	d.Set("address", ap.Addr().String())
	d.Set("port", int64(ap.Port()))
	return d
}

func countersDict(c media.Counters) *bencode.Dict {
	d := &bencode.Dict{}
	d.Set("packets", int64(c.Packets))
	d.Set("bytes", int64(c.Bytes))
	d.Set("errors", int64(c.Errors))
	return d
}

func currentStatistics(n stats.Snapshot) *bencode.Dict {
	own, foreign := n.SessionsOwn, n.SessionsForeign
	user, kernel, total := n.Rates.User, n.Rates.Kernel, n.Rates.Total()
	d := &bencode.Dict{}
	for _, kv := range []struct {
		k string
		v int64
	}{
		{"sessionsown", own}, {"sessionsforeign", foreign}, {"sessionstotal", own + foreign}, {"transcodedmedia", 0},
		{"packetrate_user", int64(user.Packets)}, {"byterate_user", int64(user.Bytes)}, {"errorrate_user", int64(user.Errors)},
		{"packetrate_kernel", int64(kernel.Packets)}, {"byterate_kernel", int64(kernel.Bytes)}, {"errorrate_kernel", int64(kernel.Errors)},
		{"packetrate", int64(total.Packets)}, {"byterate", int64(total.Bytes)}, {"errorrate", int64(total.Errors)},
		{"media_userspace", n.StreamsUser}, {"media_kernel", n.StreamsKernel}, {"media_mixed", n.StreamsMixed},
	} {
		d.Set(kv.k, kv.v)
	}
	return d
}

func totalStatistics(n stats.Snapshot) *bencode.Dict {
	dur := n.Calls
	user, kernel, all := n.User, n.Kernel, n.User.Plus(n.Kernel)
	d := &bencode.Dict{}
	for _, kv := range []struct {
		k string
		v any
	}{
		{"uptime", int64(n.Uptime.Seconds())}, {"managedsessions", int64(dur.Managed)},
		{"rejectedsessions", int64(n.Rejected)},
		{"timeoutsessions", int64(n.Closed[stats.ClosedTimeout])},
		{"silenttimeoutsessions", int64(n.Closed[stats.ClosedSilentTimeout])},
		{"finaltimeoutsessions", int64(n.Closed[stats.ClosedFinalTimeout])},
		{"offertimeoutsessions", int64(n.Closed[stats.ClosedOfferTimeout])},
		{"regularterminatedsessions", int64(n.Closed[stats.ClosedTerminated])},
		{"forcedterminatedsessions", int64(n.Closed[stats.ClosedForceTerminated])},
		{"relayedpackets_user", int64(user.Packets)}, {"relayedpacketerrors_user", int64(user.Errors)}, {"relayedbytes_user", int64(user.Bytes)},
		{"relayedpackets_kernel", int64(kernel.Packets)}, {"relayedpacketerrors_kernel", int64(kernel.Errors)}, {"relayedbytes_kernel", int64(kernel.Bytes)},
		{"relayedpackets", int64(all.Packets)}, {"relayedpacketerrors", int64(all.Errors)}, {"relayedbytes", int64(all.Bytes)},
		{"zerowaystreams", int64(n.ZeroWayStreams)}, {"onewaystreams", int64(n.OneWayStreams)},
		{"avgcallduration", fmt.Sprintf("%.6f", dur.Average)}, {"totalcallsduration", fmt.Sprintf("%.6f", dur.Sum)},
		{"totalcallsduration2", fmt.Sprintf("%.6f", dur.Squares)}, {"totalcallsduration_stddev", fmt.Sprintf("%.6f", dur.StdDeviation)},
	} {
		d.Set(kv.k, kv.v)
	}
	return d
}

func interfaces(e *media.Engine) []any {
	var out []any
	for _, i := range e.Interfaces() {
		ports := &bencode.Dict{}
		ports.Set("min", int64(i.PortMin))
		ports.Set("max", int64(i.PortMax))
		ports.Set("used", int64(i.Used))
		ports.Set("used_pct", fmt.Sprintf("%.2f", 100*float64(i.Used)/float64(max(i.Total, 1))))
		ports.Set("free", int64(i.Free))
		ports.Set("totals", int64(i.Total))
		d := &bencode.Dict{}
		d.Set("name", i.Name)
		d.Set("address", i.Address.String())
		d.Set("ports", ports)
		out = append(out, d)
	}
	return out
}
