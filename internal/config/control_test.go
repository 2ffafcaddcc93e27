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
