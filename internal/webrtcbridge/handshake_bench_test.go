package webrtcbridge

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkHandshake times one call's setup between two transports in
// memory: the browser's (ICE controlling, DTLS client) and rtcgate's (ICE
// controlled, DTLS server), from NewTransport to both sides' SRTP keys.
// Both sides' CPU is in ns/op; `-cpuprofile` shows where it goes.
func BenchmarkHandshake(b *testing.B) {
	cert, err := NewCertificate()
	if err != nil {
		b.Fatal(err)
	}
	ab := netip.MustParseAddrPort("127.0.0.1:40001") // the browser
	ar := netip.MustParseAddrPort("127.0.0.1:40002") // rtcgate
	fp, _ := ParseFingerprint(cert.Fingerprint("sha-256"))
	for b.Loop() {
		var browser, relay *Transport
		ready := make(chan struct{})
		bu, bp := NewICECredentials()
		ru, rp := NewICECredentials()
		relay, err = NewTransport(TransportConfig{
			Send: func(p []byte, _ netip.AddrPort) {
				<-ready
				browser.Inbound(p, ar)
			},
			ICE:  &ICEParams{LocalUfrag: ru, LocalPwd: rp, RemoteUfrag: bu, RemotePwd: bp, Remote: []netip.AddrPort{ab}},
			DTLS: &DTLSParams{Cert: cert, Remote: fp},
		})
		if err != nil {
			b.Fatal(err)
		}
		browser, err = NewTransport(TransportConfig{
			Send: func(p []byte, _ netip.AddrPort) {
				<-ready
				relay.Inbound(p, ab)
			},
			ICE:  &ICEParams{LocalUfrag: bu, LocalPwd: bp, RemoteUfrag: ru, RemotePwd: rp, Controlling: true, Remote: []netip.AddrPort{ar}},
			DTLS: &DTLSParams{Cert: cert, Client: true, Remote: fp},
		})
		if err != nil {
			b.Fatal(err)
		}
		close(ready)
		deadline := time.After(10 * time.Second)
		for _, x := range []*Transport{browser, relay} {
			select {
			case <-x.HandshakeDone():
			case <-deadline:
				b.Fatal("no handshake")
			}
			if !x.Ready() {
				b.Fatal("handshake failed")
			}
		}
		browser.Close()
		relay.Close()
	}
}
