package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// newSIPTLSEnv is newSIPEnv with a Kamailio that also listens on TLS, its
// certificate signed by a private CA, which rtcgate trusts (--sip-tls-ca)
// if trust.
func newSIPTLSEnv(t *testing.T, trust bool) *sipEnv {
	t.Helper()
	k := testpeer.StartKamailio(t, testpeer.KamailioOptions{TLS: true})
	var extra []string
	if trust {
		extra = []string{"--sip-tls-ca", k.TLSCA}
	}
	return startSIPEnv(t, k, extra...)
}

// connectTLS opens a session for user with sipTransport TLS to Kamailio's
// TLS listener and waits for getUserData.
func (e *sipEnv) connectTLS(t *testing.T, user, password string) *sdkClient {
	t.Helper()
	return e.connectVia(t, e.k.TLSAddr, "TLS", user, password, true)
}

// TestSIPOverTLS: with --sip-tls-ca naming Kamailio's private CA, a client
// with sipTransport TLS registers and sends a MESSAGE to itself, which
// Kamailio delivers over rtcgate's TLS connection (nothing listens for TLS
// at rtcgate's Contact). Without the CA (the system's roots alone) the
// registration fails on the certificate and the session stays usable.
func TestSIPOverTLS(t *testing.T) {
	t.Run("trusted CA", func(t *testing.T) {
		e := newSIPTLSEnv(t, true)
		c := e.connectTLS(t, "alice", testpeer.DefaultUsers["alice"])
		c.expect(t, "registered", nil)
		flow := []string{"connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED"}
		e.b.waitFor(t, c.id, flow...)
		if !strings.Contains(e.k.Logs(), "req REGISTER sip:"+e.k.Domain+" from sip:alice@"+e.k.Domain) ||
			!strings.Contains(e.k.Logs(), "/tls) cid=") {
			t.Error("Kamailio logged no REGISTER over TLS")
		}

		c.send(t, "sendMessage", map[string]any{"id": "m1", "to": "alice", "body": "hello over TLS", "contentType": "text/plain"})
		in := c.expect(t, "OnMessageEvent", nil).obj()
		if in["body"] != "hello over TLS" || in["from"] != "alice" || in["status"] != "RECEIVED" {
			t.Errorf("OnMessageEvent = %v", in)
		}
		c.expect(t, "MessageStatusEvent", status("ACCEPTED"))
		flow = append(flow, "sendMessage", "MessageStatusEvent:SENT", "OnMessageEvent", "MessageStatusEvent:ACCEPTED")
		e.b.waitFor(t, c.id, flow...)
	})

	t.Run("unknown CA", func(t *testing.T) {
		e := newSIPTLSEnv(t, false)
		c := e.connectTLS(t, "alice", testpeer.DefaultUsers["alice"])
		f := c.expect(t, "fail", func(m map[string]any) bool { return m["apiMethod"] == "RegistrationStatusEvent" }).obj()
		if !strings.Contains(fmt.Sprint(f["info"]), "certificate") {
			t.Errorf("fail = %v, want its info to name the certificate", f)
		}
		e.b.waitFor(t, c.id, "connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:FAILED")
		if strings.Contains(e.k.Logs(), "req REGISTER") {
			t.Error("a REGISTER reached Kamailio over an unverified connection")
		}
		c.send(t, "sendData", map[string]any{"operationId": "op", "payload": map[string]any{}})
		c.expect(t, "DataStatusEvent", status("ACCEPTED"))
	})
}
