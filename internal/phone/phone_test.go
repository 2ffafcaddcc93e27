package phone

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// browser is e2e/browser: its package-lock.json pins the Web SDK, and
// `make test-deps` (npm ci) installs it in its node_modules.
const browser = "../../e2e/browser"

// TestWebSDKIsNPMs: the embedded SDK is, byte for byte, the file of the
// npm package at the version e2e/browser's package-lock.json pins (the one
// the browser tests run), and its licence names that version.
func TestWebSDKIsNPMs(t *testing.T) {
	var lock struct {
		Packages map[string]struct{ Version, License string } `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(browser, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	pinned := lock.Packages["node_modules/@flashphoner/websdk"]
	if pinned.Version != WebSDKVersion || pinned.License != "MIT" {
		t.Fatalf("package-lock.json pins @flashphoner/websdk %s (%s); the page embeds %s: run scripts/update-websdk.sh and update WebSDKVersion",
			pinned.Version, pinned.License, WebSDKVersion)
	}

	pkg := filepath.Join(browser, "node_modules", "@flashphoner", "websdk")
	var installed struct{ Version string }
	b, err = os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		t.Fatalf("the npm package is not installed (make test-deps runs npm ci in e2e/browser): %v", err)
	}
	json.Unmarshal(b, &installed)
	if installed.Version != WebSDKVersion {
		t.Fatalf("e2e/browser/node_modules has @flashphoner/websdk %s, want %s: run npm ci there", installed.Version, WebSDKVersion)
	}
	npm, err := os.ReadFile(filepath.Join(pkg, WebSDKFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files[WebSDKFile].Body(), npm) {
		t.Fatalf("the embedded %s (%d bytes) differs from npm's (%d bytes): run scripts/update-websdk.sh", WebSDKFile, len(files[WebSDKFile].Body()), len(npm))
	}

	licence := string(files["websdk-LICENSE.txt"].Body())
	for _, want := range []string{"@flashphoner/websdk " + WebSDKVersion + ": MIT", "Permission is hereby granted", "webrtc-adapter"} {
		if !strings.Contains(licence, want) {
			t.Errorf("the embedded licence lacks %q", want)
		}
	}
	if !strings.Contains(string(index.Body()), WebSDKVersion) {
		t.Errorf("index.html does not name the SDK's version %s", WebSDKVersion)
	}
}

var (
	localRef = regexp.MustCompile(`(?:src|href)="(/[^"]*)"`)
	// What the Content-Security-Policy would block: inline scripts,
	// style attributes and elements, event handler attributes.
	inline = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle="|\son[a-z]+="|javascript:`)
)

// TestHandler: the page at "/", its files under /phone/, each with the
// page's security headers; anything else 404; only GET and HEAD; the page
// has nothing inline its policy would block, and every file it names is
// served (the shim by the client listener itself).
func TestHandler(t *testing.T) {
	h := Handler()
	get := func(method, path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	page := get("GET", "/")
	if page.Code != 200 || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", page.Code, page.Header().Get("Content-Type"))
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
	} {
		if got := page.Header().Get(k); got != want {
			t.Errorf("GET / %s = %q, want %q", k, got, want)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("the policy allows unsafe sources: %s", ContentSecurityPolicy)
	}
	html := page.Body.String()
	if m := inline.FindString(html); m != "" {
		t.Errorf("index.html has %q inline: the Content-Security-Policy blocks it", m)
	}

	refs := localRef.FindAllStringSubmatch(html, -1)
	if len(refs) < 5 {
		t.Fatalf("index.html names %d local files, want its script, style, icon, SDK and licence", len(refs))
	}
	for _, m := range refs {
		path := m[1]
		if path == "/rtcgate-http-websocket.js" {
			continue // the client listener's own
		}
		rec := get("GET", path)
		if rec.Code != 200 || rec.Body.Len() == 0 || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s (named by index.html): %d, %d bytes, ETag %q", path, rec.Code, rec.Body.Len(), rec.Header().Get("ETag"))
			continue
		}
		if rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s has no Content-Security-Policy", path)
		}
		if again := get("GET", path, "If-None-Match", rec.Header().Get("ETag")); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, again.Code)
		}
	}
	if ct := get("GET", Prefix+WebSDKFile).Header().Get("Content-Type"); ct != "application/javascript; charset=utf-8" {
		t.Errorf("the SDK's Content-Type is %q", ct)
	}
	if ct := get("GET", Prefix+"websdk-LICENSE.txt").Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("the licence's Content-Type is %q", ct)
	}

	for _, path := range []string{"/index.html", "/phone/", "/phone/nope.js", "/phone/../phone.go", "/static/phone.js", "/favicon.ico"} {
		if rec := get("GET", path); rec.Code != 404 {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
	if rec := get("POST", "/"); rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	if rec := get("HEAD", "/"); rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}
