// Package webrtcbridge is the media engine's secure transport: what
// internal/media needs to speak WebRTC and SRTP toward a party, for ng's
// calls and the SIP gateway's browser calls alike.
//
// A Transport is one party's end of a relayed stream when that party
// speaks ICE, DTLS-SRTP or SDES-SRTP: the engine hands it the datagrams of
// the party's relay socket (Inbound: connectivity checks answered, the
// DTLS handshake run, SRTP and SRTCP decrypted) and the other party's
// plain RTP and RTCP to encrypt (Outbound). Around it: the process's DTLS
// Certificate and a=fingerprint (Fingerprint), SDES a=crypto lines and
// suites (Crypto, Suite), ICE candidates and credentials (Candidate), and
// IsWebRTC, which tells a browser's SDP from a plain one.
//
// The engine decides what to offer or answer (internal/media/secure.go, with
// rtpengine's options in media.Request.Secure); this package does the
// packet work with pion's DTLS, SRTP and STUN, and never transcodes.
package webrtcbridge
