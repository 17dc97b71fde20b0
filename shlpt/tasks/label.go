package tasks

import (
	"fmt"
	"strconv"
	"strings"
)

// labelCodec says how a task's native files write the class.
type labelCodec int

const (
	labelWord    labelCodec = iota // the label word itself (cb, rte, mnli)
	labelIndex0                    // 0-based class number (sst2, copa, qqp, multirc)
	labelIndex1                    // 1-based class number (Zhang et al. CSV)
	labelBool                      // JSON false / true (wic, boolq)
	labelGoodBad                   // "Bad" / "Good" (imdb)
)

// classOf decodes a raw label as written in a file of format f. The error
// says which labels were expected.
func (t *Task) classOf(raw string, f Format) (int, error) {
	if t.QA {
		return -1, nil
	}
	if f.foreign() {
		k := labelKey(raw)
		for c, w := range t.Labels {
			if labelKey(w) == k {
				return c, nil
			}
		}
		for from, to := range t.aliases {
			if labelKey(from) == k {
				return t.Class(to), nil
			}
		}
		return -1, fmt.Errorf("unknown label %q (expected one of %s, compared ignoring case, spaces, '_' and '-'%s)",
			raw, quoteList(t.Labels), aliasNote(t))
	}
	switch t.codec {
	case labelWord:
		if c := t.Class(raw); c >= 0 {
			return c, nil
		}
		return -1, fmt.Errorf("unknown label %q (expected one of %s)", raw, quoteList(t.Labels))
	case labelIndex0, labelIndex1:
		base := 0
		if t.codec == labelIndex1 {
			base = 1
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < base || n >= base+len(t.Labels) {
			return -1, fmt.Errorf("unknown label %q (expected a class number from %d to %d)", raw, base, base+len(t.Labels)-1)
		}
		return n - base, nil
	case labelBool:
		switch raw {
		case "false":
			return 0, nil
		case "true":
			return 1, nil
		}
		return -1, fmt.Errorf("unknown label %q (expected false or true)", raw)
	case labelGoodBad:
		switch raw {
		case "Bad":
			return 0, nil
		case "Good":
			return 1, nil
		}
		return -1, fmt.Errorf("unknown label %q (expected \"Good\" or \"Bad\")", raw)
	}
	return -1, fmt.Errorf("task %s: no label codec", t.Name)
}

// dropped reports whether a native label marks a row to leave out.
func (t *Task) dropped(raw string) bool {
	for _, d := range t.dropLabels {
		if raw == d {
			return true
		}
	}
	return false
}

// labelKey compares label words of other sources: "Educational Institution"
// and "educationalinstitution" are the same key.
func labelKey(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '_', '-':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}

func quoteList(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = strconv.Quote(w)
	}
	return strings.Join(q, ", ")
}

func aliasNote(t *Task) string {
	if len(t.aliases) == 0 {
		return ""
	}
	return ", or an alias: " + strings.Join(t.aliasList(), ", ")
}
