package metrics

import "testing"

func TestTokenF1(t *testing.T) {
	for _, tc := range []struct {
		pred, gold string
		want       float64
	}{
		{"a b c", "a b c", 1},
		{"x b c", "b c d", 2.0 / 3},
		{"b b", "b", 2.0 / 3},
		{"", "", 1},
		{"the", "", 1}, // both normalize to nothing
		{"x", "", 0},
		{"", "x", 0},
		{"x", "y", 0},
		{"in France", "France", 2.0 / 3},
	} {
		if got := TokenF1(tc.pred, tc.gold); !near(got, tc.want) {
			t.Errorf("TokenF1(%q, %q) = %v, want %v", tc.pred, tc.gold, got, tc.want)
		}
	}
}

func TestSQuAD(t *testing.T) {
	preds := []string{"the Normans", "in France", "", "France", ""}
	answers := [][]string{
		{"Normans", "Norman people"},
		{"France", "in France"}, // matches the second gold answer only
		{},                      // unanswerable, abstained: right
		{},                      // unanswerable, answered: wrong
		{"a"},                   // normalizes to nothing: unanswerable
	}
	s, err := SQuAD(preds, answers)
	if err != nil {
		t.Fatal(err)
	}
	want := SQuADScores{EM: 0.8, F1: 0.8, FirstEM: 0.6, FirstF1: (1 + 2.0/3 + 1 + 0 + 1) / 5}
	if !near(s.EM, want.EM) || !near(s.F1, want.F1) || !near(s.FirstEM, want.FirstEM) || !near(s.FirstF1, want.FirstF1) {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if _, err := SQuAD([]string{"a"}, nil); err == nil {
		t.Error("length mismatch accepted")
	}
}
