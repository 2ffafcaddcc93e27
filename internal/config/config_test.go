package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatalf("embedded defaults do not validate: %v", err)
	}
	for key, want := range map[string]string{
		"listen-ng": "127.0.0.1:2223", "listen-cli": "127.0.0.1:2224", "listen-http": "127.0.0.1:2225",
		"listen-https": "", "interface": "127.0.0.1", "port-min": "30000", "port-max": "40000",
		"timeout": "1m0s", "silent-timeout": "1h0m0s", "final-timeout": "0s", "max-sessions": "-1", "log-level": "6",
		"relay-io": "epoll",
	} {
		if got := c.Get(key); got != want {
			t.Errorf("default %s = %q, want %q", key, got, want)
		}
	}
	// Every key has an embedded default, so `rtcgate serve` needs nothing.
	if len(Keys()) != len(fields) || slices.Contains(Keys(), "") {
		t.Fatalf("a Config field has no yaml key: %v", Keys())
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rtcgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, "listen-http: 127.0.0.1:9000\ntimeout: 30\nport-min: 20000\ninterface:\n  - internal/127.0.0.1\n  - external/127.0.0.2!192.0.2.1\n")
	env := []string{"RTCGATE_TIMEOUT=45", "RTCGATE_PORT_MAX=25000", "UNRELATED=1"}
	c, err := Load(path, env, []Override{{"timeout", "2m"}, {"interface", "a/127.0.0.3"}, {"interface", "b/127.0.0.4"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenHTTP != "127.0.0.1:9000" || c.PortMin != 20000 {
		t.Errorf("file values not applied: %+v", c)
	}
	if c.PortMax != 25000 {
		t.Errorf("env not applied: port-max = %d", c.PortMax)
	}
	if c.Timeout.D() != 2*time.Minute {
		t.Errorf("flag must win over env and file: timeout = %v", c.Timeout)
	}
	if want := (StringList{"a/127.0.0.3", "b/127.0.0.4"}); !slices.Equal(c.Interface, want) {
		t.Errorf("repeated --interface = %v, want %v", c.Interface, want)
	}
	if c.ListenNG != "127.0.0.1:2223" {
		t.Errorf("unset key lost its default: %q", c.ListenNG)
	}
}

func TestInterfaceListForms(t *testing.T) {
	c, err := Load(writeFile(t, "interface: internal/127.0.0.1;external/127.0.0.2!203.0.113.7\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Interface) != 2 {
		t.Fatalf("rtpengine's ';' form gave %v", c.Interface)
	}
	itf, err := ParseInterface(c.Interface[1])
	if err != nil {
		t.Fatal(err)
	}
	if itf.Name != "external" || itf.Addrs[0].String() != "127.0.0.2" || itf.Advertised.String() != "203.0.113.7" {
		t.Errorf("ParseInterface = %+v", itf)
	}
	lo, err := ParseInterface("lo")
	if err != nil || lo.Name != "default" || !slices.ContainsFunc(lo.Addrs, netip.Addr.IsLoopback) {
		t.Errorf("device name: %+v, %v", lo, err)
	}
}

func TestBadValuesNameTheirKey(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        []string
		over       []Override
		key, msg   string
	}{
		{"unknown key", "listen-ngg: 127.0.0.1:1\n", nil, nil, "listen-ngg", "unknown key"},
		{"unknown flag key", "", nil, []Override{{"no-such", "1"}}, "no-such", "unknown key"},
		{"bad address", "listen-ng: 127.0.0.1:99999\n", nil, nil, "listen-ng", "bad port"},
		{"bad host", "listen-http: example..com:80\n", nil, nil, "listen-http", "not an IP address"},
		{"garbage address", "listen-cli: 'a:b:c'\n", nil, nil, "listen-cli", "want HOST:PORT"},
		{"bad https address", "listen-https: nope\n", nil, nil, "listen-https", "bad port"},
		{"port order", "port-min: 40000\nport-max: 30000\n", nil, nil, "port-min", "greater than port-max"},
		{"port range", "port-max: 70000\n", nil, nil, "port-max", "not a port"},
		{"port type", "port-min: many\n", nil, nil, "port-min", "is not a whole number"},
		{"missing cert", "listen-https: 127.0.0.1:0\nhttps-cert: /nonexistent/cert.pem\nhttps-key: /nonexistent/key.pem\n", nil, nil, "https-cert", "no such file"},
		{"cert required", "listen-https: 127.0.0.1:0\n", nil, nil, "https-cert", "required"},
		{"bad timeout", "timeout: soon\n", nil, nil, "timeout", "neither a number"},
		{"negative timeout", "silent-timeout: -5\n", nil, nil, "silent-timeout", "negative"},
		{"bad max sessions", "max-sessions: -2\n", nil, nil, "max-sessions", "-1 (unlimited)"},
		{"bad log level", "log-level: 9\n", nil, nil, "log-level", "1 (alert) to 7"},
		{"bad log format", "log-format: xml\n", nil, nil, "log-format", "text or json"},
		{"pending bytes under two frames", "client-max-pending-bytes: 1000\n", nil, nil, "client-max-pending-bytes", "twice client-max-frame"},
		{"no read timeout", "client-read-timeout: 0s\n", nil, nil, "client-read-timeout", "positive"},
		{"negative per-address", "client-max-sessions-per-ip: -1\n", nil, nil, "client-max-sessions-per-ip", "not be negative"},
		{"bad trusted proxy", "client-trusted-proxies: [nope]\n", nil, nil, "client-trusted-proxies", "address or a CIDR"},
		{"no SIP connections", "sip-max-connections: 0\n", nil, nil, "sip-max-connections", "at least 1"},
		{"no SIP idle timeout", "sip-tcp-idle-timeout: 0s\n", nil, nil, "sip-tcp-idle-timeout", "positive"},
		{"negative fd reserve", "fd-reserve: -1\n", nil, nil, "fd-reserve", "negative"},
		{"bad interface", "interface: 'x/not-an-ip-or-device'\n", nil, nil, "interface", "neither an IP address nor a network device"},
		{"bad advertised", "interface: '127.0.0.1!nat'\n", nil, nil, "interface", "advertised address"},
		{"no interface", "interface: []\n", nil, nil, "interface", "at least one"},
		{"small message limit", "control-max-message: 10\n", nil, nil, "control-max-message", "at least 512"},
		{"zero connections", "control-max-connections: 0\n", nil, nil, "control-max-connections", "at least 1"},
		{"status interval", "status-interval: 10ms\n", nil, nil, "status-interval", "100ms to 1m"},
		{"status rows", "status-max-rows: 0\n", nil, nil, "status-max-rows", "1 to 10000"},
		{"status rows too many", "status-max-rows: 20000\n", nil, nil, "status-max-rows", "1 to 10000"},
		{"zero control timeout", "control-timeout: 0\n", nil, nil, "control-timeout", "positive"},
		{"negative delete delay", "delete-delay: -1\n", nil, nil, "delete-delay", "negative"},
		{"too many relay threads", "relay-threads: 1000\n", nil, nil, "relay-threads", "0 (one per CPU) to 256"},
		{"kernel forwarding mode", "kernel-forwarding: yes\n", nil, nil, "kernel-forwarding", "auto, off or required"},
		{"relay io", "relay-io: uring\n", nil, nil, "relay-io", "epoll, io_uring or auto"},
		{"no ng workers", "ng-workers: 0\n", nil, nil, "ng-workers", "1 to 1024"},
		{"no DTMF queue", "max-dtmf-queue: 0\n", nil, nil, "max-dtmf-queue", "1 to 10000"},
		{"DTLS cert cipher", "dtls-cert-cipher: dsa\n", nil, nil, "dtls-cert-cipher", "prime256v1 rsa"},
		{"DTLS RSA key size", "dtls-rsa-key-size: 1024\n", nil, nil, "dtls-rsa-key-size", "2048 to 8192"},
		{"DTLS signature", "dtls-signature: md5\n", nil, nil, "dtls-signature", "sha-256"},
		{"tiny cookie cache", "ng-cookie-cache-size: 3\n", nil, nil, "ng-cookie-cache-size", "at least 16"},
		{"bad input lines", "log-bad-input-lines: -1\n", nil, nil, "log-bad-input-lines", "0 (none) to 10000"},
		{"bad input interval", "log-bad-input-interval: 10ms\n", nil, nil, "log-bad-input-interval", "at least 1s"},
		{"tiny cookie cache bytes", "ng-cookie-cache-bytes: 65536\n", nil, nil, "ng-cookie-cache-bytes", "at least 1048576"},
		{"client strategy", "client-on-max-connections: drop\n", nil, nil, "client-on-max-connections", "reject or close"},
		{"client max connections", "client-max-connections: 0\n", nil, nil, "client-max-connections", "at least 1"},
		{"client frame", "client-max-frame: 10\n", nil, nil, "client-max-frame", "at least 1024"},
		{"client pending", "client-max-pending: 1\n", nil, nil, "client-max-pending", "at least 16"},
		{"client idle", "client-idle-timeout: 0\n", nil, nil, "client-idle-timeout", "positive"},
		{"client origin pattern", "client-allowed-origins: ['http://[']\n", nil, nil, "client-allowed-origins", "syntax"},
		{"client tls needs cert", "listen-client-tls: 127.0.0.1:0\n", nil, nil, "client-tls-cert", "required"},
		{"bad client address", "listen-client: 'x:y'\n", nil, nil, "listen-client", "bad port"},
		{"hooks timeout", "hooks-timeout: 0\n", nil, nil, "hooks-timeout", "positive"},
		{"hooks async", "hooks-max-async: 0\n", nil, nil, "hooks-max-async", "at least 1"},
		{"hooks retries", "hooks-retries: -1\n", nil, nil, "hooks-retries", "0 (no cap) or more"},
		{"hooks retry time", "hooks-retry-time: 0\n", nil, nil, "hooks-retry-time", "at least 1s"},
		{"hooks dead letters", "hooks-dead-letter-max-bytes: 100\n", nil, nil, "hooks-dead-letter-max-bytes", "at least 65536"},
		{"hooks queue bytes", "hooks-queue-max-bytes: 10\n", nil, nil, "hooks-queue-max-bytes", "at least 65536"},
		{"hooks backoff", "hooks-max-backoff: 1ms\n", nil, nil, "hooks-max-backoff", "at least 100ms"},
		{"hooks redis claim", "hooks-redis-claim-after: 10ms\n", nil, nil, "hooks-redis-claim-after", "at least 100ms"},
		{"webrtc address", "webrtc-address: 0.0.0.0\n", nil, nil, "webrtc-address", "IP address browsers can reach"},
		{"webrtc ports", "webrtc-port-min: 50001\n", nil, nil, "webrtc-port-min", "webrtc-port-min <= webrtc-port-max"},
		{"bad sip address", "listen-sip: 'x:y'\n", nil, nil, "listen-sip", "bad port"},
		{"sip expires", "sip-register-expires: 5s\n", nil, nil, "sip-register-expires", "at least 10s"},
		{"sip timeout", "sip-ring-timeout: 0\n", nil, nil, "sip-timeout", "positive"},
		{"sip accounts", "sip-max-accounts: -1\n", nil, nil, "sip-max-accounts", "0 (unlimited)"},
		{"sip tls ca missing", "sip-tls-ca: /nonexistent/ca.pem\n", nil, nil, "sip-tls-ca", "no such file"},
		{"sip tls verify", "sip-tls-verify: maybe\n", nil, nil, "sip-tls-verify", "not true or false"},
		{"cluster heartbeat", "cluster-heartbeat: 10ms\n", nil, nil, "cluster-heartbeat", "at least 100ms"},
		{"cluster node ttl", "cluster-heartbeat: 1s\ncluster-node-ttl: 1500ms\n", nil, nil, "cluster-node-ttl", "at least twice cluster-heartbeat"},
		{"cluster redis timeout", "cluster-redis-timeout: 5s\n", nil, nil, "cluster-redis-timeout", "less than cluster-node-ttl"},
		{"cluster advertise", "cluster-advertise: 'a b:1'\n", nil, nil, "cluster-advertise", "host name or an IP address"},
		{"node id", "node-id: 'a b'\n", nil, nil, "node-id", "no spaces"},
		{"env bad value", "", []string{"RTCGATE_PORT_MIN=x"}, nil, "port-min", "is not a whole number"},
		{"not a mapping", "- a\n- b\n", nil, nil, "config", "mapping"},
		{"yaml syntax", "listen-ng: [\n", nil, nil, "config", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = writeFile(t, tc.yaml)
			}
			_, err := Load(path, tc.env, tc.over)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want a *config.Error", err)
			}
			if ce.Key != tc.key || !strings.Contains(ce.Error(), tc.msg) {
				t.Fatalf("error %q: want key %q and %q", ce.Error(), tc.key, tc.msg)
			}
		})
	}
}

// sip-tls-ca and sip-tls-verify: the system's roots, checked, by default;
// a CA file must hold a PEM certificate.
func TestSIPTLSKeys(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SIPTLSCA != "" || !c.SIPTLSVerify {
		t.Errorf("defaults: sip-tls-ca %q, sip-tls-verify %v", c.SIPTLSCA, c.SIPTLSVerify)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	c, err = Load("", []string{"RTCGATE_SIP_TLS_CA=" + ca}, []Override{{"sip-tls-verify", "false"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.SIPTLSCA != ca || c.SIPTLSVerify {
		t.Errorf("set: sip-tls-ca %q, sip-tls-verify %v", c.SIPTLSCA, c.SIPTLSVerify)
	}

	notPEM := filepath.Join(dir, "ca.der")
	os.WriteFile(notPEM, der, 0o600)
	_, err = Load("", nil, []Override{{"sip-tls-ca", notPEM}})
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "sip-tls-ca" || !strings.Contains(ce.Msg, "no PEM certificate") {
		t.Errorf("a CA file without PEM: %v", err)
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := Load("/nonexistent/rtcgate.yaml", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Load of a missing file = %v", err)
	}
}

func TestParseListen(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"2223":            ":2223",
		"*:2223":          ":2223",
		"localhost:2223":  "127.0.0.1:2223",
		"127.0.0.1:0":     "127.0.0.1:0",
		"[::1]:2225":      "[::1]:2225",
		" 10.0.0.1:2223 ": "10.0.0.1:2223",
	} {
		got, err := ParseListen(in)
		if err != nil || got != want {
			t.Errorf("ParseListen(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "65536", "host:1", "1.2.3.4:", ":::1", "[::1]"} {
		if got, err := ParseListen(in); err == nil {
			t.Errorf("ParseListen(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"60": time.Minute, "0": 0, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "99999999999999999999", "9223372036854775807"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

// FuzzLoadYAML: any file content gives a configuration or a *config.Error,
// never a panic.
func FuzzLoadYAML(f *testing.F) {
	for _, s := range []string{"", "timeout: 5\n", "interface: [a, b]\n", "port-min: 1\nport-max: 0\n", "{", "listen-ng: !!binary AAAA\n", "a: &x [*x]\n"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, nil, nil)
		var ce *Error
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("Load error %v is not a *config.Error", err)
		}
		if err == nil && c.Validate() != nil {
			t.Fatalf("Load returned an invalid configuration")
		}
	})
}

// TestHooksRetryDefaults: status events are retried by time (10 minutes,
// enough for a backend's restart or deploy), with no count cap, and dead
// letters are kept within 16 MiB.
func TestHooksRetryDefaults(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"hooks-retry-time": "10m0s", "hooks-retries": "0", "hooks-dead-letter-max-bytes": "16777216",
		"cluster-redis": "", "hooks-redis-claim-after": "5s"} {
		if got := c.Get(key); got != want {
			t.Errorf("default %s = %q, want %q", key, got, want)
		}
	}
}

// The cluster's keys: off by default, with the lease and timeout defaults
// the README's table gives.
func TestClusterDefaults(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterRedis != "" || c.ClusterAdvertise != "" || c.ClusterHeartbeat.D() != time.Second ||
		c.ClusterNodeTTL.D() != 4*time.Second || c.ClusterRedisTimeout.D() != time.Second {
		t.Errorf("cluster defaults: %q %q %s %s %s", c.ClusterRedis, c.ClusterAdvertise, c.ClusterHeartbeat, c.ClusterNodeTTL, c.ClusterRedisTimeout)
	}
}

// The status page's keys and the defaults the README's table gives.
func TestStatusDefaults(t *testing.T) {
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.StatusInterval.D() != time.Second || c.StatusMaxRows != 100 {
		t.Errorf("status defaults: %s %d", c.StatusInterval, c.StatusMaxRows)
	}
	c, err = Load("", nil, []Override{{"status-interval", "250ms"}, {"status-max-rows", "5"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.StatusInterval.D() != 250*time.Millisecond || c.StatusMaxRows != 5 {
		t.Errorf("status keys set: %s %d", c.StatusInterval, c.StatusMaxRows)
	}
}
