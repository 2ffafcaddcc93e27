package config

import (
	"errors"
	"strings"
	"testing"
)

// TestControlAccess: a control listener on a non-loopback address needs a
// control-token (HTTP, HTTPS) or an explicit opt-in (the TCP CLI); the
// error names the key, never the token.
func TestControlAccess(t *testing.T) {
	const token = "s3cret-token-0123456789"
	for _, c := range []struct {
		name string
		ov   []Override
		key  string // "" valid
	}{
		{"loopback defaults", nil, ""},
		{"localhost", []Override{{"listen-http", "localhost:0"}}, ""},
		{"ipv6 loopback", []Override{{"listen-http", "[::1]:0"}}, ""},
		{"every address without token", []Override{{"listen-http", "2225"}}, "control-token"},
		{"public http without token", []Override{{"listen-http", "192.0.2.1:2225"}}, "control-token"},
		{"public http with token", []Override{{"listen-http", "0.0.0.0:2225"}, {"control-token", token}}, ""},
		{"short token", []Override{{"control-token", "short"}}, "control-token"},
		{"token with space", []Override{{"control-token", "0123456789 abcdefgh"}}, "control-token"},
		{"public cli", []Override{{"listen-cli", "0.0.0.0:2224"}, {"control-token", token}}, "listen-cli"},
		{"public cli opted in", []Override{{"listen-cli", "0.0.0.0:2224"}, {"control-cli-allow-remote", "true"}}, ""},
		{"origin pattern", []Override{{"control-allowed-origins", "https://*.example.com"}}, ""},
		{"origin without scheme", []Override{{"control-allowed-origins", "example.com"}}, "control-allowed-origins"},
		{"host", []Override{{"control-hosts", "rtcgate.internal;10.0.0.5;::1"}}, ""},
		{"host with port", []Override{{"control-hosts", "rtcgate.internal:2225"}}, "control-hosts"},
		{"idle too short", []Override{{"control-idle-timeout", "10ms"}}, "control-idle-timeout"},
		{"pressure over idle", []Override{{"control-idle-timeout", "5s"}, {"control-pressure-idle-timeout", "6s"}}, "control-pressure-idle-timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load("", nil, c.ov)
			if c.key == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != c.key {
				t.Fatalf("err = %v, want one naming %s", err, c.key)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// TestClientDemo: the phone page is on by default while the client
// listeners are on loopback, off on a public one unless asked, and
// client-demo takes auto, true or false (in a file as YAML booleans too).
func TestClientDemo(t *testing.T) {
	for _, c := range []struct {
		name string
		yaml string
		ov   []Override
		on   bool
	}{
		{"default", "", nil, true},
		{"ipv6 loopback", "", []Override{{"listen-client", "[::1]:8080"}}, true},
		{"public", "", []Override{{"listen-client", "0.0.0.0:8080"}}, false},
		{"every address", "", []Override{{"listen-client", "8080"}}, false},
		{"public asked for", "", []Override{{"listen-client", "192.0.2.1:8080"}, {"client-demo", "true"}}, true},
		{"loopback turned off", "", []Override{{"client-demo", "false"}}, false},
		{"no plain listener", "", []Override{{"listen-client", ""}}, true},
		{"file boolean true", "listen-client: 0.0.0.0:8080\nclient-demo: true\n", nil, true},
		{"file boolean false", "client-demo: false\n", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = writeFile(t, c.yaml)
			}
			cfg, err := Load(path, nil, c.ov)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ClientDemoOn() != c.on {
				t.Errorf("client-demo %q with listen-client %q: on = %v, want %v", cfg.ClientDemo, cfg.ListenClient, cfg.ClientDemoOn(), c.on)
			}
		})
	}
	if c, _ := Load("", nil, nil); c.Get("client-demo") != "auto" {
		t.Errorf("default client-demo = %q, want auto", c.Get("client-demo"))
	}
	_, err := Load("", nil, []Override{{"client-demo", "yes please"}})
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "client-demo" || !strings.Contains(err.Error(), "auto, true or false") {
		t.Fatalf("bad client-demo: %v, want an error naming client-demo", err)
	}
}
