package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rtcgate/rtcgate/internal/bencode"
	"github.com/rtcgate/rtcgate/internal/ng"
)

// ngClient sends one ng request and returns the reply dictionary.
type ngClient interface {
	Do(t *testing.T, req map[string]any) map[string]any
}

var cookieSeq atomic.Int64

func newCookie() string { return fmt.Sprintf("t%d_%d", time.Now().UnixNano()%1e6, cookieSeq.Add(1)) }

func encodeReq(t *testing.T, req map[string]any, enc ng.Encoding) []byte {
	t.Helper()
	d := &bencode.Dict{}
	for k, v := range req {
		d.Set(k, v)
	}
	b, err := ng.Encode(nil, d, enc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeReply(t *testing.T, body []byte, want ng.Encoding) map[string]any {
	t.Helper()
	d, enc, err := ng.Decode(body)
	if err != nil {
		t.Fatalf("reply %q does not decode: %v", body, err)
	}
	if enc != want {
		t.Fatalf("reply in encoding %v, request was %v: %q", enc, want, body)
	}
	return d
}

// withCookie checks the reply carries the request's cookie and strips it.
func withCookie(t *testing.T, cookie string, reply []byte) []byte {
	t.Helper()
	c, body, ok := ng.SplitCookie(reply)
	if !ok || string(c) != cookie {
		t.Fatalf("reply %q does not carry cookie %q", reply, cookie)
	}
	return body
}

type udpNG struct {
	addr string
	enc  ng.Encoding
}

func (u udpNG) Do(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	conn, err := net.Dial("udp", u.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cookie := newCookie()
	msg := append([]byte(cookie+" "), encodeReq(t, req, u.enc)...)
	buf := make([]byte, 65536)
	for attempt := 0; attempt < 5; attempt++ {
		conn.Write(msg)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err == nil {
			return decodeReply(t, withCookie(t, cookie, buf[:n]), u.enc)
		}
	}
	t.Fatalf("no ng reply over UDP to %v", req["command"])
	return nil
}

type httpNG struct {
	base  string
	plain bool
	enc   ng.Encoding
}

func (h httpNG) Do(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	body := encodeReq(t, req, h.enc)
	url, ctype, cookie := h.base+"/ng", "application/x-rtpengine-ng", newCookie()
	if h.plain {
		url = h.base + "/ng-plain"
		if h.enc == ng.JSON {
			ctype = "application/json"
		}
	} else {
		body = append([]byte(cookie+" "), body...)
	}
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s = %d %q", url, resp.StatusCode, out)
	}
	if !h.plain {
		out = withCookie(t, cookie, out)
	}
	return decodeReply(t, out, h.enc)
}

type wsNG struct {
	conn  *websocket.Conn
	plain bool
	enc   ng.Encoding
}

func (w wsNG) Do(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	body, cookie := encodeReq(t, req, w.enc), newCookie()
	if !w.plain {
		body = append([]byte(cookie+" "), body...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.conn.Write(ctx, websocket.MessageText, body); err != nil {
		t.Fatal(err)
	}
	_, out, err := w.conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !w.plain {
		out = withCookie(t, cookie, out)
	}
	return decodeReply(t, out, w.enc)
}

// party is one side of a test call: an RTP and an RTCP socket on loopback.
type party struct {
	rtp, rtcp *net.UDPConn
}

func newParty(t *testing.T) *party {
	t.Helper()
	p := &party{}
	for _, c := range []**net.UDPConn{&p.rtp, &p.rtcp} {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		*c = conn
	}
	return p
}

func (p *party) port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func (p *party) sdp(extra ...string) string {
	lines := []string{"v=0", "o=- 1545997027 1 IN IP4 127.0.0.1", "s=tester", "c=IN IP4 127.0.0.1", "t=0 0",
		fmt.Sprintf("m=audio %d RTP/AVP 0 8 101", p.port(p.rtp)), "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
		"a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=x-unknown:keep me", "a=sendrecv",
		fmt.Sprintf("a=rtcp:%d", p.port(p.rtcp))}
	lines = append(lines, extra...)
	return strings.Join(lines, "\r\n") + "\r\n"
}

var mLine = regexp.MustCompile(`(?m)^m=audio (\d+) `)
var rtcpLine = regexp.MustCompile(`(?m)^a=rtcp:(\d+)`)

// relayPorts reads the relay's RTP and RTCP ports from a rewritten SDP.
func relayPorts(t *testing.T, sdp string) (int, int) {
	t.Helper()
	m, r := mLine.FindStringSubmatch(sdp), rtcpLine.FindStringSubmatch(sdp)
	if m == nil || r == nil {
		t.Fatalf("rewritten SDP lacks m= or a=rtcp:\n%s", sdp)
	}
	rtp, _ := strconv.Atoi(m[1])
	rtcp, _ := strconv.Atoi(r[1])
	return rtp, rtcp
}

// sendExpect sends pkt from one socket to the relay port and requires it
// to arrive, byte for byte, on the other socket, from the relay's other port.
func sendExpect(t *testing.T, from *net.UDPConn, relayIn int, to *net.UDPConn, relayOut int, pkt []byte) {
	t.Helper()
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relayIn}
	buf := make([]byte, 2048)
	// Resend until it arrives: the first packet of a stream may race the
	// relay's reader starting; the bound keeps a broken relay from hanging.
	for attempt := 0; attempt < 20; attempt++ {
		if _, err := from.WriteToUDP(pkt, dst); err != nil {
			t.Fatal(err)
		}
		to.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, src, err := to.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		if !bytes.Equal(buf[:n], pkt) {
			t.Fatalf("relayed packet differs: got %x want %x", buf[:n], pkt)
		}
		if int(src.Port()) != relayOut {
			t.Fatalf("packet came from relay port %d, want %d", src.Port(), relayOut)
		}
		return
	}
	t.Fatalf("packet sent to relay port %d never arrived", relayIn)
}

func rtpPacket(seq uint16, payload string) []byte {
	p := []byte{0x80, 0x00, byte(seq >> 8), byte(seq), 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef}
	return append(p, payload...)
}

func rtcpPacket() []byte {
	// A minimal receiver report: V=2, PT=201, length 1, SSRC.
	return []byte{0x80, 201, 0, 1, 0xde, 0xad, 0xbe, 0xef}
}

func str(t *testing.T, d map[string]any, key string) string {
	t.Helper()
	s, ok := d[key].(string)
	if !ok {
		t.Fatalf("reply has no string %q: %v", key, d)
	}
	return s
}

func requireOK(t *testing.T, d map[string]any) {
	t.Helper()
	if d["result"] != "ok" {
		t.Fatalf("result = %v (%v)", d["result"], d["error-reason"])
	}
}

// playCall runs a two-party call through the relay over one ng transport:
// offer, answer, RTP and RTCP both ways, query, delete.
func playCall(t *testing.T, c ngClient, callID string) {
	t.Helper()
	a, b := newParty(t), newParty(t)
	offer := c.Do(t, map[string]any{"command": "offer", "call-id": callID, "from-tag": "tagA", "sdp": a.sdp(),
		"flags": []any{"trust-address"}, "replace": []any{"origin", "session-connection"}})
	requireOK(t, offer)
	toB := str(t, offer, "sdp")
	if !strings.Contains(toB, "a=x-unknown:keep me") || !strings.Contains(toB, "c=IN IP4 127.0.0.1") {
		t.Errorf("offer SDP lost lines:\n%s", toB)
	}
	relayB, relayBRTCP := relayPorts(t, toB)

	answer := c.Do(t, map[string]any{"command": "answer", "call-id": callID, "from-tag": "tagA", "to-tag": "tagB", "sdp": b.sdp()})
	requireOK(t, answer)
	relayA, relayARTCP := relayPorts(t, str(t, answer, "sdp"))
	if relayA == relayB {
		t.Fatalf("both parties got relay port %d", relayA)
	}

	for i := range 5 {
		sendExpect(t, a.rtp, relayA, b.rtp, relayB, rtpPacket(uint16(i), "from A"))
		sendExpect(t, b.rtp, relayB, a.rtp, relayA, rtpPacket(uint16(100+i), "from B"))
	}
	sendExpect(t, a.rtcp, relayARTCP, b.rtcp, relayBRTCP, rtcpPacket())
	sendExpect(t, b.rtcp, relayBRTCP, a.rtcp, relayARTCP, rtcpPacket())

	q := c.Do(t, map[string]any{"command": "query", "call-id": callID})
	requireOK(t, q)
	totals := q["totals"].(map[string]any)
	rtp := totals["RTP"].(map[string]any)
	if p := rtp["packets"].(int64); p < 10 {
		t.Errorf("query totals RTP packets = %d, want at least 10", p)
	}
	if p := totals["RTCP"].(map[string]any)["packets"].(int64); p < 2 {
		t.Errorf("query totals RTCP packets = %d, want at least 2", p)
	}
	tags := q["tags"].(map[string]any)
	for _, tag := range []string{"tagA", "tagB"} {
		if _, ok := tags[tag]; !ok {
			t.Errorf("query lacks tag %s: %v", tag, tags)
		}
	}
	list := c.Do(t, map[string]any{"command": "list"})
	if calls, _ := list["calls"].([]any); len(calls) != 1 || calls[0] != callID {
		t.Errorf("list = %v", list)
	}

	del := c.Do(t, map[string]any{"command": "delete", "call-id": callID, "from-tag": "tagA", "delete delay": int64(0)})
	requireOK(t, del)
	if del["totals"].(map[string]any)["RTP"].(map[string]any)["packets"].(int64) < 10 {
		t.Errorf("delete stats = %v", del["totals"])
	}
	gone := c.Do(t, map[string]any{"command": "query", "call-id": callID})
	if gone["result"] != "error" || gone["error-reason"] != "Unknown call-id" {
		t.Errorf("query after delete = %v", gone)
	}
}

// The ng tests give each rtcgate its own media ports in 9000-9899: below
// the kernel's ephemeral range, where any socket bound to port 0 (Chromium,
// SIP stacks, test clients running in parallel) could take one, and below
// testpeer's 10000-32767 — TestLimits, with two port pairs, cannot afford
// to lose one.

// TestCallOverEveryTransport plays a call over UDP (bencode and JSON), HTTP
// /ng and /ng-plain, and the two ng WebSocket subprotocols.
func TestCallOverEveryTransport(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "9000", "--port-max", "9199")...)
	ngAddr, httpBase := r.addr(t, "listen-ng"), "http://"+r.addr(t, "listen-http")
	wsURL := "ws://" + r.addr(t, "listen-http")
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) ngClient
	}{
		{"udp-bencode", func(*testing.T) ngClient { return udpNG{ngAddr, ng.Bencode} }},
		{"udp-json", func(*testing.T) ngClient { return udpNG{ngAddr, ng.JSON} }},
		{"http-ng", func(*testing.T) ngClient { return httpNG{httpBase, false, ng.Bencode} }},
		{"http-ng-json", func(*testing.T) ngClient { return httpNG{httpBase, false, ng.JSON} }},
		{"http-ng-plain-json", func(*testing.T) ngClient { return httpNG{httpBase, true, ng.JSON} }},
		{"http-ng-plain-bencode", func(*testing.T) ngClient { return httpNG{httpBase, true, ng.Bencode} }},
		{"ws-ng", func(t *testing.T) ngClient { return wsNG{dialWS(t, wsURL, nil, "ng.rtpengine.com"), false, ng.Bencode} }},
		{"ws-ng-plain", func(t *testing.T) ngClient {
			return wsNG{dialWS(t, wsURL, nil, "ng-plain.rtpengine.com"), true, ng.JSON}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { playCall(t, tc.client(t), "call-"+tc.name) })
	}
	// Every call was deleted: the CLI shows no sessions, the totals count
	// them as regular terminations.
	out, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", httpBase, "list", "sessions", "all")
	if out != "No sessions on this media relay.\n" {
		t.Errorf("list sessions all = %q", out)
	}
	totals, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", httpBase, "list", "totals")
	contains(t, "list totals", totals, " Total regular terminated sessions               :8\n", " Total managed sessions                          :8\n")
}

// TestRetransmittedCookie: a UDP request repeated with the same cookie gets
// the same reply and runs once.
func TestRetransmittedCookie(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "9200", "--port-max", "9299")...)
	conn, err := net.Dial("udp", r.addr(t, "listen-ng"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a := newParty(t)
	msg := append([]byte("retrans1 "), encodeReq(t, map[string]any{"command": "offer", "call-id": "rc", "from-tag": "x", "sdp": a.sdp()}, ng.Bencode)...)
	// Two copies back to back: the second arrives while the first runs or
	// after; either way one call, and every reply the same bytes.
	conn.Write(msg)
	conn.Write(msg)
	buf := make([]byte, 65536)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	first := append([]byte{}, buf[:n]...)
	conn.Write(msg) // a later retransmission is answered from the cache
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err = conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], first) {
			t.Fatalf("retransmission answered differently:\n%q\n%q", first, buf[:n])
		}
		break
	}
	list := udpNG{r.addr(t, "listen-ng"), ng.Bencode}.Do(t, map[string]any{"command": "list"})
	if calls := list["calls"].([]any); len(calls) != 1 {
		t.Fatalf("calls after retransmissions: %v", calls)
	}
	metrics := scrape(t, "http://"+r.addr(t, "listen-http"))
	if !strings.Contains(metrics, `rtpengine_requests_total{request="offer"} 1`+"\n") {
		t.Errorf("offer ran more than once:\n%s", grepLines(metrics, "rtpengine_requests_total"))
	}
	if !strings.Contains(metrics, `rtpengine_ports_used{address="127.0.0.1",name="default"} 4`+"\n") {
		t.Errorf("ports used:\n%s", grepLines(metrics, "rtpengine_ports"))
	}
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return readAll(t, resp.Body)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestLimits: running out of ports and max-sessions are error replies that
// leave nothing behind.
func TestLimits(t *testing.T) {
	// Two port pairs: one call (a pair per party) fills them.
	r := start(t, append(ephemeral, "--port-min", "9300", "--port-max", "9303")...)
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	a := newParty(t)
	requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": "full1", "from-tag": "x", "sdp": a.sdp()}))
	second := c.Do(t, map[string]any{"command": "offer", "call-id": "full2", "from-tag": "x", "sdp": a.sdp()})
	if second["result"] != "error" || second["error-reason"] != "Ran out of ports" {
		t.Fatalf("offer with no ports left = %v", second)
	}
	if calls := c.Do(t, map[string]any{"command": "list"})["calls"].([]any); len(calls) != 1 {
		t.Fatalf("a failed offer left a call behind: %v", calls)
	}
	base := "http://" + r.addr(t, "listen-http")
	if m := scrape(t, base); !strings.Contains(m, `rtpengine_ports_free{address="127.0.0.1",name="default"} 0`) {
		t.Errorf("ports:\n%s", grepLines(m, "rtpengine_ports"))
	}
	requireOK(t, c.Do(t, map[string]any{"command": "delete", "call-id": "full1", "delete-delay": int64(0)}))
	// The ports come back once the relay thread has closed their sockets,
	// just after the reply.
	eventually(t, 5*time.Second, "the deleted call's ports free again", func() bool {
		return strings.Contains(scrape(t, base), `rtpengine_ports_free{address="127.0.0.1",name="default"} 4`)
	})
	requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": "full3", "from-tag": "x", "sdp": a.sdp()}))

	// max-sessions, changed at runtime.
	out, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "set", "maxsessions", "1")
	if out != "Success setting maxsessions to 1\n" {
		t.Fatalf("set maxsessions = %q", out)
	}
	limited := c.Do(t, map[string]any{"command": "offer", "call-id": "over", "from-tag": "x", "sdp": a.sdp()})
	if limited["error-reason"] != "Parallel session limit reached" {
		t.Fatalf("offer over max-sessions = %v", limited)
	}
	totals, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "list", "totals")
	contains(t, "totals", totals, " Total rejected sessions                         :1\n")
}

// TestTimeouts: a call without media ends after `timeout`, one with media
// after `final-timeout`, and `terminate` ends one at once; each is counted
// under its reason.
func TestTimeouts(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "9400", "--port-max", "9499", "--timeout", "1", "--final-timeout", "3", "--silent-timeout", "2")...)
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	base := "http://" + r.addr(t, "listen-http")
	setup := func(id, direction string) (*party, int) {
		a, b := newParty(t), newParty(t)
		requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": id, "from-tag": "a", "sdp": strings.Replace(a.sdp(), "a=sendrecv", "a="+direction, 1)}))
		ans := c.Do(t, map[string]any{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": strings.Replace(b.sdp(), "a=sendrecv", "a="+direction, 1)})
		requireOK(t, ans)
		port, _ := relayPorts(t, str(t, ans, "sdp"))
		return a, port
	}
	setup("idle", "sendrecv")
	setup("held", "inactive")
	talker, port := setup("talking", "sendrecv")
	requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": "killme", "from-tag": "k", "sdp": newParty(t).sdp()}))
	out, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "terminate", "killme")
	if out != "\nCall Id (killme) successfully terminated by operator.\n\n" {
		t.Errorf("terminate = %q", out)
	}

	// Keep media flowing on "talking" until every call has gone.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				talker.rtp.WriteToUDP(rtpPacket(seq, "keepalive"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			}
		}
	}()
	want := map[string]string{"timeout": "1", "silent_timeout": "1", "final_timeout": "1", "force_terminated": "1"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := scrape(t, base)
		done := true
		for reason, n := range want {
			if !strings.Contains(m, fmt.Sprintf("rtpengine_closed_sessions_total{reason=%q} %s\n", reason, n)) {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls did not end by their reasons:\n%s", grepLines(m, "rtpengine_closed_sessions_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if calls := c.Do(t, map[string]any{"command": "list"})["calls"].([]any); len(calls) != 0 {
		t.Errorf("calls left: %v", calls)
	}
}

// TestBadRequests: every malformed request gets an error reply naming the
// problem; a message without cookie is dropped.
func TestBadRequests(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "9500", "--port-max", "9599")...)
	conn, err := net.Dial("udp", r.addr(t, "listen-ng"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exchange := func(msg string) string {
		conn.Write([]byte(msg))
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 65536)
		n, err := conn.Read(buf)
		if err != nil {
			return "no reply: " + err.Error()
		}
		return string(buf[:n])
	}
	for msg, want := range map[string]string{
		"b1 d7:command4:pinge":                                      "b1 d6:result4:ponge",
		"b2 d3:foo3:bare":                                           `b2 d6:result5:error12:error-reason36:Dictionary contains no key "command"e`,
		"b3 d7:command5:frobse":                                     "b3 d6:result5:error12:error-reason20:Unrecognized commande",
		"b4 d7:command15:start recordinge":                          "b4 d6:result5:error12:error-reason19:Unsupported commande",
		"b5 d7:command5:offer7:call-id1:x8:from-tag1:ae":            "b5 d6:result5:error12:error-reason22:No SDP body in messagee",
		"b6 d7:command5:querye":                                     "b6 d6:result5:error12:error-reason21:No call-id in messagee",
		"b7 garbage":                                                "b7 d6:result5:error12:error-reason22:Invalid NG data formate",
		`b8 {"command":"query","call-id":"nope"}`:                   `b8 {"result":"error","error-reason":"Unknown call-id"}`,
		"b9 d7:command6:delete7:call-id4:nopee":                     "b9 d7:warning38:Call-ID not found or tags didn't match6:result2:oke",
		"b10 d7:command6:delete7:call-id4:nope5:flagsl5:fatalee":    "b10 d6:result5:error12:error-reason38:Call-ID not found or tags didn't matche",
		"b11 d7:command5:offer7:call-id1:x8:from-tag1:a3:sdp3:xyze": "b11 d6:result5:error12:error-reason",
	} {
		if got := exchange(msg); !strings.HasPrefix(got, want) {
			t.Errorf("%q → %q, want %q", msg, got, want)
		}
	}
	if got := exchange("nocookie"); !strings.HasPrefix(got, "no reply") {
		t.Errorf("message without cookie answered: %q", got)
	}
	// The relay is still there afterwards.
	if got := exchange("b12 d7:command4:pinge"); got != "b12 d6:result4:ponge" {
		t.Errorf("ping after bad input = %q", got)
	}
	// POST /ng without a cookie is a 400.
	resp, err := http.Post("http://"+r.addr(t, "listen-http")+"/ng", "application/x-rtpengine-ng", strings.NewReader("d7:command4:pinge"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /ng without cookie = %d", resp.StatusCode)
	}
}

// TestRtpengineNgClient drives rtcgate with Debian's rtpengine-ng-client, in
// bencode and in JSON.
func TestRtpengineNgClient(t *testing.T) {
	client := needTool(t, "rtpengine-ng-client", "rtpengine-utils")
	r := start(t, append(ephemeral, "--port-min", "9600", "--port-max", "9699")...)
	host, port := splitHostPort(t, r.addr(t, "listen-ng"))
	a, b := newParty(t), newParty(t)
	for _, mode := range [][]string{nil, {"--json"}} {
		id := "ngclient" + strings.Join(mode, "")
		run := func(args ...string) string {
			all := append([]string{"--proxy-address=" + host, "--proxy-port=" + port}, mode...)
			out, stderr, code := runCmd(t, 20*time.Second, client, append(all, args...)...)
			if code != 0 {
				t.Fatalf("rtpengine-ng-client %v: exit %d: %s%s", args, code, out, stderr)
			}
			return out
		}
		if out := run("ping"); !strings.Contains(out, "pong") {
			t.Errorf("ping: %s", out)
		}
		out := run("offer", "--call-id="+id, "--from-tag=ft", "--trust-address", "--replace-origin", "--sdp="+a.sdp())
		newSDP := out[strings.Index(out, "New SDP:"):]
		if !regexp.MustCompile(`m=audio 96\d\d RTP/AVP 0 8 101`).MatchString(newSDP) {
			t.Errorf("offer did not rewrite the SDP:\n%s", out)
		}
		out = run("answer", "--call-id="+id, "--from-tag=ft", "--to-tag=tt", "--sdp="+b.sdp())
		if !regexp.MustCompile(`m=audio 96\d\d RTP/AVP`).MatchString(out[strings.Index(out, "New SDP:"):]) {
			t.Errorf("answer did not rewrite the SDP:\n%s", out)
		}
		listed, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r.addr(t, "listen-http"), "list", "sessions", "all")
		if !strings.Contains(listed, id) {
			t.Errorf("list sessions all lacks %s:\n%s", id, listed)
		}
		out = run("delete", "--call-id="+id, "--from-tag=ft", "--delete-delay=0")
		if !strings.Contains(out, "totals") {
			t.Errorf("delete reply lacks totals:\n%s", out)
		}
	}
}

// TestNgSubcommand: `rtcgate ng` speaks ng over UDP and HTTP, bencode and
// JSON, and exits 1 on an error reply.
func TestNgSubcommand(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "9700", "--port-max", "9799")...)
	sdpFile := t.TempDir() + "/offer.sdp"
	if err := os.WriteFile(sdpFile, []byte(newParty(t).sdp()), 0o600); err != nil {
		t.Fatal(err)
	}
	udp, web := "udp://"+r.addr(t, "listen-ng"), "http://"+r.addr(t, "listen-http")
	out, stderr, code := runCmd(t, 20*time.Second, binary, "ng", "--url", udp, "--sdp-file", sdpFile, "offer", "call-id=sub", "from-tag=f", "flags=trust-address")
	if code != 0 || !regexp.MustCompile(`(?m)^m=audio 97\d\d RTP/AVP`).MatchString(out) || !strings.Contains(out, `"result": "ok"`) {
		t.Fatalf("rtcgate ng offer = %d\n%s%s", code, out, stderr)
	}
	out, _, code = runCmd(t, 20*time.Second, binary, "ng", "--url", web, "--json", "list", "limit=10")
	if code != 0 || !strings.Contains(out, `"sub"`) {
		t.Errorf("rtcgate ng list over HTTP = %d\n%s", code, out)
	}
	out, _, code = runCmd(t, 20*time.Second, binary, "ng", "--url", udp, "query", "call-id=absent")
	if code != 1 || !strings.Contains(out, "Unknown call-id") {
		t.Errorf("rtcgate ng query of an unknown call = %d\n%s", code, out)
	}
	_, stderr, code = runCmd(t, 20*time.Second, binary, "ng", "--url", udp, "offer", "noequals")
	if code != 2 || !strings.Contains(stderr, "want key=value") {
		t.Errorf("bad argument = %d %q", code, stderr)
	}
}

// TestDeleteDelay: without "delete delay" a deleted call lingers for the
// configured delete-delay (marked for deletion), then goes.
func TestDeleteDelay(t *testing.T) {
	r := start(t, append(ephemeral, "--port-min", "9800", "--port-max", "9899", "--delete-delay", "1")...)
	c := udpNG{r.addr(t, "listen-ng"), ng.Bencode}
	requireOK(t, c.Do(t, map[string]any{"command": "offer", "call-id": "late", "from-tag": "a", "sdp": newParty(t).sdp()}))
	requireOK(t, c.Do(t, map[string]any{"command": "delete", "call-id": "late", "from-tag": "a"}))
	requireOK(t, c.Do(t, map[string]any{"command": "query", "call-id": "late"}))
	listed, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r.addr(t, "listen-http"), "list", "sessions", "all")
	if !strings.Contains(listed, "late | deletionmark: yes") {
		t.Errorf("lingering call not marked:\n%s", listed)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		q := c.Do(t, map[string]any{"command": "query", "call-id": "late"})
		if q["error-reason"] == "Unknown call-id" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call still there 10 s after a 1 s delete delay: %v", q)
		}
	}
}
