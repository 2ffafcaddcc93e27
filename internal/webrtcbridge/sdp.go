package webrtcbridge

import (
	"strings"

	"github.com/rtcgate/rtcgate/internal/sdp"
)

// IsWebRTC reports whether an SDP is a WebRTC one, that is whether its
// media is DTLS-SRTP: an m= line with a DTLS transport
// (UDP/TLS/RTP/SAVPF, TCP/DTLS/RTP/SAVPF, …), or an SRTP profile
// (RTP/SAVP, RTP/SAVPF) keyed by a=fingerprint as early browsers wrote it.
// Then the media engine must speak WebRTC toward its sender.
//
// ICE attributes alone do not make an SDP WebRTC: some SIP phones run ICE
// over plain RTP/AVP, with which there is no DTLS to do. Refused (port 0)
// sections do not count, bundle-only ones do. An SDP that does not parse is not WebRTC
// either; whoever handles it next reports the error.
func IsWebRTC(b []byte) bool {
	s, err := sdp.Parse(b)
	if err != nil {
		return false
	}
	sessionFP := s.HasAttr("fingerprint")
	for _, m := range s.Media {
		if m.Port() == 0 && !m.HasAttr("bundle-only") {
			// A refused section carries no media, and an answer refuses
			// with the offered protocol, whatever it speaks itself.
			continue
		}
		proto := strings.ToUpper(m.Proto())
		if strings.Contains(proto, "TLS") {
			return true
		}
		if strings.Contains(proto, "SAVP") && (sessionFP || m.HasAttr("fingerprint")) {
			return true
		}
	}
	return false
}
