package daemon

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rtcgate/rtcgate/internal/cluster"
	"github.com/rtcgate/rtcgate/internal/config"
)

// newDaemon builds (does not start) a daemon on the defaults and over, its
// state file in the test's folder.
func newDaemon(t *testing.T, over ...config.Override) *Daemon {
	t.Helper()
	over = append([]config.Override{{Key: "state-file", Value: filepath.Join(t.TempDir(), "state.json")}}, over...)
	cfg, err := config.Load("", nil, over)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSingleNodeHasNoRedis: without cluster-redis rtcgate is one node as
// before: no Redis client is ever built (so nothing dials Redis), no
// cluster metrics, and `list nodes` says it is not a cluster.
func TestSingleNodeHasNoRedis(t *testing.T) {
	var over []config.Override
	for _, k := range []string{"listen-http", "listen-cli", "listen-ng", "listen-client", "listen-sip"} {
		over = append(over, config.Override{Key: k, Value: "127.0.0.1:0"})
	}
	d := newDaemon(t, over...)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if d.Cluster != nil || cluster.ClientsBuilt() != 0 {
		t.Errorf("a single node built a Redis client (%d)", cluster.ClientsBuilt())
	}
	if out := d.CLI.Run(context.Background(), "list nodes"); out != "Not a cluster: cluster-redis is not set\n" {
		t.Errorf("list nodes = %q", out)
	}
	mfs, err := d.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "rtcgate_cluster_") {
			t.Errorf("single node exports %s", mf.GetName())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPhonePageWhenAsked: the client listener serves the phone page at "/"
// while client-demo says so: by default only when every client listener is
// on loopback; true or false decide whatever the address.
func TestPhonePageWhenAsked(t *testing.T) {
	for _, c := range []struct {
		name         string
		client, demo string
		want         int
	}{
		{"loopback by default", "127.0.0.1:0", "", 200},
		{"public by default", "0.0.0.0:0", "", 404},
		{"public asked for", "0.0.0.0:0", "true", 200},
		{"loopback turned off", "127.0.0.1:0", "false", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			over := []config.Override{{Key: "listen-client", Value: c.client}}
			if c.demo != "" {
				over = append(over, config.Override{Key: "client-demo", Value: c.demo})
			}
			d := newDaemon(t, over...)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := d.Shutdown(ctx); err != nil {
					t.Error(err)
				}
			}()
			for path, want := range map[string]int{"/": c.want, "/phone/phone.js": c.want, "/rtcgate-http-websocket.js": 200} {
				rec := httptest.NewRecorder()
				d.client.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != want {
					t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
				}
			}
		})
	}
}

// TestWebRTCKeys: webrtc and webrtc-address reach the SIP gateway (the
// address browsers get; "" leaves the engine's); webrtc-port-min and
// webrtc-port-max are still accepted but no longer used, and say so once
// at start when changed — not when left at their defaults.
func TestWebRTCKeys(t *testing.T) {
	build := func(over ...config.Override) (*Daemon, string) {
		t.Helper()
		over = append([]config.Override{{Key: "state-file", Value: filepath.Join(t.TempDir(), "state.json")},
			{Key: "listen-sip", Value: "127.0.0.1:0"}}, over...)
		cfg, err := config.Load("", nil, over)
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		d, err := New(cfg, &logs)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.Shutdown(ctx); err != nil {
				t.Error(err)
			}
		})
		return d, logs.String()
	}
	d, logs := build()
	if w := d.sipGateway.WebRTC; !w.Enabled || w.Address.IsValid() {
		t.Errorf("defaults: %+v, want WebRTC on with the engine's address", w)
	}
	if strings.Contains(logs, "webrtc-port-min") {
		t.Errorf("a warning with the defaults: %s", logs)
	}
	d, logs = build(config.Override{Key: "webrtc-address", Value: "192.0.2.7"}, config.Override{Key: "webrtc-port-min", Value: "41000"})
	if w := d.sipGateway.WebRTC; !w.Enabled || w.Address.String() != "192.0.2.7" {
		t.Errorf("webrtc-address 192.0.2.7: %+v", w)
	}
	if n := strings.Count(logs, "webrtc-port-min and webrtc-port-max no longer apply"); n != 1 {
		t.Errorf("%d warnings about webrtc-port-min, want 1: %s", n, logs)
	}
	d, _ = build(config.Override{Key: "webrtc", Value: "false"})
	if d.sipGateway.WebRTC.Enabled {
		t.Error("webrtc false left WebRTC on")
	}
}
