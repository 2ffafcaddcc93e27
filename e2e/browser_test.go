package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// browserDir holds the headless-Chromium driver (websdk.mjs, index.html) and
// its pinned npm dependencies: playwright-core and the real Flashphoner Web
// SDK (@flashphoner/websdk).
const browserDir = "browser"

// TestWebSDKInChromium opens a session from the real Flashphoner Web SDK,
// running in Debian's headless Chromium, to rtcgate's client listener: once
// over a native WebSocket, once over the HTTP fallback through rtcgate's
// browser shim (/rtcgate-http-websocket.js). Each run must reach ESTABLISHED,
// have session.sendData ACCEPTED and disconnect cleanly.
func TestWebSDKInChromium(t *testing.T) {
	chromium := needTool(t, "chromium", "chromium")
	node := needTool(t, "node", "nodejs")
	npm := needTool(t, "npm", "npm")
	npmDeps(t, npm)

	// Without the client listener rtcgate refuses the flag, and start's
	// failure would say only that: say what is missing.
	_, help, _ := runCmd(t, 30*time.Second, binary, "serve", "-h")
	if !strings.Contains(help, "listen-client") {
		t.Fatalf("rtcgate serve has no --listen-client flag: this test needs rtcgate's client listener " +
			"(Web SDK–compatible WebSocket, HTTP fallback, /rtcgate-http-websocket.js shim)")
	}

	args := ephemeral
	if !slices.Contains(args, "--listen-client") {
		args = append([]string{"--listen-client", "127.0.0.1:0"}, args...)
	}
	r := start(t, args...)
	addr := r.addr(t, "listen-client")
	script := filepath.Join(browserDir, "websdk.mjs")

	for _, mode := range []string{"ws", "http-shim"} {
		t.Run(mode, func(t *testing.T) {
			stdout, stderr, code := runIn(t, "", 2*time.Minute, []string{"CHROMIUM=" + chromium}, node, script, addr, mode)
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("%s\nwebsdk.mjs exit %d\nstdout:\n%s\nstderr:\n%s\nrtcgate log:\n%s",
					fmt.Sprintf(format, args...), code, stdout, stderr, r.Logs())
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			var out struct {
				Mode, Status, SendData, Disconnect, SessionID, Error, Chromium, ShimRefusal string
				OK                                                                          bool
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &out); err != nil {
				fail("websdk.mjs printed no JSON outcome: %v", err)
			}
			if code != 0 || !out.OK {
				fail("Web SDK in Chromium over %s failed: %s", mode, out.Error)
			}
			if out.Mode != mode || out.Status != "ESTABLISHED" || out.SendData != "ACCEPTED" || out.Disconnect != "DISCONNECTED" {
				fail("Web SDK in Chromium over %s: want status ESTABLISHED, sendData ACCEPTED, disconnect DISCONNECTED; got %+v", mode, out)
			}
			if mode == "http-shim" && out.ShimRefusal != "fail,pong" {
				fail("over the shim, a refused frame then a ping brought %q, want fail,pong: the connection must go on", out.ShimRefusal)
			}
			t.Logf("Chromium %s, Web SDK over %s: session %s %s, sendData %s", out.Chromium, mode, out.SessionID, out.Status, out.SendData)
		})
	}
}

// npmDeps runs `npm ci` in browserDir when its node_modules is missing or
// older than package-lock.json (`make test-deps` normally has done it).
func npmDeps(t *testing.T, npm string) {
	t.Helper()
	lock, err := os.Stat(filepath.Join(browserDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	// npm writes node_modules/.package-lock.json at the end of every install.
	if inst, err := os.Stat(filepath.Join(browserDir, "node_modules", ".package-lock.json")); err == nil && !inst.ModTime().Before(lock.ModTime()) {
		return
	}
	t.Logf("installing %s/node_modules (npm ci)", browserDir)
	_, stderr, code := runIn(t, browserDir, 5*time.Minute, []string{"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1"}, npm,
		"ci", "--no-audit", "--no-fund")
	if code != 0 {
		t.Fatalf("npm ci in e2e/%s failed (exit %d):\n%s", browserDir, code, stderr)
	}
}

// runIn is runCmd in directory dir ("" for the current one) with extra
// environment variables (and, like runCmd, no stdin).
func runIn(t *testing.T, dir string, timeout time.Duration, env []string, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}
