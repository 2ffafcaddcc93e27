package ng

import (
	"fmt"
	"strings"

	"github.com/rtcgate/rtcgate/internal/media"
)

// The options about transport protocol, ICE, DTLS, SDES, OSRTP, mid, extmap
// and codecs: rtpengine's names and spellings (docs/ng_control_protocol.md).
// A value rtpengine does not know is a warning, as there ("Unknown 'ICE'
// flag encountered"); a value rtpengine knows but rtcgate cannot do is an
// error, so that a proxy is not told "ok" for media it will not get.

// secureKeys reads the dictionary keys.
func (o *options) secureKeys(m message) error {
	for _, k := range []string{"transport-protocol", "ice", "ice-lite", "dtls", "dtls-reverse", "dtls-fingerprint", "sdes", "osrtp"} {
		if _, ok := m[k]; !ok {
			continue
		}
		vals := m.list(k)
		if len(vals) == 0 {
			o.warn("option %q wants a string or a list of strings; ignored", k)
			continue
		}
		if _, err := o.secureKey(k, vals); err != nil {
			return err
		}
	}
	for _, k := range []string{"codec", "extmap"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		d, ok := v.(map[string]any)
		if !ok {
			o.warn("option %q wants a dictionary; ignored", k)
			continue
		}
		for sub := range d {
			vals := message{"v": d[sub]}.list("v")
			if k == "codec" {
				o.codec(normalize(sub), vals)
			} else if normalize(sub) == "strip" || normalize(sub) == "mask" {
				o.req.ExtmapStrip = append(o.req.ExtmapStrip, vals...)
			} else {
				o.warn("Unknown 'extmap' option encountered: '%s'", sub)
			}
		}
	}
	return nil
}

// secureKey handles one key (normalized) with its values, from the
// dictionary or a "key=value" token. It reports whether the key is one of
// these options.
func (o *options) secureKey(k string, vals []string) (bool, error) {
	s := &o.req.Secure
	switch k {
	case "transport-protocol":
		return true, o.protocol(vals[0])
	case "ice":
		for _, v := range vals {
			if err := o.ice(v); err != nil {
				return true, err
			}
		}
	case "ice-lite":
		o.iceLite(vals[0])
	case "dtls", "dtls-reverse":
		// rtpengine reads DTLS-reverse with the same rules as DTLS.
		for _, v := range vals {
			o.dtls(v)
		}
	case "dtls-fingerprint":
		switch h := strings.ToLower(strings.ReplaceAll(vals[0], "_", "-")); h {
		case "sha-1", "sha-224", "sha-256", "sha-384", "sha-512":
			s.DTLSFingerprint = h
		default:
			o.warn("Unknown 'DTLS-fingerprint' hash '%s': sha-256 is used", vals[0])
		}
	case "sdes":
		for _, v := range vals {
			o.sdes(v)
		}
	case "osrtp":
		for _, v := range vals {
			if err := o.osrtp(v); err != nil {
				return true, err
			}
		}
	case "codec-strip", "codec-offer", "codec-mask", "codec-except", "codec-transcode", "codec-accept", "codec-consume", "codec-set", "codec-ignore":
		o.codec(strings.TrimPrefix(k, "codec-"), vals)
	default:
		return false, nil
	}
	return true, nil
}

// secureFlag handles a plain flag (tok as given, n normalized).
func (o *options) secureFlag(n, tok string) (bool, error) {
	r := &o.req
	s := &r.Secure
	switch n {
	case "rtp/avp", "rtp/avpf", "rtp/savp", "rtp/savpf", "udp/tls/rtp/savp", "udp/tls/rtp/savpf":
		return true, o.protocol(tok)
	case "generate-mid":
		r.GenerateMid = true
	case "strip-extmap":
		r.ExtmapStrip = append(r.ExtmapStrip, "all")
	case "trickle-ice":
		s.TrickleICE = true
	case "reject-ice":
		s.RejectICE = true
	case "pad-crypto":
		s.SDES.Pad = true
	case "webrtc":
		// rtpengine's shortcut: transport-protocol=UDP/TLS/RTP/SAVPF
		// ICE=force trickle-ICE rtcp-mux-offer rtcp-mux-require
		// no-rtcp-attribute SDES-off generate-mid.
		s.Protocol, s.ICE, s.TrickleICE, s.SDES.Off = "UDP/TLS/RTP/SAVPF", media.ICEForce, true, true
		r.RTCPMux.Offer, r.RTCPMux.Require = true, true
		r.Flags.NoRTCPAttribute, r.GenerateMid = true, true
	default:
		// Prefixed forms; the value keeps its case (suite and codec names).
		for _, p := range []struct {
			prefix string
			fn     func(string) error
		}{
			{"sdes-", func(v string) error { o.sdes(v); return nil }},
			{"osrtp-", o.osrtp},
			{"ice-", o.ice},
			{"dtls-", func(v string) error { o.dtls(v); return nil }},
			{"codec-strip-", func(v string) error { o.codec("strip", []string{v}); return nil }},
			{"codec-offer-", func(v string) error { o.codec("offer", []string{v}); return nil }},
			{"codec-mask-", func(v string) error { o.codec("mask", []string{v}); return nil }},
			{"codec-except-", func(v string) error { o.codec("except", []string{v}); return nil }},
			{"codec-transcode-", func(v string) error { o.codec("transcode", []string{v}); return nil }},
			{"transcode-", func(v string) error { o.codec("transcode", []string{v}); return nil }},
		} {
			if strings.HasPrefix(n, p.prefix) {
				return true, p.fn(tok[len(p.prefix):])
			}
		}
		return false, nil
	}
	return true, nil
}

func (o *options) protocol(v string) error {
	if strings.EqualFold(v, "accept") {
		o.req.Secure.AcceptProtocol = true
		return nil
	}
	for _, p := range media.Protocols {
		if strings.EqualFold(v, p) {
			o.req.Secure.Protocol = p
			return nil
		}
	}
	return fmt.Errorf("Unsupported transport protocol '%s' (supported: %s)", v, strings.Join(media.Protocols, ", "))
}

func (o *options) ice(v string) error {
	s := &o.req.Secure
	switch normalize(v) {
	case "remove":
		s.ICE = media.ICERemove
	case "force":
		s.ICE = media.ICEForce
	case "default":
		s.ICE = media.ICEDefault
	case "optional":
		s.ICE = media.ICEOptional
	case "force-relay":
		return fmt.Errorf("Unsupported ICE option 'force-relay': rtcgate offers host candidates only, no relay candidate")
	case "trickle":
		s.TrickleICE = true
	case "no-lite":
		s.ICELite = media.ICELiteOff
	case "lite":
		s.ICELite = media.ICELiteForward
	case "ice2":
		o.warn("ICE2 is not advertised")
	default:
		if n := normalize(v); strings.HasPrefix(n, "lite-") {
			o.iceLite(n[len("lite-"):]) // "lite-both" is "ICE-lite=both"
			return nil
		}
		o.warn("Unknown 'ICE' flag encountered: '%s'", v)
	}
	return nil
}

func (o *options) iceLite(v string) {
	s := &o.req.Secure
	switch normalize(v) {
	case "off", "none", "no":
		s.ICELite = media.ICELiteOff
	case "forward", "offer", "fwd", "fw":
		s.ICELite = media.ICELiteForward
	case "backward", "backwards", "reverse", "answer", "back", "bkw", "bk":
		s.ICELite = media.ICELiteBackward
	case "both":
		s.ICELite = media.ICELiteBoth
	default:
		o.warn("Unknown 'ICE-lite' flag encountered: '%s'", v)
	}
}

func (o *options) dtls(v string) {
	s := &o.req.Secure
	switch normalize(v) {
	case "passive":
		s.DTLS = media.DTLSPassive
	case "active":
		s.DTLS = media.DTLSActive
	case "no", "off", "disabled", "disable":
		s.DTLS = media.DTLSOff
	default:
		o.warn("Unknown 'DTLS' flag encountered: '%s'", v)
	}
}

// maxSDESOrder bounds the suites of SDES-order: (there are fewer suites).
const maxSDESOrder = 32

// sdes handles one SDES option; suite names keep their spelling.
func (o *options) sdes(v string) {
	sd := &o.req.Secure.SDES
	n := normalize(v)
	switch n {
	case "off", "no", "disable", "disabled":
		sd.Off = true
	case "unencrypted-srtp":
		sd.UnencryptedSRTP = 1
	case "unencrypted-srtcp":
		sd.UnencryptedSRTCP = 1
	case "unauthenticated-srtp":
		sd.UnauthenticatedSRTP = 1
	case "encrypted-srtp":
		sd.UnencryptedSRTP = -1
	case "encrypted-srtcp":
		sd.UnencryptedSRTCP = -1
	case "authenticated-srtp":
		sd.UnauthenticatedSRTP = -1
	case "pad":
		sd.Pad = true
	case "lifetime":
		sd.Lifetime = true
	case "nonew":
		sd.NoNew = true
	case "prefer":
		sd.Prefer = true
	case "static":
		sd.Static = true
	default:
		switch {
		case strings.HasPrefix(n, "no-"):
			sd.No = append(sd.No, v[3:])
		case strings.HasPrefix(n, "only-"):
			sd.Only = append(sd.Only, v[5:])
		case strings.HasPrefix(n, "order:"):
			// rtpengine's list: suite names separated by ';'.
			for _, name := range strings.Split(v[len("order:"):], ";") {
				if name = strings.TrimSpace(name); name != "" && len(sd.Order) < maxSDESOrder {
					sd.Order = append(sd.Order, name)
				}
			}
		case strings.HasPrefix(n, "offerer-pref:"):
			o.warn("SDES option '%s' not supported: the offerer's own order stands", v)
		default:
			o.warn("Unknown 'SDES' flag encountered: '%s'", v)
		}
	}
}

func (o *options) osrtp(v string) error {
	os := &o.req.Secure.OSRTP
	switch normalize(v) {
	case "offer", "offer-rfc":
		os.Offer = true
	case "accept", "accept-rfc":
		os.Accept = true
	case "accept-legacy":
		o.warn("OSRTP=accept-legacy: duplicated (legacy best-effort SRTP) sections are not merged")
	case "offer-legacy":
		return fmt.Errorf("Unsupported OSRTP option '%s': rtcgate offers RFC 8643 OSRTP only (OSRTP=offer)", v)
	default:
		o.warn("Unknown 'OSRTP' flag encountered: '%s'", v)
	}
	return nil
}

// codec handles one key of the codec dictionary (normalized) with its
// codec names.
func (o *options) codec(k string, vals []string) {
	c := &o.req.Codec
	switch k {
	case "strip":
		c.Strip = append(c.Strip, vals...)
	case "offer":
		c.Offer = append(c.Offer, vals...)
	case "mask":
		c.Mask = append(c.Mask, vals...)
	case "except":
		c.Except = append(c.Except, vals...)
	case "transcode", "accept", "consume", "set", "ignore":
		o.warn("codec option '%s' needs transcoding, which rtcgate does not do; ignored", k)
	default:
		o.warn("Unknown 'codec' option encountered: '%s'", k)
	}
}
