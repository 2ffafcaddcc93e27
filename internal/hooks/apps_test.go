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
