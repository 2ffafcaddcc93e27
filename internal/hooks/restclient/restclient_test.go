package restclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- private PKI ----

type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	dir    string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rtcgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{caCert: cert, caKey: key, dir: t.TempDir()}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

var serial atomic.Int64

// leaf issues a certificate; ips/dns are the SANs. It returns the tls pair
// and the paths of its PEM files.
func (p *pki) leaf(t *testing.T, usage x509.ExtKeyUsage, dns []string, ips []net.IP) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		Subject:      pkix.Name{CommonName: "leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	n := strconv.FormatInt(serial.Load(), 10)
	cf, kf := filepath.Join(p.dir, "c"+n+".pem"), filepath.Join(p.dir, "k"+n+".pem")
	writePEM(t, cf, "CERTIFICATE", der)
	writePEM(t, kf, "EC PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return pair, cf, kf
}

func tlsServer(t *testing.T, cert tls.Certificate, h http.Handler, cfg func(*tls.Config)) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if cfg != nil {
		cfg(s.TLS)
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// ---- helpers ----

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func opts() Options {
	o := DefaultOptions()
	o.Log = slog.New(slog.DiscardHandler)
	return o
}

func okHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Write([]byte(`{"ok":true}`))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// ---- plain HTTP ----

func TestOKWithBody(t *testing.T) {
	var gotCT, gotBody string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotCT = r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		gotBody = r.Method + " " + string(b)
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer s.Close()
	c := newClient(t, opts())
	resp := c.Do(context.Background(), Request{URL: s.URL + "/connect", Body: []byte(`{"a":1}`)})
	if resp.Err != nil || resp.Status != 200 || string(resp.Body) != `{"status":"ok"}` {
		t.Fatalf("resp = %+v", resp)
	}
	if gotCT != "application/json" || gotBody != `POST {"a":1}` {
		t.Fatalf("server saw %q %q", gotCT, gotBody)
	}
	if resp.Duration <= 0 {
		t.Fatal("no duration")
	}
}

func TestStatus500PassedThrough(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", 500)
	}))
	defer s.Close()
	resp := newClient(t, opts()).Do(context.Background(), Request{URL: s.URL})
	if resp.Status != 500 || resp.Err != nil || !strings.Contains(string(resp.Body), "nope") {
		t.Fatalf("resp = %+v", resp)
	}
}

func TestConnectionRefusedStatus0(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	resp := newClient(t, opts()).Do(context.Background(), Request{URL: "http://" + addr + "/"})
	if resp.Status != 0 || resp.Err == nil {
		t.Fatalf("resp = %+v", resp)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refused took %v", d)
	}
}

func TestTotalTimeoutStatus0(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // simulate a stuck backend
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer s.Close()
	o := opts()
	o.Timeout = 200 * time.Millisecond
	start := time.Now()
	resp := newClient(t, o).Do(context.Background(), Request{URL: s.URL})
	d := time.Since(start)
	if resp.Status != 0 || !errors.Is(resp.Err, context.DeadlineExceeded) {
		t.Fatalf("resp = %+v", resp)
	}
	if d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

// A listener that accepts TCP but never speaks TLS: the handshake must be
// bounded by ConnectTimeout, not by the longer total Timeout.
func TestConnectTimeoutCoversHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		conns.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	o := opts()
	o.ConnectTimeout = 200 * time.Millisecond
	o.Timeout = 10 * time.Second
	start := time.Now()
	resp := newClient(t, o).Do(context.Background(), Request{URL: "https://" + ln.Addr().String() + "/"})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("handshake timeout took %v", d)
	}
	if resp.Status != 0 || resp.Err == nil {
		t.Fatalf("resp = %+v", resp)
	}
}

func TestBodyBound(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		w.Write(bytes.Repeat([]byte("x"), 100))
	}))
	defer s.Close()
	o := opts()
	o.MaxResponseBody = 10
	resp := newClient(t, o).Do(context.Background(), Request{URL: s.URL})
	if resp.Status != 202 || !errors.Is(resp.Err, ErrBodyTooLarge) || len(resp.Body) != 10 {
		t.Fatalf("resp = %+v", resp)
	}
}

func TestNoRedirectFollow(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
	}))
	defer s.Close()
	resp := newClient(t, opts()).Do(context.Background(), Request{URL: s.URL})
	if resp.Status != http.StatusFound || resp.Err != nil {
		t.Fatalf("resp = %+v", resp)
	}
}

// ---- TLS ----

func TestTLS(t *testing.T) {
	p := newPKI(t)
	good, _, _ := p.leaf(t, x509.ExtKeyUsageServerAuth, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	other, _, _ := p.leaf(t, x509.ExtKeyUsageServerAuth, []string{"other.example"}, nil)
	sGood := tlsServer(t, good, http.HandlerFunc(okHandler), nil)
	sOther := tlsServer(t, other, http.HandlerFunc(okHandler), nil)

	caDir := t.TempDir()
	caBytes, _ := os.ReadFile(p.caFile)
	os.WriteFile(filepath.Join(caDir, "ca.crt"), caBytes, 0o600)
	os.WriteFile(filepath.Join(caDir, "README"), []byte("not a cert"), 0o600)

	cases := []struct {
		name       string
		url        string
		mod        func(*Options)
		ok         bool
		errContain string
	}{
		{"CAPath file", sGood.URL, func(o *Options) { o.CAPath = p.caFile }, true, ""},
		{"CAPath dir", sGood.URL, func(o *Options) { o.CAPath = caDir }, true, ""},
		{"system pool only", sGood.URL, func(o *Options) {}, false, "certificate"},
		{"VerifyPeer false", sGood.URL, func(o *Options) { o.VerifyPeer = false }, true, ""},
		{"wrong name VerifyHost true", sOther.URL, func(o *Options) { o.CAPath = p.caFile }, false, "certificate"},
		{"wrong name VerifyHost false", sOther.URL, func(o *Options) { o.CAPath = p.caFile; o.VerifyHost = false }, true, ""},
		{"VerifyHost false still checks chain", sOther.URL, func(o *Options) { o.VerifyHost = false }, false, "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.mod(&o)
			resp := newClient(t, o).Do(context.Background(), Request{URL: tc.url})
			if tc.ok {
				if resp.Err != nil || resp.Status != 200 {
					t.Fatalf("resp = %+v", resp)
				}
				return
			}
			if resp.Status != 0 || resp.Err == nil || !strings.Contains(resp.Err.Error(), tc.errContain) {
				t.Fatalf("resp = %+v", resp)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	srvCert, _, _ := p.leaf(t, x509.ExtKeyUsageServerAuth, nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	_, cf, kf := p.leaf(t, x509.ExtKeyUsageClientAuth, []string{"rtcgate"}, nil)
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	var peerCN atomic.Value
	s := tlsServer(t, srvCert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			peerCN.Store(r.TLS.PeerCertificates[0].DNSNames[0])
		}
		okHandler(w, r)
	}), func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = pool
	})

	o := opts()
	o.CAPath = p.caFile
	if resp := newClient(t, o).Do(context.Background(), Request{URL: s.URL}); resp.Status != 0 || resp.Err == nil {
		t.Fatalf("without client cert: %+v", resp)
	}
	o.ClientCert, o.ClientKey = cf, kf
	resp := newClient(t, o).Do(context.Background(), Request{URL: s.URL})
	if resp.Err != nil || resp.Status != 200 {
		t.Fatalf("with client cert: %+v", resp)
	}
	if peerCN.Load() != "rtcgate" {
		t.Fatalf("server saw peer %v", peerCN.Load())
	}
}

func TestNewValidation(t *testing.T) {
	p := newPKI(t)
	_, cf, kf := p.leaf(t, x509.ExtKeyUsageClientAuth, []string{"x"}, nil)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("hello"), 0o600)
	cases := []struct {
		name, want string
		mod        func(*Options)
	}{
		{"missing CA", "CAPath", func(o *Options) { o.CAPath = "/nonexistent/ca.pem" }},
		{"junk CA", "CAPath", func(o *Options) { o.CAPath = junk }},
		{"empty CA dir", "CAPath", func(o *Options) { o.CAPath = t.TempDir() }},
		{"missing cert", "ClientCert", func(o *Options) { o.ClientCert, o.ClientKey = "/nonexistent", kf }},
		{"key mismatch", "ClientCert", func(o *Options) { o.ClientCert, o.ClientKey = cf, junk }},
		{"cert without key", "ClientKey", func(o *Options) { o.ClientCert = cf }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.mod(&o)
			c, err := New(o)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

// ---- auth and signing ----

func TestBasicAuth(t *testing.T) {
	var user, pass string
	var ok bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok = r.BasicAuth()
		okHandler(w, r)
	}))
	defer s.Close()
	var logs bytes.Buffer
	o := opts()
	o.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newClient(t, o)
	resp := c.Do(context.Background(), Request{URL: s.URL, BasicUser: "app", BasicPassword: "s3cr3t"})
	if resp.Err != nil || !ok || user != "app" || pass != "s3cr3t" {
		t.Fatalf("resp %+v, server saw %q %q %v", resp, user, pass, ok)
	}
	// A failure with the password in the URL must not leak it to the log.
	c.Do(context.Background(), Request{URL: "http://u:hunter2@127.0.0.1:1/", BasicUser: "app", BasicPassword: "s3cr3t"})
	if l := logs.String(); strings.Contains(l, "s3cr3t") || strings.Contains(l, "hunter2") || strings.Contains(l, "Authorization") {
		t.Fatalf("secret in logs: %s", l)
	}
}

func TestSigning(t *testing.T) {
	const secret = "k3y"
	var verr atomic.Value
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		err := Verify(secret, r.Header, b, time.Minute, time.Now())
		verr.Store(errBox{err})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer s.Close()
	o := opts()
	o.Secret = secret
	c := newClient(t, o)
	body := []byte(`{"method":"connect","secret":"pw"}`)
	if resp := c.Do(context.Background(), Request{URL: s.URL, Body: body}); resp.Status != 200 {
		t.Fatalf("signed request rejected: %+v %v", resp, verr.Load())
	}

	// Exact header forms.
	now := time.Unix(1700000000, 0)
	h := http.Header{}
	Sign(secret, h, body, now)
	if !strings.HasPrefix(h.Get("Authorization"), "WCS ") || h.Get(HeaderTimestamp) != "1700000000" ||
		!strings.HasPrefix(h.Get(HeaderSignature), "v1=") || len(h.Get(HeaderSignature)) != 3+64 {
		t.Fatalf("headers %v", h)
	}
	if err := Verify(secret, h, body, time.Minute, now.Add(30*time.Second)); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	if err := Verify(secret, h, body, time.Minute, now.Add(2*time.Minute)); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("stale: %v", err)
	}
	if err := Verify(secret, h, body, time.Minute, now.Add(-2*time.Minute)); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("future: %v", err)
	}
	if err := Verify(secret, h, []byte(`{"method":"connect","secret":"PW"}`), time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if err := Verify("other", h, body, time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong secret: %v", err)
	}
	// Moving the timestamp without re-signing must fail even within skew.
	h2 := h.Clone()
	h2.Set(HeaderTimestamp, "1700000010")
	if err := Verify(secret, h2, body, time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered timestamp: %v", err)
	}
	// The WCS body signature is checked too.
	h3 := h.Clone()
	h3.Set("Authorization", "WCS "+strings.Repeat("A", 44))
	if err := Verify(secret, h3, body, time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad WCS auth: %v", err)
	}
	h4 := h.Clone()
	h4.Del(HeaderSignature)
	if err := Verify(secret, h4, body, time.Minute, now); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("missing: %v", err)
	}
	// Rotation: several v1 values, one matching.
	h5 := h.Clone()
	h5.Set(HeaderSignature, "v1="+strings.Repeat("0", 64)+", "+h.Get(HeaderSignature))
	if err := Verify(secret, h5, body, time.Minute, now); err != nil {
		t.Fatalf("rotation: %v", err)
	}

	// A replayed (stale) request is rejected by the server.
	req, _ := http.NewRequest(http.MethodPost, s.URL, bytes.NewReader(body))
	Sign(secret, req.Header, body, time.Now().Add(-time.Hour))
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusUnauthorized || !errors.Is(verr.Load().(errBox).err, ErrStaleTimestamp) {
		t.Fatalf("replay accepted: %d %v", hr.StatusCode, verr.Load())
	}
	http.DefaultClient.CloseIdleConnections()
}

type errBox struct{ err error }

// hookSeen is what a backend saw of one request.
type hookSeen struct {
	auth, user, password string
	basic                bool
	verifyErr            error
}

// verifyingBackend checks both the Basic credentials and the signature of
// every request, as a backend of an app with credentials under hooks-secret
// does, and answers 401 unless both are right.
func verifyingBackend(t *testing.T, secret, user, password string) (*httptest.Server, <-chan hookSeen) {
	seen := make(chan hookSeen, 16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var h hookSeen
		h.auth = r.Header.Get("Authorization")
		h.user, h.password, h.basic = r.BasicAuth()
		h.verifyErr = Verify(secret, r.Header, b, time.Minute, time.Now())
		seen <- h
		if h.verifyErr != nil || !h.basic || h.user != user || h.password != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(s.Close)
	return s, seen
}

// TestBasicAuthWithSecret: an app's credentials and hooks-secret together:
// Basic auth in Authorization, the signature in the X-Rtcgate headers, and
// the backend verifies both.
func TestBasicAuthWithSecret(t *testing.T) {
	const secret = "k3y"
	s, seen := verifyingBackend(t, secret, "app", "s3cr3t")
	o := opts()
	o.Secret = secret
	c := newClient(t, o)
	body := []byte(`{"method":"connect"}`)
	resp := c.Do(context.Background(), Request{URL: s.URL + "/connect", Body: body, BasicUser: "app", BasicPassword: "s3cr3t"})
	h := <-seen
	if resp.Status != 200 || resp.Err != nil {
		t.Fatalf("resp %+v, backend saw %+v", resp, h)
	}
	if !strings.HasPrefix(h.auth, "Basic ") || h.verifyErr != nil {
		t.Fatalf("backend saw %+v", h)
	}

	// Credentials in the URL are sent the same way, and signed the same way.
	u := strings.Replace(s.URL, "http://", "http://app:s3cr3t@", 1) + "/connect"
	if resp := c.Do(context.Background(), Request{URL: u, Body: body}); resp.Status != 200 {
		t.Fatalf("URL credentials: %+v, backend saw %+v", resp, <-seen)
	}
	<-seen

	// The wrong password is the backend's to refuse; the signature is still
	// right.
	resp = c.Do(context.Background(), Request{URL: s.URL, Body: body, BasicUser: "app", BasicPassword: "nope"})
	if h := <-seen; resp.Status != 401 || h.verifyErr != nil || h.password != "nope" {
		t.Fatalf("wrong password: %+v, backend saw %+v", resp, h)
	}

	// Credentials both in the URL and in the request: refused, nothing sent.
	resp = c.Do(context.Background(), Request{URL: u, Body: body, BasicUser: "app", BasicPassword: "s3cr3t"})
	if !errors.Is(resp.Err, ErrAuthConflict) || resp.Status != 0 {
		t.Fatalf("conflict: %+v", resp)
	}
	select {
	case h := <-seen:
		t.Fatalf("a conflicting request reached the backend: %+v", h)
	default:
	}
}

// TestSignatureWithoutCredentialsUnchanged: a signed request without
// credentials carries exactly what it did before credentials and a secret
// could be combined: Authorization WCS over the body, and the v1 headers.
func TestSignatureWithoutCredentialsUnchanged(t *testing.T) {
	const secret = "k3y"
	type got struct {
		h    http.Header
		body []byte
	}
	seen := make(chan got, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- got{r.Header.Clone(), b}
	}))
	defer s.Close()
	o := opts()
	o.Secret = secret
	c := newClient(t, o)
	body := []byte(`{"method":"ConnectionStatusEvent"}`)
	if resp := c.Do(context.Background(), Request{URL: s.URL, Body: body}); resp.Status != 200 {
		t.Fatalf("resp %+v", resp)
	}
	g := <-seen
	ts, err := strconv.ParseInt(g.h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		t.Fatalf("timestamp %q", g.h.Get(HeaderTimestamp))
	}
	want := http.Header{}
	Sign(secret, want, body, time.Unix(ts, 0))
	for _, k := range []string{"Authorization", HeaderTimestamp, HeaderSignature} {
		if g.h.Get(k) != want.Get(k) || len(g.h.Values(k)) != 1 {
			t.Errorf("%s = %q, want %q", k, g.h.Values(k), want.Get(k))
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if g.h.Get("Authorization") != "WCS "+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("Authorization = %q", g.h.Get("Authorization"))
	}
}

// TestVerifyBasicOrWCS: Verify accepts the v1 signature with either the WCS
// signature or Basic credentials in Authorization, and nothing else.
func TestVerifyBasicOrWCS(t *testing.T) {
	const secret = "k3y"
	now := time.Unix(1700000000, 0)
	body := []byte(`{"method":"connect"}`)
	basic := func() http.Header {
		req, _ := http.NewRequest(http.MethodPost, "http://backend/", nil)
		req.SetBasicAuth("app", "pw")
		SignV1(secret, req.Header, body, now)
		return req.Header
	}
	if h := basic(); h.Get(HeaderTimestamp) == "" || h.Get(HeaderSignature) == "" || !strings.HasPrefix(h.Get("Authorization"), "Basic ") {
		t.Fatalf("SignV1 headers %v", h)
	}
	if err := Verify(secret, basic(), body, time.Minute, now); err != nil {
		t.Fatalf("Basic + v1: %v", err)
	}
	h := basic()
	h.Set(HeaderSignature, "v1="+strings.Repeat("0", 64))
	if err := Verify(secret, h, body, time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Basic + bad v1: %v", err)
	}
	if err := Verify(secret, basic(), []byte(`{"method":"call"}`), time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Basic + tampered body: %v", err)
	}
	if err := Verify(secret, basic(), body, time.Minute, now.Add(time.Hour)); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("Basic + stale: %v", err)
	}
	h = basic()
	h.Del(HeaderSignature)
	if err := Verify(secret, h, body, time.Minute, now); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("Basic without v1: %v", err)
	}
	h = basic()
	h.Set("Authorization", "Bearer abc")
	if err := Verify(secret, h, body, time.Minute, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Bearer: %v", err)
	}
	h = basic()
	h.Del("Authorization")
	if err := Verify(secret, h, body, time.Minute, now); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("no Authorization: %v", err)
	}
}

// ---- keep-alive ----

func TestKeepAliveReuse(t *testing.T) {
	var newConns atomic.Int32
	s := httptest.NewUnstartedServer(http.HandlerFunc(okHandler))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			newConns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	c := newClient(t, opts())
	for i := range 50 {
		if resp := c.Do(context.Background(), Request{URL: s.URL, Body: []byte(`{}`)}); resp.Status != 200 {
			t.Fatalf("req %d: %+v", i, resp)
		}
	}
	if n := newConns.Load(); n != 1 {
		t.Fatalf("%d connections for 50 sequential requests", n)
	}
}

// ---- closing ----

func TestCloseWaitsForInFlightAndLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	var served atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		served.Add(1)
		okHandler(w, r)
	}))
	c, err := New(opts())
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan Response, 4)
	for range 4 {
		go func() { results <- c.Do(context.Background(), Request{URL: s.URL}) }()
	}
	for range 4 {
		<-arrived
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	// Close refuses new requests at once, while the four are still held.
	// (The probe's context is cancelled: one made before Close got there
	// fails at once instead of reaching the held backend.)
	probe, cancelProbe := context.WithCancel(context.Background())
	cancelProbe()
	waitFor(t, "Close to refuse new requests", func() bool {
		return errors.Is(c.Do(probe, Request{URL: s.URL}).Err, ErrClosed)
	})
	select {
	case <-closed:
		t.Fatal("Close returned with requests in flight")
	default:
	}
	close(release)
	<-closed
	for range 4 {
		if r := <-results; r.Status != 200 || r.Err != nil {
			t.Fatalf("in-flight request: %+v", r)
		}
	}
	if served.Load() != 4 {
		t.Fatalf("served %d", served.Load())
	}
	c.Close() // idempotent
	s.Close()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base })
}

func TestShutdownDeadlineCancelsInFlight(t *testing.T) {
	base := runtime.NumGoroutine()
	started := make(chan struct{}, 2)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done() // stuck backend
	}))
	o := opts()
	o.Timeout = 30 * time.Second
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan Response, 2)
	for range 2 {
		go func() { results <- c.Do(context.Background(), Request{URL: s.URL}) }()
	}
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	for range 2 {
		r := <-results // both already returned: Shutdown waited for them
		if r.Status != 0 || !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("result %+v", r)
		}
	}
	s.Close()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= base })
}
