package testpeer

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// HAProxy is a running haproxy in front of rtcgate nodes' listen-client:
// mode http, balance roundrobin, no stickiness (every request is balanced
// on its own), option forwardfor. A connection a server refuses (a node
// that died) is retried on another server at once, as a load balancer with
// health checks would soon do (option redispatch 1). Each response says
// which server answered in X-Served-By (s0, s1, … in the order of the
// servers).
type HAProxy struct {
	Addr string // "127.0.0.1:PORT"
	URL  string // "http://127.0.0.1:PORT"

	p *proc
}

// StartHAProxy runs haproxy in the foreground over servers (host:port) and
// returns once its port accepts; it is stopped at cleanup.
func StartHAProxy(t testing.TB, servers ...string) *HAProxy {
	t.Helper()
	bin, err := findBin("haproxy", "/usr/sbin/haproxy", "haproxy")
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	dir := t.TempDir()
	port := FreeUDPPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    option forwardfor
    option redispatch 1
    retries 2
frontend fe
    bind %s
    default_backend nodes
backend nodes
    balance roundrobin
    http-response set-header X-Served-By %%[srv_name]
`, addr)
	for i, s := range servers {
		fmt.Fprintf(&b, "    server s%d %s\n", i, s)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProc(bin, dir, "", "-db", "-f", cfg)
	if err != nil {
		t.Fatalf("testpeer: haproxy: %v", err)
	}
	h := &HAProxy{Addr: addr, URL: "http://" + addr, p: p}
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("haproxy log:\n%s", lastLines(p.out.String(), 30))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return h
		}
		if p.done() || time.Now().After(deadline) {
			t.Fatalf("testpeer: haproxy did not start: %v\n%s\n%s", err, b.String(), p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
