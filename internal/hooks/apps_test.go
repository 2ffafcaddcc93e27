package hooks

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/cli"
)

func TestAppsOutOfTheBoxAndFromConfig(t *testing.T) {
	r, err := NewApps([]App{{Name: "EchoApp", Key: "echoKey", URL: "http://127.0.0.1:9091/EchoApp", Methods: []string{"connect", "ConnectionStatusEvent"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := r.ByKey(DefaultApp); !ok || a.URL != "" {
		t.Fatalf("defaultApp = %+v %v", a, ok)
	}
	a, ok := r.ByKey("echoKey")
	if !ok || !a.Enabled("connect") || a.Enabled("call") {
		t.Fatalf("configured app = %+v", a)
	}
	for _, bad := range []App{
		{Name: "x y", Key: "k"},
		{Name: "n", Key: "k", URL: "ftp://host/"},
		{Name: "n", Key: "k", Methods: []string{"frobnicate"}},
	} {
		if _, err := NewApps([]App{bad}, ""); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if _, err := NewApps([]App{{Name: "a", Key: "k"}, {Name: "b", Key: "k"}}, ""); err == nil {
		t.Error("accepted two apps with one key")
	}
}

func run(r *cli.Registry, line string) string { return r.Run(context.Background(), line) }

// TestCLIChangesPersist: runtime changes through Web Call Server's commands
// are written to the state file and come back after a restart.
func TestCLIChangesPersist(t *testing.T) {
	state := filepath.Join(t.TempDir(), "rtcgate-state.json")
	apps, err := NewApps(nil, state)
	if err != nil {
		t.Fatal(err)
	}
	reg := cli.New(nil)
	apps.RegisterCLI(reg)
	for _, c := range []struct{ line, want string }{
		{"add app -u alice -p s3cret EchoApp echoKey http://127.0.0.1:9091/EchoApp", "App EchoApp added\n"},
		{"add app EchoApp otherKey http://127.0.0.1:1/", "Error: app EchoApp exists already\n"},
		{"add app Bad key ftp://nowhere", "Error: app Bad: URL \"ftp://nowhere\" is not an http(s) URL\n"},
		{"add app Short", "Error: usage: add app [-u user] [-p password] NAME KEY URL\n"},
		{"add app-rest-method -a echoKey", "REST methods enabled for echoKey\n"},
		{"remove app-rest-method echoKey call", "REST methods disabled for echoKey\n"},
		{"add app-rest-method echoKey frob", "Error: unknown REST method \"frob\"\n"},
		{"add app-rest-method nokey call", "Error: no app with key nokey\n"},
		{"update app EchoApp echoKey2 https://backend.example/EchoApp", "App EchoApp updated\n"},
		{"remove app Nope", "Error: no app named Nope\n"},
	} {
		if got := run(reg, c.line); got != c.want {
			t.Errorf("%s = %q, want %q", c.line, got, c.want)
		}
	}
	methods := run(reg, "show app-rest-methods echoKey2")
	if strings.Contains(methods, "call\n") || !strings.Contains(methods, "connect\n") || !strings.Contains(methods, "OnDataEvent\n") {
		t.Errorf("methods after -a and removing call:\n%s", methods)
	}
	listing := run(reg, "show apps")
	if !strings.Contains(listing, "EchoApp") || !strings.Contains(listing, "https://backend.example/EchoApp") || strings.Contains(listing, "s3cret") {
		t.Errorf("show apps:\n%s", listing)
	}
	if info, err := os.Stat(state); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", info, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(state), ".rtcgate-state-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// A restart reads the state back.
	again, err := NewApps(nil, state)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := again.ByKey("echoKey2")
	if !ok || a.User != "alice" || a.Password != "s3cret" || a.URL != "https://backend.example/EchoApp" || !a.Enabled("sendData") || a.Enabled("call") {
		t.Fatalf("after restart: %+v %v", a, ok)
	}
	if _, ok := again.ByKey(DefaultApp); !ok {
		t.Error("defaultApp lost across restart")
	}
	if got := run(reg, "remove app EchoApp"); got != "App EchoApp removed\n" {
		t.Errorf("remove = %q", got)
	}
	third, _ := NewApps(nil, state)
	if _, ok := third.ByKey("echoKey2"); ok {
		t.Error("removed app came back")
	}
	if !slices.Equal(Methods[:2], []string{"connect", "call"}) {
		t.Error("method order changed")
	}
}

func TestBadStateFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(state, []byte("{not json"), 0o600)
	if _, err := NewApps(nil, state); err == nil || !strings.Contains(err.Error(), state) {
		t.Fatalf("corrupt state file: %v", err)
	}
}

// TestAppCredentialRules: credentials that cannot be sent as meant are
// refused from the configuration (NewApps: exit 2 at start) and from the
// CLI (an Error answer, nothing saved); those that can are accepted.
func TestAppCredentialRules(t *testing.T) {
	const u = "http://127.0.0.1:9/App"
	for _, c := range []struct {
		app  App
		want string // "" accepted, else part of the error
	}{
		{App{Name: "A", Key: "k", URL: u, User: "alice", Password: "pw"}, ""},
		{App{Name: "A", Key: "k", URL: u, User: "alice"}, ""}, // an empty password is a Basic password
		{App{Name: "A", Key: "k", URL: "http://alice:pw@127.0.0.1:9/App"}, ""},
		{App{Name: "A", Key: "k", URL: u, Password: "pw"}, "a password needs a user"},
		{App{Name: "A", Key: "k", User: "alice", Password: "pw"}, "need a url"},
		{App{Name: "A", Key: "k", Password: "pw"}, "need a url"},
		{App{Name: "A", Key: "k", URL: "http://bob:pw2@127.0.0.1:9/App", User: "alice", Password: "pw"}, "both in the url and in user/password"},
		{App{Name: "A", Key: "k", URL: "http://bob@127.0.0.1:9/App", Password: "pw"}, "both in the url and in user/password"},
		{App{Name: "A", Key: "k", URL: "http://:pw@127.0.0.1:9/App"}, "has no user"},
		{App{Name: "A", Key: "k", URL: u, User: "al:ice", Password: "pw"}, "must not contain ':'"},
	} {
		_, err := NewApps([]App{c.app}, "")
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("NewApps(%+v) = %v, want %q", c.app, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), c.app.Password+"@")) {
			t.Errorf("error prints a password: %v", err)
		}
	}

	state := filepath.Join(t.TempDir(), "state.json")
	apps, err := NewApps(nil, state)
	if err != nil {
		t.Fatal(err)
	}
	reg := cli.New(nil)
	apps.RegisterCLI(reg)
	for _, c := range []struct{ line, want string }{
		{"add app -p pw A k http://127.0.0.1:9/A", "Error: app A: a password needs a user\n"},
		{"add app -u bob -p pw A k http://alice:secret@127.0.0.1:9/A", "Error: app A: credentials both in the url and in user/password: keep one\n"},
		{"add app -u al:ice -p pw A k http://127.0.0.1:9/A", "Error: app A: user must not contain ':' (Basic auth splits user and password there)\n"},
		{"update app -u bob -p pw defaultApp defaultApp http://alice:secret@127.0.0.1:9/", "Error: app defaultApp: credentials both in the url and in user/password: keep one\n"},
	} {
		if got := run(reg, c.line); got != c.want {
			t.Errorf("%s = %q, want %q", c.line, got, c.want)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("a refused change was saved: %v", err)
	}
	if a, _ := apps.ByKey(DefaultApp); a.URL != "" || a.User != "" {
		t.Errorf("a refused update changed defaultApp: %+v", a)
	}
	if got := run(reg, "add app -u alice -p pw A k http://127.0.0.1:9/A"); got != "App A added\n" {
		t.Errorf("user and password = %q", got)
	}
	// Credentials in the URL now as well: refused, the app unchanged.
	if got := run(reg, "update app A k http://bob:x@127.0.0.1:9/A"); !strings.HasPrefix(got, "Error: app A: credentials both") {
		t.Errorf("update to credentials in both = %q", got)
	}
	if a, _ := apps.ByKey("k"); a.URL != "http://127.0.0.1:9/A" {
		t.Errorf("refused update changed the app: %+v", a)
	}
}

// TestShowAppsMasksURLCredentials: a password in an app's URL is never
// printed, by show apps or by an error about the URL.
func TestShowAppsMasksURLCredentials(t *testing.T) {
	apps, err := NewApps([]App{{Name: "A", Key: "a", URL: "https://alice:hunter2@backend.example/A"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	reg := cli.New(nil)
	apps.RegisterCLI(reg)
	out := run(reg, "show apps")
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "https://alice:xxxxx@backend.example/A") {
		t.Errorf("show apps:\n%s", out)
	}
	got := run(reg, "add app B b ftp://bob:hunter2@backend.example/")
	if strings.Contains(got, "hunter2") || !strings.HasPrefix(got, "Error:") {
		t.Errorf("bad URL error = %q", got)
	}
	got = run(reg, "add app B b http://bob:hunter2@[::1")
	if strings.Contains(got, "hunter2") || !strings.HasPrefix(got, "Error:") {
		t.Errorf("unparsable URL error = %q", got)
	}
}
