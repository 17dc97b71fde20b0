package tasks

import (
	"fmt"
	"io"
	"strings"
)

// readLFPT5 reads LFPT5's "text<TAB>label word" lines. As LFPT5 does, each
// line is trimmed of surrounding white space first; empty lines are
// ignored.
func readLFPT5(r io.Reader, t *Task, c *collector, emit func(row) error) error {
	lr := newLineReader(r)
	for {
		b, line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			continue
		}
		parts := strings.Split(s, "\t")
		if len(parts) != 2 {
			err := fmt.Errorf("line has %d tab-separated fields, expected 2 (text, label)", len(parts))
			if err := c.malformed(line, err); err != nil {
				return err
			}
			continue
		}
		if err := emit(row{line: line, fields: map[string]string{"text": parts[0]}, label: parts[1]}); err != nil {
			return err
		}
	}
}
