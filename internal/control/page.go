package control

import (
	"context"
	"github.com/rtcgate/rtcgate/internal/webasset"
	"net/http"
	"strings"
	"time"
)

// Pages are what a browser may load from the control plane (the operator's
// status page): read-only, GET and HEAD only, behind the same guard as the
// rest. A page's own requests pass it: a browser sends no Origin with a
// same-origin GET (an EventSource included) and marks it Sec-Fetch-Site:
// same-origin. Where the listener needs the control-token, a browser cannot
// send a bearer token: on a page's paths the guard also takes it as the
// password of HTTP Basic authentication, and its 401 asks for Basic, so
// that the browser prompts. Nothing else accepts Basic, so credentials a
// browser remembers cannot drive the CLI or ng from a cross-site request.

// pageCSP keeps a page to its own files: no inline script or style, no
// other origin, no framing, no forms.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// HandlePage serves h for browsers at prefix and under prefix/ (GET and
// HEAD), with a strict Content-Security-Policy and no caching or framing.
func (s *Server) HandlePage(prefix string, h http.Handler) {
	prefix = "/" + strings.Trim(prefix, "/")
	s.subMu.Lock()
	s.pages = append(s.pages, prefix)
	s.subMu.Unlock()
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		webasset.PageHeaders(hd, pageCSP)
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
	s.mux.Handle("GET "+prefix, page)
	s.mux.Handle("GET "+prefix+"/", page)
}

// isPage reports whether r reads a page (see HandlePage).
func (s *Server) isPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	s.subMu.RLock()
	defer s.subMu.RUnlock()
	for _, p := range s.pages {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			return true
		}
	}
	return false
}

// eventRetry is what a browser's EventSource waits before reconnecting
// once a stream ends.
const eventRetry = time.Second

// ServeEvents answers r with a stream of server-sent events
// (text/event-stream): next's output as one event, at once and then every
// interval, until the client goes, next fails, the server shuts down or the
// connection is closed as quiet. While it streams the connection counts as
// quiet, as an idle control WebSocket does (nothing arrives on it): it
// gives way at control-max-connections and under pressure, and is ended
// after control-idle-timeout — the browser's EventSource reconnects by
// itself a second later. next's output must hold no newline.
func (s *Server) ServeEvents(w http.ResponseWriter, r *http.Request, interval time.Duration, next func(ctx context.Context) ([]byte, error)) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if !s.enterLive(r, cancel) {
		plain(w, http.StatusServiceUnavailable, "shutting down\n")
		return
	}
	defer s.leaveLive(r)
	if tc, _ := r.Context().Value(connKey{}).(*trackedConn); tc != nil {
		if s.opts.IdleTimeout > 0 {
			tc.setOnIdle(cancel)
			defer tc.setOnIdle(nil) // a keep-alive connection again
		}
		tc.busy.Store(false)
	}
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve another request
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	send := func(b ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.Timeout))
		for _, p := range b {
			if _, err := w.Write(p); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: " + itoa(int(eventRetry/time.Millisecond)) + "\n\n")) {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		data, err := next(ctx)
		if err != nil || ctx.Err() != nil {
			return
		}
		if !send([]byte("data: "), data, []byte("\n\n")) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
