// Package restclient is the hardened outbound HTTP client that rtcgate uses
// to POST client actions and status events to an app backend's REST URL, as
// Web Call Server does with its REST hooks.
//
// The knobs follow OpenSIPS rest_client (connection_timeout, curl_timeout,
// ssl_verifypeer, ssl_verifyhost, ssl_capath) because operators already know
// them. Requests are synchronous (Do); asynchronous delivery, with its order,
// retries and bound, is the event queue's job (package eventq), whose
// workers call Do.
//
// A Response always carries Status 0 when no HTTP reply arrived (connection
// refused, timeout, reset, TLS failure), matching what WCS records then.
package restclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultConnectTimeout  = 2 * time.Second
	DefaultTimeout         = 5 * time.Second
	DefaultMaxIdlePerHost  = 16
	DefaultMaxResponseBody = 1 << 20 // 1 MiB: hook replies are small JSON; more is a misbehaving backend
)

// Errors reported in Response.Err. They are sentinels so callers can tell
// "backend said no" from "we refused to send".
var (
	// ErrClosed means the client was closed before the request was made.
	ErrClosed = errors.New("restclient: client closed")
	// ErrBodyTooLarge means the reply body exceeded MaxResponseBody; Status
	// and the first MaxResponseBody bytes are still reported.
	ErrBodyTooLarge = errors.New("restclient: response body too large")
	// ErrAuthConflict means a request carried credentials both in its URL
	// (http://user:pass@host/) and in BasicUser/BasicPassword; we refuse
	// rather than silently dropping one of them.
	ErrAuthConflict = errors.New("restclient: credentials both in the URL and in BasicUser/BasicPassword")
)

// Options configures a Client. Zero numeric fields take the defaults above.
//
// Beware: VerifyPeer and VerifyHost are plain bools, so a zero Options
// disables TLS verification. Start from DefaultOptions, which enables both,
// and New logs a warning whenever either is off.
type Options struct {
	ConnectTimeout time.Duration // TCP connect plus TLS handshake bound (rest_client connection_timeout); default 2s
	Timeout        time.Duration // whole request including reading the reply (curl_timeout); default 5s
	VerifyPeer     bool          // verify the server certificate chain (ssl_verifypeer)
	VerifyHost     bool          // verify the server certificate matches the URL host (ssl_verifyhost); ignored when VerifyPeer is false
	CAPath         string        // PEM file or directory of PEM files added to the system pool (ssl_capath); "" = system pool only
	ClientCert     string        // PEM certificate file for mutual TLS; needs ClientKey
	ClientKey      string        // PEM private key file for mutual TLS; needs ClientCert
	MaxIdlePerHost int           // keep-alive connections kept per backend; default 16
	// MaxResponseBody bounds how much of a reply is read; default 1 MiB.
	MaxResponseBody int64
	Secret          string // when set, every request is signed (see Sign)
	Log             *slog.Logger
}

// DefaultOptions returns Options with every default filled in and both TLS
// checks on, so that forgetting a field fails safe.
func DefaultOptions() Options {
	return Options{
		ConnectTimeout:  DefaultConnectTimeout,
		Timeout:         DefaultTimeout,
		VerifyPeer:      true,
		VerifyHost:      true,
		MaxIdlePerHost:  DefaultMaxIdlePerHost,
		MaxResponseBody: DefaultMaxResponseBody,
	}
}

// Request is one POST to a backend. Header is copied, never modified; the
// Content-Type, Authorization and signature headers set by the client
// override same-named entries in it.
//
// Credentials go as Authorization: Basic; they come from BasicUser and
// BasicPassword or from the URL's user information (not both:
// ErrAuthConflict). With Options.Secret such a request is signed by the
// X-Rtcgate headers alone (SignV1); one without credentials gets
// Authorization: WCS as well (Sign).
type Request struct {
	URL           string
	Body          []byte
	BasicUser     string // Basic auth when non-empty
	BasicPassword string
	Header        http.Header
}

// Response is the outcome of one request. Status is 0 when no reply arrived;
// Err may be set together with a non-zero Status (e.g. ErrBodyTooLarge or a
// reset while reading the body) so callers keep what the backend said.
type Response struct {
	Status   int
	Body     []byte
	Duration time.Duration
	Err      error
}

// Client sends requests to backends. It is safe for concurrent use.
type Client struct {
	o   Options
	hc  *http.Client
	tr  *http.Transport
	log *slog.Logger

	mu       sync.RWMutex // guards closed against a Do starting while Shutdown waits
	closed   bool
	inflight sync.WaitGroup // requests being made by Do
	baseCtx  context.Context
	cancel   context.CancelFunc // cancels the requests in flight (Shutdown's deadline)
}

// New validates o and builds the transport. Errors
// name the offending option, because they surface at config load time where
// the operator needs to know which line to fix.
func New(o Options) (*Client, error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = DefaultMaxIdlePerHost
	}
	if o.MaxResponseBody <= 0 {
		o.MaxResponseBody = DefaultMaxResponseBody
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tc, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	if !o.VerifyPeer {
		log.Warn("restclient: TLS peer verification disabled (VerifyPeer=false)")
	} else if !o.VerifyHost {
		log.Warn("restclient: TLS host name verification disabled (VerifyHost=false)")
	}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// No Proxy: hooks go straight to the configured backend; an
		// environment proxy would be an unexpected hop that sees the events.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: o.ConnectTimeout, // the handshake is part of "connecting"
		ForceAttemptHTTP2:   true,             // custom TLS config would otherwise disable h2
		MaxIdleConns:        o.MaxIdlePerHost * 4,
		MaxIdleConnsPerHost: o.MaxIdlePerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	hc := &http.Client{
		Transport: tr,
		// Redirects are not followed: a signed POST re-sent to wherever a
		// 3xx points would hand our signature and body to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{o: o, hc: hc, tr: tr, log: log, baseCtx: ctx, cancel: cancel}, nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if o.CAPath != "" {
		if err := addCAs(roots, o.CAPath); err != nil {
			return nil, err
		}
		tc.RootCAs = roots
	}
	if (o.ClientCert == "") != (o.ClientKey == "") {
		return nil, errors.New("restclient: ClientCert and ClientKey must be set together")
	}
	if o.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(o.ClientCert, o.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("restclient: ClientCert/ClientKey: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	switch {
	case !o.VerifyPeer:
		tc.InsecureSkipVerify = true
	case !o.VerifyHost:
		// Go cannot check the chain without the name, so skip the built-in
		// check and redo the chain part ourselves.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("restclient: server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			return err
		}
	}
	return tc, nil
}

// addCAs loads one PEM file, or every regular file of a directory (like
// curl's capath), and fails if nothing usable was found: a CAPath that adds
// no CA is a misconfiguration that would otherwise show up only as TLS
// errors at call time.
func addCAs(pool *x509.CertPool, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("restclient: CAPath: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("restclient: CAPath: %w", err)
		}
		files = files[:0]
		for _, e := range ents {
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if st.IsDir() {
				continue // a stray unreadable file in a directory is not fatal
			}
			return fmt.Errorf("restclient: CAPath: %w", err)
		}
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				continue
			}
			pool.AddCert(cert)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("restclient: CAPath %q: no PEM certificates found", path)
	}
	return nil
}

// Do POSTs r synchronously with Content-Type application/json. The request
// is bounded by Options.Timeout and by ctx, whichever ends first (and by
// Shutdown's deadline).
func (c *Client) Do(ctx context.Context, r Request) Response {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		// After Close the idle pool is gone; a new request would leave
		// connection goroutines behind.
		return Response{Err: ErrClosed}
	}
	c.inflight.Add(1)
	c.mu.RUnlock()
	defer c.inflight.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.baseCtx, cancel)
	defer stop()
	return c.do(ctx, r)
}

func (c *Client) do(ctx context.Context, r Request) Response {
	start := time.Now()
	resp := c.send(ctx, r)
	resp.Duration = time.Since(start)
	if resp.Err != nil {
		// Only the redacted URL, status and error: never headers or bodies,
		// which carry Authorization and passwords.
		c.log.Warn("restclient: request failed", "url", redactedURL(r.URL), "status", resp.Status,
			"duration", resp.Duration, "err", resp.Err)
	} else {
		c.log.Debug("restclient: request done", "url", redactedURL(r.URL), "status", resp.Status,
			"duration", resp.Duration)
	}
	return resp
}

func (c *Client) send(ctx context.Context, r Request) Response {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Response{Err: fmt.Errorf("restclient: bad request URL %q: %w", redact(r.URL), unwrapURLError(err))}
	}
	user, password := r.BasicUser, r.BasicPassword
	basic := user != ""
	if req.URL.User != nil {
		if user != "" || password != "" {
			return Response{Err: ErrAuthConflict}
		}
		// The URL's credentials, sent as net/http would send them, but
		// set here so that signing knows Authorization is taken.
		user = req.URL.User.Username()
		password, _ = req.URL.User.Password()
		req.URL.User = nil
		basic = true
	}
	for k, v := range r.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("Content-Type", "application/json")
	if basic {
		req.SetBasicAuth(user, password)
	}
	switch {
	case c.o.Secret == "":
	case basic:
		SignV1(c.o.Secret, req.Header, r.Body, time.Now())
	default:
		Sign(c.o.Secret, req.Header, r.Body, time.Now())
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return Response{Err: err}
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hr.Body, c.o.MaxResponseBody+1))
	out := Response{Status: hr.StatusCode, Body: body}
	switch {
	case err != nil:
		out.Err = fmt.Errorf("restclient: reading reply: %w", err)
	case int64(len(body)) > c.o.MaxResponseBody:
		out.Body = body[:c.o.MaxResponseBody]
		out.Err = ErrBodyTooLarge
	}
	return out
}

// unwrapURLError drops *url.Error's wrapping, which would repeat the
// unredacted URL in the message.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactedURL logs as redact's result, worked out only when the record is
// written: a debug line that is off costs no URL parse per request.
type redactedURL string

func (u redactedURL) LogValue() slog.Value { return slog.StringValue(redact(string(u))) }

// redact strips the password from URLs like https://user:pass@host/ so they
// can be logged.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// Close is Shutdown without a deadline: it refuses new requests (ErrClosed),
// waits for the requests in flight (each bounded by Timeout) and closes idle
// connections.
func (c *Client) Close() {
	_ = c.Shutdown(context.Background())
}

// Shutdown is Close with a deadline: if ctx ends before the requests in
// flight finish, they are cancelled (their callers get Status 0 and the
// error) and Shutdown returns ctx.Err(). When Shutdown returns, no request
// of the client is running. It is safe to call more than once and
// concurrently.
func (c *Client) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	finished := make(chan struct{})
	go func() { c.inflight.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		c.cancel()
		<-finished
	}
	c.cancel()
	c.tr.CloseIdleConnections()
	return err
}
