package config

import (
	"net"
	"net/netip"
	"path"
	"strings"
	"time"
)

// MinControlTokenLength is the shortest control-token accepted.
const MinControlTokenLength = 16

// validateControlAccess checks who may reach the control plane: a listener
// bound to a non-loopback address needs control-token (HTTP, HTTPS) or an
// explicit control-cli-allow-remote (the TCP CLI, whose client,
// rtpengine-ctl, cannot send a token).
func (c *Config) validateControlAccess() error {
	if t := c.ControlToken; t != "" {
		if len(t) < MinControlTokenLength {
			return keyErr("control-token", "too short: want at least %d characters", MinControlTokenLength)
		}
		for _, r := range t {
			if r <= ' ' || r == 0x7f {
				return keyErr("control-token", "must not contain spaces or control characters")
			}
		}
	}
	for _, l := range []struct{ key, val string }{{"listen-http", c.ListenHTTP}, {"listen-https", c.ListenHTTPS}} {
		if addr, _ := ParseListen(l.val); addr != "" && !IsLoopbackListen(addr) && c.ControlToken == "" {
			return keyErr("control-token", "required: %s binds %s, which is not a loopback address (clients send Authorization: Bearer <control-token>)", l.key, addr)
		}
	}
	if addr, _ := ParseListen(c.ListenCLI); addr != "" && !IsLoopbackListen(addr) && !c.ControlCLIAllowRemote {
		return keyErr("listen-cli", "%s is not a loopback address: the TCP CLI has no authentication (rtpengine-ctl cannot send a token); bind it to loopback, or set control-cli-allow-remote: true and firewall it", addr)
	}
	for _, o := range c.ControlAllowedOrigins {
		if _, err := path.Match(o, ""); err != nil || !strings.Contains(o, "://") {
			return keyErr("control-allowed-origins", "%q: want an origin such as https://admin.example.com (wildcards allowed)", o)
		}
	}
	for _, h := range c.ControlHosts {
		if h == "" || strings.ContainsAny(h, "/ :*") && !isIPv6(h) {
			return keyErr("control-hosts", "%q: want a host name or an IP address, without port", h)
		}
	}
	if c.ControlIdleTimeout < Duration(time.Second) {
		return keyErr("control-idle-timeout", "%s: want at least 1s", c.ControlIdleTimeout)
	}
	if c.ControlPressureIdleTimeout < Duration(100*time.Millisecond) || c.ControlPressureIdleTimeout > c.ControlIdleTimeout {
		return keyErr("control-pressure-idle-timeout", "%s: want 100ms to control-idle-timeout", c.ControlPressureIdleTimeout)
	}
	return nil
}

// ClientDemoOn reports whether the client listeners serve the phone page:
// client-demo true, or auto while neither listen-client nor
// listen-client-tls binds a non-loopback address (a page for trying
// rtcgate out, not for the internet unless asked).
func (c *Config) ClientDemoOn() bool {
	switch c.ClientDemo {
	case "true":
		return true
	case "false":
		return false
	}
	for _, l := range []string{c.ListenClient, c.ListenClientTLS} {
		if addr, _ := ParseListen(l); addr != "" && !IsLoopbackListen(addr) {
			return false
		}
	}
	return true
}

func isIPv6(h string) bool {
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.Is6()
}

// IsLoopbackListen reports whether a listen address (as ParseListen returns
// it) accepts loopback connections only. "" (every address) does not.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
