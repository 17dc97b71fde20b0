package metrics

import "fmt"

// MultiRCScores are MultiRC's scores over answer options.
type MultiRCScores struct {
	// F1a is the F1 of the "true" class over all answer options (SuperGLUE's
	// F1a): the proper F1. It is 0 when no option is both predicted and
	// gold true.
	F1a float64
	// EM is the fraction of questions whose options are all predicted right.
	EM float64
	// MicroF1 is the reference's "F1": scikit-learn's micro-averaged F1 over
	// the label strings, which for single-label predictions equals
	// accuracy.
	MicroF1 float64
}

// MultiRC scores predictions for MultiRC answer options. groups[i] names the
// question of option i (tasks.Example.Group).
func MultiRC(preds, golds, groups []string) (MultiRCScores, error) {
	if err := sameLen(len(preds), len(golds)); err != nil {
		return MultiRCScores{}, err
	}
	if len(groups) != len(golds) {
		return MultiRCScores{}, fmt.Errorf("metrics: %d question groups for %d answer options", len(groups), len(golds))
	}
	var tp, fp, fn, hits int
	allRight := map[string]bool{}
	var order []string // questions in first-seen order, for a stable count
	for i := range preds {
		p, g := Normalize(preds[i]) == "true", Normalize(golds[i]) == "true"
		right := ExactMatch(preds[i], golds[i])
		switch {
		case p && g:
			tp++
		case p:
			fp++
		case g:
			fn++
		}
		if right {
			hits++
		}
		q := groups[i]
		if _, seen := allRight[q]; !seen {
			allRight[q] = true
			order = append(order, q)
		}
		allRight[q] = allRight[q] && right
	}
	var s MultiRCScores
	if tp > 0 {
		s.F1a = 2 * float64(tp) / float64(2*tp+fp+fn)
	}
	em := 0
	for _, q := range order {
		if allRight[q] {
			em++
		}
	}
	s.EM = float64(em) / float64(len(order))
	s.MicroF1 = float64(hits) / float64(len(preds))
	return s, nil
}
