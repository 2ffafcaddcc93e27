package e2e

import (
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/hooks/restclient"
)

// signedHook is what a checking backend saw of one hook.
type signedHook struct {
	method    string
	basicOK   bool  // Basic credentials present and right
	verifyErr error // restclient.Verify of the signature
}

// checkingBackend is an app backend that checks both the Basic credentials
// and hooks-secret's signature of every hook, records what it saw, and
// answers 401 unless both are right.
type checkingBackend struct {
	srv     *httptest.Server
	mu      sync.Mutex
	seen    []signedHook
	arrived chan struct{}
}

func newCheckingBackend(t *testing.T, secret, user, password string) *checkingBackend {
	b := &checkingBackend{arrived: make(chan struct{}, 100)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u, p, ok := r.BasicAuth()
		h := signedHook{
			method:    r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:],
			basicOK:   ok && u == user && p == password,
			verifyErr: restclient.Verify(secret, r.Header, body, time.Minute, time.Now()),
		}
		b.mu.Lock()
		b.seen = append(b.seen, h)
		b.mu.Unlock()
		b.arrived <- struct{}{}
		if !h.basicOK || h.verifyErr != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// waitMethod waits for a hook of that method and returns it.
func (b *checkingBackend) waitMethod(t *testing.T, method string) signedHook {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		b.mu.Lock()
		for _, h := range b.seen {
			if h.method == method {
				b.mu.Unlock()
				return h
			}
		}
		b.mu.Unlock()
		select {
		case <-b.arrived:
		case <-deadline:
			t.Fatalf("no %s hook; saw %+v", method, b.seen)
		}
	}
}

// TestAppCredentialsWithSecret: an app with a user and password under
// --hooks-secret: the backend gets connect (and the status event after it)
// with valid Basic credentials and a valid signature, so the client is
// admitted. Credentials that cannot work are refused by the CLI.
func TestAppCredentialsWithSecret(t *testing.T) {
	const secret, user, password = "hook-s3cret", "rtcgate", "app-pw"
	b := newCheckingBackend(t, secret, user, password)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	os.WriteFile(cfgFile, []byte("apps:\n  - name: SecureApp\n    key: secureKey\n    url: "+b.srv.URL+"/SecureApp\n"+
		"    methods: [connect, ConnectionStatusEvent]\n    user: "+user+"\n    password: "+password+"\n"), 0o600)
	r := start(t, append(ephemeral, "--config", cfgFile, "--hooks-secret", secret)...)

	ws := dialWS(t, "ws://"+r.addr(t, "listen-client")+"/", nil)
	reply := wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"secureKey"}]}`)
	sessionOf(t, reply) // getUserData: the backend answered connect with 200
	for _, m := range []string{"connect", "ConnectionStatusEvent"} {
		if h := b.waitMethod(t, m); !h.basicOK || h.verifyErr != nil {
			t.Errorf("%s: Basic credentials right %v, signature %v", m, h.basicOK, h.verifyErr)
		}
	}

	base := "http://" + r.addr(t, "listen-http")
	ctl := func(args ...string) string {
		out, _, _ := runCmd(t, 20*time.Second, binary, append([]string{"ctl", "--url", base}, args...)...)
		return out
	}
	if got := ctl("add", "app", "-p", "pw", "NoUser", "noUserKey", b.srv.URL+"/NoUser"); got != "Error: app NoUser: a password needs a user\n" {
		t.Errorf("add app with a password and no user = %q", got)
	}
	if got := ctl("show", "apps"); strings.Contains(got, "NoUser") || strings.Contains(got, password) {
		t.Errorf("show apps after a refused add:\n%s", got)
	}
}

// TestAppCredentialsRefusedAtStart: credentials that cannot work in the
// configuration file stop rtcgate before it listens, exit 2 naming apps.
func TestAppCredentialsRefusedAtStart(t *testing.T) {
	for _, c := range []struct{ name, app, want string }{
		{"password without user", "    url: http://127.0.0.1:9/A\n    password: pw\n", "a password needs a user"},
		{"credentials without url", "    user: u\n    password: pw\n", "user and password need a url"},
		{"credentials twice", "    url: http://v:pw2@127.0.0.1:9/A\n    user: u\n    password: pw\n", "credentials both in the url and in user/password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfgFile := filepath.Join(t.TempDir(), "rtcgate.yaml")
			os.WriteFile(cfgFile, []byte("apps:\n  - name: A\n    key: a\n"+c.app), 0o600)
			_, stderr, code := runCmd(t, 30*time.Second, binary, append([]string{"serve", "--config", cfgFile}, ephemeral...)...)
			if code != 2 || !strings.Contains(stderr, "config: apps: app A: "+c.want) {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if strings.Contains(stderr, "listening") || strings.Contains(stderr, "pw") {
				t.Errorf("stderr %q", stderr)
			}
		})
	}
}

// cliTCP sends one command line to the rtpengine-ctl style TCP CLI and
// returns its answer (the server closes after it).
func cliTCP(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	return readAll(t, c)
}

// appSources parses show apps: name → Source.
func appSources(t *testing.T, listing string) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(strings.TrimSpace(listing), "\n")
	if f := strings.Fields(lines[0]); len(f) == 0 || f[len(f)-1] != "Source" {
		t.Fatalf("show apps has no Source column:\n%s", listing)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		out[f[0]] = f[len(f)-1]
	}
	return out
}

// TestConfigAppsAfterRestart: with a state file, the configuration file's
// apps are applied at every start and runtime apps persist: start with A in
// the file, add B through the CLI, stop, add C to the file, restart — show
// apps lists A (config), B (runtime), C (config). A runtime change to A
// lasts until that restart, and defaultApp cannot be removed.
func TestConfigAppsAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "rtcgate.yaml")
	appA := "apps:\n  - name: A\n    key: aKey\n    url: http://127.0.0.1:9/A\n"
	os.WriteFile(cfgFile, []byte(appA), 0o600)
	r := start(t, append(ephemeral, "--config", cfgFile)...)
	cli := r.addr(t, "listen-cli")
	if got := cliTCP(t, cli, "add app -u bob -p bpw B bKey http://127.0.0.1:9/B"); got != "App B added\n" {
		t.Fatalf("add app B = %q", got)
	}
	if got := cliTCP(t, cli, "update app A aKey http://127.0.0.1:9/A-changed"); !strings.Contains(got, "until the next start") {
		t.Errorf("update app A = %q", got)
	}
	if got := cliTCP(t, cli, "remove app defaultApp"); !strings.HasPrefix(got, "Error: defaultApp is built in and cannot be removed") {
		t.Errorf("remove app defaultApp = %q", got)
	}
	want := map[string]string{"A": "config", "B": "runtime", "defaultApp": "built-in"}
	if got := appSources(t, cliTCP(t, cli, "show apps")); !maps.Equal(got, want) {
		t.Errorf("show apps before restart = %v, want %v", got, want)
	}
	r.stop(t, syscall.SIGTERM)

	os.WriteFile(cfgFile, []byte(appA+"  - name: C\n    key: cKey\n    url: http://127.0.0.1:9/C\n"), 0o600)
	r2 := start(t, append(ephemeral, "--config", cfgFile)...)
	listing, _, _ := runCmd(t, 20*time.Second, binary, "ctl", "--url", "http://"+r2.addr(t, "listen-http"), "show", "apps")
	want = map[string]string{"A": "config", "B": "runtime", "C": "config", "defaultApp": "built-in"}
	if got := appSources(t, listing); !maps.Equal(got, want) {
		t.Errorf("show apps after restart = %v, want %v:\n%s", got, want, listing)
	}
	if !strings.Contains(listing, "http://127.0.0.1:9/A ") || strings.Contains(listing, "A-changed") {
		t.Errorf("A's runtime change outlived the restart:\n%s", listing)
	}
	if strings.Contains(listing, "bpw") {
		t.Errorf("show apps prints a password:\n%s", listing)
	}
	// B, kept in the state file, still admits its clients.
	ws := dialWS(t, "ws://"+r2.addr(t, "listen-client")+"/", nil)
	sessionOf(t, wsExchange(t, ws, `{"message":"connection","data":[{"appKey":"bKey"}]}`))
}
