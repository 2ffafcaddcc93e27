package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// phoneOutcome is what browser/phone.mjs reports of the phone page.
type phoneOutcome struct {
	OK                 bool
	Error, Step, Mode  string
	Steps, Screenshots []string
	CSP, Chromium      string
	Dtmf, IncomingFrom string
	AlertShown         bool
	Alert              string
	BadInput           []struct {
		Name, Alert string
		Invalid     []string
	}
	Events []struct{ Kind, Status, Text string }
	Stats  struct{ Sent, Received int }
	// RemoteLevel is the far end's audio level the page showed.
	RemoteLevel float64
	Console     []struct{ Type, Line, Step string }
	// Stored is what the page kept in localStorage; Reloaded the fields
	// when it was opened again with ?callee=carol&sipPassword=….
	Stored   string
	Reloaded struct{ Login, Password, Callee, Transport string }
}

// TestPhonePage drives the phone page rtcgate serves at "/" (client-demo)
// in Debian's headless Chromium as a person would, by its labels: bad
// input first (each must bring a message on the page), then Connect with
// a Kamailio account, Call "echo" (a sipp UAS echoing RTP), audio both
// ways in the page's getStats figures, screenshots at 1280x800 and
// 390x844, the keypad (DTMF reaches the backend), Hold and Unhold, a
// message to oneself and data, Hang up; over WebSocket an incoming call
// from sipp is answered too. The same over the HTTP fallback. Any console
// error, page error or failed request fails the test.
//
// The screenshots go to $RTCGATE_TEST_OUTPUT, else a new folder under the
// system's temporary folder; the test logs their paths.
func TestPhonePage(t *testing.T) {
	chromium, node, e := browserCallEnv(t)
	addr := e.r.addr(t, "listen-client")
	host, port := splitHostPort(t, e.k.Addr)
	outDir := testOutputDir(t, "phone")

	// The page and its files, with the headers a browser relies on.
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: %d, %v", res.StatusCode, res.Header)
	}

	for _, tc := range []struct {
		mode, user string
		incoming   bool
	}{{"ws", "alice", true}, {"http", "bob", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg, _ := json.Marshal(map[string]any{
				"mode": tc.mode, "out": outDir, "appKey": "echoKey", "callee": "echo", "incoming": tc.incoming,
				"sip": map[string]any{"login": tc.user, "password": testpeer.DefaultUsers[tc.user], "domain": e.k.Domain,
					"proxy": host, "port": port},
			})
			out, logs := runPhone(t, node, []string{"CHROMIUM=" + chromium, "E2E_PHONE=" + string(cfg)}, addr, func() {
				// The far end calls the user: sipp through Kamailio,
				// hanging up 2 s after the answer.
				testpeer.StartSipp(t, "uac_call", "-s", tc.user, "-m", "1", "-d", "2000", e.k.Addr)
			})
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("%s\nphone.mjs: %s\nrtcgate log:\n%s", fmt.Sprintf(format, args...), logs, e.r.Logs())
			}
			if !out.OK {
				fail("the phone page over %s failed at step %q: %s (page alert %q)", tc.mode, out.Step, out.Error, out.Alert)
			}
			for _, c := range out.Console {
				// The page must not throw or log errors, and every
				// request it makes must succeed; but Disconnect over
				// the fallback aborts the long-poll sync in flight.
				aborted := c.Type == "requestfailed" && c.Step == "disconnect" && strings.Contains(c.Line, "/http: net::ERR_ABORTED")
				if (c.Type == "error" || c.Type == "pageerror" || c.Type == "requestfailed" || c.Type == "response") && !aborted {
					fail("the page's console at step %s: %s", c.Step, c.Line)
				}
			}
			if out.AlertShown {
				fail("the page ends showing an alert: %q", out.Alert)
			}

			wantBad := map[string][2]string{
				"server":        {"Server URL", "server"},
				"domain":        {"Domain", "sipDomain"},
				"port":          {"Port", "sipPort"},
				"callee":        {"Number or SIP user", "callee"},
				"callee-spaces": {"has spaces", "callee"},
				"message":       {"Message", "msgBody"},
				"appKey":        {"unknown appKey", ""},
			}
			for _, b := range out.BadInput {
				w, ok := wantBad[b.Name]
				if !ok {
					continue
				}
				delete(wantBad, b.Name)
				if !strings.Contains(b.Alert, w[0]) || (w[1] != "" && !containsStr(b.Invalid, w[1])) {
					fail("bad input %s: the page said %q and marked %v; want a message naming %q and %s marked", b.Name, b.Alert, b.Invalid, w[0], w[1])
				}
			}
			if len(wantBad) > 0 {
				fail("no message on the page for bad input %v", wantBad)
			}

			// The events the page showed, in the order they came.
			index := func(kind, status string, from int) int {
				for i := from; i < len(out.Events); i++ {
					if out.Events[i].Kind == kind && out.Events[i].Status == status {
						return i
					}
				}
				return -1
			}
			est := index("call", "ESTABLISHED", 0)
			fin := index("call", "FINISH", est+1)
			if index("session", "ESTABLISHED", 0) < 0 || index("registration", "REGISTERED", 0) < 0 || est < 0 || fin < 0 {
				fail("the page's events lack session ESTABLISHED, registration REGISTERED, or call ESTABLISHED then FINISH: %+v", out.Events)
			}
			for _, ks := range [][2]string{{"message", "ACCEPTED"}, {"message", "RECEIVED"}, {"data", "ACCEPTED"}, {"call", "HOLD"}} {
				if index(ks[0], ks[1], 0) < 0 {
					fail("the page showed no %s %s: %+v", ks[0], ks[1], out.Events)
				}
			}
			if out.Stats.Sent < 25 || out.Stats.Received < 25 || out.RemoteLevel <= 0 {
				fail("audio in the page's getStats: %d packets sent, %d received, far-end level %v; want 25 each way and a level", out.Stats.Sent, out.Stats.Received, out.RemoteLevel)
			}
			if out.Dtmf != "12#4" {
				fail("the page shows DTMF %q sent, want 12#4 (three clicks and a key)", out.Dtmf)
			}
			if tc.incoming && (!strings.Contains(out.IncomingFrom, "sipp") || index("call", "INCOMING", fin) < 0 || index("call", "ESTABLISHED", fin) < 0) {
				fail("the incoming call: from %q, events %+v", out.IncomingFrom, out.Events)
			}

			// What the page did reached the backend: the keypad's digits
			// as sendDtmf, the message and the data.
			e.b.waitUntil(t, "sendDtmf 1, 2, #, 4, sendMessage and OnDataEvent from "+tc.user, func(hs []hook) bool {
				var digits string
				var msg, data bool
				for _, h := range hs {
					switch h.Method {
					case "sendDtmf":
						if d, ok := h.Body["dtmf"].(string); ok && h.Body["callId"] != nil {
							digits += d
						}
					case "sendMessage":
						msg = msg || (h.Body["body"] == "hello from the phone" && h.Body["to"] == tc.user)
					case "OnDataEvent":
						p, _ := h.Body["payload"].(map[string]any)
						data = data || p["hello"] == "rtcgate"
					}
				}
				return strings.Contains(digits, "12#4") && msg && data
			})

			// Remembered: the fields, never the password (nor from the URL).
			if strings.Contains(out.Stored, testpeer.DefaultUsers[tc.user]) || !strings.Contains(out.Stored, `"sipLogin":"`+tc.user+`"`) {
				fail("localStorage holds %q: want the login and never the password", out.Stored)
			}
			if r := out.Reloaded; r.Login != tc.user || r.Password != "" || r.Callee != "carol" || r.Transport != tc.mode {
				fail("opened again with ?callee=carol&sipPassword=…, the page shows %+v: want the remembered login and transport, callee carol, no password", r)
			}

			for _, p := range out.Screenshots {
				if st, err := os.Stat(p); err != nil || st.Size() == 0 {
					fail("screenshot %s: %v", p, err)
				}
				t.Logf("screenshot: %s", p)
			}
			t.Logf("Chromium %s, phone page over %s: %d events, audio %d packets out / %d back, DTMF %s; steps: %s",
				out.Chromium, tc.mode, len(out.Events), out.Stats.Sent, out.Stats.Received, out.Dtmf, strings.Join(out.Steps, ", "))
		})
	}
}

// runPhone runs browser/phone.mjs against addr and returns its outcome and
// its stderr. When the page asks for an incoming call ({"await":
// "incoming"}), incoming is run and the page is told to go on.
func runPhone(t *testing.T, node string, env []string, addr string, incoming func()) (phoneOutcome, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(browserDir, "phone.mjs"), addr)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"await":"incoming"`) {
			incoming()
			io.WriteString(stdin, "go\n")
			continue
		}
		last = line
	}
	stdin.Close()
	waitErr := cmd.Wait()
	var out phoneOutcome
	if err := json.Unmarshal([]byte(last), &out); err != nil {
		t.Fatalf("phone.mjs printed no outcome (%v): %q\nstderr:\n%s", waitErr, last, stderr.String())
	}
	if waitErr != nil && out.OK {
		t.Fatalf("phone.mjs: %v with an outcome of success\nstderr:\n%s", waitErr, stderr.String())
	}
	return out, stderr.String()
}

// testOutputDir is a folder for what a test leaves to be looked at
// (screenshots): $RTCGATE_TEST_OUTPUT/name, else a new folder under the
// system's temporary folder. It is kept after the test.
func testOutputDir(t *testing.T, name string) string {
	t.Helper()
	var dir string
	var err error
	if base := os.Getenv("RTCGATE_TEST_OUTPUT"); base != "" {
		dir = filepath.Join(base, name)
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "rtcgate-"+name+"-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("test output: %s", dir)
	return dir
}
