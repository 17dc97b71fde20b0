package tasks

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// readZhangCSV reads the CSV of Zhang et al. (2015): no header, the 1-based
// class first, then the task's columns. Quoted fields may hold quotes,
// commas and newlines.
func readZhangCSV(r io.Reader, t *Task, c *collector, emit func(row) error) error {
	lr := newLineReader(r) // strips a byte-order mark
	cr := csv.NewReader(lr.r)
	cr.FieldsPerRecord = -1 // checked below, with a better message
	want := 1 + len(t.columns)
	for {
		start := cr.InputOffset()
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return err
			}
			if cr.InputOffset() == start { // no progress: give up
				return c.malformed(pe.StartLine, pe.Err)
			}
			if err := c.malformed(pe.StartLine, pe.Err); err != nil {
				return err
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != want {
			err := fmt.Errorf("row has %d fields, expected %d (class, %s)", len(rec), want, strings.Join(t.columns, ", "))
			if err := c.malformed(line, err); err != nil {
				return err
			}
			continue
		}
		fields := make(map[string]string, len(t.columns))
		for i, name := range t.columns {
			// The reference reads with pandas, which turns an empty field
			// into a missing value that prints as "None".
			v := rec[i+1]
			if v == "" {
				v = "None"
			}
			fields[name] = v
		}
		if err := emit(row{line: line, fields: fields, label: strings.TrimSpace(rec[0])}); err != nil {
			return err
		}
	}
}
