package sdkclient

import (
	"strings"
	"testing"
)

func TestParseSync(t *testing.T) {
	got, err := ParseSync([]byte(`["{\"message\":\"a\"}", {"message":"b"}, "http.command.close"]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"message":"a"}`, `{"message":"b"}`, "http.command.close"}
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("frame %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{``, `{}`, `[`, `["\x"]`} {
		if _, err := ParseSync([]byte(bad)); err == nil {
			t.Errorf("ParseSync(%q): no error", bad)
		}
	}
}

func FuzzParseSync(f *testing.F) {
	f.Add([]byte(`["{\"message\":\"a\"}", {"message":"b"}]`))
	f.Add([]byte(`[1, null, "x"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, err := ParseSync(b)
		if err == nil && frames == nil {
			t.Fatal("no error and no list")
		}
	})
}

func TestFrames(t *testing.T) {
	f := SendDataFrame(nil, "op7")
	if JSONField(f, "message") != "sendData" || JSONField(f, "operationId") != "op7" {
		t.Fatalf("SendDataFrame: %s", f)
	}
	if c := ConnectFrame("k", "v"); JSONField(c, "appKey") != "k" || JSONField(c, "clientVersion") != "v" {
		t.Fatalf("ConnectFrame: %s", c)
	}
	ok := []byte(`{"message":"DataStatusEvent","data":[{"operationId":"op7","status":"ACCEPTED"}]}`)
	if err := CheckStatus(ok, "op7"); err != nil {
		t.Fatal(err)
	}
	if err := CheckStatus(ok, "op8"); err == nil {
		t.Fatal("another operation accepted")
	}
	if err := CheckStatus([]byte(strings.Replace(string(ok), "ACCEPTED", "FAILED", 1)), "op7"); err == nil {
		t.Fatal("FAILED accepted")
	}
	if JSONField([]byte(`{"a":"b`), "a") != "" || Clip([]byte("abcdef"), 3) != "abc…" || Clip([]byte("ab"), 3) != "ab" {
		t.Fatal("JSONField or Clip")
	}
}
