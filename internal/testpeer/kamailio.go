package testpeer

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"
)

//go:embed testdata/kamailio.cfg.tmpl
var kamailioCfg string

var kamailioTmpl = template.Must(template.New("kamailio.cfg").Parse(kamailioCfg))

// DefaultDomain is the SIP domain of a Kamailio started without one.
const DefaultDomain = "rtcgate.test"

// DefaultUsers are the accounts of a Kamailio started with nil Users.
var DefaultUsers = map[string]string{"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}

// KamailioOptions configures StartKamailio and RunKamailio. The zero value
// of every field but Users, Routes and Domain is what tests want; the
// others are for running Kamailio under load (bench/sipbench).
type KamailioOptions struct {
	Users  map[string]string // login -> password; nil: DefaultUsers
	Routes map[string]string // R-URI user -> "host:port": static routes to non-registering peers such as a sipp UAS
	Domain string            // "": DefaultDomain

	// Children is the number of UDP worker processes; 0: 1. One keeps a
	// test's Kamailio small; under load it would be the bottleneck.
	Children int
	// Quiet leaves out the log line per request, which tests read (Logs)
	// but which at thousands of requests per second would be most of
	// Kamailio's CPU.
	Quiet bool
	// SharedMemMB and PrivateMemMB are -m and -M; 0: 64 and 8, room for a
	// test's few transactions, not for thousands in flight.
	SharedMemMB, PrivateMemMB int
	// Dir holds the config and Kamailio's runtime files; "": a new
	// temporary directory, which Stop removes (StartKamailio: t.TempDir).
	Dir string
	// LogPath, when set, is a file that gets Kamailio's output too, for a
	// program to keep; an error then quotes its last lines, not all of it.
	LogPath string
	// TLS makes Kamailio also listen on tls:127.0.0.1:PORT (TLSAddr) with a
	// certificate for 127.0.0.1, localhost and Domain, signed by a private
	// CA made for this Kamailio alone (TLSCA). It needs Kamailio's tls
	// module (the Debian package kamailio-tls-modules).
	TLS bool
	// WebSocket makes Kamailio also take SIP over WebSocket (ws://WSAddr/),
	// for browser clients (SIP.js, JsSIP). It needs the Debian package
	// kamailio-websocket-modules.
	WebSocket bool
	// Rtpengine, "udp:127.0.0.1:PORT", sends every INVITE's SDP through an
	// rtpengine ng relay (rtcgate's, or rtpengine-daemon): WebRTC flags
	// toward WebSocket clients, plain RTP toward the others.
	Rtpengine string
}

// Kamailio is a running registrar and proxy. Users registered there are
// reached by lookup("location"); Routes users by their static address;
// anyone else gets 404.
type Kamailio struct {
	Addr   string // "127.0.0.1:PORT", UDP and TCP both listen there
	Domain string // the SIP domain users register in; not resolvable: send to Addr
	Users  map[string]string
	// With KamailioOptions.TLS: "127.0.0.1:PORT" of the TLS listener, and
	// the PEM file of the CA that signed its certificate. Both "" without.
	TLSAddr string
	TLSCA   string
	// With KamailioOptions.WebSocket: "127.0.0.1:PORT" of the WebSocket
	// listener.
	WSAddr string

	p      *proc
	tmpDir string // removed by Stop: the Dir RunKamailio made
}

// Values go into the config inside double quotes.
var (
	cfgToken = regexp.MustCompile(`^[A-Za-z0-9._~+-]+$`)
	cfgValue = regexp.MustCompile(`^[^"\\\x00-\x1f]*$`)
)

// StartKamailio runs Kamailio in the foreground on a free loopback port and
// returns once it answers an OPTIONS. It is stopped at cleanup, and its log
// goes to t.Log when the test failed.
func StartKamailio(t testing.TB, opts KamailioOptions) *Kamailio {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	k, err := RunKamailio(opts)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() {
		k.Stop()
		if t.Failed() {
			t.Logf("kamailio %s log:\n%s", k.Addr, k.Logs())
		}
	})
	return k
}

// RunKamailio is StartKamailio without a test: it returns an error instead
// of failing one, and the caller calls Stop.
func RunKamailio(opts KamailioOptions) (*Kamailio, error) {
	bin, err := findBin("kamailio", "/usr/sbin/kamailio", "kamailio")
	if err != nil {
		return nil, err
	}
	users := opts.Users
	if users == nil {
		users = DefaultUsers
	}
	domain := opts.Domain
	if domain == "" {
		domain = DefaultDomain
	}
	if !cfgToken.MatchString(domain) {
		return nil, fmt.Errorf("bad domain %q", domain)
	}
	for u, pw := range users {
		if !cfgToken.MatchString(u) || !cfgValue.MatchString(pw) {
			return nil, fmt.Errorf("user %q or its password cannot go into kamailio.cfg", u)
		}
	}
	for u, dst := range opts.Routes {
		if _, _, err := net.SplitHostPort(dst); !cfgToken.MatchString(u) || err != nil || !cfgValue.MatchString(dst) {
			return nil, fmt.Errorf("bad route %q -> %q (want user -> host:port)", u, dst)
		}
	}
	// Debian's multiarch directory, e.g. /usr/lib/x86_64-linux-gnu.
	tm, _ := filepath.Glob("/usr/lib/*/kamailio/modules/tm.so")
	if len(tm) == 0 {
		return nil, errors.New("no Kamailio modules in /usr/lib/*/kamailio/modules: install the Debian package kamailio")
	}
	modules := filepath.Dir(tm[0])
	if opts.WebSocket {
		if _, err := os.Stat(filepath.Join(modules, "websocket.so")); err != nil {
			return nil, fmt.Errorf("no websocket.so in %s: install the Debian package kamailio-websocket-modules (make test-deps / scripts/test-deps.sh does)", modules)
		}
	}
	if opts.Rtpengine != "" && !cfgValue.MatchString(opts.Rtpengine) {
		return nil, fmt.Errorf("bad rtpengine socket %q", opts.Rtpengine)
	}
	if opts.TLS {
		if _, err := os.Stat(filepath.Join(modules, "tls.so")); err != nil {
			return nil, fmt.Errorf("no tls.so in %s: install the Debian package kamailio-tls-modules (make test-deps / scripts/test-deps.sh does)", modules)
		}
	}
	children := cmp.Or(opts.Children, 1)

	k := &Kamailio{Domain: domain, Users: maps.Clone(users)}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "testpeer-kamailio-"); err != nil {
			return nil, err
		}
		k.tmpDir = dir
	}
	fail := func(err error) (*Kamailio, error) {
		k.Stop()
		return nil, err
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return fail(err)
	}
	cfg := filepath.Join(dir, "kamailio.cfg")
	var tlsf tlsFiles
	if opts.TLS {
		if tlsf, err = writeTLSFiles(dir, domain); err != nil {
			return fail(fmt.Errorf("TLS files: %v", err))
		}
		if !cfgValue.MatchString(tlsf.cfg) {
			return fail(fmt.Errorf("directory %q cannot go into kamailio.cfg", dir))
		}
		k.TLSCA = tlsf.ca
	}
	// The port is free when picked but may be taken before Kamailio binds
	// it; a failed bind gets another port.
	var lastErr error
	for range 3 {
		port, err := freeSIPPort()
		if err != nil {
			return fail(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		tlsAddr := ""
		if opts.TLS {
			tport, err := freeSIPPort()
			if err != nil {
				return fail(err)
			}
			tlsAddr = fmt.Sprintf("127.0.0.1:%d", tport)
		}
		wsAddr := ""
		if opts.WebSocket {
			wport, err := freeSIPPort()
			if err != nil {
				return fail(err)
			}
			wsAddr = fmt.Sprintf("127.0.0.1:%d", wport)
		}
		var buf bytes.Buffer
		err = kamailioTmpl.Execute(&buf, map[string]any{
			"Addr": addr, "Domain": domain, "Users": users, "Routes": opts.Routes, "ModulesDir": modules,
			"Children": children, "Quiet": opts.Quiet, "TLSAddr": tlsAddr, "TLSConfig": tlsf.cfg,
			"WSAddr": wsAddr, "Rtpengine": opts.Rtpengine,
			// 2^size slots: about one user per slot, and never fewer
			// than the 256 a test's handful of users has always had.
			"HashBits": max(8, min(16, bits.Len(uint(len(users))))),
		})
		if err != nil {
			return fail(fmt.Errorf("kamailio.cfg: %v", err))
		}
		if err := os.WriteFile(cfg, buf.Bytes(), 0o644); err != nil {
			return fail(err)
		}
		p, err := startProc(bin, dir, opts.LogPath, "-f", cfg, "-DD", "-E",
			"-n", strconv.Itoa(children), "-N", "1",
			"-w", dir, "-Y", run, "-P", filepath.Join(dir, "kamailio.pid"),
			"-m", strconv.Itoa(cmp.Or(opts.SharedMemMB, 64)), "-M", strconv.Itoa(cmp.Or(opts.PrivateMemMB, 8)))
		if err != nil {
			return fail(fmt.Errorf("starting kamailio: %v", err))
		}
		k.Addr, k.TLSAddr, k.WSAddr, k.p = addr, tlsAddr, wsAddr, p
		start := time.Now()
		lastErr = waitSIP(addr, p, 10*time.Second)
		if lastErr == nil && opts.TLS {
			lastErr = waitTLS(tlsAddr, tlsf.ca, p, max(time.Second, 10*time.Second-time.Since(start)))
		}
		if lastErr == nil {
			return k, nil
		}
		p.stop(2 * time.Second)
		if !strings.Contains(p.out.String(), "bind") {
			break
		}
	}
	err = failedStart("kamailio did not come up", lastErr, k.p, opts.LogPath)
	return fail(err)
}

// Stop ends Kamailio and its children (SIGTERM to the process group, then
// SIGKILL after five seconds) and removes the directory RunKamailio made.
// It may be called more than once.
func (k *Kamailio) Stop() {
	if k.p != nil {
		k.p.stop(5 * time.Second)
	}
	if k.tmpDir != "" {
		os.RemoveAll(k.tmpDir)
	}
}

// Pid is Kamailio's main process, the leader of a process group that its
// workers share.
func (k *Kamailio) Pid() int { return k.p.cmd.Process.Pid }

// SippArgs aims a sipp UAC scenario at this Kamailio: its address as the
// remote host and its domain as [domain].
func (k *Kamailio) SippArgs() []string { return []string{k.Addr, "-key", "domain", k.Domain} }

// Logs is Kamailio's output so far (debug=2, plus a line per request
// unless Quiet).
func (k *Kamailio) Logs() string { return k.p.out.String() }

// waitSIP sends OPTIONS to addr over UDP until any SIP response comes back,
// the process exits, or limit passes.
func waitSIP(addr string, p *proc, limit time.Duration) error {
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	conn, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	deadline := time.Now().Add(limit)
	buf := make([]byte, 4096)
	for i := 1; i <= 200 && time.Now().Before(deadline); i++ {
		if p.done() {
			return fmt.Errorf("exited (%v) before answering", p.err)
		}
		req := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-testpeer-%d;rport\r\n"+
			"Max-Forwards: 70\r\n"+
			"From: <sip:probe@%s>;tag=probe%d\r\n"+
			"To: <sip:%s>\r\n"+
			"Call-ID: testpeer-probe-%d@%s\r\n"+
			"CSeq: %d OPTIONS\r\n"+
			"Content-Length: 0\r\n\r\n", addr, local, i, local, i, addr, i, local, i)
		if _, err := conn.Write([]byte(req)); err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
			// The TCP listener is bound before the workers start; check anyway.
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err != nil {
				return fmt.Errorf("UDP answers but TCP does not: %v", err)
			}
			c.Close()
			return nil
		}
		if err != nil && !isTimeout(err) {
			// ICMP port unreachable: not bound yet; don't spin.
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("no answer to OPTIONS on %s within %v", addr, limit)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
