package testpeer

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestKamailioWebSocket: with WebSocket and Rtpengine set, Kamailio starts
// (the rtpengine module only warns about an ng relay that does not answer),
// upgrades ws://WSAddr/ with the "sip" subprotocol and answers OPTIONS
// sent over it.
func TestKamailioWebSocket(t *testing.T) {
	k := StartKamailio(t, KamailioOptions{WebSocket: true, Rtpengine: "udp:127.0.0.1:9"})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+k.WSAddr+"/", &websocket.DialOptions{Subprotocols: []string{"sip"}})
	if err != nil {
		t.Fatalf("WebSocket to %s: %v (%v)", k.WSAddr, err, resp)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "sip" {
		t.Fatalf("upgrade: %d %q", resp.StatusCode, c.Subprotocol())
	}
	msg := "OPTIONS sip:" + k.Domain + " SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws1;rport\r\n" +
		"From: <sip:probe@" + k.Domain + ">;tag=ws1\r\nTo: <sip:" + k.Domain + ">\r\nCall-ID: ws-options-1\r\nCSeq: 1 OPTIONS\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	_, reply, err := c.Read(rctx)
	if err != nil {
		t.Fatalf("no reply over WebSocket: %v", err)
	}
	if !strings.HasPrefix(string(reply), "SIP/2.0 200 OK") {
		t.Fatalf("OPTIONS over WebSocket answered %q", reply)
	}
}
