package webrtcbridge

import (
	"net/netip"
	"testing"
	"time"
)

var (
	browserAddr = netip.MustParseAddrPort("127.0.0.1:40001")
	relayAddr   = netip.MustParseAddrPort("127.0.0.1:40002")
)

// callPair connects two transports in memory, as one call's setup: the
// browser's (ICE controlling, DTLS client) and rtcgate's (ICE controlled,
// DTLS server). sniff, if set, sees every datagram rtcgate sends, with
// rtcgate's transport. It
// returns when both have their SRTP keys.
func callPair(tb testing.TB, cert *Certificate, sniff func(relay *Transport, p []byte)) (browser, relay *Transport) {
	tb.Helper()
	fp, _ := ParseFingerprint(cert.Fingerprint("sha-256"))
	ready := make(chan struct{})
	bu, bp := NewICECredentials()
	ru, rp := NewICECredentials()
	var err error
	relay, err = NewTransport(TransportConfig{
		Send: func(p []byte, _ netip.AddrPort) {
			<-ready
			if sniff != nil {
				sniff(relay, p)
			}
			browser.Inbound(p, relayAddr)
		},
		ICE:  &ICEParams{LocalUfrag: ru, LocalPwd: rp, RemoteUfrag: bu, RemotePwd: bp, Remote: []netip.AddrPort{browserAddr}},
		DTLS: &DTLSParams{Cert: cert, Remote: fp},
	})
	if err != nil {
		tb.Fatal(err)
	}
	browser, err = NewTransport(TransportConfig{
		Send: func(p []byte, _ netip.AddrPort) {
			<-ready
			relay.Inbound(p, browserAddr)
		},
		ICE:  &ICEParams{LocalUfrag: bu, LocalPwd: bp, RemoteUfrag: ru, RemotePwd: rp, Controlling: true, Remote: []netip.AddrPort{relayAddr}},
		DTLS: &DTLSParams{Cert: cert, Client: true, Remote: fp},
	})
	if err != nil {
		tb.Fatal(err)
	}
	close(ready)
	deadline := time.After(10 * time.Second)
	for _, x := range []*Transport{browser, relay} {
		select {
		case <-x.HandshakeDone():
		case <-deadline:
			tb.Fatal("no handshake")
		}
		if !x.Ready() {
			tb.Fatal("handshake failed")
		}
	}
	return browser, relay
}

// BenchmarkHandshake times one call's setup between two transports in
// memory, from NewTransport to both sides' SRTP keys: ICE, then DTLS.
// Both sides' CPU is in ns/op; `-cpuprofile` shows where it goes.
func BenchmarkHandshake(b *testing.B) {
	cert, err := NewCertificate()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		browser, relay := callPair(b, cert, nil)
		browser.Close()
		relay.Close()
	}
}
