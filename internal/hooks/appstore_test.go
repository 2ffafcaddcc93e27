package hooks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failingStore refuses every change, as an unreachable Redis does.
type failingStore struct{ MemoryAppStore }

func (*failingStore) Put(App, bool) error { return errors.New("store down") }
func (*failingStore) Delete(string) error { return errors.New("store down") }

// TestAppStoreSeam: two registries over one store (two nodes of a
// cluster): Reload brings one the other's changes, leaves this node's
// configuration apps alone and says which kept app clashes with them; a
// change the store refuses is not applied.
func TestAppStoreSeam(t *testing.T) {
	store := NewMemoryAppStore()
	a, err := NewAppsStore(nil, store, "memory")
	if err != nil {
		t.Fatal(err)
	}
	cfg := App{Name: "C", Key: "c", URL: "http://127.0.0.1:9/C"}
	b, err := NewAppsStore([]App{cfg}, store, "memory")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(App{Name: "X", Key: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(App{Name: "Y", Key: "c"}); err != nil { // c is b's configuration's key
		t.Fatal(err)
	}
	err = b.Reload()
	if err == nil || !strings.Contains(err.Error(), "app Y: its key c is app C's of this node's configuration file") {
		t.Errorf("Reload = %v", err)
	}
	if _, ok := b.ByKey("x"); !ok {
		t.Error("X not on b")
	}
	if got, _ := b.ByKey("c"); got.Name != "C" || b.Origin("C") != OriginConfig {
		t.Errorf("b's c = %+v", got)
	}
	if err := a.Remove("X"); err != nil {
		t.Fatal(err)
	}
	b.Reload()
	if _, ok := b.ByKey("x"); ok || b.Origin("X") != "" {
		t.Error("X still on b")
	}

	down, _ := NewAppsStore(nil, &failingStore{MemoryAppStore: *NewMemoryAppStore()}, "memory")
	if err := down.Add(App{Name: "Z", Key: "z"}); err == nil {
		t.Fatal("Add with the store down succeeded")
	}
	if _, ok := down.ByKey("z"); ok {
		t.Error("a change the store refused is served")
	}
	if err := down.Update(DefaultApp, func(a *App) { a.URL = "http://127.0.0.1:9/" }); err == nil {
		t.Fatal("Update with the store down succeeded")
	}
	if d, _ := down.ByKey(DefaultApp); d.URL != "" {
		t.Errorf("refused update applied: %+v", d)
	}
}

// The state file is mode 0600: it holds passwords.
func TestStateFileMode(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	apps, err := NewApps(nil, state)
	if err != nil {
		t.Fatal(err)
	}
	if err := apps.Add(App{Name: "X", Key: "x", URL: "http://127.0.0.1:9/", User: "u", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(state)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi.Mode(), err)
	}
}
