package testutil

import (
	"errors"
	"fmt"
	"strings"
)

// PromQL is what a PromQL expression reads: its metric selectors and the
// labels it groups or matches by. It is enough to check a dashboard's
// queries against the metrics a server exposes; it does not evaluate or
// fully validate PromQL. Grafana's variables ($x, ${x}, [[x]]) are taken
// for what they stand in for: a duration, a value.
type PromQL struct {
	Selectors []Selector
	Labels    []string // of by, without, on, ignoring, group_left, group_right
}

// Selector is one metric selector: `name{label="value", …}`.
type Selector struct {
	Metric   string // "" for `{__name__=~"…"}` without a plain name
	Matchers []Matcher
}

// Matcher is one label matcher; Op is =, !=, =~ or !~.
type Matcher struct {
	Label, Op, Value string
}

// maxPromQL bounds what ParsePromQL reads.
const maxPromQL = 64 << 10

// keywords are words of PromQL that are not metric names.
var keywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// grouping are the keywords followed by a list of labels.
var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tVar
	tPunct
)

type token struct {
	kind tokKind
	text string // an identifier, a punctuation or operator, a string's value
	pos  int
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lexPromQL splits an expression into tokens.
func lexPromQL(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a comment, to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			start, quote := i, c
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("at %d: unterminated string", start)
				}
				if s[i] == quote {
					i++
					break
				}
				if s[i] == '\\' && quote != '`' {
					if i+1 >= len(s) {
						return nil, fmt.Errorf("at %d: unterminated string", start)
					}
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{tString, b.String(), start})
		case c == '$': // a Grafana variable: $name, ${name}, ${name:format}
			start := i
			i++
			if i < len(s) && s[i] == '{' {
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("at %d: unterminated ${", start)
				}
				i += end + 1
			} else {
				for i < len(s) && isIdentChar(s[i]) {
					i++
				}
			}
			toks = append(toks, token{tVar, s[start:i], start})
		case c == '[' && oldVar(s[i:]) > 0: // Grafana's old [[name]]
			n := oldVar(s[i:])
			toks = append(toks, token{tVar, s[i : i+n], i})
			i += n
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			start := i
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.' || ((s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E'))) {
				i++
			}
			toks = append(toks, token{tNumber, s[start:i], start})
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			toks = append(toks, token{tIdent, s[start:i], start})
		default:
			start := i
			op := string(c)
			if i+1 < len(s) {
				switch two := s[i : i+2]; two {
				case "==", "!=", "<=", ">=", "=~", "!~":
					op = two
				}
			}
			if len(op) == 1 && !strings.Contains("(){}[],+-*/%^=<>:@", op) {
				return nil, fmt.Errorf("at %d: unexpected %q", start, op)
			}
			i += len(op)
			toks = append(toks, token{tPunct, op, start})
		}
	}
	return toks, nil
}

// oldVar is the length of a Grafana [[name]] or [[name:format]] at the
// start of s, 0 if there is none.
func oldVar(s string) int {
	if !strings.HasPrefix(s, "[[") {
		return 0
	}
	i := 2
	if i >= len(s) || !isIdentStart(s[i]) {
		return 0
	}
	for i < len(s) && isIdentChar(s[i]) {
		i++
	}
	if !strings.HasPrefix(s[i:], "]]") {
		return 0
	}
	return i + 2
}

// ParsePromQL reads the metric selectors and grouping labels of a PromQL
// expression. Brackets must balance and matchers be well formed.
func ParsePromQL(expr string) (PromQL, error) {
	var q PromQL
	if len(expr) > maxPromQL {
		return q, errors.New("expression too long")
	}
	toks, err := lexPromQL(expr)
	if err != nil {
		return q, err
	}
	var stack []string // open brackets
	closes := map[string]string{")": "(", "]": "[", "}": "{"}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func(k int) *token {
			if i+k < len(toks) {
				return &toks[i+k]
			}
			return nil
		}
		switch {
		case t.kind == tIdent && grouping[strings.ToLower(t.text)]:
			if n := next(1); n == nil || n.text != "(" || n.kind != tPunct {
				if strings.HasPrefix(strings.ToLower(t.text), "group_") {
					continue // group_left without labels
				}
				return q, fmt.Errorf("at %d: %s needs a list of labels", t.pos, t.text)
			}
			labels, n, err := labelList(toks[i+2:])
			if err != nil {
				return q, fmt.Errorf("at %d: %s: %w", t.pos, t.text, err)
			}
			q.Labels = append(q.Labels, labels...)
			i += 1 + n // the loop steps past the closing parenthesis
		case t.kind == tIdent && keywords[strings.ToLower(t.text)]:
		case t.kind == tIdent && next(1) != nil && (next(1).kind == tPunct && next(1).text == "(" ||
			next(1).kind == tIdent && grouping[strings.ToLower(next(1).text)]):
			// A function or an aggregation: its arguments follow
			// (after by or without, for an aggregation).
		case t.kind == tIdent && len(stack) > 0 && stack[len(stack)-1] == "[":
			// A duration unit inside a range, after a variable: [5m:$x].
		case t.kind == tIdent:
			sel := Selector{Metric: t.text}
			if n := next(1); n != nil && n.kind == tPunct && n.text == "{" {
				ms, used, err := matchers(toks[i+2:])
				if err != nil {
					return q, fmt.Errorf("at %d: %s: %w", t.pos, t.text, err)
				}
				sel.Matchers = ms
				i += 1 + used
			}
			q.Selectors = append(q.Selectors, sel)
		case t.kind == tPunct && t.text == "{": // a selector without a plain name
			ms, used, err := matchers(toks[i+1:])
			if err != nil {
				return q, fmt.Errorf("at %d: %w", t.pos, err)
			}
			if len(ms) == 0 {
				return q, fmt.Errorf("at %d: a selector needs a name or a matcher", t.pos)
			}
			sel := Selector{Matchers: ms}
			for _, m := range ms {
				if m.Label == "__name__" && m.Op == "=" {
					sel.Metric = m.Value
				}
			}
			q.Selectors = append(q.Selectors, sel)
			i += used
		case t.kind == tPunct && (t.text == "(" || t.text == "["):
			stack = append(stack, t.text)
		case t.kind == tPunct && (t.text == ")" || t.text == "]" || t.text == "}"):
			if len(stack) == 0 || stack[len(stack)-1] != closes[t.text] {
				return q, fmt.Errorf("at %d: unbalanced %q", t.pos, t.text)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return q, fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return q, nil
}

// labelList reads `l1, l2)` — after the opening parenthesis — and returns
// the labels and the tokens read, the closing parenthesis included.
func labelList(toks []token) ([]string, int, error) {
	var labels []string
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.kind == tPunct && t.text == ")":
			return labels, i + 1, nil
		case t.kind == tPunct && t.text == ",":
		case t.kind == tIdent:
			labels = append(labels, t.text)
		default:
			return nil, 0, fmt.Errorf("at %d: %q is not a label", t.pos, t.text)
		}
	}
	return nil, 0, errors.New("unclosed label list")
}

// matchers reads `label op "value", …}` — after the opening brace — and
// returns them and the tokens read, the closing brace included.
func matchers(toks []token) ([]Matcher, int, error) {
	var ms []Matcher
	for i := 0; i < len(toks); {
		t := toks[i]
		if t.kind == tPunct && t.text == "}" {
			return ms, i + 1, nil
		}
		if t.kind == tPunct && t.text == "," {
			i++
			continue
		}
		if i+2 >= len(toks) {
			break
		}
		op, val := toks[i+1], toks[i+2]
		if t.kind != tIdent || op.kind != tPunct || (op.text != "=" && op.text != "!=" && op.text != "=~" && op.text != "!~") ||
			(val.kind != tString && val.kind != tVar) {
			return nil, 0, fmt.Errorf("at %d: want label op \"value\"", t.pos)
		}
		ms = append(ms, Matcher{t.text, op.text, val.text})
		i += 3
	}
	return nil, 0, errors.New("unclosed matcher list")
}
