package tasks

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// readGLUETSV reads GLUE's tab-separated files: a header row naming the
// columns, no quoting. A row with more fields than the header is accepted
// when the extra fields are empty and sit before the last one, which then
// belongs to the last column (RTE train.tsv has such a row).
func readGLUETSV(r io.Reader, t *Task, c *collector, emit func(row) error) error {
	lr := newLineReader(r)
	head, _, err := lr.next()
	if err == io.EOF {
		return errors.New("empty file: expected a header row")
	}
	if err != nil {
		return err
	}
	header := strings.Split(string(head), "\t")
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, need := range append(t.template.fields(), t.labelField) {
		if _, ok := col[need]; !ok {
			return c.at(1, fmt.Errorf("header has no column %q (header: %s)", need, strings.Join(header, ", ")))
		}
	}
	n := len(header)
	for {
		b, line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(b) == 0 {
			continue // pandas skips blank lines too
		}
		rec := strings.Split(string(b), "\t")
		if len(rec) > n && allEmpty(rec[n-1:len(rec)-1]) {
			rec = append(rec[:n-1:n-1], rec[len(rec)-1])
		}
		if len(rec) != n {
			err := fmt.Errorf("row has %d fields, header has %d", len(rec), n)
			if err := c.malformed(line, err); err != nil {
				return err
			}
			continue
		}
		fields := make(map[string]string, len(t.template.pieces))
		for _, f := range t.template.fields() {
			fields[f] = rec[col[f]]
		}
		label := strings.TrimSpace(rec[col[t.labelField]])
		if err := emit(row{line: line, fields: fields, label: label}); err != nil {
			return err
		}
	}
}

func allEmpty(fs []string) bool {
	for _, f := range fs {
		if f != "" {
			return false
		}
	}
	return true
}
