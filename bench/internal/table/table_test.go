package table

import (
	"slices"
	"testing"
)

func TestRender(t *testing.T) {
	got := Render([]Row{
		{"(a) x", "rate", "1 000", "≥ 500/s", Met(true)},
		{"", "p99 →", "2 ms", "", ""},
	})
	want := []string{
		"scenario  figure  value  target",
		"(a) x     rate    1 000  ≥ 500/s  met",
		"          p99 →   2 ms",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1 000", 51234: "51 234", 1234567: "1 234 567"} {
		if got := Thousands(v); got != want {
			t.Errorf("Thousands(%v) = %q, want %q", v, got, want)
		}
	}
}
