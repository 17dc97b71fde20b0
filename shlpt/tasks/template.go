package tasks

import (
	"fmt"
	"strings"
)

// piece is one "key: value " part of an input template.
type piece struct {
	key   string // printed before the colon
	field string // the record field that supplies the value
}

// template builds an input text from a record's fields. Every piece ends
// with a space, as in the reference (config.py:87-127), except where
// noTrailingSpace drops the last one (SQuAD).
type template struct {
	pieces          []piece
	noTrailingSpace bool
}

// keys is a template whose keys are the field names.
func keys(fields ...string) template {
	t := template{}
	for _, f := range fields {
		t.pieces = append(t.pieces, piece{f, f})
	}
	return t
}

// fields returns the record fields the template reads.
func (t template) fields() []string {
	f := make([]string, len(t.pieces))
	for i, p := range t.pieces {
		f[i] = p.field
	}
	return f
}

// apply fills the template; a missing field is an error.
func (t template) apply(fields map[string]string) (string, error) {
	var b strings.Builder
	for _, p := range t.pieces {
		v, ok := fields[p.field]
		if !ok {
			return "", fmt.Errorf("missing field %q", p.field)
		}
		b.WriteString(p.key)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte(' ')
	}
	s := b.String()
	if t.noTrailingSpace {
		s = strings.TrimSuffix(s, " ")
	}
	return s, nil
}

// String shows the template with {field} placeholders.
func (t template) String() string {
	m := map[string]string{}
	for _, p := range t.pieces {
		m[p.field] = "{" + p.field + "}"
	}
	s, _ := t.apply(m)
	return s
}
