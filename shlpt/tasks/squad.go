package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// squadFile is the part of the SQuAD v2 JSON the reader needs.
type squadFile struct {
	Data *[]struct {
		Paragraphs []struct {
			Context *string `json:"context"`
			QAs     []struct {
				ID           string  `json:"id"`
				Question     *string `json:"question"`
				IsImpossible bool    `json:"is_impossible"`
				Answers      []struct {
					Text *string `json:"text"`
				} `json:"answers"`
			} `json:"qas"`
		} `json:"paragraphs"`
	} `json:"data"`
}

// readSQuAD reads the official SQuAD v2 JSON: one row per question, with
// every gold answer. An answerable question without answers, or a question
// or context that is missing, is a malformed row.
func readSQuAD(r io.Reader, t *Task, c *collector, emit func(row) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	data = bytes.TrimPrefix(data, bom)
	var f squadFile
	if err := json.Unmarshal(data, &f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return c.at(lineAt(data, se.Offset), fmt.Errorf("invalid JSON: %v", se))
		case errors.As(err, &te):
			return c.at(lineAt(data, te.Offset), fmt.Errorf("field %q: expected %s, found %s", te.Field, te.Type, te.Value))
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if f.Data == nil {
		return errors.New(`expected the SQuAD v2 JSON object {"version", "data": [...]}`)
	}
	for ai, article := range *f.Data {
		for pi, p := range article.Paragraphs {
			for qi, qa := range p.QAs {
				where := fmt.Sprintf("data[%d].paragraphs[%d].qas[%d] (id %q)", ai, pi, qi, qa.ID)
				if err := squadCheck(p.Context, qa.Question, qa.IsImpossible, len(qa.Answers)); err != nil {
					if err := c.malformed(0, fmt.Errorf("%s: %w", where, err)); err != nil {
						return err
					}
					continue
				}
				answers := []string{}
				bad := false
				for _, a := range qa.Answers {
					if a.Text == nil {
						bad = true
						break
					}
					answers = append(answers, *a.Text)
				}
				if bad {
					if err := c.malformed(0, fmt.Errorf(`%s: answer without "text"`, where)); err != nil {
						return err
					}
					continue
				}
				fields := map[string]string{"question": *qa.Question, "context": *p.Context}
				if err := emit(row{fields: fields, answers: answers, group: qa.ID}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func squadCheck(context, question *string, impossible bool, nAnswers int) error {
	switch {
	case context == nil:
		return errors.New(`paragraph has no "context"`)
	case question == nil:
		return errors.New(`missing field "question"`)
	case nAnswers == 0 && !impossible:
		// The reference asserts this cannot happen.
		return errors.New("answerable question without answers")
	}
	return nil
}
