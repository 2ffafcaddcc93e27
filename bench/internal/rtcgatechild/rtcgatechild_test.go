package rtcgatechild

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fake is a shell script that logs like rtcgate: the "listening" lines,
// then "rtcgate started", then waits to be stopped.
func fake(lines ...string) []string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "echo '%s'; ", l)
	}
	b.WriteString("exec sleep 60")
	return []string{"-c", b.String()}
}

func start(t *testing.T, want []string, lines ...string) (*Child, []string, error) {
	t.Helper()
	var logged []string
	c, err := Start(context.Background(), Options{
		Bin: "/bin/sh", Args: fake(lines...), LogPath: filepath.Join(t.TempDir(), "rtcgate.log"),
		Want: want, ReadyTimeout: 5 * time.Second,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) },
	})
	if c != nil {
		t.Cleanup(func() { c.Stop() })
	}
	return c, logged, err
}

func TestStartReadsListeners(t *testing.T) {
	c, _, err := start(t, []string{"listen-http", "listen-client"},
		`not json`,
		`{"msg":"listening","key":"listen-http","addr":"127.0.0.1:8081"}`,
		`{"msg":"listening","key":"listen-client","addr":"127.0.0.1:8443"}`,
		`{"msg":"rtcgate started"}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr("listen-http") != "127.0.0.1:8081" || c.Addr("listen-client") != "127.0.0.1:8443" || c.Addr("listen-sip") != "" {
		t.Fatalf("addresses %q %q", c.Addr("listen-http"), c.Addr("listen-client"))
	}
	if !c.Alive() {
		t.Fatal("stopped although started")
	}
}

func TestStartFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		want  string
		lines []string
	}{
		{"missing listener", `no "listening" line for listen-sip in the log (an rtcgate without the SIP gateway`,
			[]string{`{"msg":"rtcgate started"}`}},
		{"not loopback", "listen-sip bound to 0.0.0.0:5060, not loopback",
			[]string{`{"msg":"listening","key":"listen-sip","addr":"0.0.0.0:5060"}`, `{"msg":"rtcgate started"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, logged, err := start(t, []string{"listen-sip"}, tc.lines...)
			if c != nil || err == nil || !strings.HasPrefix(err.Error(), "rtcgate did not start: "+tc.want) {
				t.Fatalf("got %v, %v", c, err)
			}
			if len(logged) != 1 || !strings.Contains(logged[0], "rtcgate failed to start; log ") {
				t.Fatalf("logged %q", logged)
			}
		})
	}
}

func TestStartExits(t *testing.T) {
	var logged []string
	_, err := Start(context.Background(), Options{
		Bin: "/bin/sh", Args: []string{"-c", "echo boom; exit 3"}, LogPath: filepath.Join(t.TempDir(), "rtcgate.log"),
		ReadyTimeout: 5 * time.Second, Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) },
	})
	if err == nil || !strings.Contains(err.Error(), "rtcgate exited: exit status 3") {
		t.Fatalf("got %v", err)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "boom") {
		t.Fatalf("logged %q", logged)
	}
}

func TestMetrics(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# HELP a x\na 1.5\nb{l=\"x\"} 2\nc 3\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := &Child{addrs: map[string]string{"listen-http": ln.Addr().String()}}
	var a, c2, d float64
	n, err := c.Metrics(context.Background(), 5*time.Second, map[string]*float64{"a": &a, "c": &c2, "d": &d})
	if err != nil || n != 2 || a != 1.5 || c2 != 3 || d != 0 {
		t.Fatalf("found %d (%v): a=%v c=%v d=%v", n, err, a, c2, d)
	}
}

func TestConfigAndArgs(t *testing.T) {
	dir := t.TempDir()
	path, err := WriteConfig(dir, App{Name: "n", Key: "k", URL: "http://127.0.0.1:1/n", Methods: []string{"A", "B"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "apps:\n  - name: n\n    key: k\n    url: http://127.0.0.1:1/n\n    methods: [A, B]\nstate-file: " + filepath.Join(dir, "rtcgate-state.json") + "\n"
	if string(b) != want {
		t.Fatalf("config:\n%s\nwant:\n%s", b, want)
	}
	if args := ServeArgs("", "127.0.0.1:0"); args[0] != "serve" || slices.Contains(args, "--config") ||
		!slices.Contains(args, "json") || args[len(args)-1] != "127.0.0.1:0" {
		t.Fatalf("args %q", args)
	}
	if args := ServeArgs(path, "x"); args[1] != "--config" || args[2] != path {
		t.Fatalf("args %q", args)
	}
}
