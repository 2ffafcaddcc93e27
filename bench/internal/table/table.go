// Package table lays out the figures of a benchmark program under bench/
// as the text table it prints: one row per figure, with the scenario it
// belongs to, the target and whether it was met.
package table

import (
	"strconv"
	"strings"
)

// Row is one line of the table: scenario (blank under the first row of a
// scenario), figure, value, target, verdict. An array, not a struct, so
// that the programs write their many rows as plain literals.
type Row [5]string

// Render pads the columns to their widest cell (in runes: the figures use
// ≥, →, ×) under a header line, the verdict last and unpadded.
func Render(rows []Row) []string {
	head := Row{"scenario", "figure", "value", "target", ""}
	var w [4]int
	for _, r := range append([]Row{head}, rows...) {
		for i := range w {
			w[i] = max(w[i], runeLen(r[i]))
		}
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(0, n-runeLen(s))) }
	out := make([]string, 0, len(rows)+1)
	for _, r := range append([]Row{head}, rows...) {
		out = append(out, strings.TrimRight(pad(r[0], w[0])+"  "+pad(r[1], w[1])+"  "+pad(r[2], w[2])+"  "+pad(r[3], w[3])+"  "+r[4], " "))
	}
	return out
}

// Met is the verdict on a target: "met" or "NOT met".
func Met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// Thousands formats a rate with a thin separator: 51234 → "51 234".
func Thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func runeLen(s string) int { return len([]rune(s)) }
