// Package webasset serves files built into the binary (go:embed): each with
// its content type, an ETag that is a hash of its content (so a browser
// revalidates with If-None-Match and gets 304), its Cache-Control, and
// X-Content-Type-Options: nosniff.
package webasset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// File is one embedded file, ready to serve.
type File struct {
	name  string
	body  []byte
	etag  string
	ctype string
	cache string
}

// modTime is when this binary started: the files are part of it.
var modTime = time.Now().UTC().Truncate(time.Second)

// Must reads name from fsys. A missing file is a broken build: it panics.
// cacheControl is the Cache-Control header ("no-cache": revalidate every
// time, cheap with the ETag).
func Must(fsys fs.FS, name, cacheControl string) *File {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		panic("webasset: " + name + " is not embedded: " + err.Error())
	}
	sum := sha256.Sum256(b)
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ctype = "application/javascript; charset=utf-8" // mime's table varies with the host's
	case "":
		ctype = "text/plain; charset=utf-8" // LICENSE
	}
	return &File{name: path.Base(name), body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: ctype, cache: cacheControl}
}

// Body is the file's content.
func (f *File) Body() []byte { return f.body }

// ServeHTTP answers GET and HEAD, conditional and range requests included.
func (f *File) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", f.cache)
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, f.name, modTime, bytes.NewReader(f.body))
}

// PageHeaders sets what every page rtcgate serves to browsers carries: its
// Content-Security-Policy, no framing, no referrer, no sniffing, and a
// browsing context of its own.
func PageHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
