package testpeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// tlsFiles are the PEM files a TLS Kamailio is given, all in its Dir.
type tlsFiles struct {
	ca, cert, key, cfg string
}

// writeTLSFiles makes a private CA and, signed by it, a server certificate
// for 127.0.0.1, localhost and domain, and writes them with Kamailio's
// tls.cfg into dir. Each Kamailio gets a CA of its own, so a client that
// trusts one Kamailio's CA does not trust another's certificate.
func writeTLSFiles(dir, domain string) (tlsFiles, error) {
	f := tlsFiles{
		ca:   filepath.Join(dir, "tls-ca.pem"),
		cert: filepath.Join(dir, "tls-cert.pem"),
		key:  filepath.Join(dir, "tls-key.pem"),
		cfg:  filepath.Join(dir, "tls.cfg"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	// Backdated: a clock a little behind this one still accepts them.
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "rtcgate testpeer CA", Organization: []string{"rtcgate testpeer"}},
		NotBefore:             now,
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: domain, Organization: []string{"rtcgate testpeer"}},
		NotBefore:    now,
		NotAfter:     now.Add(48 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Kamailio also uses it as a client certificate when it connects.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{domain, "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return f, err
	}
	// Kamailio loads the configured certificate file as a chain: the CA
	// goes after the leaf, as a server that is no root itself sends it.
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	// Kamailio checks neither side's peer certificate: the tests are
	// about rtcgate checking Kamailio's.
	cfg := fmt.Sprintf(`# Written by testpeer for Kamailio's tls module.
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = %s
certificate = %s

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
`, f.key, f.cert)
	for _, w := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{f.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644},
		{f.cert, chain, 0o644},
		{f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{f.cfg, []byte(cfg), 0o644},
	} {
		if err := os.WriteFile(w.path, w.data, w.mode); err != nil {
			return f, err
		}
	}
	return f, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n.Add(n, big.NewInt(1))
}

// waitTLS completes one TLS handshake with addr, verifying its certificate
// against the CA in caFile for 127.0.0.1; Kamailio's TCP worker does the
// handshake, so this also says that the tls module works.
func waitTLS(addr, caFile string, p *proc, limit time.Duration) error {
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		return errors.New("no certificate in " + caFile)
	}
	deadline := time.Now().Add(limit)
	var lastErr error
	for i := 0; i < 50 && time.Now().Before(deadline); i++ {
		if p.done() {
			return fmt.Errorf("exited (%v) before the TLS handshake", p.err)
		}
		d := &net.Dialer{Timeout: time.Until(deadline)}
		c, err := tls.DialWithDialer(d, "tcp4", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err == nil {
			c.Close()
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no TLS handshake with %s within %v: %v", addr, limit, lastErr)
}
