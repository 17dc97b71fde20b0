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
	r, err = Evaluate(mrc, exs, preds, Options{})
	if err != nil || r.Primary().Name != F1aName || !near(r.Primary().Value, 0.8) {
		t.Errorf("multirc: %v, %v", r, err)
	}
	if v, ok := r.Get(MicroF1Name); !ok || !near(v, 2.0/3) {
		t.Errorf("multirc micro_f1 %v %v", v, ok)
	}
	if v, ok := r.Get(EMName); !ok || !near(v, 0.5) {
		t.Errorf("multirc em %v %v", v, ok)
	}
	r, _ = Evaluate(mrc, exs, preds, Options{Reference: true})
	if r.Primary().Name != MicroF1Name {
		t.Errorf("reference primary %v", r.Primary())
	}

	sq, _ := tasks.Lookup("squad")
	exs = []tasks.Example{{Target: "France", Answers: []string{"France", "in France"}, Class: -1}, {Class: -1}}
	r, err = Evaluate(sq, exs, []string{"in France", ""}, Options{})
	if err != nil || r.Primary().Name != F1Name || !near(r.Primary().Value, 1) {
		t.Errorf("squad: %v, %v", r, err)
	}
	if v, _ := r.Get(FirstF1Name); !near(v, (2.0/3+1)/2) {
		t.Errorf("squad f1_first %v", v)
	}
	r, _ = Evaluate(sq, exs, []string{"in France", ""}, Options{Reference: true})
	if r.Primary().Name != FirstF1Name {
		t.Errorf("reference primary %v", r.Primary())
	}
	if _, err := Evaluate(cb, exs, []string{"x"}, Options{}); err == nil {
		t.Error("length mismatch accepted")
	}
}
