package metrics

import "testing"

func TestMultiRC(t *testing.T) {
	// Three questions; hand-computed: TP 3, FP 1, FN 1, so F1a = 6/8;
	// only q2 is all right; 4 of 6 options are right.
	preds := []string{"true", "true", "True.", "false", "true", "false"}
	golds := []string{"true", "false", "true", "false", "true", "true"}
	groups := []string{"q1", "q1", "q1", "q2", "q2", "q3"}
	s, err := MultiRC(preds, golds, groups)
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.F1a, 0.75) || !near(s.EM, 1.0/3) || !near(s.MicroF1, 4.0/6) {
		t.Errorf("got %+v; want F1a 0.75, EM 1/3, MicroF1 2/3", s)
	}
	acc, _ := Accuracy(preds, golds)
	if !near(acc, s.MicroF1) {
		t.Errorf("micro F1 %v differs from accuracy %v", s.MicroF1, acc)
	}

	s, err = MultiRC([]string{"false", "maybe"}, []string{"false", "false"}, []string{"a", "a"})
	if err != nil || s.F1a != 0 || s.EM != 0 || s.MicroF1 != 0.5 {
		t.Errorf("no positives: %+v, %v", s, err)
	}
	if _, err := MultiRC([]string{"true"}, []string{"true"}, nil); err == nil {
		t.Error("missing groups accepted")
	}
}
