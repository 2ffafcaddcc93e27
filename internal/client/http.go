package client

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The HTTP fallback is jWebSocket's REST API (action=open|login|send|sync|
// download|logout|close on "/http"), made lossless: sync takes an ack, so a
// lost response is fetched again; send takes a utid, so a retried send runs
// once. It is a thin transport over the hub, as the WebSocket is; the
// connection bindings and the actions are in fallback.go.

// Headers of a sync response: the numbers of the first and last frame in it.
const (
	headerFirstSeq = "X-Rtcgate-First-Seq"
	headerLastSeq  = "X-Rtcgate-Last-Seq"
)

// httpCloseCommand is jWebSocket's word for "the connection is closed": the
// answer to action=close and the last element of a sync after the session
// ended.
const httpCloseCommand = "http.command.close"

// defaultMaxFrame bounds the fallback's reads when no client-max-frame is
// configured: the fallback never reads without a limit.
const defaultMaxFrame = 1 << 20

// serveHTTP is the HTTP fallback: GET or POST /http?connectionId=…&action=….
// Parameters come in the query or in an application/x-www-form-urlencoded
// POST body (the body's win); for action=send, `data` may instead be the raw
// POST body.
func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	origin := r.Header.Get("Origin")
	if !originAllowed(origin, r.Host, h.opts.Origins) {
		httpText(w, http.StatusForbidden, "origin not allowed")
		return
	}
	if origin != "" {
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Add("Vary", "Origin")
		hd.Set("Access-Control-Expose-Headers", headerFirstSeq+", "+headerLastSeq)
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost:
	case http.MethodOptions:
		hd.Set("Access-Control-Allow-Methods", "GET, POST")
		hd.Set("Access-Control-Allow-Headers", "Content-Type")
		hd.Set("Access-Control-Max-Age", "600")
		hd.Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hd.Set("Allow", "GET, POST, OPTIONS")
		httpText(w, http.StatusMethodNotAllowed, "the HTTP fallback takes GET or POST")
		return
	}

	p, status, msg := h.readParams(w, r)
	if status != 0 {
		httpText(w, status, msg)
		return
	}
	action := p.get("action")
	run, ok := fallbackActions[action]
	if !ok {
		if action == "" {
			httpText(w, http.StatusBadRequest, "missing action (open, login, send, sync, download, logout or close)")
			return
		}
		httpText(w, http.StatusNotFound, "unknown action (open, login, send, sync, download, logout or close)")
		return
	}
	id := p.get("connectionId")
	if !validConnectionID(id) {
		httpText(w, http.StatusBadRequest, "invalid connectionId: 16-128 characters of A-Z, a-z, 0-9, _ and -")
		return
	}
	k := bindingKey{hash: hashConnectionID(id)}
	if h.route(w, r, p, k) {
		return
	}
	run(h, w, r, p, k)
}

// fallbackParams are one request's parameters.
type fallbackParams struct {
	query url.Values
	form  url.Values // an application/x-www-form-urlencoded POST body
	raw   []byte     // any other POST body: action=send's data
	body  []byte     // the POST body as read, forwarded as is to an owner node
}

// get is the parameter's first value, from the body before the query.
func (p *fallbackParams) get(name string) string {
	v, _ := p.lookup(name)
	return v
}

func (p *fallbackParams) lookup(name string) (string, bool) {
	if vs, ok := p.form[name]; ok && len(vs) > 0 {
		return vs[0], true
	}
	if vs, ok := p.query[name]; ok && len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// data is action=send's frame: the raw POST body, else the `data`
// parameter.
func (p *fallbackParams) data() ([]byte, bool) {
	if len(p.raw) > 0 {
		return p.raw, true
	}
	v, ok := p.lookup("data")
	if !ok || v == "" {
		return nil, false
	}
	return []byte(v), true
}

func (h *Hub) maxFrame() int {
	if h.opts.MaxFrame > 0 {
		return h.opts.MaxFrame
	}
	return defaultMaxFrame
}

// readParams parses the query and a POST body, whose size is bounded: a
// form-encoded frame may take three bytes for each of its own.
func (h *Hub) readParams(w http.ResponseWriter, r *http.Request) (*fallbackParams, int, string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, http.StatusBadRequest, "malformed query string"
	}
	p := &fallbackParams{query: q}
	if r.Method != http.MethodPost || r.Body == nil {
		return p, 0, ""
	}
	limit := int64(3*h.maxFrame() + 64<<10)
	// The body must come within client-read-timeout: a client that trickles
	// it holds a descriptor and a goroutine. The deadline is lifted after,
	// so that a long-polling sync is not cut by it.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(h.opts.ReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	rc.SetReadDeadline(time.Time{})
	p.body = body
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, new(*http.MaxBytesError)):
			return nil, http.StatusRequestEntityTooLarge, "request body too large (client-max-frame)"
		case errors.As(err, &ne) && ne.Timeout():
			w.Header().Set("Connection", "close")
			return nil, http.StatusRequestTimeout, "request body not received within client-read-timeout"
		}
		return nil, http.StatusBadRequest, "could not read the request body"
	}
	// A body that is a JSON object is a frame whatever its Content-Type:
	// curl and jQuery post form-encoded by default. A form's first
	// parameter name cannot start with '{'.
	trimmed := bytes.TrimSpace(body)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" &&
		!bytes.HasPrefix(trimmed, []byte("{")) {
		if p.form, err = url.ParseQuery(string(body)); err != nil {
			return nil, http.StatusBadRequest, "malformed form body"
		}
		return p, 0, ""
	}
	if len(trimmed) > 0 {
		p.raw = body
	}
	return p, 0, ""
}

// validConnectionID: 16 to 128 characters of [A-Za-z0-9_-].
func validConnectionID(id string) bool {
	if len(id) < 16 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// httpText answers an error (or close's http.command.close) as plain text.
func httpText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, strings.TrimSuffix(msg, "\n")+"\n")
}
