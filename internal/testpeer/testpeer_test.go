package testpeer

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const wait = 15 * time.Second

func TestKamailioAnswersOptionsOverUDPAndTCP(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{})
	if k.Domain != DefaultDomain || k.Users["alice"] != "alice-secret" {
		t.Fatalf("got domain %q users %v", k.Domain, k.Users)
	}
	for _, network := range []string{"udp", "tcp"} {
		c := dialSIP(t, network, k.Addr)
		c.send(t, "OPTIONS", "sip:"+k.Addr, "probe", k.Domain, "", "")
		if code, _ := c.recvResponse(t); code != 200 {
			t.Fatalf("%s OPTIONS: %d", network, code)
		}
	}
}

func TestRegisterNeedsTheRightPassword(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{})
	ok := StartSipp(t, "register_auth", k.Addr, "-s", "alice", "-ap", "alice-secret", "-m", "1")
	bad := StartSipp(t, "register_auth_refused", k.Addr, "-s", "bob", "-ap", "wrong", "-m", "1")
	// register_auth with a wrong password fails: its 200 never comes.
	wrong := StartSipp(t, "register_auth", k.Addr, "-s", "carol", "-ap", "wrong", "-m", "1")
	if err := ok.Wait(wait); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := bad.Wait(wait); err != nil {
		t.Errorf("wrong password, expecting 401: %v", err)
	}
	if err := wrong.Wait(wait); err == nil || !strings.Contains(err.Error(), "exited 1") {
		t.Errorf("register_auth with a wrong password: want exit 1, got %v", err)
	}
	unknown := StartSipp(t, "register_auth_refused", append(k.SippArgs(), "-s", "dave", "-ap", "x", "-m", "1")...)
	if err := unknown.Wait(wait); err != nil {
		t.Errorf("unknown user: %v", err)
	}
	if !strings.Contains(unknown.Logs(), "SIP/2.0 403 Forbidden") {
		t.Error("unknown user: no 403")
	}
	noErrors(t, k)
}

// noErrors fails the test when Kamailio logged an error: a config that
// works by accident.
func noErrors(t *testing.T, k *Kamailio) {
	t.Helper()
	for line := range strings.Lines(k.Logs()) {
		if strings.Contains(line, " ERROR: ") || strings.Contains(line, " CRITICAL: ") {
			t.Errorf("kamailio: %s", line)
		}
	}
}

func TestCallThroughStaticRoute(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_echo", "-m", "1")
	k := StartKamailio(t, KamailioOptions{Routes: map[string]string{"echo": uas.Addr}})
	uac := StartSipp(t, "uac_call", k.Addr, "-s", "echo", "-m", "1")
	if err := uac.Wait(wait); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Fatalf("uas: %v", err)
	}
	msgs := uac.Logs()
	for _, want := range []string{"INVITE sip:echo@rtcgate.test SIP/2.0", "From: \"sipp\" <sip:sipp@rtcgate.test>", fmt.Sprintf("m=audio %d RTP/AVP 0 101", uas.MediaPort)} {
		if !strings.Contains(msgs, want) {
			t.Errorf("uac messages lack %q", want)
		}
	}
}

// TCP in, UDP out: Kamailio's TCP listener and double Record-Route.
func TestCallOverTCP(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_echo", "-m", "1")
	k := StartKamailio(t, KamailioOptions{Routes: map[string]string{"echo": uas.Addr}})
	uac := StartSipp(t, "uac_call", k.Addr, "-s", "echo", "-m", "1", "-t", "t1")
	if err := uac.Wait(wait); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Fatalf("uas: %v", err)
	}
	if !strings.Contains(uac.Logs(), "transport=tcp") {
		t.Error("no TCP Record-Route in the UAC's messages")
	}
}

// uac_call with -d 0 sends its BYE right after the ACK.
func TestEchoSurvivesByeRightAfterAck(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_echo", "-m", "1")
	k := StartKamailio(t, KamailioOptions{Routes: map[string]string{"echo": uas.Addr}, Domain: "example.test"})
	uac := StartSipp(t, "uac_call", k.Addr, "-s", "echo", "-m", "1", "-d", "0", "-key", "domain", "example.test")
	if err := uac.Wait(wait); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Fatalf("uas: %v", err)
	}
	if !strings.Contains(uac.Logs(), "INVITE sip:echo@example.test SIP/2.0") {
		t.Error("-key domain did not override the default domain")
	}
}

func TestEchoHandlesReinviteInfoRefer(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_echo", "-m", "1")
	k := StartKamailio(t, KamailioOptions{Routes: map[string]string{"echo": uas.Addr}})
	uac := StartSipp(t, "uac_dialog", append(k.SippArgs(), "-s", "echo", "-m", "1")...)
	if err := uac.Wait(wait); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Fatalf("uas: %v", err)
	}
	msgs := uac.Logs()
	for _, want := range []string{"SIP/2.0 202 Accepted", "Event: refer", "Subscription-State: terminated;reason=noresource", "Content-Type: message/sipfrag"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("uac messages lack %q", want)
		}
	}
	noErrors(t, k)
}

func TestEchoEchoesRTP(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_echo", "-m", "1")
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: uas.MediaPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := append([]byte{0x80, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78}, make([]byte, 160)...)
	buf := make([]byte, 2048)
	for i := range 50 {
		pkt[3] = byte(i)
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && n == len(pkt) && buf[3] == byte(i) {
			return
		}
	}
	t.Fatal("no RTP echo")
}

func TestBusy(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_busy", "-m", "1")
	k := StartKamailio(t, KamailioOptions{Routes: map[string]string{"busy": uas.Addr}})
	uac := StartSipp(t, "uac_call_rejected", k.Addr, "-s", "busy", "-m", "1")
	if err := uac.Wait(wait); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Fatalf("uas: %v", err)
	}
	if !strings.Contains(uac.Logs(), "SIP/2.0 486 Busy Here") {
		t.Error("uac did not get 486")
	}
	// uac_call expects a 200: a 486 fails it.
	uas2 := StartSipp(t, "uas_busy", "-m", "1")
	k2 := StartKamailio(t, KamailioOptions{Routes: map[string]string{"busy": uas2.Addr}})
	uac2 := StartSipp(t, "uac_call", k2.Addr, "-s", "busy", "-m", "1")
	if err := uac2.Wait(wait); err == nil {
		t.Fatal("uac_call succeeded against uas_busy")
	}
}

func TestUnknownUserIs404(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{})
	uac := StartSipp(t, "uac_call_rejected", "-s", "nobody", "-m", "1", k.Addr) // remote host last works too
	if err := uac.Wait(wait); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(uac.Logs(), "SIP/2.0 404 Not Found") {
		t.Error("no 404")
	}
}

func TestRingThenCancel(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, "uas_ring_cancel", "-m", "1")
	k := StartKamailio(t, KamailioOptions{Routes: map[string]string{"ring": uas.Addr}})
	uac := StartSipp(t, "uac_ring_cancel", k.Addr, "-s", "ring", "-m", "1")
	if err := uac.Wait(wait); err != nil {
		t.Fatalf("uac: %v", err)
	}
	if err := uas.Wait(wait); err != nil {
		t.Fatalf("uas: %v", err)
	}
	if !strings.Contains(uac.Logs(), "SIP/2.0 487 Request Terminated") {
		t.Error("uac did not get 487")
	}
	noErrors(t, k)
}

// Registered users authenticate out-of-dialog requests (407), and a
// MESSAGE to oneself reaches one's own contact.
func TestMessageToSelfNeedsAuthAndReachesContact(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{})
	c := dialSIP(t, "udp", k.Addr)
	aor := "sip:alice@" + k.Domain
	contact := fmt.Sprintf("<sip:alice-token@%s>", c.local)

	c.send(t, "REGISTER", "sip:"+k.Domain, "alice", k.Domain, "Contact: "+contact+"\r\nExpires: 60\r\n", "")
	code, resp := c.recvResponse(t)
	if code != 401 {
		t.Fatalf("REGISTER: %d, want 401", code)
	}
	auth := digest(t, resp, "WWW-Authenticate", "alice", "alice-secret", "REGISTER", "sip:"+k.Domain)
	c.send(t, "REGISTER", "sip:"+k.Domain, "alice", k.Domain, "Contact: "+contact+"\r\nExpires: 60\r\nAuthorization: "+auth+"\r\n", "")
	if code, resp := c.recvResponse(t); code != 200 {
		t.Fatalf("REGISTER with credentials: %d\n%s", code, resp)
	}

	c.send(t, "MESSAGE", aor, "alice", k.Domain, "Content-Type: text/plain\r\n", "hi me")
	code, resp = c.recvResponse(t)
	if code != 407 {
		t.Fatalf("MESSAGE: %d, want 407", code)
	}
	auth = digest(t, resp, "Proxy-Authenticate", "alice", "alice-secret", "MESSAGE", aor)
	c.send(t, "MESSAGE", aor, "alice", k.Domain, "Content-Type: text/plain\r\nProxy-Authorization: "+auth+"\r\n", "hi me")
	req := c.recv(t)
	if !strings.HasPrefix(req, "MESSAGE sip:alice-token@"+c.local+" SIP/2.0\r\n") || !strings.HasSuffix(req, "\r\n\r\nhi me") {
		t.Fatalf("want the MESSAGE at the contact, got\n%s", req)
	}
	c.reply(t, req, "200 OK")
	if code, resp := c.recvResponse(t); code != 200 {
		t.Fatalf("MESSAGE: %d\n%s", code, resp)
	}
	noErrors(t, k)
}

func TestScenariosEmbeddedAndStop(t *testing.T) {
	t.Parallel()
	names := Scenarios()
	for _, want := range []string{"uas_echo", "uas_busy", "uas_ring_cancel", "uac_call", "uac_call_rejected", "uac_ring_cancel", "uac_dialog", "register_auth", "register_auth_refused"} {
		if !slices.Contains(names, want) {
			t.Errorf("scenario %s not embedded (have %v)", want, names)
		}
	}
	s := StartSipp(t, "uas_busy")
	s.Stop()
	if err := s.Wait(time.Second); err == nil {
		t.Error("a stopped sipp reported success")
	}
	if !strings.Contains(s.Logs(), "--- output") {
		t.Error("no output in Logs")
	}
	if _, err := os.Stat(filepath.Join(s.dir, "uas_busy.xml")); err != nil {
		t.Error(err)
	}
}

// Not parallel: other tests' peers would make a given port busy.
func TestFreeUDPPortIsFreshAndBindable(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := FreeUDPPort(t)
		if seen[p] {
			t.Fatalf("port %d twice", p)
		}
		seen[p] = true
		if !udpFree(p) || !tcpFree(p) {
			t.Fatalf("port %d not free", p)
		}
		if p >= ephemeralLow() {
			t.Fatalf("port %d in the ephemeral range", p)
		}
	}
}

// sipConn is a minimal SIP client for what sipp cannot easily do here.
type sipConn struct {
	net   string
	conn  net.Conn
	r     *bufio.Reader
	local string
	cseq  int
}

func dialSIP(t *testing.T, network, addr string) *sipConn {
	t.Helper()
	conn, err := net.Dial(network+"4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &sipConn{net: network, conn: conn, r: bufio.NewReader(conn), local: conn.LocalAddr().String()}
}

func (c *sipConn) send(t *testing.T, method, ruri, user, domain, extra, body string) {
	t.Helper()
	c.cseq++
	to := ruri
	if method == "REGISTER" {
		to = "sip:" + user + "@" + domain
	}
	msg := fmt.Sprintf("%s %s SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;branch=z9hG4bK-t%d-%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:%s@%s>;tag=t%d\r\n"+
		"To: <%s>\r\n"+
		"Call-ID: call-%d@%s\r\n"+
		"CSeq: %d %s\r\n%s"+
		"Content-Length: %d\r\n\r\n%s",
		method, ruri, strings.ToUpper(c.net), c.local, time.Now().UnixNano(), c.cseq,
		user, domain, c.cseq, to,
		os.Getpid(), c.local, c.cseq, method, extra, len(body), body)
	if _, err := c.conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// recv reads one message, skipping 100 Trying.
func (c *sipConn) recv(t *testing.T) string {
	t.Helper()
	for range 10 {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var msg string
		if c.net == "udp" {
			buf := make([]byte, 65535)
			n, err := c.conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			msg = string(buf[:n])
		} else {
			var b strings.Builder
			length := 0
			for {
				line, err := c.r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				b.WriteString(line)
				if l, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
					fmt.Sscan(strings.TrimSpace(l), &length)
				}
				if line == "\r\n" {
					break
				}
			}
			body := make([]byte, length)
			if _, err := c.r.Read(body); length > 0 && err != nil {
				t.Fatal(err)
			}
			msg = b.String() + string(body)
		}
		if !strings.HasPrefix(msg, "SIP/2.0 100 ") {
			return msg
		}
	}
	t.Fatal("only 100 Trying")
	return ""
}

func (c *sipConn) recvResponse(t *testing.T) (int, string) {
	t.Helper()
	msg := c.recv(t)
	var code int
	if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil {
		t.Fatalf("not a response:\n%s", msg)
	}
	return code, msg
}

// reply answers req with status, copying Via, From, To, Call-ID, CSeq.
func (c *sipConn) reply(t *testing.T, req, status string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, line := range strings.Split(req, "\r\n") {
		name, _, _ := strings.Cut(strings.ToLower(line), ":")
		switch name {
		case "via", "v", "from", "f", "call-id", "i", "cseq":
			b.WriteString(line + "\r\n")
		case "to", "t":
			b.WriteString(line + ";tag=self\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
}

var challengeParam = regexp.MustCompile(`(\w+)="?([^",]*)"?`)

// digest answers the challenge in resp's header hdr (RFC 2617, MD5).
func digest(t *testing.T, resp, hdr, user, pass, method, uri string) string {
	t.Helper()
	var ch string
	for _, line := range strings.Split(resp, "\r\n") {
		if v, ok := strings.CutPrefix(line, hdr+": Digest "); ok {
			ch = v
		}
	}
	if ch == "" {
		t.Fatalf("no %s in\n%s", hdr, resp)
	}
	p := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(ch, -1) {
		p[m[1]] = m[2]
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + p["realm"] + ":" + pass)
	ha2 := h(method + ":" + uri)
	const nc, cnonce = "00000001", "0a4f113b"
	response := h(ha1 + ":" + p["nonce"] + ":" + nc + ":" + cnonce + ":auth:" + ha2)
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s"`,
		user, p["realm"], p["nonce"], uri, response, nc, cnonce)
}
