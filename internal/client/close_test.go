package client

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rtcgate/rtcgate/internal/testutil"
)

// endApp records why sessions ended.
type endApp struct {
	BuiltIn
	ended chan string
}

func (a endApp) Disconnected(_ Session, reason string) { a.ended <- reason }

func newEndApp() endApp { return endApp{ended: make(chan string, 8)} }

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// connected dials the hub, sends connection and returns the client, its
// session and getUserData.
func connected(t *testing.T, h *Hub, addr string) (*websocket.Conn, *session, map[string]any) {
	t.Helper()
	c := dial(t, "ws://"+addr+"/", nil)
	sendFrame(t, c, "connection", map[string]any{"appKey": "a"})
	ud := next(t, c, "getUserData")
	s := h.session(ud["sessionId"].(string))
	if s == nil {
		t.Fatal("the hub does not know the session")
	}
	return c, s, ud
}

// resumeURL is the URL a client resumes its session with, saying it has
// frame 1 (getUserData): a frame written but not yet counted delivered
// when the resume comes would otherwise be sent again, as it may be.
func resumeURL(addr string, ud map[string]any) string {
	return "ws://" + addr + "/?sessionId=" + ud["sessionId"].(string) + "&authToken=" + ud["authToken"].(string) + "&ack=1"
}

// stillAlive checks that the session outlived its WebSocket: it is not
// done, the app was not told, and a resume with its credentials is served.
func stillAlive(t *testing.T, h *Hub, s *session, app endApp, addr string, ud map[string]any) {
	t.Helper()
	waitFor(t, "the session to detach", 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.transport == nil
	})
	back := dial(t, resumeURL(addr, ud), nil)
	sendFrame(t, back, "ping", nil)
	next(t, back, "pong")
	notEnded(t, s, app)
	if h.Len() != 1 || h.session(s.id) != s {
		t.Fatalf("sessions = %d, want the one resumed", h.Len())
	}
}

// TestCloseFrameEndsSession: a close frame from the client, whatever its
// code (1000 from session.disconnect() of a browser that gives one, 1001
// from a closing tab, none at all: 1005), ends the session at once with
// "closed by client", long before client-idle-timeout.
func TestCloseFrameEndsSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		code websocket.StatusCode
	}{
		{"1000 normal", websocket.StatusNormalClosure},
		{"1001 going away", websocket.StatusGoingAway},
		{"1005 no status", websocket.StatusNoStatusRcvd}, // an empty close frame
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newEndApp()
			h, addr := wsServer(t, Options{IdleTimeout: time.Hour}, app)
			c, s, _ := connected(t, h, addr)
			start := time.Now()
			// Close waits for the server's echo; the code it sends is tc.code.
			if err := c.Close(tc.code, ""); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the session outlived the client's close frame")
			}
			select {
			case reason := <-app.ended:
				if reason != "closed by client" {
					t.Fatalf("Disconnected reason %q, want %q", reason, "closed by client")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the app was not told the session ended")
			}
			if h.Len() != 0 || h.session(s.id) != nil {
				t.Fatalf("sessions = %d after the close", h.Len())
			}
			if v := counterValue(t, h.closedTotal.WithLabelValues("closed by client")); v != 1 {
				t.Fatalf(`rtcgate_client_sessions_closed_total{reason="closed by client"} = %v`, v)
			}
			t.Logf("ended %v after the close frame", time.Since(start))
		})
	}
}

// TestLostTransportKeepsSession: a TCP connection dropped without a close
// frame leaves the session waiting for a resume.
func TestLostTransportKeepsSession(t *testing.T) {
	app := newEndApp()
	h, addr := wsServer(t, Options{IdleTimeout: time.Hour}, app)
	c, s, ud := connected(t, h, addr)
	c.CloseNow() // FIN, no close frame
	stillAlive(t, h, s, app, addr, ud)
}

// TestServerCloseEchoKeepsSession: the client's close frame that only
// answers one of rtcgate's does not end the session — not after a
// keep-alive timeout, not on the connection a resume took over.
func TestServerCloseEchoKeepsSession(t *testing.T) {
	t.Run("keep-alive timeout", func(t *testing.T) {
		app := newEndApp()
		h, addr := wsServer(t, Options{IdleTimeout: time.Hour, Keepalive: 50 * time.Millisecond}, app)
		c, s, ud := connected(t, h, addr)
		// Reading without answering pings; the library echoes the close.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				if websocket.CloseStatus(err) != websocket.StatusGoingAway {
					t.Fatalf("silent client: %v, want close 1001", err)
				}
				break
			}
		}
		stillAlive(t, h, s, app, addr, ud)
	})
	t.Run("resumed elsewhere", func(t *testing.T) {
		app := newEndApp()
		h, addr := wsServer(t, Options{IdleTimeout: time.Hour}, app)
		c, s, ud := connected(t, h, addr)
		s.mu.Lock()
		old := s.transport.(*wsConn)
		s.mu.Unlock()
		back := dial(t, resumeURL(addr, ud), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != closeResumedElsewhere {
			t.Fatalf("the old connection: %v, want close %d", err, closeResumedElsewhere)
		}
		// The client echoed the close; the server is done with the old
		// connection once it released it.
		waitFor(t, "the old connection to be released", 5*time.Second, old.released.Load)
		sendFrame(t, back, "ping", nil)
		next(t, back, "pong")
		notEnded(t, s, app)
	})
}

// TestInvalidUTF8ClosesWith1007: a text frame that is not UTF-8 closes the
// WebSocket with 1007; it is counted, not logged, and the session waits
// for a resume as after any transport the server dropped.
func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	var log testutil.SyncBuffer
	app := newEndApp()
	h, addr := wsServer(t, Options{IdleTimeout: time.Hour,
		Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}, app)
	c, s, ud := connected(t, h, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := []byte(`{"message":"sendData","data":[{"operationId":"op","payload":"` + "\xff\xfe" + `"}]}`)
	if err := c.Write(ctx, websocket.MessageText, bad); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("after invalid UTF-8: frame %q, err %v; want close 1007", b, err)
	}
	if v := counterValue(t, h.invalidUTF8); v != 1 {
		t.Fatalf("rtcgate_client_frames_invalid_utf8_total = %v, want 1", v)
	}
	stillAlive(t, h, s, app, addr, ud)
	if strings.Contains(strings.ToLower(log.String()), "utf") {
		t.Fatalf("the frame was logged:\n%s", log.String())
	}
}

// notEnded fails the test if the session ended, or the app was told so.
func notEnded(t *testing.T, s *session, app endApp) {
	t.Helper()
	select {
	case <-s.Done():
		t.Fatal("the session ended")
	case reason := <-app.ended:
		t.Fatalf("the session ended: %q", reason)
	default:
	}
}
