// Package phone is the page rtcgate serves at "/" on its client listener
// (client-demo): a phone in the browser built on the unmodified Flashphoner
// Web SDK, to try rtcgate out in a minute. Everything it needs is embedded:
// the page, its script and style, and the SDK with its licence.
package phone

import (
	"embed"
	"net/http"
	"strings"

	"github.com/rtcgate/rtcgate/internal/webasset"
)

// WebSDKVersion is the @flashphoner/websdk the page embeds: the version
// e2e/browser/package-lock.json pins (scripts/update-websdk.sh copies it).
const WebSDKVersion = "2.0.276"

// WebSDKFile is the SDK's file, named as in its npm package.
const WebSDKFile = "flashphoner-webrtc-only.min.js"

// Prefix is where the page's files are served.
const Prefix = "/phone/"

//go:embed static
var static embed.FS

var (
	index = webasset.Must(static, "static/index.html", "no-cache")
	// Revalidated at every use (cheap with the ETag): a new rtcgate
	// brings its own page at once.
	files = map[string]*webasset.File{
		"phone.js":           webasset.Must(static, "static/phone.js", "no-cache"),
		"phone.css":          webasset.Must(static, "static/phone.css", "no-cache"),
		"icon.svg":           webasset.Must(static, "static/icon.svg", "no-cache"),
		WebSDKFile:           webasset.Must(static, "static/websdk/"+WebSDKFile, "no-cache"),
		"websdk-LICENSE.txt": webasset.Must(static, "static/websdk/LICENSE", "no-cache"),
	}
)

// ContentSecurityPolicy is the page's: its scripts, styles and images
// from rtcgate alone, nothing inline, no frames, no plugins. It may
// connect anywhere over ws(s) and http(s), since its Server URL field may
// name another rtcgate (the HTTP fallback is plain requests).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"media-src 'self' blob: mediastream:; connect-src 'self' ws: wss: http: https:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves GET / (the page) and GET /phone/NAME (its files), and
// 404 for anything else.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f *webasset.File
		switch {
		case r.URL.Path == "/":
			f = index
		case strings.HasPrefix(r.URL.Path, Prefix):
			f = files[strings.TrimPrefix(r.URL.Path, Prefix)]
		}
		if f == nil {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		webasset.PageHeaders(h, ContentSecurityPolicy)
		h.Set("Permissions-Policy", "microphone=(self), camera=(self), geolocation=(), payment=()")
		f.ServeHTTP(w, r)
	})
}
