package webrtcbridge

import (
	"net/netip"
	"sync"
	"testing"
)

// TestHandshakeWithoutCookie: with ICE, rtcgate as DTLS server answers the
// ClientHello with its ServerHello at once, no HelloVerifyRequest round
// trip: ICE already checked the ClientHello's source.
func TestHandshakeWithoutCookie(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var types []byte // handshake message types of rtcgate's first records
	browser, relay := callPair(t, cert, func(_ *Transport, p []byte) {
		// A plaintext handshake record: content type 22, epoch 0, the
		// message type after the 13-byte record header.
		if len(p) > 13 && p[0] == 22 && p[3] == 0 && p[4] == 0 {
			mu.Lock()
			types = append(types, p[13])
			mu.Unlock()
		}
	})
	defer browser.Close()
	defer relay.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(types) == 0 {
		t.Fatal("rtcgate sent no handshake record")
	}
	for _, ty := range types {
		if ty == 3 { // hello_verify_request
			t.Fatalf("rtcgate sent a HelloVerifyRequest: handshake types %v", types)
		}
	}
	if types[0] != 2 { // server_hello
		t.Errorf("rtcgate's first handshake message is type %d, want ServerHello (2)", types[0])
	}
}

// TestDTLSOnlyFromCheckedAddress: with ICE, DTLS records count only from
// addresses a connectivity check came from (each of them, nominated or
// not); others are dropped, so the server needs no cookie to trust the
// source.
func TestDTLSOnlyFromCheckedAddress(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	const lu, lp, ru, rp = "locl", "localpasswordlocalpass1", "remo", "remotepasswordremotepa1"
	fp, _ := ParseFingerprint(cert.Fingerprint("sha-256"))
	x, err := NewTransport(TransportConfig{
		Send: func([]byte, netip.AddrPort) {},
		ICE:  &ICEParams{LocalUfrag: lu, LocalPwd: lp, RemoteUfrag: ru, RemotePwd: rp},
		DTLS: &DTLSParams{Cert: cert, Remote: fp},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	checkedAddr := netip.MustParseAddrPort("127.0.0.1:40010")
	stranger := netip.MustParseAddrPort("127.0.0.1:40011")
	record := []byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1} // a DTLS 1.2 handshake record header
	if _, v := x.Inbound(record, checkedAddr); v != Dropped {
		t.Errorf("DTLS before any check: verdict %v, want Dropped", v)
	}
	if _, v := x.Inbound(check(t, lu+":"+ru, lp, true), checkedAddr); v != Latch {
		t.Fatalf("check: verdict %v", v)
	}
	if _, v := x.Inbound(record, checkedAddr); v != Consumed {
		t.Errorf("DTLS from the checked address: verdict %v, want Consumed", v)
	}
	if _, v := x.Inbound(record, stranger); v != Dropped {
		t.Errorf("DTLS from an unchecked address: verdict %v, want Dropped", v)
	}
	// A second candidate pair checked without nomination: a browser may
	// start DTLS on it.
	second := netip.MustParseAddrPort("127.0.0.1:40012")
	if _, v := x.Inbound(check(t, lu+":"+ru, lp, false), second); v != Consumed {
		t.Fatalf("second check: verdict %v", v)
	}
	for _, a := range []netip.AddrPort{checkedAddr, second} {
		if _, v := x.Inbound(record, a); v != Consumed {
			t.Errorf("DTLS from checked %v: verdict %v, want Consumed", a, v)
		}
	}
}

// TestKeysBeforeLastFlight: as DTLS server rtcgate has its SRTP keys
// before its last flight (ChangeCipherSpec, Finished) leaves, so the
// party, ready when that flight arrives, never sends SRTP rtcgate cannot
// decrypt yet.
func TestKeysBeforeLastFlight(t *testing.T) {
	cert, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		var mu sync.Mutex
		var ccs, early int
		browser, relay := callPair(t, cert, func(relay *Transport, p []byte) {
			if len(p) > 0 && p[0] == recordChangeCipherSpec {
				mu.Lock()
				ccs++
				if !relay.Ready() {
					early++
				}
				mu.Unlock()
			}
		})
		browser.Close()
		relay.Close()
		mu.Lock()
		if ccs == 0 || early > 0 {
			t.Fatalf("rtcgate sent %d ChangeCipherSpec datagrams, %d before its keys", ccs, early)
		}
		mu.Unlock()
	}
}
