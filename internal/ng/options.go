package ng

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rtcgate/rtcgate/internal/media"
)

// normalize folds the spellings rtpengine accepts for one key or flag —
// "trust address", "trust-address", "trust_address", "SIP-source-address" —
// into one: lower case with '-'.
func normalize(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == ' ' || c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// message is a request dictionary with its keys normalized.
type message map[string]any

func newMessage(d map[string]any) message {
	m := make(message, len(d))
	for k, v := range d {
		m[normalize(k)] = v
	}
	return m
}

// str returns a string value; numbers are accepted in their decimal form.
func (m message) str(key string) (string, bool) {
	switch v := m[key].(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

// list returns a list value of strings; a single string counts as a list of
// one, since clients send both.
func (m message) list(key string) []string {
	switch v := m[key].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			switch s := e.(type) {
			case string:
				out = append(out, s)
			case int64:
				out = append(out, strconv.FormatInt(s, 10))
			}
		}
		return out
	}
	return nil
}

// options is what a request asks of the engine, parsed from the dictionary's
// keys, its "flags" list and its "rtpp_flags" string.
type options struct {
	req         media.Request
	deleteDelay time.Duration
	hasDelay    bool
	fatal       bool
	warnings    []string
}

func (o *options) warn(format string, args ...any) {
	o.warnings = append(o.warnings, fmt.Sprintf(format, args...))
}

// parseOptions reads the keys every media command shares. An error is a
// value the request cannot mean (a bad address); unknown flags are only
// warnings, as in rtpengine.
func parseOptions(m message) (*options, error) {
	o := &options{}
	r := &o.req
	r.CallID, _ = m.str("call-id")
	r.FromTag, _ = m.str("from-tag")
	r.ToTag, _ = m.str("to-tag")
	r.ViaBranch, _ = m.str("via-branch")
	r.Label, _ = m.str("label")
	if sdp, ok := m.str("sdp"); ok {
		r.SDP = []byte(sdp)
	}
	for _, f := range m.list("flags") {
		if err := o.token(f); err != nil {
			return nil, err
		}
	}
	for _, v := range m.list("replace") {
		o.replace(v)
	}
	for _, v := range m.list("rtcp-mux") {
		o.rtcpMux(v)
	}
	if dir := m.list("direction"); len(dir) > 0 {
		if len(dir) > 2 {
			return nil, fmt.Errorf("direction has %d interfaces, want at most 2", len(dir))
		}
		copy(r.Direction[:], dir)
	}
	if v, ok := m.str("from-interface"); ok {
		r.Direction[0] = v
	}
	if v, ok := m.str("to-interface"); ok {
		r.Direction[1] = v
	}
	if rf := m.list("received-from"); len(rf) > 0 {
		if err := o.receivedFrom(strings.Join(rf, " ")); err != nil {
			return nil, err
		}
	}
	if v, ok := m.str("media-address"); ok {
		if err := o.mediaAddress(v); err != nil {
			return nil, err
		}
	}
	if v, ok := m.str("address-family"); ok {
		if err := o.addressFamily(v); err != nil {
			return nil, err
		}
	}
	if v, ok := m.str("record-call"); ok {
		r.Flags.RecordCall = v == "yes" || v == "on" || v == "1"
	}
	if v, ok := m.str("delete-delay"); ok {
		if err := o.delay(v); err != nil {
			return nil, err
		}
	}
	if err := o.secureKeys(m); err != nil {
		return nil, err
	}
	if _, ok := m["t.38"]; ok {
		o.warn("option %q not supported; ignored", "T.38")
	}
	if v, ok := m.str("rtpp-flags"); ok {
		for _, tok := range strings.Fields(v) {
			if err := o.token(tok); err != nil {
				return nil, err
			}
		}
	}
	return o, nil
}

// token handles one flag, from the "flags" list or the rtpp_flags string:
// a plain flag, a "key=value" pair, or a prefixed form such as
// "replace-origin" or "rtcp-mux-demux" (Kamailio's module spells them so).
func (o *options) token(tok string) error {
	r := &o.req
	if k, v, ok := strings.Cut(tok, "="); ok {
		if handled, err := o.secureKey(normalize(k), []string{v}); handled {
			return err
		}
		switch normalize(k) {
		case "direction":
			switch {
			case r.Direction[0] == "":
				r.Direction[0] = v
			case r.Direction[1] == "":
				r.Direction[1] = v
			default:
				return fmt.Errorf("more than two directions")
			}
		case "from-interface":
			r.Direction[0] = v
		case "to-interface":
			r.Direction[1] = v
		case "address-family":
			return o.addressFamily(v)
		case "media-address":
			return o.mediaAddress(v)
		case "received-from":
			return o.receivedFrom(v)
		case "delete-delay":
			return o.delay(v)
		case "call-id":
			r.CallID = v
		case "from-tag":
			r.FromTag = v
		case "to-tag":
			r.ToTag = v
		case "via-branch":
			r.ViaBranch = v
		case "label":
			r.Label = v
		case "replace":
			o.replace(v)
		case "rtcp-mux":
			o.rtcpMux(v)
		case "record-call":
			r.Flags.RecordCall = v == "yes" || v == "on" || v == "1"
		default:
			o.warn("Unknown flag encountered: '%s'", tok)
		}
		return nil
	}
	f := &r.Flags
	switch n := normalize(tok); n {
	case "trust-address":
		f.TrustAddress = true
	case "sip-source-address":
		f.SIPSourceAddress = true
	case "symmetric":
		f.Symmetric = true
	case "asymmetric":
		f.Asymmetric = true
	case "strict-source":
		f.StrictSource = true
	case "port-latching":
		f.PortLatching = true
	case "media-handover":
		f.MediaHandover = true
	case "no-rtcp-attribute":
		f.NoRTCPAttribute = true
	case "full-rtcp-attribute":
		f.FullRTCPAttribute = true
	case "record-call":
		f.RecordCall = true
	case "fatal":
		o.fatal = true
	case "unidirectional", "loop-protect", "reset", "all":
		// Accepted: they change nothing in a userspace relay without
		// loops to detect or kernel state to reset.
	default:
		if handled, err := o.secureFlag(n, tok); handled {
			return err
		}
		switch {
		case strings.HasPrefix(n, "replace-"):
			o.replace(strings.TrimPrefix(n, "replace-"))
		case strings.HasPrefix(n, "rtcp-mux-"):
			o.rtcpMux(strings.TrimPrefix(n, "rtcp-mux-"))
		default:
			o.warn("Unknown flag encountered: '%s'", tok)
		}
	}
	return nil
}

func (o *options) replace(v string) {
	rp := &o.req.Replace
	switch normalize(v) {
	case "origin", "origin-full":
		rp.Origin = true
	case "session-connection":
		rp.SessionConnection = true
	case "session-name":
		rp.SessionName = true
	case "username":
		rp.Username = true
	case "sdp-version":
		rp.SDPVersion = true
	case "force-increment-sdp-ver":
		rp.ForceIncrementSDPVer = true
	case "zero-address":
		rp.ZeroAddress = true
	default:
		o.warn("Unknown 'replace' flag encountered: '%s'", v)
	}
}

func (o *options) rtcpMux(v string) {
	x := &o.req.RTCPMux
	switch normalize(v) {
	case "offer":
		x.Offer = true
	case "require":
		x.Require = true
	case "demux":
		x.Demux = true
	case "accept":
		x.Accept = true
	case "reject":
		x.Reject = true
	default:
		o.warn("Unknown 'rtcp-mux' flag encountered: '%s'", v)
	}
}

func (o *options) receivedFrom(v string) error {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return fmt.Errorf("received-from: no address")
	}
	a, err := netip.ParseAddr(fields[len(fields)-1])
	if err != nil {
		return fmt.Errorf("received-from: %q is not an IP address", v)
	}
	o.req.ReceivedFrom = a.Unmap()
	return nil
}

func (o *options) mediaAddress(v string) error {
	a, err := netip.ParseAddr(v)
	// Fix: netip accepts an IPv6 zone ("fe80::1%eth0"), which an SDP c=
	// line cannot carry; it used to be copied into the rewritten SDP.
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("media address: %q is not an IP address", v)
	}
	o.req.MediaAddress = a.Unmap()
	return nil
}

func (o *options) addressFamily(v string) error {
	switch strings.ToUpper(v) {
	case "IP4", "IPV4", "INET":
		o.req.AddressFamily = "IP4"
	case "IP6", "IPV6", "INET6":
		o.req.AddressFamily = "IP6"
	default:
		return fmt.Errorf("address family %q: want IP4 or IP6", v)
	}
	return nil
}

func (o *options) delay(v string) error {
	n, err := strconv.Atoi(v)
	// Fix: bound n so that n seconds fits a time.Duration; a huge delay
	// used to overflow (9223372036854775807 became a negative duration,
	// i.e. an immediate delete).
	if err != nil || n < 0 || int64(n) > math.MaxInt64/int64(time.Second) {
		return fmt.Errorf("delete delay %q: want a number of seconds", v)
	}
	o.deleteDelay, o.hasDelay = time.Duration(n)*time.Second, true
	return nil
}
