package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// TestSIPClientDisconnect: a registered Web SDK session in Chromium that
// ends — session.disconnect(), or the page closed (close 1001) — ends at
// once in rtcgate, although client-idle-timeout is a minute: within 2 s of
// the end the backend has RegistrationStatusEvent UNREGISTERED and then
// ConnectionStatusEvent DISCONNECTED "closed by client", and Kamailio's
// location table no longer holds the contact: a call to the user is
// refused by Kamailio itself and no INVITE reaches rtcgate.
func TestSIPClientDisconnect(t *testing.T) {
	chromium := needTool(t, "chromium", "chromium")
	node := needTool(t, "node", "nodejs")
	npm := needTool(t, "npm", "npm")
	npmDeps(t, npm)

	e := newSIPEnv(t, nil, "--client-idle-timeout", "60s")
	host, port := splitHostPort(t, e.k.Addr)
	addr := e.r.addr(t, "listen-client")
	script := filepath.Join(browserDir, "disconnect.mjs")

	for _, tc := range []struct{ end, user string }{
		{"disconnect", "alice"},
		{"close", "bob"},
	} {
		t.Run(tc.end, func(t *testing.T) {
			cfg, _ := json.Marshal(map[string]any{
				"appKey": "echoKey",
				"end":    tc.end,
				"sipOptions": map[string]any{
					"login": tc.user, "authenticationName": tc.user, "password": testpeer.DefaultUsers[tc.user],
					"domain": e.k.Domain, "outboundProxy": host, "port": port, "registerRequired": true,
				},
			})
			stdout, stderr, code := runIn(t, "", 90*time.Second, []string{"CHROMIUM=" + chromium, "E2E_CALL=" + string(cfg)}, node, script, addr)
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("%s\ndisconnect.mjs exit %d\nstdout:\n%s\nstderr:\n%s", fmt.Sprintf(format, args...), code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			var out struct {
				OK                   bool
				Error, End, Status   string
				Disconnect, Chromium string
				EndAt                int64
				PageClosed           bool
				SessionStatuses      []string
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
				fail("disconnect.mjs printed no JSON outcome: %v", err)
			}
			if code != 0 || !out.OK {
				fail("the Web SDK session in Chromium failed: %s", out.Error)
			}
			if out.End != tc.end || out.Status != "REGISTERED" || out.EndAt == 0 ||
				(tc.end == "disconnect" && out.Disconnect != "DISCONNECTED") || (tc.end == "close" && !out.PageClosed) {
				fail("want REGISTERED, then the session ended by %s; got %+v", tc.end, out)
			}
			endAt := time.UnixMilli(out.EndAt)

			// The session is the one that connected as tc.user.
			var id string
			e.b.waitUntil(t, "connect from "+tc.user, func(hs []hook) bool {
				for _, h := range hs {
					if h.Method == "connect" && h.Body["sipLogin"] == tc.user {
						id, _ = h.Body["sessionId"].(string)
					}
				}
				return id != ""
			})
			e.b.waitFor(t, id, "connect", "ConnectionStatusEvent:ESTABLISHED", "RegistrationStatusEvent:REGISTERED",
				"RegistrationStatusEvent:UNREGISTERED", "ConnectionStatusEvent:DISCONNECTED")
			var latest time.Duration
			e.b.mu.Lock()
			for _, h := range e.b.hooks {
				if h.Body["sessionId"] != id {
					continue
				}
				switch st := h.Body["status"]; {
				case h.Method == "RegistrationStatusEvent" && st == "UNREGISTERED",
					h.Method == "ConnectionStatusEvent" && st == "DISCONNECTED":
					after := h.At.Sub(endAt)
					latest = max(latest, after)
					if after > 2*time.Second {
						t.Errorf("%s %s came %v after the end, want within 2s", h.Method, st, after)
					}
					if st == "DISCONNECTED" && h.Body["info"] != "closed by client" {
						t.Errorf("ConnectionStatusEvent DISCONNECTED info %q, want %q", h.Body["info"], "closed by client")
					}
				}
			}
			e.b.mu.Unlock()

			// Kamailio no longer has the contact: it answers a call to the
			// user itself (lookup failed), and rtcgate hears of no call.
			uac := testpeer.StartSipp(t, "uac_call_rejected", "-s", tc.user, "-m", "1", e.k.Addr)
			if err := uac.Wait(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			final := finalResponse(uac.Logs())
			if !regexp.MustCompile(`^SIP/2\.0 (404|480) `).MatchString(final) || !strings.Contains(final, "Server: rtcgate-testpeer-kamailio") {
				t.Fatalf("a call to %s after the end got, want 404 or 480 from Kamailio itself:\n%s", tc.user, final)
			}
			e.b.mu.Lock()
			for _, h := range e.b.hooks {
				if h.Method == "OnCallEvent" || h.Method == "CallStatusEvent" {
					t.Errorf("rtcgate got a call after the session ended: %s %v", h.Method, h.Body)
				}
			}
			e.b.mu.Unlock()
			t.Logf("Chromium %s, %s: UNREGISTERED and DISCONNECTED within %v; then a call got %s",
				out.Chromium, tc.end, latest.Round(time.Millisecond), strings.SplitN(final, "\n", 2)[0])
		})
	}
}

// finalResponse is the last SIP response sipp's message trace shows it
// received, as received.
func finalResponse(logs string) string {
	var last string
	for _, m := range strings.Split(logs, "message received")[1:] {
		if i := strings.Index(m, "SIP/2.0 "); i >= 0 {
			msg := m[i:]
			if j := strings.Index(msg, "\n---"); j >= 0 {
				msg = msg[:j]
			}
			last = strings.TrimSpace(msg)
		}
	}
	return last
}
