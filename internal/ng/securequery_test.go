package ng

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/webrtcbridge"
)

// TestQuerySecureCounters: query's media dictionaries carry the secure
// side's counters under the names `list sessions` prints. An SDES party
// with ICE calls a plain one; a forged SRTP packet from it is counted as
// an SRTP auth failure, a re-offer with new ICE credentials as an ICE
// restart; the plain party's media has no such keys.
func TestQuerySecureCounters(t *testing.T) {
	env := newTestEnv(t)
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	port := a.LocalAddr().(*net.UDPAddr).Port
	s, _ := webrtcbridge.SuiteByName("AES_CM_128_HMAC_SHA1_80")
	cr := webrtcbridge.NewCrypto(1, s)
	offer := func(ufrag string) string {
		return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(port) + " RTP/SAVP 0\r\na=rtcp-mux\r\na=crypto:" + cr.String(false) + "\r\n" +
			"a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:" + strings.Repeat(ufrag, 6) + "\r\n" +
			"a=candidate:1 1 UDP 2130706431 127.0.0.1 " + strconv.Itoa(port) + " typ host\r\n"
	}
	answer := "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtcp-mux\r\n"
	negotiate := func(ufrag string) string {
		mustOK(t, env.call(t, "command", "offer", "call-id", "sq", "from-tag", "a", "sdp", offer(ufrag), "transport-protocol", "RTP/AVP", "ICE", "remove"))
		r := env.call(t, "command", "answer", "call-id", "sq", "from-tag", "a", "to-tag", "b", "sdp", answer)
		mustOK(t, r)
		return r["sdp"].(string)
	}
	toA := negotiate("ufrg")
	media := func(tag string) map[string]any {
		t.Helper()
		q := env.call(t, "command", "query", "call-id", "sq")
		mustOK(t, q)
		return q["tags"].(map[string]any)[tag].(map[string]any)["medias"].([]any)[0].(map[string]any)
	}
	keys := []string{"DTLS handshake failures", "ICE checks answered", "SRTP auth failures", "ICE restarts"}
	for _, k := range keys {
		if v, ok := media("a")[k]; !ok || v != int64(0) {
			t.Errorf("SDES party's media: %q = %v (present %v), want 0", k, v, ok)
		}
		if v, ok := media("b")[k]; ok {
			t.Errorf("plain party's media has %q = %v", k, v)
		}
	}
	m := regexp.MustCompile(`(?m)^m=audio (\d+) RTP/SAVP 0\r$`).FindStringSubmatch(toA)
	if m == nil {
		t.Fatalf("answer to the SDES party:\n%s", toA)
	}
	rport, _ := strconv.Atoi(m[1])
	relay := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: rport}
	forged := append([]byte{0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0x5e, 0xed}, make([]byte, 40)...)
	if _, err := a.WriteToUDP(forged, relay); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for media("a")["SRTP auth failures"] != int64(1) {
		if time.Now().After(deadline) {
			t.Fatalf("forged SRTP not counted: %v", media("a"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	negotiate("newu")
	if m := media("a"); m["ICE restarts"] != int64(1) || m["SRTP auth failures"] != int64(1) {
		t.Errorf("after a re-offer with new ICE credentials: %v", m)
	}
}
