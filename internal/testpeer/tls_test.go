package testpeer

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// A TLS Kamailio: its certificate verifies with TLSCA for 127.0.0.1 and
// the domain, and a client with no TLS listener that registers over TLS
// with ";alias" in its Via gets the requests for its Contact over its own
// connection. Without the option, no TLS.
func TestKamailioTLS(t *testing.T) {
	t.Parallel()
	plain := StartKamailio(t, KamailioOptions{})
	if plain.TLSAddr != "" || plain.TLSCA != "" {
		t.Errorf("TLS without the option: %q %q", plain.TLSAddr, plain.TLSCA)
	}

	k := StartKamailio(t, KamailioOptions{TLS: true})
	roots := x509.NewCertPool()
	pemData, err := os.ReadFile(k.TLSCA)
	if err != nil || !roots.AppendCertsFromPEM(pemData) {
		t.Fatalf("TLSCA %s: %v", k.TLSCA, err)
	}
	for _, name := range []string{"127.0.0.1", k.Domain} {
		c, err := tls.Dial("tcp4", k.TLSAddr, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Fatalf("TLS to %s as %s: %v", k.TLSAddr, name, err)
		}
		c.Close()
	}
	// Each Kamailio has a CA of its own: this one's does not vouch for
	// another's certificate (whose log gets the refused handshake).
	other := StartKamailio(t, KamailioOptions{TLS: true})
	if c, err := tls.Dial("tcp4", other.TLSAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Error("one Kamailio's CA verified another's certificate")
	}

	conn, err := tls.Dial("tcp4", k.TLSAddr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// The Contact's port is one where nothing listens.
	dead := FreeUDPPort(t)
	c := &sipConn{net: "tls", conn: viaAlias{conn}, r: bufio.NewReader(conn), local: fmt.Sprintf("127.0.0.1:%d", dead)}
	contact := fmt.Sprintf("<sip:alice-token@%s;transport=tls>", c.local)
	c.send(t, "OPTIONS", "sip:"+k.TLSAddr, "probe", k.Domain, "", "")
	if code, resp := c.recvResponse(t); code != 200 {
		t.Fatalf("OPTIONS over TLS: %d\n%s", code, resp)
	}
	c.send(t, "REGISTER", "sip:"+k.Domain, "alice", k.Domain, "Contact: "+contact+"\r\nExpires: 60\r\n", "")
	code, resp := c.recvResponse(t)
	if code != 401 {
		t.Fatalf("REGISTER: %d, want 401", code)
	}
	auth := digest(t, resp, "WWW-Authenticate", "alice", "alice-secret", "REGISTER", "sip:"+k.Domain)
	c.send(t, "REGISTER", "sip:"+k.Domain, "alice", k.Domain, "Contact: "+contact+"\r\nExpires: 60\r\nAuthorization: "+auth+"\r\n", "")
	if code, resp := c.recvResponse(t); code != 200 {
		t.Fatalf("REGISTER with credentials: %d\n%s", code, resp)
	}

	aor := "sip:alice@" + k.Domain
	c.send(t, "MESSAGE", aor, "alice", k.Domain, "Content-Type: text/plain\r\n", "hi me")
	if code, resp = c.recvResponse(t); code != 407 {
		t.Fatalf("MESSAGE: %d, want 407", code)
	}
	auth = digest(t, resp, "Proxy-Authenticate", "alice", "alice-secret", "MESSAGE", aor)
	c.send(t, "MESSAGE", aor, "alice", k.Domain, "Content-Type: text/plain\r\nProxy-Authorization: "+auth+"\r\n", "hi me")
	req := c.recv(t)
	if !strings.HasPrefix(req, "MESSAGE sip:alice-token@"+c.local+";transport=tls SIP/2.0\r\n") || !strings.HasSuffix(req, "\r\n\r\nhi me") {
		t.Fatalf("want the MESSAGE for the contact on this connection, got\n%s", req)
	}
	c.reply(t, req, "200 OK")
	if code, resp := c.recvResponse(t); code != 200 {
		t.Fatalf("MESSAGE: %d\n%s", code, resp)
	}
	noErrors(t, k)
}

// viaAlias adds ";alias" to the Via of what sipConn writes (RFC 5923), as
// rtcgate's sipua does over TLS.
type viaAlias struct{ net.Conn }

func (v viaAlias) Write(b []byte) (int, error) {
	msg := string(b)
	if i := strings.Index(msg, "\r\nVia: "); i >= 0 {
		if end := strings.Index(msg[i+2:], "\r\n"); end >= 0 {
			at := i + 2 + end
			msg = msg[:at] + ";alias" + msg[at:]
		}
	}
	if _, err := v.Conn.Write([]byte(msg)); err != nil {
		return 0, err
	}
	return len(b), nil
}
