package client

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func FuzzParseFrame(f *testing.F) {
	for _, seed := range []string{
		`{"message":"connection","data":[{"appKey":"defaultApp"}]}`,
		`{"message":"ping","data":[]}`,
		`{"message":"","data":[]}`,
		`{"data":[1,2]}`,
		` {"message":"x"} `,
		`[]`, `null`, ``, `{`, `{"message":1}`, `{"message":"a","data":{}}`,
	} {
		f.Add([]byte(seed), 0)
		f.Add([]byte(seed), 16)
	}
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		fr, err := ParseFrame(b, max)
		if err != nil {
			if fr != nil {
				t.Fatal("a frame with an error")
			}
			return
		}
		if fr.Message == "" {
			t.Fatalf("accepted %q without a message", b)
		}
		if max > 0 && len(b) > max {
			t.Fatalf("accepted %d bytes over a limit of %d", len(b), max)
		}
		_ = fr.Arg()
	})
}

// fuzzID is a connection the fuzz hub has open, so that seeds reach send
// and sync.
const fuzzID = "fuzzfuzzfuzzfuzz0001"

func FuzzFallbackParams(f *testing.F) {
	hub := NewHub(Options{MaxFrame: 4096, IdleTimeout: time.Minute, SyncWait: 2 * time.Millisecond,
		MaxConnections: 64, Strategy: "reject", MaxPending: 50}, BuiltIn{})
	srv := NewServer(hub, nil)
	serve := func(method, query string, body []byte, contentType string) int {
		req, err := http.NewRequestWithContext(context.Background(), method, "http://rtc.example.org/http", bytes.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.URL.RawQuery = query
		req.RemoteAddr = "192.0.2.1:40000"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := serve("GET", "action=open&connectionId="+fuzzID, nil, ""); code != 200 {
		f.Fatalf("open: %d", code)
	}
	const form = "application/x-www-form-urlencoded"
	for _, seed := range []struct {
		query, body string
		post, form  bool
	}{
		{"action=open&connectionId=" + fuzzID, "", false, false},
		{"action=send&connectionId=" + fuzzID + "&utid=1", `{"message":"connection","data":[{"appKey":"a"}]}`, true, false},
		{"action=send&connectionId=" + fuzzID, `data={"message":"ping","data":[]}&utid=2`, true, true},
		{"action=send&connectionId=" + fuzzID + `&data={"message":"sendData","data":[{"operationId":"x"}]}`, "", false, false},
		{"action=sync&connectionId=" + fuzzID + "&ack=0&wait=0", "", false, false},
		{"", "action=sync&connectionId=" + fuzzID + "&ack=18446744073709551615&wait=1e9", true, true},
		{"action=sync&connectionId=" + fuzzID + "&wait=NaN", "", false, false},
		{"action=login&connectionId=" + fuzzID + "&utid=99999999999999999999", "", false, false},
		{"action=download&connectionId=" + fuzzID + "&filename=a", "", true, false},
		{"action=open&connectionId=" + fuzzID + "&sessionId=x&authToken=y", "", false, false},
		{"action=open&connectionId=abcdefghijklmnop&sessionId=x&authToken=y&ack=1", "", false, false},
		{"action=close&connectionId=" + fuzzID, "", false, false},
		{"action=nope&connectionId=" + fuzzID, "", false, false},
		{"action=send&connectionId=%zz", "", false, false},
		{"connectionId=" + fuzzID, "%%%", true, true},
	} {
		f.Add(seed.query, []byte(seed.body), seed.post, seed.form)
	}
	allowed := map[int]bool{200: true, 400: true, 403: true, 404: true, 413: true, 501: true, 503: true}
	f.Fuzz(func(t *testing.T, query string, body []byte, post, isForm bool) {
		method, ct := "GET", ""
		if post {
			method = "POST"
			if isForm {
				ct = form
			}
		}
		wd := time.AfterFunc(5*time.Second, func() { panic("FuzzFallbackParams: a request took over 5 s") })
		defer wd.Stop()
		if code := serve(method, query, body, ct); !allowed[code] {
			t.Fatalf("%s ?%s body %q: status %d", method, query, body, code)
		}
	})
}
