package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// readSuperGLUE reads SuperGLUE's JSON lines: one object per line with the
// task's fields and "label". Blank lines are ignored. MultiRC lines nest
// passage → questions → answers and give one row per answer option.
func readSuperGLUE(r io.Reader, t *Task, c *collector, emit func(row) error) error {
	lr := newLineReader(r)
	for {
		b, line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var rows []row
		if t.Name == "multirc" {
			rows, err = multiRCRows(b, line)
		} else {
			var r row
			r, err = flatRow(b, line, t)
			rows = []row{r}
		}
		if err != nil {
			if err := c.malformed(line, err); err != nil {
				return err
			}
			continue
		}
		for _, r := range rows {
			if err := emit(r); err != nil {
				return err
			}
		}
	}
}

// flatRow reads a line holding one example.
func flatRow(b []byte, line int, t *Task) (row, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return row{}, jsonError(err)
	}
	if obj == nil {
		return row{}, errors.New("expected a JSON object")
	}
	fields := map[string]string{}
	for _, f := range t.template.fields() {
		raw, ok := obj[f]
		if !ok {
			return row{}, fmt.Errorf("missing field %q", f)
		}
		v, err := pyString(raw)
		if err != nil {
			return row{}, fmt.Errorf("field %q: %w", f, err)
		}
		fields[f] = v
	}
	label, err := labelString(obj["label"])
	if err != nil {
		return row{}, err
	}
	return row{line: line, fields: fields, label: label}, nil
}

// multiRCLine is one MultiRC passage with its questions and answer options.
type multiRCLine struct {
	Passage *struct {
		Text      *string `json:"text"`
		Questions []struct {
			Question *string `json:"question"`
			Answers  []struct {
				Text  *string         `json:"text"`
				Label json.RawMessage `json:"label"`
			} `json:"answers"`
		} `json:"questions"`
	} `json:"passage"`
}

// multiRCRows reads a MultiRC line: one row per answer option, one
// (question, answer, paragraph) block each.
func multiRCRows(b []byte, line int) ([]row, error) {
	var m multiRCLine
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, jsonError(err)
	}
	if m.Passage == nil || m.Passage.Text == nil {
		return nil, errors.New(`missing field "passage.text"`)
	}
	var rows []row
	for qi, q := range m.Passage.Questions {
		if q.Question == nil {
			return nil, fmt.Errorf(`question %d: missing field "question"`, qi)
		}
		for ai, a := range q.Answers {
			if a.Text == nil {
				return nil, fmt.Errorf(`question %d answer %d: missing field "text"`, qi, ai)
			}
			label, err := labelString(a.Label)
			if err != nil {
				return nil, fmt.Errorf("question %d answer %d: %w", qi, ai, err)
			}
			rows = append(rows, row{
				line:    line,
				fields:  map[string]string{"paragraph": *m.Passage.Text, "question": *q.Question, "answer": *a.Text},
				label:   label,
				group:   fmt.Sprintf("%d/%d", line, qi),
				passage: line,
			})
		}
	}
	return rows, nil
}

// pyString renders a JSON value as the reference's str() does: strings as
// they are, numbers as written, true/false/null as True/False/None.
func pyString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case 't':
		return "True", nil
	case 'f':
		return "False", nil
	case 'n':
		return "None", nil
	case '[', '{':
		return "", errors.New("expected text or a number, found a list or object")
	}
	return string(raw), nil // a number, already validated by the decoder
}

// labelString renders a JSON label: strings as they are, numbers as
// written, booleans as false/true.
func labelString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New(`missing field "label"`)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case '[', '{':
		return "", errors.New("label is a list or object")
	}
	return string(raw), nil
}

// jsonError drops the "json: " prefix noise and keeps the message short.
func jsonError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d of the line: %v", se.Offset, se)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}
