package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// readJSONList reads a JSON list of {"sentence", "label"} objects: IMDB's
// files (label "Good" or "Bad") and O-LoRA's (sentence already templated).
// A document that is not a JSON list is an error; an element without a
// string sentence or label is a malformed row.
func readJSONList(r io.Reader, t *Task, c *collector, emit func(row) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, bom)
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return c.at(lineAt(data, dec.InputOffset()), errors.New(`expected a JSON list of {"sentence", "label"} objects`))
	}
	for dec.More() {
		line := lineAt(data, valueStart(data, dec.InputOffset()))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return c.at(line, jsonError(err))
		}
		r, err := sentenceRow(raw, line, t)
		if err != nil {
			if err := c.malformed(line, err); err != nil {
				return err
			}
			continue
		}
		if err := emit(r); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return c.at(lineAt(data, dec.InputOffset()), jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return c.at(lineAt(data, dec.InputOffset()), errors.New("unexpected data after the list"))
	}
	return nil
}

// sentenceRow reads one {"sentence", "label"} element. The text goes to the
// "sentence" field for IMDB's template and to "text" for verbatim use.
func sentenceRow(raw json.RawMessage, line int, t *Task) (row, error) {
	var e struct {
		Sentence *string `json:"sentence"`
		Label    *string `json:"label"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return row{}, fmt.Errorf("field %q must be a string", te.Field)
		}
		return row{}, jsonError(err)
	}
	if e.Sentence == nil {
		return row{}, errors.New(`missing field "sentence"`)
	}
	if e.Label == nil {
		return row{}, errors.New(`missing field "label"`)
	}
	return row{line: line, fields: map[string]string{"sentence": *e.Sentence, "text": *e.Sentence}, label: *e.Label}, nil
}

// valueStart skips the separators between list elements.
func valueStart(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
			continue
		}
		break
	}
	return off
}
