package tasks

import "fmt"

// maxKeptErrors bounds the skipped-row errors a FileReport keeps verbatim.
const maxKeptErrors = 5

// FileReport says what reading one file found.
type FileReport struct {
	File string
	// Rows is the number of records read (for MultiRC: answer options).
	Rows int
	// Examples is the number of examples produced.
	Examples int
	// Dropped counts rows left out by design (MNLI label "-").
	Dropped int
	// RowFilter is the .npy file of row indices applied, if any; Examples
	// then counts the rows it kept.
	RowFilter string
	// Skipped counts malformed rows left out because ReadOptions.SkipMalformed
	// was set; SkippedErrors keeps the first few of their errors.
	Skipped       int
	SkippedErrors []error
	// PerClass counts the examples per class (index into Task.Labels); for
	// QA, index 0 counts answerable and 1 unanswerable questions.
	PerClass []int
}

func (r *FileReport) String() string {
	s := fmt.Sprintf("%s: %d rows, %d examples", r.File, r.Rows, r.Examples)
	if r.Dropped > 0 {
		s += fmt.Sprintf(", %d dropped (no gold label)", r.Dropped)
	}
	if r.RowFilter != "" {
		s += fmt.Sprintf(" after row filter %s", r.RowFilter)
	}
	if r.Skipped > 0 {
		s += fmt.Sprintf(", %d malformed rows skipped", r.Skipped)
	}
	return s
}

// ReadOptions control how files are read.
type ReadOptions struct {
	// SkipMalformed leaves malformed rows out, counting them in the
	// FileReport, instead of failing on the first one.
	SkipMalformed bool
	// MultiRCAccumulate reproduces the reference's MultiRC inputs, where each
	// answer option's input repeats every earlier (question, answer,
	// paragraph) block of its passage (reference §1.2 [bug?]).
	MultiRCAccumulate bool
}

// collector turns malformed rows into errors or counted skips.
type collector struct {
	file   string
	skip   bool
	report *FileReport
}

// at is a file-level error at line: reading stops even when skipping.
func (c *collector) at(line int, err error) error {
	return &RowError{Pos: Position{c.file, line}, Err: err}
}

// malformed records a malformed row at line; it returns the error to stop
// reading, or nil when skipping.
func (c *collector) malformed(line int, err error) error {
	e := &RowError{Pos: Position{c.file, line}, Err: err}
	if !c.skip {
		return e
	}
	c.report.Skipped++
	if len(c.report.SkippedErrors) < maxKeptErrors {
		c.report.SkippedErrors = append(c.report.SkippedErrors, e)
	}
	return nil
}
