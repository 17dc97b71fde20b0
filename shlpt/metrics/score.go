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
	// Reference makes the reference's variants primary: MultiRC micro_f1
	// (= accuracy) instead of f1a, SQuAD f1_first instead of f1. Every
	// variant is reported either way.
	Reference bool
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

// Evaluate scores preds[i], the generated text for exs[i], for task t.
// Classification tasks report accuracy; MultiRC adds f1a, em and micro_f1;
// SQuAD reports f1, em, f1_first and em_first.
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
		all := []Score{{F1Name, s.F1}, {EMName, s.EM}}
		ref := []Score{{FirstF1Name, s.FirstF1}, {FirstEMName, s.FirstEM}}
		r.Scores = primaryFirst(all, ref, opts.Reference)
	case t.Name == "multirc":
		groups := make([]string, len(exs))
		for i, e := range exs {
			groups[i] = e.Group
		}
		s, err := MultiRC(preds, golds, groups)
		if err != nil {
			return Result{}, err
		}
		all := []Score{{F1aName, s.F1a}, {EMName, s.EM}}
		ref := []Score{{MicroF1Name, s.MicroF1}}
		r.Scores = append(primaryFirst(all, ref, opts.Reference), Score{AccuracyName, s.MicroF1})
	default:
		acc, err := Accuracy(preds, golds)
		if err != nil {
			return Result{}, err
		}
		r.Scores = []Score{{AccuracyName, acc}}
	}
	return r, nil
}

func primaryFirst(sound, ref []Score, reference bool) []Score {
	if reference {
		return append(append([]Score(nil), ref...), sound...)
	}
	return append(append([]Score(nil), sound...), ref...)
}
