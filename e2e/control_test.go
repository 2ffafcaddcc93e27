package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestRtpengineCtl drives rtcgate's TCP CLI with Debian's rtpengine-ctl and
// checks that HTTP, WebSocket and `rtcgate ctl` reach the same registry.
func TestRtpengineCtl(t *testing.T) {
	ctl := needTool(t, "rtpengine-ctl", "rtpengine-utils")
	r := start(t, ephemeral...)
	host, port := splitHostPort(t, r.addr(t, "listen-cli"))
	rtpengineCtl := func(args ...string) string {
		out, stderr, code := runCmd(t, 20*time.Second, ctl, append([]string{"-ip", host, "-port", port}, args...)...)
		if code != 0 {
			t.Fatalf("rtpengine-ctl %v exited %d: %s", args, code, stderr)
		}
		return out
	}

	totals := rtpengineCtl("list", "totals")
	contains(t, "rtpengine-ctl list totals", totals,
		"\nStatistics over currently running sessions:\n\n",
		" Owned sessions                                  :0\n",
		"\nTotal statistics (does not include current running sessions):\n\n",
		" Total relayed packets (userspace)               :0\n")
	if !regexp.MustCompile(` Uptime of rtpengine {29}:\d+ seconds\n`).MatchString(totals) {
		t.Errorf("no uptime line:\n%s", totals)
	}
	contains(t, "list numsessions", rtpengineCtl("list", "numsessions"),
		"Current sessions own: 0\nCurrent sessions foreign: 0\nCurrent sessions total: 0\n")
	if got := rtpengineCtl("set", "maxsessions", "10"); got != "Success setting maxsessions to 10\n" {
		t.Errorf("set maxsessions = %q", got)
	}
	if got := rtpengineCtl("get", "maxsessions"); got != "Maximum sessions configured on rtpengine: 10\n" {
		t.Errorf("get maxsessions = %q", got)
	}
	if got := rtpengineCtl("list", "timeout"); got != "TIMEOUT=60\n" {
		t.Errorf("list timeout = %q", got)
	}
	if got := rtpengineCtl("frobnicate", "now"); got != "Unknown or incomplete command::frobnicate now\n" {
		t.Errorf("unknown command = %q", got)
	}
	contains(t, "help", rtpengineCtl("help"), "Available sub-commands at this level:\n", "\tlist\n", "\tset\n")

	// The same registry over HTTP GET, HTTP POST, WebSocket and rtcgate ctl.
	base := "http://" + r.addr(t, "listen-http")
	want := "Maximum sessions configured on rtpengine: 10\n"
	resp, err := http.Get(base + "/cli/list+maxsessions")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); got != want {
		t.Errorf("GET /cli = %q", got)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/cli", "text/plain", strings.NewReader("list maxsessions"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); got != want {
		t.Errorf("POST /cli = %q", got)
	}
	resp.Body.Close()
	ws := dialWS(t, "ws://"+r.addr(t, "listen-http"), nil, "cli.rtpengine.com")
	if got := wsExchange(t, ws, "list maxsessions"); got != want {
		t.Errorf("cli.rtpengine.com = %q", got)
	}
	out, stderr, code := runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "list", "maxsessions")
	if code != 0 || out != want {
		t.Errorf("rtcgate ctl = %d %q %q", code, out, stderr)
	}
	out, _, code = runCmd(t, 20*time.Second, binary, "ctl", "--url", base, "set", "loglevel", "7")
	if code != 0 || out != "Success setting loglevel to 7\n" {
		t.Errorf("rtcgate ctl set loglevel = %d %q", code, out)
	}
	contains(t, "list loglevel", rtpengineCtl("list", "loglevel"), "core = 7\n", "http = 7\n")
	// At level 7 the control plane logs at debug; nothing logs the peer's
	// command text, which may carry call-ids.
	_, stderr, code = runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://127.0.0.1:1", "list", "totals")
	if code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("rtcgate ctl against nothing = %d %q", code, stderr)
	}
}

func dialWS(t *testing.T, url string, client *http.Client, protocols ...string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protocols, HTTPClient: client})
	if err != nil {
		t.Fatalf("dial %s %v: %v", url, protocols, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsExchange(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMetricsParse scrapes /metrics and parses it with the Prometheus text
// parser: rtpengine's names, rtcgate's own, and the Go runtime collector.
func TestMetricsParse(t *testing.T) {
	r := start(t, ephemeral...)
	base := "http://" + r.addr(t, "listen-http")
	// One request first, so the request counter has a sample.
	if resp, err := http.Get(base + "/ping"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for name, typ := range map[string]dto.MetricType{
		"rtpengine_sessions":              dto.MetricType_GAUGE,
		"rtpengine_sessions_total":        dto.MetricType_COUNTER,
		"rtpengine_uptime_seconds":        dto.MetricType_GAUGE,
		"rtpengine_closed_sessions_total": dto.MetricType_COUNTER,
		"rtpengine_packets_total":         dto.MetricType_COUNTER,
		"rtcgate_build_info":              dto.MetricType_GAUGE,
		"rtcgate_control_requests_total":  dto.MetricType_COUNTER,
		"go_goroutines":                   dto.MetricType_GAUGE,
		"process_resident_memory_bytes":   dto.MetricType_GAUGE,
	} {
		mf, ok := families[name]
		if !ok {
			t.Errorf("/metrics lacks %s", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s is %v, want %v", name, mf.GetType(), typ)
		}
	}
	own := false
	for _, m := range families["rtpengine_sessions"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "type" && l.GetValue() == "own" && m.GetGauge().GetValue() == 0 {
				own = true
			}
		}
	}
	if !own {
		t.Errorf(`no rtpengine_sessions{type="own"} 0`)
	}
}

// TestTLS serves HTTPS and WSS with a certificate generated here and checks
// the handshake, /ping and both WebSocket subprotocols over it.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	r := start(t, append(ephemeral, "--listen-https", "127.0.0.1:0", "--https-cert", certFile, "--https-key", keyFile)...)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	addr := r.addr(t, "listen-https")
	resp, err := client.Get("https://" + addr + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); resp.StatusCode != 200 || got != "pong\n" || resp.TLS == nil {
		t.Errorf("HTTPS /ping = %d %q", resp.StatusCode, got)
	}
	resp.Body.Close()

	echo := dialWS(t, "wss://"+addr, client, "echo.rtpengine.com")
	if got := wsExchange(t, echo, "over tls"); got != "over tls" {
		t.Errorf("wss echo = %q", got)
	}
	cliWS := dialWS(t, "wss://"+addr, client, "cli.rtpengine.com")
	contains(t, "wss cli", wsExchange(t, cliWS, "list numsessions"), "Current sessions own: 0\n")

	// A client that does not trust the certificate fails the handshake.
	if _, err := http.Get("https://" + addr + "/ping"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusting client: %v, want a certificate error", err)
	}
	// Plain HTTP still answers on listen-http alongside.
	resp, err = http.Get("http://" + r.addr(t, "listen-http") + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rtcgate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestConfigErrorsExit2: each bad value stops rtcgate with status 2 and one
// message naming the key, before any listener opens.
func TestConfigErrorsExit2(t *testing.T) {
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknownKey, []byte("listen-http: 127.0.0.1:0\nlisten-htttp: 127.0.0.1:0\n"), 0o600)
	for _, c := range []struct {
		name string
		args []string
		env  string
		key  string
	}{
		{"unknown key in file", []string{"--config", unknownKey}, "", "listen-htttp"},
		{"unknown flag", []string{"--listen-htttp", "1"}, "", "listen-htttp"},
		{"bad address", []string{"--listen-http", "127.0.0.1:70000"}, "", "listen-http"},
		{"bad ng address", []string{"--listen-ng", "nowhere"}, "", "listen-ng"},
		{"port order", []string{"--port-min", "5000", "--port-max", "4000"}, "", "port-min"},
		{"missing cert", []string{"--listen-https", "127.0.0.1:0", "--https-cert", filepath.Join(dir, "none.pem"), "--https-key", filepath.Join(dir, "none.key")}, "", "https-cert"},
		{"bad env", nil, "RTCGATE_TIMEOUT=forever", "timeout"},
		{"bad log level", []string{"--log-level", "0"}, "", "log-level"},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.yaml")}, "", "config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"serve", "--listen-http", "127.0.0.1:0", "--listen-cli", "127.0.0.1:0"}, c.args...)
			cmd := execCommand(t, binary, args, c.env)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(interface{ ExitCode() int })
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit = %v, want status 2\n%s", err, out)
			}
			if !strings.Contains(string(out), c.key) {
				t.Errorf("message does not name %s:\n%s", c.key, out)
			}
			if strings.Contains(string(out), "listening") {
				t.Errorf("something listened before the error:\n%s", out)
			}
		})
	}
}

// TestBindFailureNamesKeyAndOpensNothing: a port already taken is an error
// naming its key (exit 1), and no other listener stays open.
func TestBindFailureNamesKeyAndOpensNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	httpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	httpAddr := httpLn.Addr().String()
	httpLn.Close()
	out, err := execCommand(t, binary, []string{"serve", "--listen-http", httpAddr, "--listen-cli", taken.Addr().String()}, "").CombinedOutput()
	ee, ok := err.(interface{ ExitCode() int })
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "listen-cli") || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("exit %v:\n%s", err, out)
	}
	// The process is gone, so nothing may answer on the HTTP address either.
	if c, err := net.Dial("tcp", httpAddr); err == nil {
		c.Close()
		t.Fatalf("listen-http %s still open after the failed start", httpAddr)
	}
}

// TestConnectionLimit: with control-max-connections 2 and two silent CLI
// clients holding the slots, a third is answered at once: it takes the
// place of the one quiet the longest (closed unanswered); the other is
// still answered. (Busy connections are never closed for a newcomer, which
// then waits: internal/control's TestBusyConnectionsAreNotEvicted.)
func TestConnectionLimit(t *testing.T) {
	r := start(t, append(ephemeral, "--control-max-connections", "2", "--control-timeout", "20s",
		"--control-idle-timeout", "30s", "--control-pressure-idle-timeout", "30s")...)
	addr := r.addr(t, "listen-cli")
	var holders []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		holders = append(holders, c)
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	io.WriteString(third, "list maxsessions\n")
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readAll(t, third); got != "Maximum sessions configured on rtpengine: -1\n" {
		t.Fatalf("third got %q", got)
	}
	holders[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := holders[0].Read(make([]byte, 1)); n != 0 || isTimeout(err) {
		t.Fatalf("the quietest holder was not closed: n=%d err=%v", n, err)
	}
	io.WriteString(holders[1], "list timeout\n")
	holders[1].SetReadDeadline(time.Now().Add(10 * time.Second))
	if got := readAll(t, holders[1]); got != "TIMEOUT=60\n" {
		t.Fatalf("second holder got %q", got)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSignalsShutDownCleanly: SIGINT and SIGTERM both end rtcgate with 0.
func TestSignalsShutDownCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		r := start(t, ephemeral...)
		r.stop(t, sig)
		contains(t, "logs", r.Logs(), `"msg":"shutting down"`, `"msg":"stopped"`)
		if c, err := net.Dial("tcp", r.addr(t, "listen-http")); err == nil {
			c.Close()
			t.Errorf("listen-http still open after %v", sig)
		}
	}
}

// TestEmbeddedDefaults runs `rtcgate serve` with nothing else, as `make run`
// does, and reaches it where the README says: ping on 2225, the CLI on 2224.
func TestEmbeddedDefaults(t *testing.T) {
	r := start(t)
	if got := r.addr(t, "listen-http"); got != "127.0.0.1:2225" {
		t.Errorf("listen-http = %s", got)
	}
	if got := r.addr(t, "listen-cli"); got != "127.0.0.1:2224" {
		t.Errorf("listen-cli = %s", got)
	}
	if got := r.addr(t, "listen-ng"); got != "127.0.0.1:2223" {
		t.Errorf("listen-ng = %s", got)
	}
	if got := r.addr(t, "listen-client"); got != "127.0.0.1:8080" {
		t.Errorf("listen-client = %s", got)
	}
	if got := r.addr(t, "listen-sip"); got != "127.0.0.1:5060" {
		t.Errorf("listen-sip = %s", got)
	}
	resp, err := http.Get("http://127.0.0.1:2225/ping")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); got != "pong\n" {
		t.Errorf("ping = %q", got)
	}
	resp.Body.Close()
	ctl := needTool(t, "rtpengine-ctl", "rtpengine-utils")
	out, _, code := runCmd(t, 20*time.Second, ctl, "-ip", "127.0.0.1", "-port", "2224", "list", "totals")
	if code != 0 || !strings.Contains(out, "Statistics over currently running sessions:") {
		t.Errorf("rtpengine-ctl on the default port = %d %q", code, out)
	}
	out, _, code = runCmd(t, 20*time.Second, binary, "ctl", "list", "numsessions")
	if code != 0 || !strings.HasPrefix(out, "Current sessions own: 0\n") {
		t.Errorf("rtcgate ctl with its default URL = %d %q", code, out)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCmd(t, 10*time.Second, binary, "version")
	if code != 0 || !regexp.MustCompile(`^rtcgate \S+ \(go1\.\d+`).MatchString(out) {
		t.Errorf("version = %d %q", code, out)
	}
	_, stderr, code := runCmd(t, 10*time.Second, binary, "frobnicate")
	if code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown subcommand = %d %q", code, stderr)
	}
}

// TestClientTLS: the client listener over TLS (wss) with a generated
// certificate; the SDK handshake reaches getUserData.
func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	r := start(t, append(ephemeral, "--listen-client-tls", "127.0.0.1:0", "--client-tls-cert", certFile, "--client-tls-key", keyFile)...)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	c := dialWS(t, "wss://"+r.addr(t, "listen-client-tls")+"/", client)
	reply := wsExchange(t, c, `{"message":"connection","data":[{"appKey":"defaultApp"}]}`)
	if !strings.Contains(reply, `"message":"getUserData"`) || !strings.Contains(reply, `"sessionId"`) {
		t.Fatalf("wss connection = %s", reply)
	}
	resp, err := client.Get("https://" + r.addr(t, "listen-client-tls") + "/rtcgate-http-websocket.js")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body, "enableHTTPFallback") {
		t.Errorf("shim over https = %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestAppsAndAppKey: apps come from the configuration file, change through
// the CLI, persist beside the configuration across a restart, and a client
// naming an unknown appKey is refused.
func TestAppsAndAppKey(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: EchoApp\n    key: echoKey\n    url: http://127.0.0.1:9/EchoApp\n    methods: [connect, ConnectionStatusEvent]\n"), 0o600)
	r := start(t, append(ephemeral, "--config", cfgFile)...)
	base := "http://" + r.addr(t, "listen-http")
	ctl := func(args ...string) string {
		out, _, _ := runCmd(t, 20*time.Second, binary, append([]string{"ctl", "--url", base}, args...)...)
		return out
	}
	contains(t, "show apps", ctl("show", "apps"), "EchoApp", "echoKey", "defaultApp")
	if got := ctl("add", "app", "-u", "alice", "-p", "pw", "Other", "otherKey", "http://127.0.0.1:9/Other"); got != "App Other added\n" {
		t.Fatalf("add app = %q", got)
	}

	ws := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", nil)
	if reply := wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"noSuchKey"}]}`); !strings.Contains(reply, `"fail"`) || !strings.Contains(reply, "unknown appKey") {
		t.Fatalf("unknown appKey = %s", reply)
	}
	ws2 := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", nil)
	if reply := wsExchange(t, ws2, `{"message":"connection","data":[{"appKey":"otherKey"}]}`); !strings.Contains(reply, `"getUserData"`) {
		t.Fatalf("added app's key = %s", reply)
	}
	r.stop(t, syscall.SIGTERM)

	if _, err := os.Stat(filepath.Join(dir, "rtcgate-state.json")); err != nil {
		t.Fatalf("no state file beside the configuration: %v", err)
	}
	r2 := start(t, append(ephemeral, "--config", cfgFile)...)
	out, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r2.addr(t, "listen-http"), "show", "apps")
	contains(t, "show apps after restart", out, "Other", "otherKey", "EchoApp")
	if strings.Contains(out, "pw") {
		t.Errorf("show apps prints a password:\n%s", out)
	}
}
