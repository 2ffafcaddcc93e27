package hooks

import (
	"context"
	"errors"
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
	if !ok || a.User != "alice" || a.Password != "s3cret" || a.URL != "https://backend.example/EchoApp" || !a.Enabled("OnDataEvent") || a.Enabled("call") {
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

// showApps parses show apps into name → the line's fields.
func showApps(t *testing.T, reg *cli.Registry) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	lines := strings.Split(strings.TrimSpace(run(reg, "show apps")), "\n")
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"Name", "Key", "URL", "Methods", "Source"}) {
		t.Fatalf("show apps header %q", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		out[f[0]] = f
	}
	return out
}

func source(t *testing.T, listing map[string][]string, name string) string {
	t.Helper()
	f, ok := listing[name]
	if !ok {
		t.Fatalf("%s not listed: %v", name, listing)
	}
	return f[len(f)-1]
}

// TestConfigAppsAppliedAtEveryStart: the configuration file's apps are
// applied at every start and win for their names; runtime apps persist;
// show apps says where each comes from; a runtime change of a
// configuration app lasts until the next start.
func TestConfigAppsAppliedAtEveryStart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	cfgA := App{Name: "A", Key: "a", URL: "http://127.0.0.1:9/A", Methods: []string{"connect"}}
	apps, err := NewApps([]App{cfgA}, state)
	if err != nil {
		t.Fatal(err)
	}
	reg := cli.New(nil)
	apps.RegisterCLI(reg)
	for _, c := range []struct{ line, want string }{
		{"add app B b http://127.0.0.1:9/B", "App B added\n"},
		{"update app A a2 http://127.0.0.1:9/A-changed", "App A updated until the next start: app A is in the configuration file, which applies again then\n"},
		{"add app-rest-method -a a2", "REST methods enabled for a2 until the next start: app A is in the configuration file, which applies again then\n"},
		{"add app-rest-method b call", "REST methods enabled for b\n"},
		// A's name and key stay the configuration's while A is changed.
		{"add app A2 a http://127.0.0.1:9/x", "Error: app A of the configuration file has this name or key a (it comes back at the next start)\n"},
		{"update app B a http://127.0.0.1:9/B", "Error: app key a belongs to app A of the configuration file\n"},
	} {
		if got := run(reg, c.line); got != c.want {
			t.Errorf("%s = %q, want %q", c.line, got, c.want)
		}
	}
	l := showApps(t, reg)
	if source(t, l, "A") != OriginConfig || source(t, l, "B") != OriginRuntime || source(t, l, DefaultApp) != OriginBuiltIn {
		t.Errorf("sources: %v", l)
	}
	if a, _ := apps.ByKey("a2"); a.URL != "http://127.0.0.1:9/A-changed" || len(a.Methods) != len(Methods) {
		t.Errorf("runtime change of A not applied: %+v", a)
	}
	b, _ := os.ReadFile(state)
	if strings.Contains(string(b), `"A"`) || !strings.Contains(string(b), `"B"`) {
		t.Errorf("state file holds the configuration's app or lacks the runtime one:\n%s", b)
	}

	// Restart with C added to the configuration file.
	cfgC := App{Name: "C", Key: "c", URL: "http://127.0.0.1:9/C"}
	again, err := NewApps([]App{cfgA, cfgC}, state)
	if err != nil {
		t.Fatal(err)
	}
	reg2 := cli.New(nil)
	again.RegisterCLI(reg2)
	l = showApps(t, reg2)
	for name, want := range map[string]string{"A": OriginConfig, "B": OriginRuntime, "C": OriginConfig, DefaultApp: OriginBuiltIn} {
		if got := source(t, l, name); got != want {
			t.Errorf("%s: source %s, want %s", name, got, want)
		}
	}
	if a, ok := again.ByKey("a"); !ok || a.URL != cfgA.URL || !slices.Equal(a.Methods, cfgA.Methods) {
		t.Errorf("A after restart = %+v %v, want the configuration's", a, ok)
	}
	if _, ok := again.ByKey("a2"); ok {
		t.Error("A's runtime key survived the restart")
	}
	if b, ok := again.ByKey("b"); !ok || !b.Enabled("call") {
		t.Errorf("runtime app B after restart = %+v %v", b, ok)
	}

	// The file wins for the names it lists: B listed now replaces the saved B.
	cfgB := App{Name: "B", Key: "b", URL: "http://127.0.0.1:9/B-from-file"}
	third, err := NewApps([]App{cfgA, cfgB}, state)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := third.ByKey("b"); b.URL != cfgB.URL || third.Origin("B") != OriginConfig {
		t.Errorf("B listed by the file = %+v (%s)", b, third.Origin("B"))
	}

	// A configuration app with a runtime app's key (another name): exit 2
	// with a message saying what to do.
	_, err = NewApps([]App{{Name: "D", Key: "b", URL: "http://127.0.0.1:9/D"}}, state)
	if err == nil || !strings.Contains(err.Error(), "app B, added at runtime") || !strings.Contains(err.Error(), state) {
		t.Errorf("key taken by a runtime app: %v", err)
	}
}

// TestDefaultAppStays: defaultApp cannot be removed nor lose its key; it
// may get a backend, which persists.
func TestDefaultAppStays(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	apps, err := NewApps(nil, state)
	if err != nil {
		t.Fatal(err)
	}
	reg := cli.New(nil)
	apps.RegisterCLI(reg)
	if got := run(reg, "remove app defaultApp"); !strings.HasPrefix(got, "Error: defaultApp is built in and cannot be removed") {
		t.Errorf("remove app defaultApp = %q", got)
	}
	if got := run(reg, "update app defaultApp other http://127.0.0.1:9/"); !strings.HasPrefix(got, "Error: the key of defaultApp cannot change") {
		t.Errorf("update defaultApp's key = %q", got)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("a refused change was saved: %v", err)
	}
	if got := run(reg, "update app defaultApp defaultApp http://127.0.0.1:9/"); got != "App defaultApp updated\n" {
		t.Errorf("update defaultApp's URL = %q", got)
	}
	again, err := NewApps(nil, state)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := again.ByKey(DefaultApp); !ok || a.URL != "http://127.0.0.1:9/" || again.Origin(DefaultApp) != OriginBuiltIn {
		t.Errorf("defaultApp after restart = %+v %v %s", a, ok, again.Origin(DefaultApp))
	}
}

// TestStateFileOfEarlierVersions: a state file written before the
// configuration's apps were kept apart holds them too; the configuration
// wins for them, the rest stays.
func TestStateFileOfEarlierVersions(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(state, []byte(`{"apps":[
 {"name":"A","key":"a-old","url":"http://127.0.0.1:9/old","methods":[]},
 {"name":"B","key":"b","url":"http://127.0.0.1:9/B","methods":["connect"]},
 {"name":"defaultApp","key":"defaultApp","url":"","methods":[]}]}`), 0o600)
	apps, err := NewApps([]App{{Name: "A", Key: "a", URL: "http://127.0.0.1:9/A"}}, state)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := apps.ByKey("a"); !ok || a.URL != "http://127.0.0.1:9/A" || apps.Origin("A") != OriginConfig {
		t.Errorf("A = %+v %v", a, ok)
	}
	if _, ok := apps.ByKey("a-old"); ok {
		t.Error("the saved copy of A is served too")
	}
	if _, ok := apps.ByKey("b"); !ok || apps.Origin("B") != OriginRuntime {
		t.Error("B lost")
	}
	// A state file app that cannot work is a state-file error.
	os.WriteFile(state, []byte(`{"apps":[{"name":"E","key":"e","url":"http://127.0.0.1:9/","password":"pw"}]}`), 0o600)
	_, err = NewApps(nil, state)
	var serr *StateFileError
	if !errors.As(err, &serr) || !strings.Contains(err.Error(), "a password needs a user") {
		t.Errorf("bad state app: %v", err)
	}
}
