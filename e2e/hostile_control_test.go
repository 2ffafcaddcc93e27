package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// controlToken is the token the hostile tests configure; it must never
// show in a log.
const controlToken = "e2e-control-token-7f3a9c1d"

// rawHTTP sends one request as written on a new connection and returns the
// status and body.
func rawHTTP(t *testing.T, addr, request string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", strings.SplitN(request, "\r\n", 2)[0], err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(t, resp.Body)
}

// TestControlCSRF: what a web page could make a browser send to the
// control plane — cross-origin POSTs, a cross-site GET, a DNS-rebound
// Host — is refused and runs nothing; tools that send no Origin (curl,
// rtpengine-ctl, rtcgate ctl, rtcgate ng) work as before.
func TestControlCSRF(t *testing.T) {
	r := start(t, append(ephemeral, "--control-allowed-origins", "https://admin.example", "--control-hosts", "rtcgate.internal")...)
	addr := r.addr(t, "listen-http")
	show := func() string {
		out, stderr, code := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+addr, "show", "apps")
		if code != 0 {
			t.Fatalf("rtcgate ctl show apps: %d %s", code, stderr)
		}
		return out
	}
	maxSessions := func() string {
		code, body := rawHTTP(t, addr, "GET /cli/list+maxsessions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
		if code != 200 {
			t.Fatalf("list maxsessions = %d %q", code, body)
		}
		return body
	}
	const unlimited = "Maximum sessions configured on rtpengine: -1\n"

	addApp := "add app -u u -p p Evil evilKey http://evil.example/hook"
	for _, c := range []struct {
		name, request string
		want          int
	}{
		{"POST /cli from another origin", "POST /cli HTTP/1.1\r\nHost: 127.0.0.1:1\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: " + fmt.Sprint(len(addApp)) + "\r\n\r\n" + addApp, 403},
		{"POST /cli from an opaque origin", "POST /cli HTTP/1.1\r\nHost: localhost\r\nOrigin: null\r\nContent-Type: text/plain\r\nContent-Length: " + fmt.Sprint(len(addApp)) + "\r\n\r\n" + addApp, 403},
		{"cross-site GET /cli (an <img>)", "GET /cli/set+maxsessions+0 HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n\r\n", 403},
		{"same-site GET /cli (a page on localhost:3000)", "GET /cli/set+maxsessions+0 HTTP/1.1\r\nHost: localhost\r\nSec-Fetch-Site: same-site\r\n\r\n", 403},
		{"GET /cli with a cross-origin Origin", "GET /cli/set+maxsessions+0 HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n\r\n", 403},
		{"POST /ng-plain from another origin", "POST /ng-plain HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\r\nd7:command4:pinge", 403},
		{"DNS rebinding: GET /cli", "GET /cli/set+maxsessions+0 HTTP/1.1\r\nHost: rebind.attacker.example:2225\r\n\r\n", 421},
		{"DNS rebinding: same-origin POST", "POST /cli HTTP/1.1\r\nHost: rebind.attacker.example\r\nOrigin: http://rebind.attacker.example\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nset maxsessions 0\r\n", 421},
		{"DNS rebinding: GET /metrics", "GET /metrics HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n", 421},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, body := rawHTTP(t, addr, c.request); code != c.want {
				t.Errorf("= %d %q, want %d", code, body, c.want)
			}
		})
	}
	if got := maxSessions(); got != unlimited {
		t.Errorf("a refused request changed maxsessions: %q", got)
	}
	if strings.Contains(show(), "Evil") {
		t.Errorf("a cross-origin POST added an app")
	}

	// A rebound WebSocket: Host and Origin both the attacker's name.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range []http.Header{
		{"Origin": {"http://rebind.attacker.example"}, "Host": {"rebind.attacker.example"}},
		{"Origin": {"http://evil.example"}},
	} {
		client := &http.Client{Transport: hostRewriter{host: h.Get("Host")}}
		hdr := http.Header{"Origin": h["Origin"]}
		c, resp, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{Subprotocols: []string{"cli.rtpengine.com"}, HTTPHeader: hdr, HTTPClient: client})
		if err == nil {
			reply := wsExchange(t, c, "set maxsessions 0")
			c.CloseNow()
			t.Errorf("WebSocket %v got the CLI: %q", h, reply)
		} else if resp == nil || (resp.StatusCode != 421 && resp.StatusCode != 403) {
			t.Errorf("WebSocket %v: %v, want 421 or 403", h, err)
		}
	}
	if got := maxSessions(); got != unlimited {
		t.Errorf("a refused WebSocket changed maxsessions: %q", got)
	}

	// The origin the operator allows, and the name it configured.
	code, body := rawHTTP(t, addr, "OPTIONS /cli HTTP/1.1\r\nHost: rtcgate.internal\r\nOrigin: https://admin.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization\r\n\r\n")
	if code != 204 {
		t.Errorf("preflight of an allowed origin = %d %q", code, body)
	}
	if code, body := rawHTTP(t, addr, "POST /cli HTTP/1.1\r\nHost: rtcgate.internal:2225\r\nOrigin: https://admin.example\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\nlist maxsessions"); code != 200 || body != unlimited {
		t.Errorf("allowed origin = %d %q", code, body)
	}

	// Tools: no Origin, a loopback Host.
	resp, err := http.Post("http://"+addr+"/ng-plain", "text/plain", strings.NewReader("d7:command4:pinge"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); resp.StatusCode != 200 || !strings.Contains(got, "pong") {
		t.Errorf("tool POST /ng-plain = %d %q", resp.StatusCode, got)
	}
	resp.Body.Close()
	out, _, code := runCmd(t, 20*time.Second, binary, "ng", "--url", "http://"+addr, "ping")
	if code != 0 || !strings.Contains(out, "pong") {
		t.Errorf("rtcgate ng ping over HTTP = %d %q", code, out)
	}
	ws := dialWS(t, "ws://"+addr, nil, "cli.rtpengine.com")
	if got := wsExchange(t, ws, "list maxsessions"); got != unlimited {
		t.Errorf("tool WebSocket = %q", got)
	}
	ctl := needTool(t, "rtpengine-ctl", "rtpengine-utils")
	host, port := splitHostPort(t, r.addr(t, "listen-cli"))
	out, _, code = runCmd(t, 20*time.Second, ctl, "-ip", host, "-port", port, "list", "maxsessions")
	if code != 0 || out != unlimited {
		t.Errorf("rtpengine-ctl = %d %q", code, out)
	}
	// A browser made to POST to the TCP CLI port: the request line is no
	// command, and nothing after it runs.
	c, err := net.Dial("tcp", r.addr(t, "listen-cli"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /set HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\r\nset maxsessions 0\n")
	if got := readAll(t, c); got != "" {
		t.Errorf("HTTP on the TCP CLI answered %q", got)
	}
	c.Close()
	if got := maxSessions(); got != unlimited {
		t.Errorf("maxsessions = %q", got)
	}
}

// hostRewriter sends a request with another Host header, as a browser does
// after DNS rebinding.
type hostRewriter struct{ host string }

func (h hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.host != "" {
		r = r.Clone(r.Context())
		r.Host = h.host
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestControlToken: a control listener on a non-loopback address does not
// start without control-token (exit 2 naming it), nor the TCP CLI without
// the opt-in; with a token, requests without it are refused 401 (but
// /ping), rtcgate ctl sends it from the environment or the configuration
// file, and the token never shows in the log.
func TestControlToken(t *testing.T) {
	for _, c := range []struct {
		args []string
		key  string
	}{
		{[]string{"--listen-http", "0.0.0.0:0"}, "control-token"},
		{[]string{"--listen-http", "0.0.0.0:0", "--control-token", "short"}, "control-token"},
		{[]string{"--listen-cli", "0.0.0.0:0", "--control-token", controlToken}, "listen-cli"},
	} {
		out, err := execCommand(t, binary, append([]string{"serve", "--listen-ng", "127.0.0.1:0", "--listen-client", "127.0.0.1:0", "--listen-sip", ""}, c.args...), "").CombinedOutput()
		ee, ok := err.(interface{ ExitCode() int })
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.key) || strings.Contains(string(out), "listening") {
			t.Errorf("%v: exit %v, want 2 naming %s:\n%s", c.args, err, c.key, out)
		}
	}

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("control-token: "+controlToken+"\n"), 0o600)
	// Bound to every address (for the token rule); the test talks to
	// loopback only.
	r := start(t, "--config", cfgFile, "--log-level", "7", "--listen-http", "0.0.0.0:0", "--listen-cli", "127.0.0.1:0",
		"--listen-ng", "127.0.0.1:0", "--listen-client", "127.0.0.1:0", "--listen-sip", "127.0.0.1:0")
	_, port := splitHostPort(t, r.addr(t, "listen-http"))
	addr := "127.0.0.1:" + port
	base := "http://" + addr
	get := func(path, auth string) (int, string) {
		req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
		if auth != "" {
			req += "Authorization: " + auth + "\r\n"
		}
		return rawHTTP(t, addr, req+"\r\n")
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/cli/list+maxsessions", "", 401},
		{"/cli/set+maxsessions+0", "Bearer wrong-token-0123456789", 401},
		{"/cli/list+maxsessions", "Basic " + controlToken, 401},
		{"/metrics", "", 401},
		{"/ping", "", 200},
		{"/cli/list+maxsessions", "Bearer " + controlToken, 200},
		{"/metrics", "bearer " + controlToken, 200},
	} {
		if code, body := get(c.path, c.auth); code != c.want {
			t.Errorf("GET %s with %q = %d %q, want %d", c.path, c.auth, code, truncated(body), c.want)
		}
	}
	resp, err := http.Post(base+"/ng-plain", "text/plain", strings.NewReader("d7:command4:pinge"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("POST /ng-plain without the token = %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{Subprotocols: []string{"cli.rtpengine.com"}}); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("WebSocket without the token: %v, want 401", err)
	}
	ws, _, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{Subprotocols: []string{"cli.rtpengine.com"},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + controlToken}}})
	if err != nil {
		t.Fatalf("WebSocket with the token: %v", err)
	}
	defer ws.CloseNow()
	contains(t, "WebSocket with the token", wsExchange(t, ws, "list numsessions"), "Current sessions own: 0")

	// rtcgate ctl: without the token it is told why; with it from the
	// environment, the configuration file (which also gives the URL when
	// it names a port) or the flag, it works.
	_, stderr, code := runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "list", "numsessions")
	if code != 1 || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "control-token") {
		t.Errorf("ctl without a token = %d %q", code, stderr)
	}
	want := "Current sessions own: 0\n"
	cmd := execCommand(t, binary, []string{"ctl", "--url", base, "list", "numsessions"}, "RTCGATE_CONTROL_TOKEN="+controlToken)
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("ctl with RTCGATE_CONTROL_TOKEN = %v %q", err, out)
	}
	ctlCfg := filepath.Join(dir, "ctl.yaml")
	os.WriteFile(ctlCfg, []byte("control-token: "+controlToken+"\nlisten-http: 0.0.0.0:"+port+"\n"), 0o600)
	if out, stderr, code := runCmd(t, 20*time.Second, binary, "ctl", "--config", ctlCfg, "list", "numsessions"); code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("ctl --config = %d %q %q", code, out, stderr)
	}
	if out, stderr, code := runCmd(t, 20*time.Second, binary, "ng", "--url", base, "--token", controlToken, "ping"); code != 0 || !strings.Contains(out, "pong") {
		t.Errorf("rtcgate ng --token over HTTP = %d %q %q", code, out, stderr)
	}
	// The TCP CLI on loopback needs nothing: rtpengine-ctl cannot send a
	// token.
	ctl := needTool(t, "rtpengine-ctl", "rtpengine-utils")
	h, p := splitHostPort(t, r.addr(t, "listen-cli"))
	if out, _, code := runCmd(t, 20*time.Second, ctl, "-ip", h, "-port", p, "list", "numsessions"); code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("rtpengine-ctl = %d %q", code, out)
	}
	if strings.Contains(r.Logs(), controlToken) || strings.Contains(r.Logs(), "wrong-token") {
		t.Errorf("the log shows a token:\n%s", r.Logs())
	}
}

func truncated(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// TestControlStarvation: 300 idle keep-alive HTTP connections, 50 idle echo
// WebSockets and 300 silent TCP CLI connections, held, do not keep /ping,
// an ng ping over HTTP or the TCP CLI from answering within 2 s; once the
// attacker lets go, rtcgate's descriptors are back to their baseline.
func TestControlStarvation(t *testing.T) {
	r := start(t, ephemeral...)
	httpAddr, cliAddr := r.addr(t, "listen-http"), r.addr(t, "listen-cli")
	fdDir := fmt.Sprintf("/proc/%d/fd", r.cmd.Process.Pid)
	fds := func() int {
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	ping := func() error {
		resp, err := fresh.Get("http://" + httpAddr + "/ping")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "pong\n" {
			return fmt.Errorf("ping answered %q", b)
		}
		return nil
	}
	ngPing := func() error {
		resp, err := fresh.Post("http://"+httpAddr+"/ng", "application/x-rtpengine-ng", strings.NewReader("c1 d7:command4:pinge"))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "c1 d6:result4:ponge" {
			return fmt.Errorf("ng ping answered %q", b)
		}
		return nil
	}
	cliCmd := func() error {
		c, err := net.DialTimeout("tcp", cliAddr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		io.WriteString(c, "list numsessions\n")
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(b), "Current sessions own: 0") {
			return fmt.Errorf("CLI answered %q", b)
		}
		return nil
	}
	for _, f := range []func() error{ping, ngPing, cliCmd} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	baseline := fds()

	// The attacker: connections that answered once and then stay idle.
	var mu sync.Mutex
	var held []io.Closer
	hold := func(c io.Closer) {
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", httpAddr, 5*time.Second)
			if err != nil {
				return
			}
			hold(c)
			io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
			go io.Copy(io.Discard, c) // reads the answer, then idles until closed
		})
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", cliAddr, 5*time.Second)
			if err == nil {
				hold(c) // says nothing
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 50 {
		wg.Go(func() {
			c, _, err := websocket.Dial(ctx, "ws://"+httpAddr, &websocket.DialOptions{Subprotocols: []string{"echo.rtpengine.com"}})
			if err != nil {
				return
			}
			hold(closerFunc(func() error { return c.CloseNow() }))
			c.Write(ctx, websocket.MessageText, []byte("hello"))
			c.Read(ctx)
		})
	}
	wg.Wait()
	mu.Lock()
	t.Logf("attacker holds %d connections; rtcgate has %d descriptors (baseline %d)", len(held), fds(), baseline)
	if len(held) < 600 {
		t.Fatalf("the attack did not take place: %d of 650 connections held", len(held))
	}
	mu.Unlock()

	for name, f := range map[string]func() error{"/ping": ping, "ng ping over HTTP": ngPing, "TCP CLI": cliCmd} {
		for i := range 3 {
			start := time.Now()
			if err := f(); err != nil {
				t.Errorf("%s #%d during the attack: %v (after %v)", name, i, err, time.Since(start).Round(time.Millisecond))
			} else {
				t.Logf("%s #%d answered in %v", name, i, time.Since(start).Round(time.Millisecond))
			}
		}
	}

	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for fds() > baseline && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling /proc: there is no event for it
	}
	if n := fds(); n > baseline {
		t.Errorf("rtcgate holds %d descriptors after the attack, baseline %d", n, baseline)
	}
	if err := ping(); err != nil {
		t.Errorf("/ping after the attack: %v", err)
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// csrfPage is the attacker's page: everything a web page can send to the
// control plane at C.
const csrfPage = `<!doctype html><script>
const C = "CONTROL";
window.results = {};
(async () => {
	try { await fetch(C + "/cli", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "set maxsessions 1"}); results.post = "sent"; } catch (e) { results.post = "error " + e; }
	results.img = await new Promise((res) => { const i = new Image(); i.onload = () => res("loaded"); i.onerror = () => res("error"); i.src = C + "/cli/set+maxsessions+2"; });
	try { await fetch(C + "/ng-plain", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "d7:command4:pinge"}); results.ng = "sent"; } catch (e) { results.ng = "error " + e; }
	results.ws = await new Promise((res) => {
		let ws;
		try { ws = new WebSocket(C.replace("http", "ws"), "cli.rtpengine.com"); } catch (e) { res("throw " + e); return; }
		ws.onopen = () => ws.send("set maxsessions 3");
		ws.onmessage = (m) => res("answered " + m.data);
		ws.onclose = (e) => res("closed " + e.code);
		setTimeout(() => res("timeout"), 5000);
	});
	// The operator's page: read its figures, follow its events.
	try { const r = await fetch(C + "/status/snapshot"); results.status = "read " + (await r.text()).slice(0, 40); } catch (e) { results.status = "error " + e; }
	results.events = await new Promise((res) => {
		const es = new EventSource(C + "/status/events");
		es.onmessage = (m) => { es.close(); res("message " + m.data.slice(0, 40)); };
		es.onerror = () => { es.close(); res("error"); };
		setTimeout(() => { es.close(); res("timeout"); }, 5000);
	});
	window.done = true;
})();
</script>`

// TestControlCSRFInChromium: a real browser on an attacker's page — a
// cross-site one, and one reached through a rebound name — cannot change
// anything on the control plane, nor read the status page or follow its
// events; every attempt reaches rtcgate and is refused there (counted by
// reason), not merely blocked by the browser.
func TestControlCSRFInChromium(t *testing.T) {
	chromium := needTool(t, "chromium", "chromium")
	node := needTool(t, "node", "nodejs")
	npmDeps(t, needTool(t, "npm", "npm"))
	r := start(t, ephemeral...)
	_, port := splitHostPort(t, r.addr(t, "listen-http"))

	page := func(control string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, strings.ReplaceAll(csrfPage, "CONTROL", control))
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		return p
	}
	for _, c := range []struct{ name, pageURL, reason string }{
		// localhost and 127.0.0.1 are different sites.
		{"cross-site", "http://localhost:" + page("http://127.0.0.1:"+port) + "/", "origin"},
		{"rebound name", "http://rebind.attacker.example:" + page("http://rebind.attacker.example:"+port) + "/", "host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := refusedCount(t, r, c.reason)
			stdout, stderr, code := runIn(t, browserDir, time.Minute, []string{"CHROMIUM=" + chromium}, node, "csrf.mjs", c.pageURL)
			if code != 0 {
				t.Fatalf("csrf.mjs exit %d\n%s\n%s", code, stdout, stderr)
			}
			t.Logf("the page saw: %s", strings.TrimSpace(stdout))
			if strings.Contains(stdout, "answered") {
				t.Errorf("the page's WebSocket got an answer: %s", stdout)
			}
			var saw struct{ Status, Events string }
			json.Unmarshal([]byte(stdout), &saw)
			if !strings.HasPrefix(saw.Status, "error") || saw.Events != "error" {
				t.Errorf("the page read the status page: snapshot %q, events %q", saw.Status, saw.Events)
			}
			if n := refusedCount(t, r, c.reason) - before; n < 6 {
				t.Errorf("rtcgate refused %v of the page's 6 requests for %s", n, c.reason)
			}
			if code, body := rawHTTP(t, r.addr(t, "listen-http"), "GET /cli/list+maxsessions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"); code != 200 || body != "Maximum sessions configured on rtpengine: -1\n" {
				t.Errorf("after the page: maxsessions %d %q", code, body)
			}
		})
	}
}

// refusedCount reads rtcgate_control_refused_total{reason} from /metrics.
func refusedCount(t *testing.T, r *rtcgate, reason string) float64 {
	t.Helper()
	_, body := rawHTTP(t, r.addr(t, "listen-http"), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	var v float64
	prefix := `rtcgate_control_refused_total{reason="` + reason + `"} `
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			fmt.Sscan(rest, &v)
		}
	}
	return v
}
