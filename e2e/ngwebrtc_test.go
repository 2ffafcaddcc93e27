package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/testpeer"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// chromeOffer is what Chrome offers for an audio-only call (JsSIP/SIP.js
// send it over WebSocket): ICE with a host candidate, DTLS actpass, BUNDLE,
// mid, header extensions, transport-cc feedback, rtcp-mux.
const chromeOffer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
	"a=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=audio 51000 UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 127.0.0.1\r\n" +
	"a=rtcp:9 IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 51000 typ host generation 0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n" +
	"a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" +
	"a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\na=sendrecv\r\na=msid:- abc\r\na=rtcp-mux\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" +
	"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:126 telephone-event/8000\r\na=ssrc:1234 cname:xyz\r\n"

// sipSDP is a plain SIP party's offer or answer.
func sipSDP(port int, formats string) string {
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=sip\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n", port, formats)
	for _, f := range strings.Fields(formats) {
		switch f {
		case "0":
			s += "a=rtpmap:0 PCMU/8000\r\n"
		case "8":
			s += "a=rtpmap:8 PCMA/8000\r\n"
		case "126", "101":
			s += "a=rtpmap:" + f + " telephone-event/8000\r\n"
		}
	}
	return s + "a=sendrecv\r\n"
}

// ngClientSDP runs rtpengine-ng-client against addr and returns the
// rewritten SDP ("New SDP:" of its output).
func ngClientSDP(t *testing.T, client, addr string, args ...string) string {
	t.Helper()
	host, port := splitHostPort(t, addr)
	out, stderr, code := runCmd(t, 20*time.Second, client, append([]string{"--proxy-address=" + host, "--proxy-port=" + port}, args...)...)
	if code != 0 {
		t.Fatalf("rtpengine-ng-client %v against %s: exit %d\n%s%s", args, addr, code, out, stderr)
	}
	i := strings.Index(out, "New SDP:")
	if i < 0 {
		t.Fatalf("rtpengine-ng-client %v against %s: no new SDP\n%s", args, addr, out)
	}
	body := out[i:]
	body = body[strings.Index(body, "\n")+1:]
	body = body[strings.Index(body, "\n")+1:] // the -----8<----- line
	if j := strings.Index(body, "----->8"); j >= 0 {
		body = body[:j]
	}
	return strings.TrimSpace(body) + "\n"
}

// sdpSummary reduces a rewritten SDP to the fields both relays must agree
// on, by name: what is generated (ports, keys, ufrags, foundations,
// fingerprints) is reduced to its shape (length, hash, relation to the m=
// port). rtpengine also offers AES_192_CM and F8 suites, which pion lacks:
// suites are compared among those rtcgate implements.
func sdpSummary(t *testing.T, body string) map[string]string {
	t.Helper()
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	out := map[string]string{}
	out["session group"] = strings.Join(s.Attrs("group"), ";")
	_, lite := s.Attr("ice-lite")
	out["session ice-lite"] = strconv.FormatBool(lite)
	for i, m := range s.Media {
		p := fmt.Sprintf("m%d ", i)
		port := m.Port()
		out[p+"proto"] = m.Proto()
		out[p+"formats"] = strings.Join(m.Formats(), " ")
		for _, a := range []string{"mid", "setup", "rtcp-mux", "ice-options", "end-of-candidates", "sendrecv", "recvonly", "sendonly", "inactive"} {
			v, ok := m.Attr(a)
			out[p+a] = fmt.Sprint(ok, ":", v)
		}
		for _, a := range []string{"rtpmap", "fmtp", "rtcp-fb", "extmap", "msid", "ssrc"} {
			vs := m.Attrs(a)
			slices.Sort(vs)
			out[p+a] = strings.Join(vs, " | ")
		}
		if v, ok := m.Attr("fingerprint"); ok {
			h, d, _ := strings.Cut(v, " ")
			out[p+"fingerprint"] = fmt.Sprintf("%s, %d characters", h, len(d))
		} else {
			out[p+"fingerprint"] = "none"
		}
		u, _ := m.Attr("ice-ufrag")
		pw, _ := m.Attr("ice-pwd")
		out[p+"ice-ufrag/pwd lengths"] = fmt.Sprintf("%d/%d", len(u), len(pw))
		var cands []string
		for _, v := range m.Attrs("candidate") {
			c, err := webrtcbridge.ParseCandidate(v)
			if err != nil {
				cands = append(cands, "unparsable "+v)
				continue
			}
			rel := int(c.Addr.Port()) - port
			cands = append(cands, fmt.Sprintf("component %d %s prio %d %s m-port%+d %s foundation-len %d", c.Component, strings.ToUpper(c.Transport), c.Priority, c.Addr.Addr(), rel, c.Type, len(c.Foundation)))
		}
		out[p+"candidates"] = strings.Join(cands, "; ")
		var suites []string
		for _, v := range m.Attrs("crypto") {
			f := strings.Fields(v)
			if len(f) < 3 {
				continue
			}
			su, ok := webrtcbridge.SuiteByName(f[1])
			if !ok {
				continue // AES_192_CM_*, F8_*: rtpengine only
			}
			c, err := webrtcbridge.ParseCrypto(v)
			if err != nil {
				suites = append(suites, "unparsable "+v)
				continue
			}
			suites = append(suites, fmt.Sprintf("%s key %d salt %d lifetime %q", su.Name, len(c.Key), len(c.Salt), c.Lifetime))
		}
		out[p+"crypto suites"] = strings.Join(suites, "; ")
		rtcp, hasRTCP := m.Attr("rtcp")
		if hasRTCP {
			n, _ := strconv.Atoi(strings.Fields(rtcp)[0])
			rtcp = fmt.Sprintf("m-port%+d", n-port)
		}
		out[p+"rtcp"] = fmt.Sprint(hasRTCP, ":", rtcp)
		conn, _ := m.EffectiveConnection(s)
		out[p+"c="] = conn.String()
	}
	return out
}

// TestWebRTCFlagsMatchRtpengine sends the same requests, with the flags a
// WebRTC ⇄ SIP deployment uses, to rtcgate and to rtpengine-daemon through
// Debian's rtpengine-ng-client, and compares the rewritten SDPs field by
// field: protocol, formats, ICE candidates, ice-ufrag/pwd, fingerprint,
// setup, crypto suites, mid, rtcp-mux, extmap, rtcp-fb. Debian's rtpengine
// (10.5) predates SDES-only-<suite> and the WebRTC flag; those are covered
// by the ng package's tests alone.
func TestWebRTCFlagsMatchRtpengine(t *testing.T) {
	client := needTool(t, "rtpengine-ng-client", "rtpengine-utils")
	r := start(t, append(ephemeral, "--port-min", "8600", "--port-max", "8699")...)
	rte := testpeer.StartRtpengine(t, 8700, 8799)
	relays := []struct{ name, addr string }{{"rtcgate", r.addr(t, "listen-ng")}, {"rtpengine", rte.NgAddr}}

	type step struct {
		name string
		args []string // after the command; call-id and tags are added
		sdp  string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"browser calls SIP", []step{
			{"offer", []string{"--from-tag=br", "--ICE=remove", "--protocol=RTP/AVP", "--rtcp-mux=demux"}, chromeOffer},
			{"answer", []string{"--from-tag=br", "--to-tag=sip", "--ICE=force", "--DTLS=passive", "--protocol=UDP/TLS/RTP/SAVPF", "--rtcp-mux=require"}, sipSDP(4000, "0 126")},
		}},
		{"SIP calls browser", []step{
			{"offer", []string{"--from-tag=sip", "--ICE=force", "--protocol=UDP/TLS/RTP/SAVPF", "--rtcp-mux=offer", "--rtcp-mux=require", "--generate-mid", "--SDES=off"}, sipSDP(4002, "0 8 101")},
		}},
		{"SIP calls SDES", []step{
			{"offer", []string{"--from-tag=sip", "--ICE=remove", "--protocol=RTP/SAVP", "--DTLS=off"}, sipSDP(4004, "0 8")},
		}},
		{"SDES lifetime and suite exclusions", []step{
			{"offer", []string{"--from-tag=sip", "--protocol=RTP/SAVP", "--DTLS=off", "--SDES=lifetime", "--SDES=no-AEAD_AES_256_GCM", "--SDES=no-NULL_HMAC_SHA1_32"}, sipSDP(4006, "0")},
		}},
		{"ICE-lite toward the browser", []step{
			{"offer", []string{"--from-tag=sip", "--ICE=force", "--ICE-lite=forward", "--protocol=UDP/TLS/RTP/SAVPF", "--rtcp-mux=require", "--SDES=off"}, sipSDP(4008, "0")},
		}},
		{"OSRTP offer", []step{
			{"offer", []string{"--from-tag=sip", "--protocol=RTP/AVP", "--OSRTP=offer", "--DTLS=off"}, sipSDP(4010, "0")},
		}},
		{"browser codecs and extmap", []step{
			{"offer", []string{"--from-tag=br", "--ICE=remove", "--protocol=RTP/AVP", "--rtcp-mux=demux", "--codec-strip=opus", "--codec-offer=PCMA", "--flags=strip-extmap"}, chromeOffer},
		}},
		{"browser calls browser", []step{
			{"offer", []string{"--from-tag=br1"}, chromeOffer},
		}},
		{"DTLS sha-1 fingerprint", []step{
			{"offer", []string{"--from-tag=sip", "--ICE=force", "--protocol=UDP/TLS/RTP/SAVPF", "--DTLS-fingerprint=sha-1", "--SDES=off", "--rtcp-mux=require"}, sipSDP(4014, "0")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			callID := "cmp-" + strings.ReplaceAll(tc.name, " ", "-")
			for _, st := range tc.steps {
				var got [2]map[string]string
				var bodies [2]string
				for i, rl := range relays {
					args := append([]string{st.name, "--call-id=" + callID}, st.args...)
					args = append(args, "--sdp="+st.sdp)
					bodies[i] = ngClientSDP(t, client, rl.addr, args...)
					got[i] = sdpSummary(t, bodies[i])
				}
				keys := make([]string, 0, len(got[1]))
				for k := range got[1] {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				var diffs []string
				for _, k := range keys {
					if got[0][k] != got[1][k] {
						diffs = append(diffs, fmt.Sprintf("  %-24s rtcgate %q\n  %-24s rtpengine %q", k, got[0][k], "", got[1][k]))
					}
				}
				if len(got[0]) != len(got[1]) {
					diffs = append(diffs, fmt.Sprintf("  %d fields from rtcgate, %d from rtpengine", len(got[0]), len(got[1])))
				}
				if len(diffs) > 0 {
					t.Errorf("%s: rewritten SDPs differ:\n%s\nrtcgate:\n%s\nrtpengine:\n%s", st.name, strings.Join(diffs, "\n"), bodies[0], bodies[1])
				}
			}
		})
	}
}
