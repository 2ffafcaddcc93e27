package e2e

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs `make demo`'s program (examples/demo) as a newcomer would,
// on free ports: it must start rtcgate, the sample backend, Kamailio and a
// sipp echo, and print a URL of the phone page with the fields filled in
// and the password to type. With what it printed, a client registers alice
// and calls echo: the call is ESTABLISHED and RTP comes back through
// rtcgate; the backend's hooks show in the demo's output. Ctrl-C (SIGINT)
// stops everything and removes the demo's folder.
func TestDemo(t *testing.T) {
	needTool(t, "sipp", "sip-tester")
	dir := t.TempDir()
	for name, pkg := range map[string]string{"demo": "../examples/demo", "backend": "../examples/backend"} {
		if _, stderr, code := runCmd(t, 2*time.Minute, "go", "build", "-race", "-o", filepath.Join(dir, name), pkg); code != 0 {
			t.Fatalf("building %s: %s", pkg, stderr)
		}
	}
	cmd := exec.Command(filepath.Join(dir, "demo"), append([]string{"-rtcgate", binary, "-backend", filepath.Join(dir, "backend"),
		"-backend-listen", "127.0.0.1:0", "--"}, ephemeral...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var output bytes.Buffer
	lines := make(chan string, 1024)
	exited := make(chan struct{}) // closed once the demo exited, with waitErr
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			output.WriteString(sc.Text() + "\n")
			mu.Unlock()
			select {
			case lines <- sc.Text():
			default: // the test reads only the banner
			}
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	printed := func() string {
		mu.Lock()
		defer mu.Unlock()
		return output.String()
	}
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("demo's output:\n%s", printed())
		}
	})

	// The banner: where to go, what to type, where its files are.
	var open, password, files string
	deadline := time.After(60 * time.Second)
	for open == "" || password == "" || files == "" {
		select {
		case l := <-lines:
			if m := regexp.MustCompile(`^\s+Open\s+(http://\S+)$`).FindStringSubmatch(l); m != nil {
				open = m[1]
			}
			if m := regexp.MustCompile(`type the password (\S+),`).FindStringSubmatch(l); m != nil {
				password = m[1]
			}
			if m := regexp.MustCompile(`^\s+Files\s+(\S+)$`).FindStringSubmatch(l); m != nil {
				files = m[1]
			}
		case <-exited:
			t.Fatalf("the demo exited before it was up: %v", waitErr)
		case <-deadline:
			t.Fatalf("the demo printed no URL, password and folder within 60 s")
		}
	}
	u, err := url.Parse(open)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	res, err := http.Get(open)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s", open, res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, k := range []string{"server", "appKey", "sipLogin", "sipDomain", "sipProxy", "sipPort", "callee"} {
		if q.Get(k) == "" {
			t.Fatalf("the demo's URL %s fills no %s", open, k)
		}
	}

	// What the phone page does with those fields (e2e/phone_test.go drives
	// the page itself): register, call, echo, hang up.
	c := newSDKClient(t, q.Get("server")+"/")
	c.send(t, "connection", map[string]any{
		"appKey": q.Get("appKey"), "sipLogin": q.Get("sipLogin"), "sipAuthenticationName": q.Get("sipLogin"), "sipPassword": password,
		"sipDomain": q.Get("sipDomain"), "sipOutboundProxy": q.Get("sipProxy"), "sipPort": q.Get("sipPort"), "sipRegisterRequired": true,
	})
	c.expect(t, "getUserData", nil)
	c.expect(t, "registered", nil)
	c.callEcho(t, map[string]any{"callId": "demo-1", "callee": q.Get("callee"), "caller": q.Get("sipLogin")})

	// The sample backend logged the hooks, in the demo's output.
	hooksShown := func() bool {
		out := printed()
		return strings.Contains(out, "backend │") && strings.Contains(out, " connect {") &&
			strings.Contains(out, `"status":"ESTABLISHED"`) && strings.Contains(out, `"status":"FINISH"`)
	}
	for end := time.Now().Add(10 * time.Second); !hooksShown(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the demo's output lacks the backend's connect and CallStatusEvent hooks")
		}
	}

	// Ctrl-C: everything stops, the folder goes.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("the demo exited with %v after SIGINT", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30 s of SIGINT")
	}
	if _, err := os.Stat(files); !os.IsNotExist(err) {
		t.Errorf("the demo left its folder %s (%v)", files, err)
	}
	if _, err := http.Get(open); err == nil {
		t.Errorf("rtcgate still answers at %s after the demo stopped", open)
	}
}
