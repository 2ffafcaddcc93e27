package sipua

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/emiago/sipgo/sip"
)

// clientTLS is the configuration of the TLS connections the Stack opens
// to outbound proxies. ServerName stays empty: sipgo sets it per
// connection to the host the request goes to.
func clientTLS(cfg Config) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSSkipVerify {
		c.InsecureSkipVerify = true
		return c, nil
	}
	if cfg.TLSCAFile == "" {
		// nil RootCAs: the system's roots.
		return c, nil
	}
	pem, err := os.ReadFile(cfg.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("sipua: TLS CA file: %w", err)
	}
	// The private CA is trusted besides the public ones, not instead: a
	// gateway may serve tenants of both kinds of proxy.
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("sipua: TLS CA file %s: no PEM certificate in it", cfg.TLSCAFile)
	}
	c.RootCAs = roots
	return c, nil
}

// keepFlows keeps alive the TLS connections Accounts registered or
// placed calls over until the Stack closes. A proxy reaches a TLS Account only through its
// connection (see the package doc), so one closed as idle would make the
// Account unreachable until its next refresh: every TLSKeepalive each
// connection gets a CRLF keep-alive (RFC 5626 4.4.1; Kamailio answers it
// and counts it as traffic), and the Accounts whose connection is gone
// re-register at once, which opens a new one.
func (s *Stack) keepFlows() {
	t := time.NewTicker(s.cfg.TLSKeepalive)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.pingFlows()
	}
}

func (s *Stack) pingFlows() {
	s.mu.Lock()
	accts := make([]*Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		if a.tp == "TLS" {
			accts = append(accts, a)
		}
	}
	s.mu.Unlock()
	alive := map[string]bool{} // one ping per connection, however many Accounts share it
	for _, a := range accts {
		a.mu.Lock()
		flow := a.flow
		a.mu.Unlock()
		if flow == "" {
			continue
		}
		ok, pinged := alive[flow]
		if !pinged {
			ok = s.ping(flow)
			alive[flow] = ok
		}
		if !ok {
			a.flowLost(flow)
		}
	}
}

// ping writes a CRLF keep-alive on the TLS connection to raddr; false if
// there is none (sipgo drops a connection from its pool once closed).
func (s *Stack) ping(raddr string) bool {
	pool := s.ua.TransportLayer().Pool("tls")
	if pool == nil {
		return false
	}
	c := pool.Get(raddr)
	if c == nil {
		return false
	}
	defer c.TryClose() // Get took a reference
	w, ok := c.(io.Writer)
	if !ok {
		return true // cannot ping it; it is there
	}
	// One Write is one TLS record: it cannot land inside a message that
	// another goroutine writes.
	if _, err := w.Write([]byte("\r\n\r\n")); err != nil {
		s.log.Debug("keep-alive failed", "raddr", raddr, "err", err)
		return false
	}
	return true
}

// noteFlow records the TLS connection res came over as the Account's, to
// be kept alive.
func (a *Account) noteFlow(res *sip.Response) {
	if a.tp != "TLS" || res.Source() == "" {
		return
	}
	a.mu.Lock()
	a.flow = res.Source()
	a.mu.Unlock()
}

// flowLost forgets the Account's connection, if it is still flow ("":
// whichever it is, for an unREGISTER), and wakes a registering Account's
// loop to register again, which opens a new one.
func (a *Account) flowLost(flow string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.flow == "" || (flow != "" && a.flow != flow) {
		return
	}
	a.flow = ""
	if flow == "" || !a.cfg.Register {
		return
	}
	a.log.Info("TLS connection to the proxy lost; registering again", "raddr", flow)
	select {
	case a.renew <- struct{}{}:
	default:
	}
}
