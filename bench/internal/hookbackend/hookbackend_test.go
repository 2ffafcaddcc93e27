package hookbackend

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBackend(t *testing.T) {
	type call struct {
		method, body string
	}
	calls := make(chan call, 4)
	took := make(chan time.Duration, 1)
	b, err := Start("app", func(method string, body []byte) (func(time.Duration), error) {
		calls <- call{method, string(body)}
		switch method {
		case "Bad":
			return nil, errors.New("bad")
		case "Timed":
			return func(d time.Duration) { took <- d }, nil
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.AppURL(), "http://127.0.0.1:") || !strings.HasSuffix(b.AppURL(), "/app") {
		t.Fatalf("AppURL %q", b.AppURL())
	}
	post := func(method string) (int, string) {
		t.Helper()
		resp, err := http.Post(b.AppURL()+"/"+method, "application/json", strings.NewReader(`{"x":1}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post("Counted"); code != 200 || body != "{}" {
		t.Fatalf("Counted: %d %q", code, body)
	}
	if c := <-calls; c.method != "Counted" || c.body != `{"x":1}` {
		t.Fatalf("handled %+v", c)
	}
	if code, _ := post("Bad"); code != http.StatusBadRequest {
		t.Fatalf("Bad: %d, want 400", code)
	}
	<-calls
	if code, body := post("Timed"); code != 200 || body != "{}" {
		t.Fatalf("Timed: %d %q", code, body)
	}
	<-calls
	if d := <-took; d <= 0 {
		t.Fatalf("backend time %v", d)
	}
	if b.Conns() == 0 {
		t.Fatal("no connection counted")
	}
}
