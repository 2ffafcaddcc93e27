// Package restclient is the hardened outbound HTTP client that rtcgate uses
// to POST client actions and status events to an app backend's REST URL, as
// Web Call Server does with its REST hooks.
//
// The knobs follow OpenSIPS rest_client (connection_timeout, curl_timeout,
// max_async_transfers, ssl_verifypeer, ssl_verifyhost, ssl_capath) because
// operators already know them, with two deliberate differences: requests
// beyond max_async_transfers wait in a bounded FIFO instead of turning into
// blocking transfers (the caller's goroutine is usually a signalling loop that
// must not stall), and a full FIFO is reported to the caller as ErrQueueFull
// instead of being dropped silently.
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
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultConnectTimeout  = 2 * time.Second
	DefaultTimeout         = 5 * time.Second
	DefaultMaxIdlePerHost  = 16
	DefaultMaxAsync        = 32
	DefaultMaxQueued       = 10000
	DefaultMaxResponseBody = 1 << 20 // 1 MiB: hook replies are small JSON; more is a misbehaving backend
)

// Errors reported in Response.Err or returned by Async. They are sentinels so
// callers can tell "backend said no" from "we refused to send".
var (
	// ErrQueueFull means MaxAsync transfers are running and MaxQueued more are
	// waiting; the request was not accepted and done will not be called.
	ErrQueueFull = errors.New("restclient: async queue full")
	// ErrClosed means the client was closed; for Async it is returned
	// directly, for requests that were queued but abandoned by Shutdown it is
	// delivered to done so that no accepted request vanishes unnoticed.
	ErrClosed = errors.New("restclient: client closed")
	// ErrBodyTooLarge means the reply body exceeded MaxResponseBody; Status
	// and the first MaxResponseBody bytes are still reported.
	ErrBodyTooLarge = errors.New("restclient: response body too large")
	// ErrAuthConflict means a request asked for both Basic auth and signing,
	// which both need the Authorization header; we refuse rather than
	// silently dropping one of them.
	ErrAuthConflict = errors.New("restclient: BasicUser and Secret both need the Authorization header")
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
	MaxAsync       int           // concurrent asynchronous transfers = worker goroutines (max_async_transfers); default 32
	MaxQueued      int           // async requests waiting beyond MaxAsync before ErrQueueFull; default 10000
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
		MaxAsync:        DefaultMaxAsync,
		MaxQueued:       DefaultMaxQueued,
		MaxResponseBody: DefaultMaxResponseBody,
	}
}

// Request is one POST to a backend. Header is copied, never modified; the
// Content-Type, Authorization and signature headers set by the client
// override same-named entries in it.
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

type job struct {
	req  Request
	done func(Response)
}

// Client sends requests to backends. It is safe for concurrent use.
type Client struct {
	o    Options
	hc   *http.Client
	tr   *http.Transport
	log  *slog.Logger
	jobs chan job

	mu     sync.RWMutex // guards closed against Async sending on a closed channel
	closed bool

	busy       atomic.Int32 // workers currently running a transfer
	burst      atomic.Bool  // a "queueing" warning was logged and the queue has not drained since
	fullLogged atomic.Bool  // likewise for the "queue full" error
	aborted    atomic.Bool  // Shutdown's deadline passed: fail the rest of the queue
	baseCtx    context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	once       sync.Once
}

// New validates o, builds the transport and starts MaxAsync workers. Errors
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
	if o.MaxAsync <= 0 {
		o.MaxAsync = DefaultMaxAsync
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
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
	c := &Client{
		o: o, hc: hc, tr: tr, log: log,
		jobs:    make(chan job, o.MaxQueued),
		baseCtx: ctx, cancel: cancel,
	}
	c.wg.Add(o.MaxAsync)
	for range o.MaxAsync {
		go c.worker()
	}
	return c, nil
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
// is bounded by Options.Timeout and by ctx, whichever ends first.
func (c *Client) Do(ctx context.Context, r Request) Response {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		// After Close the idle pool is gone; a new request would leave
		// connection goroutines behind.
		return Response{Err: ErrClosed}
	}
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
	if r.BasicUser != "" && c.o.Secret != "" {
		return Response{Err: ErrAuthConflict}
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Response{Err: fmt.Errorf("restclient: bad request URL %q: %w", redact(r.URL), unwrapURLError(err))}
	}
	for k, v := range r.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.BasicUser != "" {
		req.SetBasicAuth(r.BasicUser, r.BasicPassword)
	}
	if c.o.Secret != "" {
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

// Async queues r and returns at once; done is called exactly once, on a
// worker goroutine, with the outcome (it should not block for long, since it
// holds one of the MaxAsync transfer slots). At most MaxAsync transfers run
// at once; later requests wait in FIFO order, up to MaxQueued of them. When
// the queue is full Async returns ErrQueueFull and done is never called;
// after Close it returns ErrClosed. done may be nil.
func (c *Client) Async(r Request, done func(Response)) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	select {
	case c.jobs <- job{req: r, done: done}:
	default:
		// The caller gets the error for every request; the log line is once
		// per burst so an overload does not also become a log storm.
		if c.fullLogged.CompareAndSwap(false, true) {
			c.log.Error("restclient: async queue full, rejecting requests", "url", redact(r.URL),
				"max_async", c.o.MaxAsync, "max_queued", c.o.MaxQueued)
		}
		return ErrQueueFull
	}
	// Warn once per burst, not per request: under a slow backend a warning
	// per event would flood the log exactly when it is needed most.
	if int(c.busy.Load()) >= c.o.MaxAsync && c.burst.CompareAndSwap(false, true) {
		c.log.Warn("restclient: all async transfers busy, queueing requests",
			"max_async", c.o.MaxAsync, "queued", len(c.jobs), "max_queued", c.o.MaxQueued)
	}
	return nil
}

func (c *Client) worker() {
	defer c.wg.Done()
	for j := range c.jobs {
		var resp Response
		if c.aborted.Load() {
			resp = Response{Err: ErrClosed}
		} else {
			c.busy.Add(1)
			resp = c.do(c.baseCtx, j.req)
			c.busy.Add(-1)
		}
		if len(c.jobs) == 0 {
			// Queue drained: the next backlog is a new burst.
			c.burst.Store(false)
			c.fullLogged.Store(false)
		}
		if j.done != nil {
			j.done(resp)
		}
	}
}

// Close is Shutdown without a deadline: it stops accepting requests, sends
// everything already queued, waits for the workers to exit and closes idle
// connections. Queued requests are sent rather than dropped because they are
// call events the backend relies on; each is still bounded by Timeout.
func (c *Client) Close() {
	_ = c.Shutdown(context.Background())
}

// Shutdown is Close with a deadline: if ctx ends before the queue drains,
// in-flight transfers are cancelled and every remaining queued request's done
// is called with ErrClosed (never silently dropped). It returns ctx.Err() in
// that case. When Shutdown returns, no goroutine of the client is left. It is
// safe to call more than once and concurrently.
func (c *Client) Shutdown(ctx context.Context) error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		close(c.jobs)
		c.mu.Unlock()
	})
	finished := make(chan struct{})
	go func() { c.wg.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		c.aborted.Store(true)
		c.cancel()
		<-finished
	}
	c.cancel()
	c.tr.CloseIdleConnections()
	return err
}
