// Package serve answers requests for every task a lifelong run learned
// from one model over HTTP: the model is loaded once, every task's prompt
// sits in one prompt table on the device, and requests of different tasks
// that arrive close together run in one forward pass with one prompt per
// row (t5.EncodeRows). A row gets exactly the answer and the scores that
// `shlpt-vk eval` gives its input, whatever else shares its batch.
package serve

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/export"
)

// Task is a served task: its card, where its prompt lies in the prompt
// table, and what rank classification scores.
type Task struct {
	Card export.Card
	// Offset and Len are the prompt's rows in the prompt table.
	Offset, Len int
	// Source is the run, imported folder or adapter it came from.
	Source string
	// labelIDs are the label words' token ids (rank candidates).
	labelIDs [][]int
}

// Tokenizer is what serving needs of the tokenizer: it must be safe for
// concurrent use (requests are tokenized by their handlers).
type Tokenizer interface {
	Encode(text string) ([]int, error)
	Decode(ids []int) string
}

// newTask prepares a task for serving: the label words' ids.
func newTask(c export.Card, source string, tok Tokenizer) (*Task, error) {
	t := &Task{Card: c, Source: source}
	for _, l := range c.Labels {
		ids, err := tok.Encode(l)
		if err != nil {
			return nil, fmt.Errorf("%s: task %s: label %q: %w", source, c.Task, l, err)
		}
		t.labelIDs = append(t.labelIDs, ids)
	}
	return t, nil
}

// Input is one input of a request: the text as it is (raw, or a task
// without a template), the value of a one-field template, or the fields
// of the template.
type Input struct {
	Text   string
	Fields map[string]string // nil: Text
}

// text builds the model's input text as training did: the task's template
// over the fields (a string fills a one-field template), unless raw. param
// names the request field in errors.
func (t *Task) text(in Input, raw bool, param string) (string, error) {
	c := &t.Card
	if raw || c.Template == "" {
		if in.Fields != nil {
			return "", fmt.Errorf("%s: an object of fields needs the task's template: task %s %s", param, c.Task, t.noTemplate(raw))
		}
		return in.Text, nil
	}
	values := in.Fields
	if values == nil {
		if len(c.Fields) != 1 {
			return "", fmt.Errorf("%s: task %s's template %q has the fields %s: give an object of them, or raw: true for the text as it is",
				param, c.Task, c.Template, strings.Join(c.Fields, ", "))
		}
		values = map[string]string{c.Fields[0]: in.Text}
	}
	for k := range values {
		if !slices.Contains(c.Fields, k) {
			return "", fmt.Errorf("%s: task %s's template has no field %q (its fields: %s)", param, c.Task, k, strings.Join(c.Fields, ", "))
		}
	}
	for _, f := range c.Fields {
		if _, ok := values[f]; !ok {
			return "", fmt.Errorf("%s: field %q of task %s's template is missing", param, f, c.Task)
		}
	}
	return fillTemplate(c.Template, c.Fields, values), nil
}

// fillTemplate replaces each {field} of tmpl by its value in one pass
// (a value is never read as a placeholder), as the task's template builds
// inputs from a record in training.
func fillTemplate(tmpl string, fields []string, values map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		if tmpl[i] == '{' {
			done := false
			for _, f := range fields {
				if p := "{" + f + "}"; strings.HasPrefix(tmpl[i:], p) {
					b.WriteString(values[f])
					i += len(p)
					done = true
					break
				}
			}
			if done {
				continue
			}
		}
		b.WriteByte(tmpl[i])
		i++
	}
	return b.String()
}

func (t *Task) noTemplate(raw bool) string {
	if raw {
		return "(raw: true takes text)"
	}
	return "uses its input text as it is"
}

// taskNames lists tasks' names, sorted.
func taskNames(m map[string]*Task) []string { return slices.Sorted(maps.Keys(m)) }
