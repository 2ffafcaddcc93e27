// Package hookbackend is the app backend the benchmark programs point
// rtcgate's REST hooks at: net/http on 127.0.0.1 inside the program,
// answering every hook 200 with an empty JSON object (no restClientConfig:
// every method keeps its default policy). What it does with a hook besides
// is the program's: it counts, checks order, or times.
package hookbackend

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Handle sees one hook before its reply: the REST method (the URL path's
// last element) and the body, nil if it could not be read. An error makes
// the reply 400. A non-nil after is called once the reply is on the socket
// with the backend's own time, from the request's first byte read to then.
type Handle func(method string, body []byte) (after func(took time.Duration), err error)

// Backend is a running backend.
type Backend struct {
	srv    *http.Server
	url    string // http://127.0.0.1:port/app
	handle Handle
	conns  atomic.Uint64
}

// reply is every hook's answer.
var reply = []byte("{}")

// Start serves the hooks of app on a kernel-chosen port.
func Start(app string, h Handle) (*Backend, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Backend{url: "http://" + ln.Addr().String() + "/" + app, handle: h}
	b.srv = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 10 * time.Second,
		// Connections opened are a figure: rtcgate's HTTP client keeps a
		// bounded number idle, and any beyond it are opened per request.
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		},
	}
	go b.srv.Serve(ln)
	return b, nil
}

// AppURL is the app's url for rtcgate's configuration.
func (b *Backend) AppURL() string { return b.url }

// Conns is the number of TCP connections accepted so far.
func (b *Backend) Conns() uint64 { return b.conns.Load() }

// Close stops serving.
func (b *Backend) Close() { b.srv.Close() }

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		body = nil
	}
	after, err := b.handle(method, body)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(reply)))
	w.Write(reply)
	if after != nil {
		// The reply is on the socket before the time is taken: the
		// backend's time is request in → response out.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		after(time.Since(start))
	}
}
