package metrics

import (
	"fmt"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// Score is one named metric value.
type Score struct {
	Name  string
	Value float64
}

// Result holds a task's scores on a set of examples, primary metric first.
type Result struct {
	Task   string
	N      int
	Scores []Score
}

// Primary is the metric used to select checkpoints and to fill the
// lifelong matrices.
func (r Result) Primary() Score { return r.Scores[0] }

// Get returns the named score.
func (r Result) Get(name string) (float64, bool) {
	for _, s := range r.Scores {
		if s.Name == name {
			return s.Value, true
		}
	}
	return 0, false
}

func (r Result) String() string {
	parts := make([]string, len(r.Scores))
	for i, s := range r.Scores {
		parts[i] = fmt.Sprintf("%s=%.2f", s.Name, 100*s.Value)
	}
	return fmt.Sprintf("%s (n=%d): %s", r.Task, r.N, strings.Join(parts, " "))
}

// Options select the primary metric.
type Options struct {
	// Official makes the benchmarks' official metrics primary: MultiRC
	// f1a (SuperGLUE's F1 over answer options) instead of micro_f1, SQuAD
	// f1 against every gold answer instead of f1_first. The default is the
	// paper's: the variants the SHLPT authors' code computed for its
	// tables (reference §2). Every variant is reported either way.
	Official bool
}

// PrimaryName is the name of task t's primary metric under o.
func PrimaryName(t *tasks.Task, o Options) string {
	switch {
	case t.QA && o.Official:
		return F1Name
	case t.QA:
		return FirstF1Name
	case t.Name == "multirc" && o.Official:
		return F1aName
	case t.Name == "multirc":
		return MicroF1Name
	}
	return AccuracyName
}

// Metric names in a Result.
const (
	AccuracyName = "accuracy"
	F1aName      = "f1a"      // MultiRC F1 over answer options
	EMName       = "em"       // MultiRC per-question or SQuAD exact match
	MicroF1Name  = "micro_f1" // MultiRC, reference
	F1Name       = "f1"       // SQuAD, all gold answers
	FirstF1Name  = "f1_first" // SQuAD, reference
	FirstEMName  = "em_first" // SQuAD, reference
)

// Evaluate scores preds[i], the generated text for exs[i], for task t,
// with the primary metric (PrimaryName) first. Classification tasks
// report accuracy; MultiRC micro_f1, f1a, em and accuracy; SQuAD
// f1_first, em_first, f1 and em.
func Evaluate(t *tasks.Task, exs []tasks.Example, preds []string, opts Options) (Result, error) {
	if err := sameLen(len(preds), len(exs)); err != nil {
		return Result{}, fmt.Errorf("%s: %w", t.Name, err)
	}
	r := Result{Task: t.Name, N: len(exs)}
	golds := make([]string, len(exs))
	for i, e := range exs {
		golds[i] = e.Target
	}
	switch {
	case t.QA:
		answers := make([][]string, len(exs))
		for i, e := range exs {
			answers[i] = e.Answers
		}
		s, err := SQuAD(preds, answers)
		if err != nil {
			return Result{}, err
		}
		official := []Score{{F1Name, s.F1}, {EMName, s.EM}}
		paper := []Score{{FirstF1Name, s.FirstF1}, {FirstEMName, s.FirstEM}}
		r.Scores = primaryFirst(official, paper, opts.Official)
	case t.Name == "multirc":
		groups := make([]string, len(exs))
		for i, e := range exs {
			groups[i] = e.Group
		}
		s, err := MultiRC(preds, golds, groups)
		if err != nil {
			return Result{}, err
		}
		official := []Score{{F1aName, s.F1a}, {EMName, s.EM}}
		paper := []Score{{MicroF1Name, s.MicroF1}}
		r.Scores = append(primaryFirst(official, paper, opts.Official), Score{AccuracyName, s.MicroF1})
	default:
		acc, err := Accuracy(preds, golds)
		if err != nil {
			return Result{}, err
		}
		r.Scores = []Score{{AccuracyName, acc}}
	}
	return r, nil
}

// primaryFirst lists the paper's variants first, or the official ones
// with official.
func primaryFirst(official, paper []Score, useOfficial bool) []Score {
	if useOfficial {
		return append(append([]Score(nil), official...), paper...)
	}
	return append(append([]Score(nil), paper...), official...)
}
