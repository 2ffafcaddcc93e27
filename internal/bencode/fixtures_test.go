package bencode

import (
	"strconv"
	"strings"
)

// bs bencodes a byte string; tests use it to assemble messages whose string
// lengths would be tedious and error-prone to count by hand.
func bs(s string) string { return strconv.Itoa(len(s)) + ":" + s }

// offerSDP is a realistic ~600-byte SDP body of an ng "offer": CRLF line
// endings as on the wire, plus a few raw non-UTF-8 bytes in an attribute so
// the codec is shown to be 8-bit clean.
var offerSDP = strings.Join([]string{
	"v=0",
	"o=- 1545997027 1 IN IP4 198.51.100.1",
	"s=tester",
	"c=IN IP4 198.51.100.1",
	"t=0 0",
	"m=audio 2000 RTP/AVP 0 8 9 18 101",
	"a=rtpmap:0 PCMU/8000",
	"a=rtpmap:8 PCMA/8000",
	"a=rtpmap:9 G722/8000",
	"a=rtpmap:18 G729/8000",
	"a=fmtp:18 annexb=no",
	"a=rtpmap:101 telephone-event/8000",
	"a=fmtp:101 0-16",
	"a=ptime:20",
	"a=sendrecv",
	"a=rtcp:2001",
	"a=ssrc:2628106563 cname:wCwYpSvQBdS0QB1P",
	"a=ssrc:2628106563 msid:stream0 track0",
	"a=x-binary:\x00\x01\xfe\xffe:d3:le",
	"m=video 2002 RTP/AVP 96 97",
	"a=rtpmap:96 H264/90000",
	"a=fmtp:96 profile-level-id=42e01f;packetization-mode=1",
	"a=rtpmap:97 VP8/90000",
	"a=rtcp-fb:96 nack pli",
	"a=sendrecv",
	"",
}, "\r\n")

// offerMsg is an ng offer as a client would send it: keys in the client's
// own (unsorted) order, numbers as strings in places, nested lists.
var offerMsg = "d" +
	bs("command") + bs("offer") +
	bs("call-id") + bs("a84b4c76e66710@pc33.atlanta.example.com") +
	bs("from-tag") + bs("1928301774") +
	bs("sdp") + bs(offerSDP) +
	bs("flags") + "l" + bs("trust-address") + bs("symmetric") + bs("SIP-source-address") + "e" +
	bs("replace") + "l" + bs("origin") + bs("session-connection") + "e" +
	bs("rtcp-mux") + "l" + bs("demux") + "e" +
	bs("transport-protocol") + bs("RTP/AVP") +
	bs("ICE") + bs("remove") +
	bs("direction") + "l" + bs("external") + bs("internal") + "e" +
	bs("received-from") + "l" + bs("IP4") + bs("203.0.113.7") + "e" +
	bs("TOS") + "i184e" +
	bs("delay-buffer") + bs("40") +
	"e"

// offerValue is offerMsg decoded.
var offerValue = map[string]any{
	"command":            "offer",
	"call-id":            "a84b4c76e66710@pc33.atlanta.example.com",
	"from-tag":           "1928301774",
	"sdp":                offerSDP,
	"flags":              []any{"trust-address", "symmetric", "SIP-source-address"},
	"replace":            []any{"origin", "session-connection"},
	"rtcp-mux":           []any{"demux"},
	"transport-protocol": "RTP/AVP",
	"ICE":                "remove",
	"direction":          []any{"external", "internal"},
	"received-from":      []any{"IP4", "203.0.113.7"},
	"TOS":                int64(184),
	"delay-buffer":       "40",
}

// replyDict builds the kind of reply the dispatcher sends for an offer, in
// rtpengine's key order.
func replyDict() *Dict {
	var d Dict
	d.Set("sdp", offerSDP)
	d.Set("result", "ok")
	d.Set("warning", "Unknown flag: SIP-source-address")
	d.Set("created", int64(1700000000))
	d.Set("last signal", int64(1700000001))
	d.Set("totals", map[string]any{
		"RTP":  map[string]any{"packets": 0, "bytes": 0, "errors": 0},
		"RTCP": map[string]any{"packets": 0, "bytes": 0, "errors": 0},
	})
	d.Set("flags", []string{"ICE", "rtcp-mux"})
	return &d
}
