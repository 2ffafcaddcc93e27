package client

import (
	"embed"

	"github.com/rtcgate/rtcgate/internal/webasset"
)

// The browser shim: rtcgate.HTTPWebSocket, a WebSocket look-alike over the
// HTTP fallback, and rtcgate.enableHTTPFallback(), which puts it in place of
// window.WebSocket so that the Flashphoner Web SDK runs over HTTP unchanged.
//
//go:embed static/rtcgate-http-websocket.js
var static embed.FS

// shim is served at /rtcgate-http-websocket.js, cacheable for an hour and
// revalidated by its ETag (a hash of the content) after that.
var shim = webasset.Must(static, "static/rtcgate-http-websocket.js", "public, max-age=3600")
