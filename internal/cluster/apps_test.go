package cluster

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/hooks"
	"github.com/rtcgate/rtcgate/internal/testpeer"
)

// node is one rtcgate's apps over the cluster's store.
func appsNode(t *testing.T, url, id string, configured ...hooks.App) (*hooks.Apps, *Cluster) {
	t.Helper()
	c := newCluster(t, fast(url))
	s := NewAppStore(c)
	apps, err := hooks.NewAppsStore(configured, s, "cluster-redis")
	if err != nil {
		t.Fatal(err)
	}
	c.Start(id, "x:1", "x:2", nil)
	s.Watch(apps.Reload)
	return apps, c
}

func hasKey(apps *hooks.Apps, key, url string) func() bool {
	return func() bool { a, ok := apps.ByKey(key); return ok && (url == "" || a.URL == url) }
}

// TestAppStore: an app added, changed, given methods and removed on one
// node is so on the other within a second; a third node starting later
// has it; two nodes cannot give one key to two apps; a node's
// configuration file wins on that node for its names.
func TestAppStore(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	a, _ := appsNode(t, r.URL, "a")
	cfgC := hooks.App{Name: "C", Key: "c", URL: "http://127.0.0.1:9/C-config"}
	b, _ := appsNode(t, r.URL, "b", cfgC)

	if err := a.Add(hooks.App{Name: "X", Key: "x", URL: "http://127.0.0.1:9/X", User: "u", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, time.Second, "X on b", hasKey(b, "x", ""))
	t.Logf("X on b after %s", time.Since(start))
	if got, _ := b.ByKey("x"); got.Password != "pw" || b.Origin("X") != hooks.OriginRuntime {
		t.Errorf("X on b = %+v (%s)", got, b.Origin("X"))
	}
	if err := b.Update("X", func(x *hooks.App) { x.Key, x.URL = "x2", "http://127.0.0.1:9/X2" }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "X's new key on a", hasKey(a, "x2", "http://127.0.0.1:9/X2"))
	if _, ok := a.ByKey("x"); ok {
		t.Error("X's old key still on a")
	}
	if err := a.SetMethods("x2", true, false, "connect"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "X's method on b", func() bool { x, _ := b.ByKey("x2"); return x.Enabled("connect") })
	if err := a.Update(hooks.DefaultApp, func(x *hooks.App) { x.URL = "http://127.0.0.1:9/default" }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "defaultApp's backend on b", hasKey(b, hooks.DefaultApp, "http://127.0.0.1:9/default"))

	// One key, two apps, on two nodes: the store refuses the second even
	// when the node's own view has not seen the first yet.
	s := NewAppStore(newCluster(t, fast(r.URL)))
	if err := s.Put(hooks.App{Name: "Y", Key: "x2"}, true); err == nil || !strings.Contains(err.Error(), "app key x2 exists already (app X)") {
		t.Errorf("second app with key x2: %v", err)
	}
	if err := s.Put(hooks.App{Name: "X", Key: "x9"}, true); err == nil || !strings.Contains(err.Error(), "app X exists already") {
		t.Errorf("second app X: %v", err)
	}

	// C is b's configuration app: a runtime C added on a stays on a; b
	// keeps its own.
	if err := a.Add(hooks.App{Name: "C", Key: "c-runtime", URL: "http://127.0.0.1:9/C-runtime"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "runtime C on a", hasKey(a, "c-runtime", ""))
	if got, _ := b.ByKey("c"); got.URL != cfgC.URL || b.Origin("C") != hooks.OriginConfig {
		t.Errorf("b's C = %+v", got)
	}
	if _, ok := b.ByKey("c-runtime"); ok {
		t.Error("b serves the runtime C over its configuration's")
	}

	if err := b.Remove("X"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "X gone from a", func() bool { return !hasKey(a, "x2", "")() })

	// A node starting now finds every runtime app.
	d, _ := appsNode(t, r.URL, "d")
	if _, ok := d.ByKey("c-runtime"); !ok {
		t.Error("new node lacks C")
	}
	if x, _ := d.ByKey(hooks.DefaultApp); x.URL != "http://127.0.0.1:9/default" || d.Origin(hooks.DefaultApp) != hooks.OriginBuiltIn {
		t.Errorf("new node's defaultApp = %+v", x)
	}
}

// TestAppStoreRedisAway: a node started while Redis is down serves its
// configuration's apps, refuses changes (nothing changed), and loads the
// runtime apps once Redis answers; a node that missed a change while Redis
// was away (a restart with AOF) catches up when it is back.
func TestAppStoreRedisAway(t *testing.T) {
	dir := t.TempDir()
	port := testpeer.FreeUDPPort(t)
	url := "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	cfgA := hooks.App{Name: "A", Key: "a", URL: "http://127.0.0.1:9/A"}
	n, _ := appsNode(t, url, "n", cfgA)
	if _, ok := n.ByKey("a"); !ok {
		t.Fatal("configuration app missing")
	}
	if err := n.Add(hooks.App{Name: "Z", Key: "z"}); err == nil || !strings.Contains(err.Error(), "cluster-redis unreachable, nothing changed") {
		t.Errorf("add with Redis down: %v", err)
	}
	if _, ok := n.ByKey("z"); ok {
		t.Error("a change Redis did not keep is served")
	}

	r := testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: port, AOF: true})
	m, _ := appsNode(t, url, "m")
	if err := m.Add(hooks.App{Name: "X", Key: "x"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "X on the node started without Redis", hasKey(n, "x", ""))

	// Redis restarts (AOF keeps the apps); while it is away nothing moves,
	// then a change made right after it is back reaches both.
	r.Kill()
	if _, ok := n.ByKey("x"); !ok {
		t.Error("X lost while Redis is down")
	}
	testpeer.StartRedis(t, testpeer.RedisOptions{Dir: dir, Port: port, AOF: true})
	waitFor(t, 3*time.Second, "m can write again", func() bool { return m.Add(hooks.App{Name: "Y", Key: "y"}) == nil })
	waitFor(t, 3*time.Second, "Y on n", hasKey(n, "y", ""))
	if _, ok := n.ByKey("x"); !ok {
		t.Error("X lost after the restart")
	}
}
