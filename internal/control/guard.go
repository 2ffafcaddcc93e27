package control

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
)

// listenerInfo is what the guard needs to know about the listener a
// request came in on.
type listenerInfo struct {
	bound     netip.Addr // the address it is bound to (unspecified: every address)
	needToken bool       // bound to a non-loopback address: control-token required
}

func newListenerInfo(ln net.Listener) *listenerInfo {
	li := &listenerInfo{needToken: true}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			li.bound = a.Unmap()
			li.needToken = !li.bound.IsLoopback()
		}
	}
	return li
}

// IsLoopbackListener reports whether ln accepts loopback connections only:
// such a listener needs no control-token.
func IsLoopbackListener(ln net.Listener) bool { return !newListenerInfo(ln).needToken }

// guard keeps web pages away from the control plane — cross-site requests
// (CSRF) and DNS rebinding — and asks for the control-token where the
// listener is reachable from other hosts:
//
//   - a Host that is not this server's (loopback names and addresses, the
//     address the connection came in on, control-hosts) is answered 421;
//   - a request with an Origin not in control-allowed-origins (by default
//     none), or that a browser marks as cross-site (Sec-Fetch-Site) without
//     an Origin, is answered 403;
//   - without a valid "Authorization: Bearer <control-token>", a request to
//     a listener bound to a non-loopback address is answered 401 (GET /ping
//     excepted, for health checks); a wrong token is refused anywhere. A
//     page (HandlePage) also takes the token as a Basic password.
//
// Tools send no Origin (curl, rtpengine-ctl, rtcgate ctl, Kamailio), so
// they pass.
func (s *Server) guard(li *listenerInfo, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(li, r) {
			s.refuse(w, r, http.StatusMisdirectedRequest, "host", "this control plane does not answer for that Host (control-hosts)\n")
			return
		}
		origin := r.Header.Get("Origin")
		if origin != "" {
			if !s.originAllowed(origin) {
				s.refuse(w, r, http.StatusForbidden, "origin", "cross-origin requests are refused (control-allowed-origins)\n")
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				// A preflight of an allowed origin.
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		} else if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "none" && site != "same-origin" {
			// A browser's cross-site request that carries no Origin (an
			// <img> or a link to GET /cli/...).
			s.refuse(w, r, http.StatusForbidden, "origin", "cross-site requests are refused\n")
			return
		}
		if !s.authorized(li, r) {
			if s.isPage(r) {
				// A browser prompts for Basic; the control-token is the
				// password (HandlePage).
				w.Header().Set("WWW-Authenticate", `Basic realm="rtcgate control-token", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rtcgate"`)
			}
			s.refuse(w, r, http.StatusUnauthorized, "token",
				"this control listener needs Authorization: Bearer <control-token> (rtcgate ctl: --token, RTCGATE_CONTROL_TOKEN or --config)\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, why, msg string) {
	kind := "http"
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		kind = "websocket"
	}
	s.requests.WithLabelValues(kind, endpointOf(r.URL.Path), itoa(code)).Inc()
	s.refused.WithLabelValues(why).Inc()
	// Never the Authorization header; the rest is cut short.
	s.log.Debug("control request refused", "reason", why, "remote", r.RemoteAddr,
		"host", truncate(r.Host, 64), "origin", truncate(r.Header.Get("Origin"), 64))
	// Do not wait for a body nobody will read.
	w.Header().Set("Connection", "close")
	plain(w, code, msg)
}

// hostAllowed accepts loopback names and addresses, the address the
// connection came in on or the listener is bound to, and control-hosts.
// A request without Host (HTTP/1.0) passes: browsers always send one.
func (s *Server) hostAllowed(li *listenerInfo, r *http.Request) bool {
	host := r.Host
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" {
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.WithZone("").Unmap()
		if a.IsLoopback() || (li.bound.IsValid() && !li.bound.IsUnspecified() && a == li.bound) {
			return true
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().WithZone("").Unmap() == a {
				return true
			}
		}
	}
	for _, h := range s.opts.Hosts {
		if strings.EqualFold(strings.Trim(h, "[]"), host) {
			return true
		}
	}
	return false
}

// originAllowed matches control-allowed-origins: exact origins or shell
// wildcards over the whole origin ("https://*.example.com"). None by
// default.
func (s *Server) originAllowed(origin string) bool {
	o := strings.ToLower(origin)
	for _, p := range s.opts.AllowedOrigins {
		p = strings.ToLower(p)
		if p == o {
			return true
		}
		// '*' stops at '/' in path.Match: compare without the slashes.
		if ok, _ := path.Match(strings.ReplaceAll(p, "/", "\x00"), strings.ReplaceAll(o, "/", "\x00")); ok {
			return true
		}
	}
	return false
}

// authorized checks the bearer token: required on a non-loopback listener
// (GET /ping excepted), checked wherever one is sent. A page (HandlePage)
// also takes it as a Basic password, any user name.
func (s *Server) authorized(li *listenerInfo, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return !li.needToken || (r.Method == http.MethodGet && r.URL.Path == "/ping")
	}
	if s.opts.Token == "" {
		// No token configured: a loopback listener ignores credentials
		// meant for something else; a public one has nothing to accept.
		return !li.needToken
	}
	scheme, tok, ok := strings.Cut(auth, " ")
	if ok && strings.EqualFold(scheme, "Basic") && s.isPage(r) {
		_, password, ok := r.BasicAuth()
		return ok && s.tokenMatches(password)
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return s.tokenMatches(strings.TrimSpace(tok))
}

func (s *Server) tokenMatches(tok string) bool {
	got, want := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(s.opts.Token))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
