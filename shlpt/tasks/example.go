package tasks

import "fmt"

// Example is one text-to-text example.
type Example struct {
	// Input is the templated input text, before tokenization.
	Input string
	// Target is the text the model must produce: the label word, or the
	// first gold answer ("" when unanswerable) for QA.
	Target string
	// Class is the index of Target in Task.Labels; -1 for QA.
	Class int
	// Answers holds every gold answer of a QA example as written in the file
	// (duplicates kept); empty when the question is unanswerable.
	Answers []string
	// Group identifies the MultiRC question an answer option belongs to, for
	// per-question scoring; empty for other tasks.
	Group string
	// Pos is where the example starts in its file.
	Pos Position
}

// Position is a place in a task file.
type Position struct {
	File string
	Line int // 1-based; 0 when unknown
}

func (p Position) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// RowError is a malformed row: it names the file and line.
type RowError struct {
	Pos Position
	Err error
}

func (e *RowError) Error() string { return e.Pos.String() + ": " + e.Err.Error() }

func (e *RowError) Unwrap() error { return e.Err }
