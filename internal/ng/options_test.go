package ng

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/media"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"call-id":            "call-id",
		"Call-ID":            "call-id",
		"call id":            "call-id",
		"call_id":            "call-id",
		"media address":      "media-address",
		"SIP source address": "sip-source-address",
		"ICE":                "ice",
		"rtpp_flags":         "rtpp-flags",
		"T.38":               "t.38",
		"RTP/AVP":            "rtp/avp",
		"":                   "",
		"é_Ä":                "é-Ä", // only ASCII letters fold
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewMessage(t *testing.T) {
	m := newMessage(map[string]any{"Call-ID": "c", "media address": "1.2.3.4", "received from": []any{"IP4", "1.2.3.4"}, "ICE": "remove", "x_y z": int64(1)})
	wantEqual(t, "message", map[string]any(m), map[string]any{
		"call-id": "c", "media-address": "1.2.3.4", "received-from": []any{"IP4", "1.2.3.4"}, "ice": "remove", "x-y-z": int64(1),
	})
	if s, ok := m.str("x-y-z"); !ok || s != "1" {
		t.Errorf("str of an integer = %q, %v; want \"1\", true", s, ok)
	}
	if s, ok := m.str("received-from"); ok || s != "" {
		t.Errorf("str of a list = %q, %v; want \"\", false", s, ok)
	}
	if s, ok := m.str("missing"); ok || s != "" {
		t.Errorf("str of a missing key = %q, %v", s, ok)
	}
	m["l"] = []any{"a", int64(-2), []any{"nested"}, map[string]any{}, "b"}
	wantEqual(t, "list", m.list("l"), []string{"a", "-2", "b"})
	wantEqual(t, "list of a string", m.list("call-id"), []string{"c"})
	wantEqual(t, "list of an integer", m.list("x-y-z"), []string(nil))
	wantEqual(t, "list of a missing key", m.list("missing"), []string(nil))
}

// opts is shorthand for the options a test expects.
type opts = options

func parse(t *testing.T, d map[string]any) *options {
	t.Helper()
	o, err := parseOptions(newMessage(d))
	if err != nil {
		t.Fatalf("parseOptions(%v): %v", d, err)
	}
	return o
}

func TestParseOptionsKeys(t *testing.T) {
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		in   map[string]any
		want opts
	}{
		{"nothing", map[string]any{"command": "offer"}, opts{}},
		{"ids", map[string]any{"call-id": "c", "from-tag": "f", "to-tag": "t", "via-branch": "v", "label": "l", "sdp": "v=0"},
			opts{req: media.Request{CallID: "c", FromTag: "f", ToTag: "t", ViaBranch: "v", Label: "l", SDP: []byte("v=0")}}},
		{"id spellings", map[string]any{"Call-ID": "c", "from tag": "f", "To_Tag": "t", "via branch": "v"},
			opts{req: media.Request{CallID: "c", FromTag: "f", ToTag: "t", ViaBranch: "v"}}},
		{"integer ids", map[string]any{"call-id": int64(12), "from-tag": int64(-3)},
			opts{req: media.Request{CallID: "12", FromTag: "-3"}}},
		{"list-valued id ignored", map[string]any{"call-id": []any{"c"}}, opts{}},
		{"media address", map[string]any{"media address": "192.0.2.1"},
			opts{req: media.Request{MediaAddress: addr("192.0.2.1")}}},
		{"media-address mapped", map[string]any{"media-address": "::ffff:192.0.2.1"},
			opts{req: media.Request{MediaAddress: addr("192.0.2.1")}}},
		{"media-address IPv6", map[string]any{"media-address": "2001:db8::1"},
			opts{req: media.Request{MediaAddress: addr("2001:db8::1")}}},
		{"received from list", map[string]any{"received from": []any{"IP4", "1.2.3.4"}},
			opts{req: media.Request{ReceivedFrom: addr("1.2.3.4")}}},
		{"received-from string", map[string]any{"received-from": "IP6 2001:db8::2"},
			opts{req: media.Request{ReceivedFrom: addr("2001:db8::2")}}},
		{"received-from bare address", map[string]any{"received-from": "1.2.3.4"},
			opts{req: media.Request{ReceivedFrom: addr("1.2.3.4")}}},
		{"ICE remove", map[string]any{"ICE": "remove"}, opts{req: media.Request{Secure: media.Secure{ICE: media.ICERemove}}}},
		{"ICE Remove", map[string]any{"ice": "Remove"}, opts{req: media.Request{Secure: media.Secure{ICE: media.ICERemove}}}},
		{"ICE force", map[string]any{"ICE": "force"}, opts{req: media.Request{Secure: media.Secure{ICE: media.ICEForce}}}},
		{"ICE list", map[string]any{"ICE": []any{"force", "trickle", "lite-both"}},
			opts{req: media.Request{Secure: media.Secure{ICE: media.ICEForce, TrickleICE: true, ICELite: media.ICELiteBoth}}}},
		{"ICE unknown", map[string]any{"ICE": "sideways"}, opts{warnings: []string{"Unknown 'ICE' flag encountered: 'sideways'"}}},
		{"address family", map[string]any{"address family": "IP6"}, opts{req: media.Request{AddressFamily: "IP6"}}},
		{"address family inet", map[string]any{"address-family": "inet"}, opts{req: media.Request{AddressFamily: "IP4"}}},
		{"address family ipv6", map[string]any{"address-family": "ipv6"}, opts{req: media.Request{AddressFamily: "IP6"}}},
		{"direction", map[string]any{"direction": []any{"internal", "external"}},
			opts{req: media.Request{Direction: [2]string{"internal", "external"}}}},
		{"direction one", map[string]any{"direction": []any{"internal"}},
			opts{req: media.Request{Direction: [2]string{"internal", ""}}}},
		{"direction as a string", map[string]any{"direction": "internal"},
			opts{req: media.Request{Direction: [2]string{"internal", ""}}}},
		{"interfaces", map[string]any{"from-interface": "a", "to interface": "b"},
			opts{req: media.Request{Direction: [2]string{"a", "b"}}}},
		{"interfaces override direction", map[string]any{"direction": []any{"x", "y"}, "to-interface": "b"},
			opts{req: media.Request{Direction: [2]string{"x", "b"}}}},
		{"replace list", map[string]any{"replace": []any{"origin", "session-connection", "session name", "username", "sdp-version", "force-increment-sdp-ver", "zero-address"}},
			opts{req: media.Request{Replace: media.Replace{Origin: true, SessionConnection: true, SessionName: true, Username: true, SDPVersion: true, ForceIncrementSDPVer: true, ZeroAddress: true}}}},
		{"replace origin-full", map[string]any{"replace": "origin-full"},
			opts{req: media.Request{Replace: media.Replace{Origin: true}}}},
		{"replace unknown", map[string]any{"replace": []any{"origin", "bogus"}},
			opts{req: media.Request{Replace: media.Replace{Origin: true}}, warnings: []string{"Unknown 'replace' flag encountered: 'bogus'"}}},
		{"rtcp-mux list", map[string]any{"rtcp-mux": []any{"offer", "require", "demux", "accept", "reject"}},
			opts{req: media.Request{RTCPMux: media.RTCPMux{Offer: true, Require: true, Demux: true, Accept: true, Reject: true}}}},
		{"rtcp mux unknown", map[string]any{"rtcp mux": []any{"Demux", "x"}},
			opts{req: media.Request{RTCPMux: media.RTCPMux{Demux: true}}, warnings: []string{"Unknown 'rtcp-mux' flag encountered: 'x'"}}},
		{"record call yes", map[string]any{"record call": "yes"}, opts{req: media.Request{Flags: media.Flags{RecordCall: true}}}},
		{"record-call on", map[string]any{"record-call": "on"}, opts{req: media.Request{Flags: media.Flags{RecordCall: true}}}},
		{"record-call 1", map[string]any{"record-call": int64(1)}, opts{req: media.Request{Flags: media.Flags{RecordCall: true}}}},
		{"record-call no", map[string]any{"record-call": "no"}, opts{}},
		{"delete delay string", map[string]any{"delete delay": "7"}, opts{deleteDelay: 7 * time.Second, hasDelay: true}},
		{"delete-delay integer", map[string]any{"delete-delay": int64(5)}, opts{deleteDelay: 5 * time.Second, hasDelay: true}},
		{"delete-delay zero", map[string]any{"delete-delay": int64(0)}, opts{hasDelay: true}},
		{"transport protocol", map[string]any{"transport-protocol": "RTP/SAVP"}, opts{req: media.Request{Secure: media.Secure{Protocol: "RTP/SAVP"}}}},
		{"transport protocol case", map[string]any{"transport protocol": "udp/tls/rtp/savpf"}, opts{req: media.Request{Secure: media.Secure{Protocol: "UDP/TLS/RTP/SAVPF"}}}},
		{"transport protocol accept", map[string]any{"transport-protocol": "accept"}, opts{req: media.Request{Secure: media.Secure{AcceptProtocol: true}}}},
		{"codec dictionary", map[string]any{"codec": map[string]any{"strip": []any{"all"}, "except": "opus", "offer": []any{"PCMU", "PCMA"}, "mask": []any{"G722"}}},
			opts{req: media.Request{Codec: media.Codec{Strip: []string{"all"}, Except: []string{"opus"}, Offer: []string{"PCMU", "PCMA"}, Mask: []string{"G722"}}}}},
		{"codec transcode", map[string]any{"codec": map[string]any{"transcode": []any{"G729"}}},
			opts{warnings: []string{"codec option 'transcode' needs transcoding, which rtcgate does not do; ignored"}}},
		{"extmap strip", map[string]any{"extmap": map[string]any{"strip": []any{"urn:ietf:params:rtp-hdrext:ssrc-audio-level"}}},
			opts{req: media.Request{ExtmapStrip: []string{"urn:ietf:params:rtp-hdrext:ssrc-audio-level"}}}},
		{"DTLS", map[string]any{"DTLS": "passive", "DTLS-fingerprint": "SHA-1"}, opts{req: media.Request{Secure: media.Secure{DTLS: media.DTLSPassive, DTLSFingerprint: "sha-1"}}}},
		{"DTLS off", map[string]any{"dtls": "off"}, opts{req: media.Request{Secure: media.Secure{DTLS: media.DTLSOff}}}},
		{"DTLS-reverse", map[string]any{"DTLS-reverse": "active"}, opts{req: media.Request{Secure: media.Secure{DTLS: media.DTLSActive}}}},
		{"DTLS fingerprint unknown", map[string]any{"DTLS-fingerprint": "md5"}, opts{warnings: []string{"Unknown 'DTLS-fingerprint' hash 'md5': sha-256 is used"}}},
		{"ICE-lite", map[string]any{"ICE-lite": "forward"}, opts{req: media.Request{Secure: media.Secure{ICELite: media.ICELiteForward}}}},
		{"SDES", map[string]any{"SDES": []any{"no-AES_CM_128_HMAC_SHA1_32", "only-AEAD_AES_256_GCM", "pad", "lifetime", "unencrypted_srtp", "UNENCRYPTED_SRTCP", "unauthenticated_srtp", "nonew", "prefer"}},
			opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{No: []string{"AES_CM_128_HMAC_SHA1_32"}, Only: []string{"AEAD_AES_256_GCM"}, Pad: true, Lifetime: true, UnencryptedSRTP: 1, UnencryptedSRTCP: 1, UnauthenticatedSRTP: 1, NoNew: true, Prefer: true}}}}},
		{"SDES off", map[string]any{"SDES": "off"}, opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Off: true}}}}},
		{"SDES negations", map[string]any{"sdes": []any{"encrypted_srtp", "encrypted_srtcp", "authenticated_srtp"}},
			opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{UnencryptedSRTP: -1, UnencryptedSRTCP: -1, UnauthenticatedSRTP: -1}}}}},
		{"OSRTP", map[string]any{"OSRTP": []any{"offer", "accept"}}, opts{req: media.Request{Secure: media.Secure{OSRTP: media.OSRTP{Offer: true, Accept: true}}}}},
		{"unsupported options in order", map[string]any{"T.38": "decode", "SDES": "bogus", "DTLS": "bogus", "osrtp": "bogus", "codec": ""},
			opts{warnings: []string{"Unknown 'DTLS' flag encountered: 'bogus'", "Unknown 'SDES' flag encountered: 'bogus'", "Unknown 'OSRTP' flag encountered: 'bogus'", `option "codec" wants a dictionary; ignored`, `option "T.38" not supported; ignored`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantEqual(t, "options", *parse(t, tc.in), tc.want)
		})
	}
}

// TestParseOptionsFlags: every flag, alone, in the "flags" list.
func TestParseOptionsFlags(t *testing.T) {
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		flag string
		want opts
	}{
		{"trust-address", opts{req: media.Request{Flags: media.Flags{TrustAddress: true}}}},
		{"trust address", opts{req: media.Request{Flags: media.Flags{TrustAddress: true}}}},
		{"trust_address", opts{req: media.Request{Flags: media.Flags{TrustAddress: true}}}},
		{"Trust-Address", opts{req: media.Request{Flags: media.Flags{TrustAddress: true}}}},
		{"SIP-source-address", opts{req: media.Request{Flags: media.Flags{SIPSourceAddress: true}}}},
		{"SIP source address", opts{req: media.Request{Flags: media.Flags{SIPSourceAddress: true}}}},
		{"symmetric", opts{req: media.Request{Flags: media.Flags{Symmetric: true}}}},
		{"asymmetric", opts{req: media.Request{Flags: media.Flags{Asymmetric: true}}}},
		{"strict-source", opts{req: media.Request{Flags: media.Flags{StrictSource: true}}}},
		{"strict source", opts{req: media.Request{Flags: media.Flags{StrictSource: true}}}},
		{"port-latching", opts{req: media.Request{Flags: media.Flags{PortLatching: true}}}},
		{"media-handover", opts{req: media.Request{Flags: media.Flags{MediaHandover: true}}}},
		{"no-rtcp-attribute", opts{req: media.Request{Flags: media.Flags{NoRTCPAttribute: true}}}},
		{"full-rtcp-attribute", opts{req: media.Request{Flags: media.Flags{FullRTCPAttribute: true}}}},
		{"record-call", opts{req: media.Request{Flags: media.Flags{RecordCall: true}}}},
		{"fatal", opts{fatal: true}},
		{"unidirectional", opts{}},
		{"loop-protect", opts{}},
		{"loop protect", opts{}},
		{"reset", opts{}},
		{"all", opts{}},
		{"RTP/AVP", opts{req: media.Request{Secure: media.Secure{Protocol: "RTP/AVP"}}}},
		{"RTP/AVPF", opts{req: media.Request{Secure: media.Secure{Protocol: "RTP/AVPF"}}}},
		{"RTP/SAVP", opts{req: media.Request{Secure: media.Secure{Protocol: "RTP/SAVP"}}}},
		{"RTP/SAVPF", opts{req: media.Request{Secure: media.Secure{Protocol: "RTP/SAVPF"}}}},
		{"UDP/TLS/RTP/SAVP", opts{req: media.Request{Secure: media.Secure{Protocol: "UDP/TLS/RTP/SAVP"}}}},
		{"UDP/TLS/RTP/SAVPF", opts{req: media.Request{Secure: media.Secure{Protocol: "UDP/TLS/RTP/SAVPF"}}}},
		// Prefixed forms.
		{"replace-origin", opts{req: media.Request{Replace: media.Replace{Origin: true}}}},
		{"replace-origin-full", opts{req: media.Request{Replace: media.Replace{Origin: true}}}},
		{"replace-session-connection", opts{req: media.Request{Replace: media.Replace{SessionConnection: true}}}},
		{"replace-session-name", opts{req: media.Request{Replace: media.Replace{SessionName: true}}}},
		{"replace-username", opts{req: media.Request{Replace: media.Replace{Username: true}}}},
		{"replace-sdp-version", opts{req: media.Request{Replace: media.Replace{SDPVersion: true}}}},
		{"replace-force-increment-sdp-ver", opts{req: media.Request{Replace: media.Replace{ForceIncrementSDPVer: true}}}},
		{"replace-zero-address", opts{req: media.Request{Replace: media.Replace{ZeroAddress: true}}}},
		{"replace_origin", opts{req: media.Request{Replace: media.Replace{Origin: true}}}},
		{"replace-bogus", opts{warnings: []string{"Unknown 'replace' flag encountered: 'bogus'"}}},
		{"rtcp-mux-offer", opts{req: media.Request{RTCPMux: media.RTCPMux{Offer: true}}}},
		{"rtcp-mux-require", opts{req: media.Request{RTCPMux: media.RTCPMux{Require: true}}}},
		{"rtcp-mux-demux", opts{req: media.Request{RTCPMux: media.RTCPMux{Demux: true}}}},
		{"rtcp-mux-accept", opts{req: media.Request{RTCPMux: media.RTCPMux{Accept: true}}}},
		{"rtcp-mux-reject", opts{req: media.Request{RTCPMux: media.RTCPMux{Reject: true}}}},
		{"RTCP_MUX_DEMUX", opts{req: media.Request{RTCPMux: media.RTCPMux{Demux: true}}}},
		{"rtcp-mux-x", opts{warnings: []string{"Unknown 'rtcp-mux' flag encountered: 'x'"}}},
		{"ICE-remove", opts{req: media.Request{Secure: media.Secure{ICE: media.ICERemove}}}},
		{"ICE-force", opts{req: media.Request{Secure: media.Secure{ICE: media.ICEForce}}}},
		{"ICE-lite-both", opts{req: media.Request{Secure: media.Secure{ICELite: media.ICELiteBoth}}}},
		{"trickle-ICE", opts{req: media.Request{Secure: media.Secure{TrickleICE: true}}}},
		{"trickle ICE", opts{req: media.Request{Secure: media.Secure{TrickleICE: true}}}},
		{"reject-ICE", opts{req: media.Request{Secure: media.Secure{RejectICE: true}}}},
		{"SDES-off", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Off: true}}}}},
		{"SDES-no-AES_CM_128_HMAC_SHA1_32", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{No: []string{"AES_CM_128_HMAC_SHA1_32"}}}}}},
		{"SDES-only-AEAD_AES_128_GCM", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Only: []string{"AEAD_AES_128_GCM"}}}}}},
		{"SDES-pad", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Pad: true}}}}},
		{"SDES-static", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Static: true}}}}},
		{"SDES-order:AES_CM_128_HMAC_SHA1_32;AEAD_AES_128_GCM;", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Order: []string{"AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"}}}}}},
		{"SDES-offerer_pref:AEAD_AES_128_GCM", opts{warnings: []string{"SDES option 'offerer_pref:AEAD_AES_128_GCM' not supported: the offerer's own order stands"}}},
		{"pad-crypto", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{Pad: true}}}}},
		{"OSRTP-offer", opts{req: media.Request{Secure: media.Secure{OSRTP: media.OSRTP{Offer: true}}}}},
		{"OSRTP-accept", opts{req: media.Request{Secure: media.Secure{OSRTP: media.OSRTP{Accept: true}}}}},
		{"DTLS=passive", opts{req: media.Request{Secure: media.Secure{DTLS: media.DTLSPassive}}}},
		{"DTLS=off", opts{req: media.Request{Secure: media.Secure{DTLS: media.DTLSOff}}}},
		{"DTLS-fingerprint=sha-1", opts{req: media.Request{Secure: media.Secure{DTLSFingerprint: "sha-1"}}}},
		{"SDES=no-NULL_HMAC_SHA1_80", opts{req: media.Request{Secure: media.Secure{SDES: media.SDES{No: []string{"NULL_HMAC_SHA1_80"}}}}}},
		{"ICE-lite=backward", opts{req: media.Request{Secure: media.Secure{ICELite: media.ICELiteBackward}}}},
		{"generate-mid", opts{req: media.Request{GenerateMid: true}}},
		{"generate mid", opts{req: media.Request{GenerateMid: true}}},
		{"strip-extmap", opts{req: media.Request{ExtmapStrip: []string{"all"}}}},
		{"codec-strip-PCMA", opts{req: media.Request{Codec: media.Codec{Strip: []string{"PCMA"}}}}},
		{"codec-offer-opus", opts{req: media.Request{Codec: media.Codec{Offer: []string{"opus"}}}}},
		{"codec-mask-G722", opts{req: media.Request{Codec: media.Codec{Mask: []string{"G722"}}}}},
		{"codec-except-PCMU", opts{req: media.Request{Codec: media.Codec{Except: []string{"PCMU"}}}}},
		{"codec-except=PCMU", opts{req: media.Request{Codec: media.Codec{Except: []string{"PCMU"}}}}},
		{"WebRTC", opts{req: media.Request{Secure: media.Secure{Protocol: "UDP/TLS/RTP/SAVPF", ICE: media.ICEForce, TrickleICE: true, SDES: media.SDES{Off: true}},
			RTCPMux: media.RTCPMux{Offer: true, Require: true}, Flags: media.Flags{NoRTCPAttribute: true}, GenerateMid: true}}},
		// key=value tokens.
		{"ICE=remove", opts{req: media.Request{Secure: media.Secure{ICE: media.ICERemove}}}},
		{"direction=internal", opts{req: media.Request{Direction: [2]string{"internal", ""}}}},
		{"from-interface=a", opts{req: media.Request{Direction: [2]string{"a", ""}}}},
		{"to-interface=b", opts{req: media.Request{Direction: [2]string{"", "b"}}}},
		{"from-interface=", opts{}},
		{"to-interface=", opts{}},
		{"address-family=IP6", opts{req: media.Request{AddressFamily: "IP6"}}},
		{"address family=IP4", opts{req: media.Request{AddressFamily: "IP4"}}},
		{"address_family=INET6", opts{req: media.Request{AddressFamily: "IP6"}}},
		{"media-address=192.0.2.9", opts{req: media.Request{MediaAddress: addr("192.0.2.9")}}},
		{"media-address=2001:db8::9", opts{req: media.Request{MediaAddress: addr("2001:db8::9")}}},
		{"received-from=IP4 1.2.3.4", opts{req: media.Request{ReceivedFrom: addr("1.2.3.4")}}},
		{"received-from=IP6 ::ffff:1.2.3.4", opts{req: media.Request{ReceivedFrom: addr("1.2.3.4")}}},
		{"delete-delay=5", opts{deleteDelay: 5 * time.Second, hasDelay: true}},
		{"delete-delay=0", opts{hasDelay: true}},
		{"delete delay=3", opts{deleteDelay: 3 * time.Second, hasDelay: true}},
		{"via-branch=z9hG4bK1", opts{req: media.Request{ViaBranch: "z9hG4bK1"}}},
		{"via-branch=", opts{}},
		{"call-id=abc@host", opts{req: media.Request{CallID: "abc@host"}}},
		{"call-id=a=b", opts{req: media.Request{CallID: "a=b"}}}, // only the first '=' splits
		{"from-tag=f1", opts{req: media.Request{FromTag: "f1"}}},
		{"to-tag=t1", opts{req: media.Request{ToTag: "t1"}}},
		{"label=caller", opts{req: media.Request{Label: "caller"}}},
		{"replace=origin", opts{req: media.Request{Replace: media.Replace{Origin: true}}}},
		{"replace=x", opts{warnings: []string{"Unknown 'replace' flag encountered: 'x'"}}},
		{"rtcp-mux=demux", opts{req: media.Request{RTCPMux: media.RTCPMux{Demux: true}}}},
		{"record-call=yes", opts{req: media.Request{Flags: media.Flags{RecordCall: true}}}},
		{"record-call=on", opts{req: media.Request{Flags: media.Flags{RecordCall: true}}}},
		{"record-call=no", opts{}},
		{"transport-protocol=RTP/AVPF", opts{req: media.Request{Secure: media.Secure{Protocol: "RTP/AVPF"}}}},
		// Unknown flags are warnings and nothing else.
		{"x", opts{warnings: []string{"Unknown flag encountered: 'x'"}}},
		{"Bogus Flag", opts{warnings: []string{"Unknown flag encountered: 'Bogus Flag'"}}},
		{"foo=bar", opts{warnings: []string{"Unknown flag encountered: 'foo=bar'"}}},
		{"=x", opts{warnings: []string{"Unknown flag encountered: '=x'"}}},
		{"", opts{warnings: []string{"Unknown flag encountered: ''"}}},
		{"codec-strip=all", opts{req: media.Request{Codec: media.Codec{Strip: []string{"all"}}}}},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			wantEqual(t, "options", *parse(t, map[string]any{"flags": []any{tc.flag}}), tc.want)
			// The rtpp_flags string takes the same tokens, when they hold
			// no space.
			if tc.flag != "" && !containsSpace(tc.flag) {
				wantEqual(t, "rtpp_flags options", *parse(t, map[string]any{"rtpp_flags": tc.flag}), tc.want)
			}
		})
	}
}

func containsSpace(s string) bool {
	for _, c := range s {
		if c == ' ' {
			return true
		}
	}
	return false
}

// TestParseOptionsAllFlags: every known flag at once sets every field.
func TestParseOptionsAllFlags(t *testing.T) {
	flags := []any{"trust-address", "SIP-source-address", "symmetric", "asymmetric", "strict-source", "port-latching",
		"media-handover", "no-rtcp-attribute", "full-rtcp-attribute", "record-call", "fatal", "unidirectional", "loop-protect",
		"reset", "all", "replace-origin", "replace-session-connection", "replace-session-name", "replace-username",
		"replace-sdp-version", "replace-force-increment-sdp-ver", "replace-zero-address", "rtcp-mux-offer", "rtcp-mux-require",
		"rtcp-mux-demux", "rtcp-mux-accept", "rtcp-mux-reject", "ICE-remove", "direction=internal", "direction=external",
		"address-family=IP6", "media-address=2001:db8::1", "received-from=IP4 1.2.3.4", "delete-delay=5",
		"via-branch=vb", "call-id=cid", "from-tag=ft", "to-tag=tt", "label=lb"}
	got := parse(t, map[string]any{"flags": flags})
	want := opts{
		req: media.Request{
			CallID: "cid", FromTag: "ft", ToTag: "tt", ViaBranch: "vb", Label: "lb",
			Flags: media.Flags{TrustAddress: true, SIPSourceAddress: true, Symmetric: true, Asymmetric: true, StrictSource: true,
				PortLatching: true, MediaHandover: true, NoRTCPAttribute: true, FullRTCPAttribute: true, RecordCall: true},
			Replace: media.Replace{Origin: true, SessionConnection: true, SessionName: true, Username: true, SDPVersion: true,
				ForceIncrementSDPVer: true, ZeroAddress: true},
			Direction:     [2]string{"internal", "external"},
			RTCPMux:       media.RTCPMux{Offer: true, Require: true, Demux: true, Accept: true, Reject: true},
			ReceivedFrom:  netip.MustParseAddr("1.2.3.4"),
			MediaAddress:  netip.MustParseAddr("2001:db8::1"),
			AddressFamily: "IP6",
			Secure:        media.Secure{ICE: media.ICERemove},
		},
		deleteDelay: 5 * time.Second, hasDelay: true, fatal: true,
	}
	wantEqual(t, "options", *got, want)
}

func TestParseOptionsRTPPFlags(t *testing.T) {
	got := parse(t, map[string]any{
		"rtpp_flags": "trust-address replace-origin replace-session-connection ICE=remove rtcp-mux-demux direction=internal direction=external",
	})
	wantEqual(t, "options", *got, opts{req: media.Request{
		Flags:     media.Flags{TrustAddress: true},
		Replace:   media.Replace{Origin: true, SessionConnection: true},
		RTCPMux:   media.RTCPMux{Demux: true},
		Direction: [2]string{"internal", "external"},
		Secure:    media.Secure{ICE: media.ICERemove},
	}})

	// Other spellings of the key, extra whitespace, and unknown tokens.
	got = parse(t, map[string]any{"rtpp flags": "  symmetric\tbogus \r\n  call-id=x  ", "call-id": "y"})
	wantEqual(t, "options", *got, opts{
		req:      media.Request{CallID: "x", Flags: media.Flags{Symmetric: true}},
		warnings: []string{"Unknown flag encountered: 'bogus'"},
	})

	// The ids are read first, then the flags list, the other keys and
	// rtpp_flags last: so are the warnings ordered, and so do later values
	// win (a call-id=... flag overrides the "call-id" key).
	got = parse(t, map[string]any{
		"flags":      []any{"flag1", "call-id=from-flags"},
		"ICE":        "force",
		"call-id":    "from-key",
		"rtpp-flags": "flag2 ICE=default",
	})
	wantEqual(t, "options", *got, opts{
		req:      media.Request{CallID: "from-flags", Secure: media.Secure{ICE: media.ICEDefault}},
		warnings: []string{"Unknown flag encountered: 'flag1'", "Unknown flag encountered: 'flag2'"},
	})

	// An empty string holds no token.
	wantEqual(t, "empty rtpp_flags", *parse(t, map[string]any{"rtpp_flags": ""}), opts{})
}

// TestParseOptionsFlagsList: the flags list as rtpengine's clients send it.
func TestParseOptionsFlagsList(t *testing.T) {
	got := parse(t, map[string]any{
		"flags": []any{"trust-address", "bogus", int64(7), []any{"ignored"}, map[string]any{"ignored": "too"}, "rtcp-mux-demux"},
	})
	wantEqual(t, "options", *got, opts{
		req:      media.Request{Flags: media.Flags{TrustAddress: true}, RTCPMux: media.RTCPMux{Demux: true}},
		warnings: []string{"Unknown flag encountered: 'bogus'", "Unknown flag encountered: '7'"},
	})
	// A single string counts as a list of one.
	wantEqual(t, "single flag", *parse(t, map[string]any{"flags": "symmetric"}), opts{req: media.Request{Flags: media.Flags{Symmetric: true}}})
	// "direction" twice from flags, then the "direction" key replaces both.
	wantEqual(t, "direction key after flags",
		*parse(t, map[string]any{"flags": []any{"direction=a", "direction=b"}, "direction": []any{"c", "d"}}),
		opts{req: media.Request{Direction: [2]string{"c", "d"}}})
	// from-interface after a direction overrides the first.
	wantEqual(t, "from-interface after direction",
		*parse(t, map[string]any{"flags": []any{"direction=a", "direction=b", "from-interface=c"}}),
		opts{req: media.Request{Direction: [2]string{"c", "b"}}})
}

func TestParseOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]any
		want string
	}{
		{"media-address=", map[string]any{"flags": []any{"media-address="}}, `media address: "" is not an IP address`},
		{"media-address bad", map[string]any{"flags": []any{"media-address=host.example"}}, `media address: "host.example" is not an IP address`},
		{"media address key", map[string]any{"media address": "1.2.3"}, `media address: "1.2.3" is not an IP address`},
		{"media address with zone", map[string]any{"media-address": "fe80::1%eth0"}, `media address: "fe80::1%eth0" is not an IP address`},
		{"received-from=", map[string]any{"flags": []any{"received-from="}}, "received-from: no address"},
		{"received-from spaces", map[string]any{"flags": []any{"received-from=  "}}, "received-from: no address"},
		{"received-from family only", map[string]any{"flags": []any{"received-from=IP4"}}, `received-from: "IP4" is not an IP address`},
		{"received-from bad", map[string]any{"received-from": []any{"IP4", "1.2.3.400"}}, `received-from: "IP4 1.2.3.400" is not an IP address`},
		{"received-from empty list", map[string]any{"received-from": []any{""}}, "received-from: no address"},
		{"ICE=force-relay", map[string]any{"flags": []any{"ICE=force-relay"}}, "Unsupported ICE option 'force-relay': rtcgate offers host candidates only, no relay candidate"},
		{"ICE force-relay key", map[string]any{"ICE": []any{"force", "force_relay"}}, "Unsupported ICE option 'force-relay': rtcgate offers host candidates only, no relay candidate"},
		{"transport protocol", map[string]any{"transport-protocol": "TCP/RTP/AVP"}, "Unsupported transport protocol 'TCP/RTP/AVP' (supported: RTP/AVP, RTP/AVPF, RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVP, UDP/TLS/RTP/SAVPF)"},
		{"transport protocol flag", map[string]any{"flags": []any{"transport-protocol=UDPTL"}}, "Unsupported transport protocol 'UDPTL' (supported: RTP/AVP, RTP/AVPF, RTP/SAVP, RTP/SAVPF, UDP/TLS/RTP/SAVP, UDP/TLS/RTP/SAVPF)"},
		{"OSRTP offer-legacy", map[string]any{"OSRTP": "offer-legacy"}, "Unsupported OSRTP option 'offer-legacy': rtcgate offers RFC 8643 OSRTP only (OSRTP=offer)"},
		{"OSRTP-offer-legacy flag", map[string]any{"flags": []any{"OSRTP-offer-legacy"}}, "Unsupported OSRTP option 'offer-legacy': rtcgate offers RFC 8643 OSRTP only (OSRTP=offer)"},
		{"address-family=", map[string]any{"flags": []any{"address-family="}}, `address family "": want IP4 or IP6`},
		{"address-family bad", map[string]any{"flags": []any{"address-family=IPX"}}, `address family "IPX": want IP4 or IP6`},
		{"address family key", map[string]any{"address family": "IP5"}, `address family "IP5": want IP4 or IP6`},
		{"delete-delay=", map[string]any{"flags": []any{"delete-delay="}}, `delete delay "": want a number of seconds`},
		{"delete-delay negative", map[string]any{"flags": []any{"delete-delay=-1"}}, `delete delay "-1": want a number of seconds`},
		{"delete-delay words", map[string]any{"flags": []any{"delete-delay=five"}}, `delete delay "five": want a number of seconds`},
		{"delete-delay fraction", map[string]any{"delete-delay": "1.5"}, `delete delay "1.5": want a number of seconds`},
		{"delete-delay negative integer", map[string]any{"delete-delay": int64(-1)}, `delete delay "-1": want a number of seconds`},
		{"delete-delay overflowing a duration", map[string]any{"delete-delay": int64(1 << 62)}, `delete delay "4611686018427387904": want a number of seconds`},
		{"delete-delay max int64", map[string]any{"flags": []any{"delete-delay=9223372036854775807"}}, `delete delay "9223372036854775807": want a number of seconds`},
		{"delete-delay beyond int64", map[string]any{"delete-delay": "99999999999999999999"}, `delete delay "99999999999999999999": want a number of seconds`},
		{"three directions in flags", map[string]any{"flags": []any{"direction=a", "direction=b", "direction=c"}}, "more than two directions"},
		{"three directions in rtpp_flags", map[string]any{"rtpp_flags": "direction=a direction=b direction=c"}, "more than two directions"},
		{"directions from flags and rtpp_flags", map[string]any{"flags": []any{"direction=a", "direction=b"}, "rtpp_flags": "direction=c"}, "more than two directions"},
		{"three directions in the key", map[string]any{"direction": []any{"a", "b", "c"}}, "direction has 3 interfaces, want at most 2"},
		{"rtpp_flags splits received-from", map[string]any{"rtpp_flags": "received-from=IP4 1.2.3.4"}, `received-from: "IP4" is not an IP address`},
		{"error stops at the first bad token", map[string]any{"flags": []any{"media-address=x", "address-family=y"}}, `media address: "x" is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(newMessage(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("parseOptions(%v) = %+v, %v; want error %q", tc.in, o, err, tc.want)
			}
			if o != nil {
				t.Errorf("options %+v with the error, want nil", o)
			}
		})
	}
}

// TestParseOptionsDelayBound: the largest accepted delay is the largest
// whole number of seconds a time.Duration holds.
func TestParseOptionsDelayBound(t *testing.T) {
	const maxSeconds = int64(9223372036) // math.MaxInt64 / 1e9
	o := parse(t, map[string]any{"delete-delay": maxSeconds})
	if o.deleteDelay != time.Duration(maxSeconds)*time.Second || o.deleteDelay <= 0 || !o.hasDelay {
		t.Errorf("delete-delay %d: %v, %v", maxSeconds, o.deleteDelay, o.hasDelay)
	}
	if _, err := parseOptions(newMessage(map[string]any{"delete-delay": maxSeconds + 1})); err == nil {
		t.Errorf("delete-delay %d accepted", maxSeconds+1)
	}
}
