package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fdCount is the number of descriptors process pid holds.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// alive checks what the hostile tests require during and after an attack:
// /ping, an ng ping, an ng offer (media ports need descriptors) and a
// client connection.
func alive(t *testing.T, r *rtcgate, when string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + r.addr(t, "listen-http") + "/ping")
	if err != nil {
		t.Fatalf("%s: /ping: %v", when, err)
	}
	resp.Body.Close()
	ng := udpNG{addr: r.addr(t, "listen-ng")}
	if res := ng.Do(t, map[string]any{"command": "ping"}); res["result"] != "pong" {
		t.Fatalf("%s: ng ping = %v", when, res)
	}
	p := newParty(t)
	callID := fmt.Sprintf("hostile-%d", time.Now().UnixNano())
	if res := ng.Do(t, map[string]any{"command": "offer", "call-id": callID, "from-tag": "a", "sdp": p.sdp()}); res["result"] != "ok" {
		t.Fatalf("%s: ng offer = %v", when, res)
	}
	ng.Do(t, map[string]any{"command": "delete", "call-id": callID, "from-tag": "a"})
	ws := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", nil)
	if reply := wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"defaultApp"}]}`); !strings.Contains(reply, "getUserData") {
		t.Fatalf("%s: client connection = %.200s", when, reply)
	}
	ws.CloseNow()
}

// TestSIPConnectionFlood: with its descriptor limit lowered to 1024, 1 100
// idle TCP connections to the SIP port from 20 addresses neither stop
// rtcgate (EMFILE once did: "listener failed; shutting down") nor starve
// what needs descriptors: /ping, ng, an offer's media ports and a client
// connection work during the flood; the SIP listener refuses first; once
// the attacker leaves, the descriptors are back.
func TestSIPConnectionFlood(t *testing.T) {
	prlimit := needTool(t, "prlimit", "util-linux")
	r := start(t, append(ephemeral, "--port-min", "9900", "--port-max", "9939", "--fd-reserve", "200")...)
	pid := r.cmd.Process.Pid
	if _, stderr, code := runCmd(t, 10*time.Second, prlimit, "--pid", strconv.Itoa(pid), "--nofile=1024:1024"); code != 0 {
		t.Fatalf("prlimit: %s", stderr)
	}
	base := fdCount(t, pid)
	alive(t, r, "before")

	sip := r.addr(t, "listen-sip")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 1100 && time.Now().Before(deadline); i++ {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%20))}}
		c, err := d.Dial("tcp", sip)
		if err != nil {
			continue // the backlog is full: refused, as it should be
		}
		conns = append(conns, c)
	}
	if len(conns) < 1000 {
		t.Fatalf("only %d of 1100 connections opened", len(conns))
	}
	alive(t, r, "during the flood")
	m := scrape(t, "http://"+r.addr(t, "listen-http"))
	if !strings.Contains(m, `rtcgate_listener_refused_total{listener="listen-sip",reason="descriptors"}`) {
		t.Errorf("the SIP listener refused nothing for descriptors:\n%s", grepLines(m, "rtcgate_listener"))
	}
	if held := fdCount(t, pid); held > 1024-200 {
		t.Errorf("rtcgate holds %d descriptors under the flood, over the limit less one reserve", held)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitCond(t, "descriptors back to the baseline", func() bool { return fdCount(t, pid) <= base+10 })
	alive(t, r, "after")
	select {
	case <-r.exited:
		t.Fatalf("rtcgate exited: %v", r.err)
	default:
	}
	if logs := r.Logs(); strings.Contains(logs, "listener failed") || len(logs) > 200<<10 {
		t.Errorf("log %d bytes; listener failed: %v", len(logs), strings.Contains(logs, "listener failed"))
	}
}

// TestIdleSIPConnectionsClose: an accepted SIP TCP connection that says
// nothing is closed after sip-tcp-idle-timeout; one from an address over
// sip-max-connections-per-ip, or over sip-max-connections in all, is
// refused at once.
func TestIdleSIPConnectionsClose(t *testing.T) {
	r := start(t, append(ephemeral, "--sip-tcp-idle-timeout", "1s", "--sip-max-connections-per-ip", "2", "--sip-max-connections", "3")...)
	sip := r.addr(t, "listen-sip")
	var cs []net.Conn
	// Two from 127.0.0.1, a third from there (per address), one from
	// 127.0.0.2, one from 127.0.0.3 (in all).
	for _, from := range []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", sip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	for _, i := range []int{2, 4} {
		cs[i].SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := cs[i].Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("connection %d over a cap: %v, want closed at once", i, err)
		}
	}
	start := time.Now()
	for i, c := range cs {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("connection %d: %v, want closed by rtcgate", i, err)
		}
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 4*time.Second {
		t.Errorf("idle connections closed after %v, want about 1s", d)
	}
}

// TestOneAddressCannotTakeEverySession: a flood of HTTP fallback opens from
// one address gets its burst and then 429, never client-max-connections;
// a user at another address still connects, over HTTP and WebSocket.
func TestOneAddressCannotTakeEverySession(t *testing.T) {
	r := start(t, append(ephemeral, "--client-max-connections", "500")...)
	base := "http://" + r.addr(t, "listen-client") + "/http"
	from := func(ip string) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
	}
	open := func(hc *http.Client, i int) int {
		resp, err := hc.Post(fmt.Sprintf("%s?action=open&connectionId=flood-%016d", base, i), "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	attacker := from("127.0.0.1")
	counts := map[int]int{}
	began := time.Now()
	for i := 0; i < 600; i++ {
		counts[open(attacker, i)]++
	}
	// client-new-sessions-per-ip (20) refills while the flood goes on: a
	// loaded machine that takes seconds over it earns 20 more a second.
	took := time.Since(began)
	most := 40 + int(20*took.Seconds())
	if counts[200] < 40 || counts[200] > most || counts[200]+counts[429] != 600 {
		t.Fatalf("600 opens from one address in %v: %v; want the burst of 40 and at most %d in all, the rest 429, never 503",
			took, counts, most)
	}
	if code := open(from("127.0.0.2"), 1_000_000); code != 200 {
		t.Fatalf("a user at another address: %d", code)
	}
	ws := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", from("127.0.0.3"))
	if reply := wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"defaultApp"}]}`); !strings.Contains(reply, "getUserData") {
		t.Fatalf("a WebSocket user at another address: %.200s", reply)
	}
}
