package client

import (
	"net"
	"net/url"
	"path"
	"strings"
)

// originAllowed checks a browser's Origin header. Requests without one
// (native apps, tools) pass. With no patterns configured, the listener's own
// host and localhost pass, whatever the scheme and port. Patterns are
// jWebSocket's: shell wildcards over the whole origin, as in
// "http*://*.example.com".
func originAllowed(origin, host string, patterns []string) bool {
	if origin == "" {
		return true
	}
	if len(patterns) == 0 {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" {
			return false
		}
		oh := u.Hostname()
		if oh == "localhost" || oh == "127.0.0.1" || oh == "::1" {
			return true
		}
		h := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			h = hh
		}
		return strings.EqualFold(oh, strings.Trim(h, "[]"))
	}
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(origin)); ok {
			return true
		}
		// path.Match stops '*' at '/', which "http*://*.example.com" needs
		// to cross: compare with the scheme's slashes taken out.
		if ok, _ := path.Match(strings.ReplaceAll(strings.ToLower(p), "/", "\x00"), strings.ReplaceAll(strings.ToLower(origin), "/", "\x00")); ok {
			return true
		}
	}
	return false
}
