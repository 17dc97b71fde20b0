package metrics

import (
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

func TestEvaluate(t *testing.T) {
	cb, _ := tasks.Lookup("cb")
	exs := []tasks.Example{{Target: "entailment"}, {Target: "neutral"}}
	r, err := Evaluate(cb, exs, []string{"Entailment", "contradiction"}, Options{})
	if err != nil || r.Primary() != (Score{AccuracyName, 0.5}) || r.N != 2 {
		t.Errorf("cb: %v, %v", r, err)
	}

	mrc, _ := tasks.Lookup("multirc")
	exs = []tasks.Example{{Target: "true", Group: "a"}, {Target: "false", Group: "a"}, {Target: "true", Group: "b"}}
	preds := []string{"true", "true", "true"}
	// The paper's primary metric by default: micro-F1 (= accuracy).
	r, err = Evaluate(mrc, exs, preds, Options{})
	if err != nil || r.Primary().Name != MicroF1Name || !near(r.Primary().Value, 2.0/3) {
		t.Errorf("multirc: %v, %v", r, err)
	}
	if v, ok := r.Get(F1aName); !ok || !near(v, 0.8) {
		t.Errorf("multirc f1a %v %v", v, ok)
	}
	if v, ok := r.Get(EMName); !ok || !near(v, 0.5) {
		t.Errorf("multirc em %v %v", v, ok)
	}
	r, _ = Evaluate(mrc, exs, preds, Options{Official: true})
	if r.Primary().Name != F1aName || !near(r.Primary().Value, 0.8) {
		t.Errorf("official primary %v", r.Primary())
	}

	sq, _ := tasks.Lookup("squad")
	exs = []tasks.Example{{Target: "France", Answers: []string{"France", "in France"}, Class: -1}, {Class: -1}}
	// The paper's nF1 against the first gold answer by default.
	r, err = Evaluate(sq, exs, []string{"in France", ""}, Options{})
	if err != nil || r.Primary().Name != FirstF1Name || !near(r.Primary().Value, (2.0/3+1)/2) {
		t.Errorf("squad: %v, %v", r, err)
	}
	if v, _ := r.Get(F1Name); !near(v, 1) {
		t.Errorf("squad f1 %v", v)
	}
	r, _ = Evaluate(sq, exs, []string{"in France", ""}, Options{Official: true})
	if r.Primary().Name != F1Name {
		t.Errorf("official primary %v", r.Primary())
	}
	for _, task := range []*tasks.Task{cb, mrc, sq} {
		for _, o := range []Options{{}, {Official: true}} {
			r, _ := Evaluate(task, []tasks.Example{{Target: "true", Group: "a", Class: -1}}, []string{"true"}, o)
			if r.Primary().Name != PrimaryName(task, o) {
				t.Errorf("%s %+v: primary %s, PrimaryName %s", task.Name, o, r.Primary().Name, PrimaryName(task, o))
			}
		}
	}
	if _, err := Evaluate(cb, exs, []string{"x"}, Options{}); err == nil {
		t.Error("length mismatch accepted")
	}
}
