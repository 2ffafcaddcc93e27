package control

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

// ReadBody reads a request body of at most Options.MaxMessage bytes within
// Options.Timeout. On failure it returns the HTTP status to answer with:
// 413 for a body over the limit, 408 for one too slow, 400 otherwise.
func (s *Server) ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	// A slow body must not hold a connection slot forever; headers already
	// have ReadHeaderTimeout.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.Timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.MaxMessage)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes (control-max-message)", s.opts.MaxMessage)
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, http.StatusRequestTimeout, fmt.Errorf("request body not received within %s (control-timeout)", s.opts.Timeout)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading request body: %v", err)
	}
	return body, http.StatusOK, nil
}

// unescapeCommand turns the path part of GET /cli/list+sessions+all into a
// command line: '+' is a space and %XX an escaped byte (so %2B is a '+').
func unescapeCommand(escaped string) (string, error) {
	return url.PathUnescape(strings.ReplaceAll(escaped, "+", "%20"))
}
