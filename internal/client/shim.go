package client

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

// The browser shim: rtcgate.HTTPWebSocket, a WebSocket look-alike over the
// HTTP fallback, and rtcgate.enableHTTPFallback(), which puts it in place of
// window.WebSocket so that the Flashphoner Web SDK runs over HTTP unchanged.
//
//go:embed static/rtcgate-http-websocket.js
var static embed.FS

var shim, shimETag = func() ([]byte, string) {
	b, err := static.ReadFile("static/rtcgate-http-websocket.js")
	if err != nil {
		panic("client: the browser shim is not embedded: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return b, `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// shimModTime is when this binary started: the shim is part of it.
var shimModTime = time.Now().UTC().Truncate(time.Second)

// serveShim serves /rtcgate-http-websocket.js, cacheable for an hour and
// revalidated by its ETag (a hash of the content) after that.
func serveShim(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", shimETag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "rtcgate-http-websocket.js", shimModTime, bytes.NewReader(shim))
}
