package testpeer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHAProxy: round robin without stickiness over two servers, one
// request after the other on one kept-alive client: the answers alternate
// between them, X-Served-By names each, X-Forwarded-For names the client;
// after Stop the port no longer answers.
func TestHAProxy(t *testing.T) {
	var backends []string
	for _, name := range []string{"a", "b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.Header.Get("X-Forwarded-For"))
		}))
		t.Cleanup(srv.Close)
		backends = append(backends, strings.TrimPrefix(srv.URL, "http://"))
	}
	h := StartHAProxy(t, backends...)
	var got []string
	for range 4 {
		res, err := http.Get(h.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got = append(got, string(body)+" "+res.Header.Get("X-Served-By"))
	}
	// Round robin may start at either server; then it alternates.
	for i, g := range got {
		if g != "a 127.0.0.1 s0" && g != "b 127.0.0.1 s1" {
			t.Fatalf("answer %d: %q", i, g)
		}
		if i > 0 && g == got[i-1] {
			t.Fatalf("answers %q: two in a row from one server", got)
		}
	}
	if h.Pid() <= 0 {
		t.Fatalf("pid %d", h.Pid())
	}
	h.Stop()
	if _, err := http.Get(h.URL + "/"); err == nil {
		t.Fatal("haproxy still answers after Stop")
	}
}
