package media

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"

	"github.com/rtcgate/rtcgate/internal/sdp"
	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// cryptosIn parses the a=crypto lines of body's first section.
func cryptosIn(t *testing.T, body string) []webrtcbridge.Crypto {
	t.Helper()
	sess, err := sdp.Parse([]byte(body))
	if err != nil || len(sess.Media) == 0 {
		t.Fatalf("SDP: %v\n%s", err, body)
	}
	var out []webrtcbridge.Crypto
	for _, v := range sess.Media[0].Attrs("crypto") {
		c, err := webrtcbridge.ParseCrypto(v)
		if err != nil {
			t.Fatalf("a=crypto:%s: %v", v, err)
		}
		out = append(out, c)
	}
	return out
}

// sdesSDP is an RTP/SAVP section at port with the given crypto lines.
func sdesSDP(port int, dir string, cs ...webrtcbridge.Crypto) []byte {
	extra := []string{"a=rtcp-mux", "a=" + dir}
	for _, c := range cs {
		extra = append(extra, "a=crypto:"+c.String(false))
	}
	return []byte(strings.Replace(string(sdpFor(port, extra...)), "RTP/AVP", "RTP/SAVP", 1))
}

func sameKey(a, b webrtcbridge.Crypto) bool {
	return a.Suite.Name == b.Suite.Name && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Salt, b.Salt)
}

// TestSDESKeyKeptAcrossReanswers: an SDES party re-offers (hold, unhold)
// with the same a=crypto; rtcgate's answers keep its key, and the running
// transport (its SRTP contexts) with it, as rtpengine keeps its key. A
// re-offer with a new key from the party, or another suite, gets a new
// key. Toward the plain party's side rtcgate offered SDES to, a re-offer
// keeps the key of the suite the answer picked and makes new ones for the
// others.
func TestSDESKeyKeptAcrossReanswers(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	a, b := newPlainPeer(t), newPlainPeer(t)
	s80, _ := webrtcbridge.SuiteByName("AES_CM_128_HMAC_SHA1_80")
	s32, _ := webrtcbridge.SuiteByName("AES_CM_128_HMAC_SHA1_32")
	ca := webrtcbridge.NewCrypto(1, s80)
	round := func(dir string, cs ...webrtcbridge.Crypto) webrtcbridge.Crypto {
		t.Helper()
		mustOK(t)(e.Offer(&Request{CallID: "k", FromTag: "a", SDP: sdesSDP(a.port(), dir, cs...), Secure: Secure{Protocol: "RTP/AVP"}}))
		toA := mustOK(t)(e.Answer(&Request{CallID: "k", FromTag: "a", ToTag: "b", SDP: sdpFor(b.port(), "a=rtcp-mux")}))
		got := cryptosIn(t, toA)
		if len(got) != 1 {
			t.Fatalf("answer carries %d a=crypto:\n%s", len(got), toA)
		}
		return got[0]
	}
	xport := func() *webrtcbridge.Transport {
		c := e.lookup("k")
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.monologues["a"].sides[0].rtp.xport.Load()
	}
	first := round("sendrecv", ca)
	x1 := xport()
	if x1 == nil || !x1.Ready() {
		t.Fatal("no SDES transport after the answer")
	}
	for _, dir := range []string{"sendonly", "sendrecv"} {
		again := round(dir, ca)
		if !sameKey(again, first) || again.Tag != first.Tag {
			t.Fatalf("re-answer (%s) changed rtcgate's key: %s, was %s", dir, again.String(false), first.String(false))
		}
	}
	if xport() != x1 {
		t.Error("re-answers with the same crypto replaced the running transport")
	}
	newKey := round("sendrecv", webrtcbridge.NewCrypto(1, s80))
	if sameKey(newKey, first) {
		t.Error("the party's new key left rtcgate's key unchanged")
	}
	other := round("sendrecv", webrtcbridge.NewCrypto(1, s32))
	if other.Suite.Name != s32.Name || bytes.Equal(other.Key, newKey.Key) {
		t.Errorf("another suite: %s, key reused", other.String(false))
	}

	// Plain A offers SRTP to C: C answers one suite; the re-offer keeps its key.
	cp := newPlainPeer(t)
	offerC := func() []webrtcbridge.Crypto {
		return cryptosIn(t, mustOK(t)(e.Offer(&Request{CallID: "o", FromTag: "a", SDP: sdpFor(a.port(), "a=rtcp-mux"), Secure: Secure{Protocol: "RTP/SAVP"}})))
	}
	o1 := offerC()
	if len(o1) < 2 {
		t.Fatalf("offer to C carries %d a=crypto", len(o1))
	}
	picked := o1[1]
	mustOK(t)(e.Answer(&Request{CallID: "o", FromTag: "a", ToTag: "c", SDP: sdesSDP(cp.port(), "sendrecv", webrtcbridge.Crypto{Tag: picked.Tag, Suite: picked.Suite, Key: webrtcbridge.NewCrypto(1, picked.Suite).Key, Salt: webrtcbridge.NewCrypto(1, picked.Suite).Salt})}))
	o2 := offerC()
	var kept, fresh int
	for _, c := range o2 {
		for _, p := range o1 {
			if c.Suite.Name == p.Suite.Name && sameKey(c, p) {
				if c.Suite.Name != picked.Suite.Name {
					t.Errorf("re-offer kept the key of %s, which C did not pick", c.Suite.Name)
				}
				kept++
			} else if c.Suite.Name == p.Suite.Name {
				fresh++
			}
		}
	}
	if kept != 1 || fresh != len(o1)-1 {
		t.Errorf("re-offer to C: %d keys kept (want 1, %s), %d new (want %d)", kept, picked.Suite.Name, fresh, len(o1)-1)
	}
}

// TestSDESStatic: with SDES-static a re-answer keeps the suite (tag) it
// answered before when the re-offer still carries it, though another
// comes first; without, it takes the first usable one.
func TestSDESStatic(t *testing.T) {
	for _, static := range []bool{false, true} {
		e := newEngine(t, "127.0.0.1")
		a, b := newPlainPeer(t), newPlainPeer(t)
		s80, _ := webrtcbridge.SuiteByName("AES_CM_128_HMAC_SHA1_80")
		s32, _ := webrtcbridge.SuiteByName("AES_CM_128_HMAC_SHA1_32")
		c1, c2 := webrtcbridge.NewCrypto(1, s80), webrtcbridge.NewCrypto(2, s32)
		round := func(cs ...webrtcbridge.Crypto) webrtcbridge.Crypto {
			t.Helper()
			mustOK(t)(e.Offer(&Request{CallID: "st", FromTag: "a", SDP: sdesSDP(a.port(), "sendrecv", cs...), Secure: Secure{Protocol: "RTP/AVP"}}))
			got := cryptosIn(t, mustOK(t)(e.Answer(&Request{CallID: "st", FromTag: "a", ToTag: "b", SDP: sdpFor(b.port(), "a=rtcp-mux"),
				Secure: Secure{SDES: SDES{Static: static}}})))
			if len(got) != 1 {
				t.Fatalf("answer carries %d a=crypto", len(got))
			}
			return got[0]
		}
		if first := round(c1, c2); first.Tag != 1 {
			t.Fatalf("first answer took tag %d, want 1", first.Tag)
		}
		want := 2
		if static {
			want = 1
		}
		if again := round(c2, c1); again.Tag != want {
			t.Errorf("static=%v: re-answer took tag %d, want %d", static, again.Tag, want)
		}
	}
}

// TestSDESOrder: SDES-order: puts the named suites first in the offer, in
// the given order, the others after them as before; tags stay.
func TestSDESOrder(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	a := newPlainPeer(t)
	plain := cryptosIn(t, mustOK(t)(e.Offer(&Request{CallID: "p", FromTag: "a", SDP: sdpFor(a.port()), Secure: Secure{Protocol: "RTP/SAVP"}})))
	order := []string{"AES_CM_128_HMAC_SHA1_32", "aead_aes_128_gcm", "NOT_A_SUITE"}
	got := cryptosIn(t, mustOK(t)(e.Offer(&Request{CallID: "q", FromTag: "a", SDP: sdpFor(a.port()), Secure: Secure{Protocol: "RTP/SAVP", SDES: SDES{Order: order}}})))
	if len(got) != len(plain) || len(got) < 3 {
		t.Fatalf("ordered offer has %d suites, plain %d", len(got), len(plain))
	}
	tagOf := map[string]int{}
	for _, c := range plain {
		tagOf[c.Suite.Name] = c.Tag
	}
	var names []string
	for _, c := range got {
		names = append(names, c.Suite.Name)
		if c.Tag != tagOf[c.Suite.Name] {
			t.Errorf("%s: tag %d, want %d (unchanged)", c.Suite.Name, c.Tag, tagOf[c.Suite.Name])
		}
	}
	var rest []string
	for _, c := range plain {
		if c.Suite.Name != "AES_CM_128_HMAC_SHA1_32" && c.Suite.Name != "AEAD_AES_128_GCM" {
			rest = append(rest, c.Suite.Name)
		}
	}
	want := append([]string{"AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"}, rest...)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("order %v, want %v", names, want)
	}
}

// TestSDESSRTCPOnSeparatePort: an SDES party that does not multiplex RTCP
// (a=rtcp on its own port) gets SRTCP on the relay's RTCP port with the
// negotiated keys, both ways, byte for byte.
func TestSDESSRTCPOnSeparatePort(t *testing.T) {
	e := newEngine(t, "127.0.0.1")
	aRTP, aRTCP, bRTP, bRTCP := newPlainPeer(t), newPlainPeer(t), newPlainPeer(t), newPlainPeer(t)
	s80, _ := webrtcbridge.SuiteByName("AES_CM_128_HMAC_SHA1_80")
	ca := webrtcbridge.NewCrypto(1, s80)
	offer := strings.Replace(string(sdpFor(aRTP.port(), fmt.Sprintf("a=rtcp:%d", aRTCP.port()), "a=crypto:"+ca.String(false))), "RTP/AVP", "RTP/SAVP", 1)
	toB := mustOK(t)(e.Offer(&Request{CallID: "sr", FromTag: "a", SDP: []byte(offer), Secure: Secure{Protocol: "RTP/AVP"}}))
	toA := mustOK(t)(e.Answer(&Request{CallID: "sr", FromTag: "a", ToTag: "b", SDP: sdpFor(bRTP.port(), fmt.Sprintf("a=rtcp:%d", bRTCP.port()))}))
	rc := cryptosIn(t, toA)
	if len(rc) != 1 || strings.Contains(toA, "a=rtcp-mux") {
		t.Fatalf("answer to A:\n%s", toA)
	}
	enc, err := srtp.CreateContext(ca.Key, ca.Salt, s80.Profile)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := srtp.CreateContext(rc[0].Key, rc[0].Salt, s80.Profile)
	if err != nil {
		t.Fatal(err)
	}
	relayARTCP := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpPort(t, toA) + 1}
	relayBRTCP := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sdpPort(t, toB) + 1}
	rr, _ := (&rtcp.ReceiverReport{SSRC: 0xa}).Marshal()
	sealed, err := enc.EncryptRTCP(nil, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	aRTCP.conn.WriteToUDP(sealed, relayARTCP)
	if got := readUntil(t, bRTCP.conn, func([]byte) bool { return true }); !bytes.Equal(got, rr) {
		t.Fatalf("B's RTCP socket got %x, want %x", got, rr)
	}
	sr, _ := (&rtcp.SenderReport{SSRC: 0xb}).Marshal()
	bRTCP.conn.WriteToUDP(sr, relayBRTCP)
	got := readUntil(t, aRTCP.conn, func([]byte) bool { return true })
	if opened, err := dec.DecryptRTCP(nil, got, nil); err != nil || !bytes.Equal(opened, sr) {
		t.Fatalf("A's RTCP socket got %x (%v), want %x sealed", got, err, sr)
	}
}
