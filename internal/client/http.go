package client

import "net/http"

// serveHTTP is the HTTP fallback (jWebSocket's REST form); see fallback.go.
func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "the HTTP fallback is not built yet", http.StatusNotImplemented)
}

func serveShim(w http.ResponseWriter, r *http.Request) {
	http.NotFound(w, r)
}
