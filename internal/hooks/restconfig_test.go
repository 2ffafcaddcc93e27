package hooks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/rtcgate/rtcgate/internal/client"
)

func TestParseRestClientConfig(t *testing.T) {
	c, err := ParseRestClientConfig(json.RawMessage(`{
		"ConnectionStatusEvent": {"restExclude": "", "clientExclude": "", "restOnError": "LOG", "restPolicy": "NOTIFY", "restOverwrite": ""},
		"call": {"restPolicy": "OVERWRITE", "restOverwrite": "callee, visibleName", "restOnError": "FAIL", "restExclude": "sdp,,custom", "clientExclude": "sipStatus"},
		"OnDataEvent": {"restPolicy": "disabled"},
		"sendData": {"restPolicy": "disabled"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := RestClientConfig{
		"ConnectionStatusEvent": {Policy: Notify},
		"call": {Policy: Overwrite, FailOnError: true, RestOverwrite: []string{"callee", "visibleName"},
			RestExclude: []string{"sdp", "custom"}, ClientExclude: []string{"sipStatus"}},
		"OnDataEvent": {Policy: Disable}, // sendData, a retired name, is left out
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("parsed\n%#v\nwant\n%#v", c, want)
	}
	if got := c.For("hangup"); !reflect.DeepEqual(got, DefaultMethodConfig) {
		t.Errorf("a method not listed gets %+v, want the defaults", got)
	}
	for _, bad := range []string{
		`[]`, `{"call": 1}`, `{"frobnicate": {}}`, `{"call": {"restPolicy": "SOMETIMES"}}`,
		`{"call": {"restOnError": "PANIC"}}`, `{"call": {"restPolicy": 3}}`, `{"call": {"restMood": "x"}}`,
		`{"call": ` + strings.Repeat(" ", maxRestClientConfig) + `{}}`,
	} {
		if _, err := ParseRestClientConfig(json.RawMessage(bad)); err == nil {
			t.Errorf("accepted %.60q", bad)
		}
	}
}

// FuzzParseRestClientConfig: any backend reply parses or fails, never
// panics, and what parses names only known methods and policies.
func FuzzParseRestClientConfig(f *testing.F) {
	for _, s := range []string{`{}`, `{"call":{"restPolicy":"OVERWRITE","restOverwrite":"a,b"}}`, `{"x":null}`, `null`, `{"connect":{"restOnError":"FAIL"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseRestClientConfig(b)
		if err != nil {
			return
		}
		for m, mc := range c {
			if !client.IsRESTMethod(m) {
				t.Fatalf("unknown method %q accepted", m)
			}
			if mc.Policy != Notify && mc.Policy != Overwrite && mc.Policy != Disable {
				t.Fatalf("policy %q accepted", mc.Policy)
			}
		}
	})
}
