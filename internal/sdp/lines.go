package sdp

import (
	"slices"
	"strings"
)

// Lines is an ordered run of SDP lines: the session level of a Session or
// one media section. It carries the attribute accessors and edits shared by
// both levels; Session and Media embed it, so s.Attr and m.Attr act on their
// own level only.
//
// Attribute lines have the form "a=name" or "a=name:value"; the name is
// everything before the first ':' and is matched exactly (case-sensitively):
// endpoints send names as registered, including mixed-case ones such as
// silenceSupp, and an exact byte comparison keeps lookups allocation-free.
type Lines []Line

// attrNamed reports whether the value of an a= line has the given name.
// It matches without allocating because it runs for every attribute line
// on every lookup.
func attrNamed(v, name string) bool {
	return strings.HasPrefix(v, name) && (len(v) == len(name) || v[len(name)] == ':')
}

// attrValue returns what follows the first ':' of an a= line value, or ""
// for a property attribute such as "sendrecv".
func attrValue(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		return v[i+1:]
	}
	return ""
}

// attrLine builds an a= line. An empty value gives the property form
// "a=name" rather than "a=name:", which is what endpoints expect for
// flags such as sendrecv or rtcp-mux.
func attrLine(name, value string) Line {
	name = clean(name)
	if value == "" {
		return Line{Type: 'a', Value: name}
	}
	return Line{Type: 'a', Value: name + ":" + clean(value)}
}

// Attr returns the value of the first attribute called name and whether
// there is one. A property attribute ("a=sendrecv") has the value "".
func (ls Lines) Attr(name string) (value string, ok bool) {
	for _, l := range ls {
		if l.Type == 'a' && attrNamed(l.Value, name) {
			return attrValue(l.Value), true
		}
	}
	return "", false
}

// Attrs returns the values of every attribute called name, in order, or
// nil if there is none.
func (ls Lines) Attrs(name string) []string {
	var vs []string
	for _, l := range ls {
		if l.Type == 'a' && attrNamed(l.Value, name) {
			vs = append(vs, attrValue(l.Value))
		}
	}
	return vs
}

// HasAttr reports whether there is an attribute called name.
func (ls Lines) HasAttr(name string) bool {
	_, ok := ls.Attr(name)
	return ok
}

// SetAttr makes name appear exactly once with the given value: the first
// occurrence is replaced in place, so the attribute keeps its position,
// and further occurrences are removed; if there is none, the attribute is
// appended at the end of this level. An empty value writes the property
// form "a=name". CR and LF in name or value are replaced by spaces so a
// value taken from the network cannot inject lines; name must not contain
// ':' or spaces.
func (ls *Lines) SetAttr(name, value string) {
	ls.setAttrLine(clean(name), attrLine(name, value))
}

// setAttrLine puts nl, an a= line named name, in place of the first
// attribute called name and removes the others, or appends it.
func (ls *Lines) setAttrLine(name string, nl Line) {
	i := slices.IndexFunc(*ls, func(l Line) bool { return l.Type == 'a' && attrNamed(l.Value, name) })
	if i < 0 {
		*ls = append(*ls, nl)
		return
	}
	(*ls)[i] = nl
	ls.removeFrom(i+1, func(l Line) bool { return l.Type == 'a' && attrNamed(l.Value, name) })
}

// AddAttr appends an attribute at the end of this level, after any
// existing ones of the same name. Values are cleaned as by SetAttr.
func (ls *Lines) AddAttr(name, value string) {
	*ls = append(*ls, attrLine(name, value))
}

// RemoveAttr removes every attribute whose name is one of names and
// returns how many lines it removed.
func (ls *Lines) RemoveAttr(names ...string) int {
	return ls.removeFrom(0, func(l Line) bool {
		if l.Type != 'a' {
			return false
		}
		for _, n := range names {
			if attrNamed(l.Value, n) {
				return true
			}
		}
		return false
	})
}

// removeFrom deletes the lines at index from onwards that match del,
// keeping the order of the rest, and returns how many it deleted. It
// filters in place: the slice never grows, so it cannot spill into the
// backing array of another level.
func (ls *Lines) removeFrom(from int, del func(Line) bool) int {
	s := *ls
	kept := s[:from]
	for _, l := range s[from:] {
		if !del(l) {
			kept = append(kept, l)
		}
	}
	n := len(s) - len(kept)
	clear(s[len(kept):]) // drop references to the removed values
	*ls = kept
	return n
}

// index returns the index of the first line of type t, or -1.
func (ls Lines) index(t byte) int {
	for i, l := range ls {
		if l.Type == t {
			return i
		}
	}
	return -1
}

// value returns the value of the first line of type t.
func (ls Lines) value(t byte) (string, bool) {
	if i := ls.index(t); i >= 0 {
		return ls[i].Value, true
	}
	return "", false
}

// setLine replaces the value of the first line of type t and removes
// further lines of that type; if there is none it inserts a new line before
// the first line, from index from onwards, whose type is not in after. after
// lists the types RFC 8866 places before t, so an inserted line lands where
// the grammar puts it.
func (ls *Lines) setLine(t byte, value string, from int, after string) {
	if i := ls.index(t); i >= 0 {
		(*ls)[i].Value = value
		ls.removeFrom(i+1, func(l Line) bool { return l.Type == t })
		return
	}
	at := min(from, len(*ls))
	for at < len(*ls) && strings.IndexByte(after, (*ls)[at].Type) >= 0 {
		at++
	}
	*ls = slices.Insert(*ls, at, Line{Type: t, Value: value})
}

// RemoveAttrFunc removes every attribute called name whose value del
// approves and returns how many lines it removed.
func (ls *Lines) RemoveAttrFunc(name string, del func(value string) bool) int {
	return ls.removeFrom(0, func(l Line) bool {
		return l.Type == 'a' && attrNamed(l.Value, name) && del(attrValue(l.Value))
	})
}
