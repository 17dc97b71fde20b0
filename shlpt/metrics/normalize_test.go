package metrics

import "testing"

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"The Cat!", "cat"},
		{"THE", ""},
		{"  A  an the  ", ""},
		{"an apple", "apple"},
		{"banana", "banana"},  // articles only as whole words
		{"the-end", "theend"}, // punctuation goes first
		{"not_entailment", "notentailment"},
		{"a€b", "€b"}, // € is not a word character
		{"Ünïcode  Tabs\tand\nnewlines", "ünïcode tabs and newlines"},
		{"x\x1cy", "x y"}, // Python's split() separates at U+001C
		{"x\u00a0y", "x y"},
		{"café’s", "café’s"}, // only ASCII punctuation is removed
		{"1,000.5 people", "10005 people"},
		{"a_b", "ab"},
	} {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAccuracy(t *testing.T) {
	got, err := Accuracy([]string{"Entailment.", "neutral", "the contradiction"}, []string{"entailment", "contradiction", "contradiction"})
	if err != nil || !near(got, 2.0/3) {
		t.Errorf("Accuracy = %v, %v; want 2/3", got, err)
	}
	if _, err := Accuracy([]string{"a"}, []string{"a", "b"}); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := Accuracy(nil, nil); err == nil {
		t.Error("empty input accepted")
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }
