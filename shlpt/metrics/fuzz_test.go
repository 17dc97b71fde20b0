package metrics

import (
	"strings"
	"testing"
)

// Normalize is idempotent, leaves no article, ASCII punctuation or double
// space behind, and TokenF1 of a text with itself is 1.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"The Cat!", "a€b", "not_entailment", "x\x1cy", "\xff an", "  A  an the  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if Normalize(n) != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize of that is %q", s, n, Normalize(n))
		}
		if strings.Contains(n, "  ") || strings.TrimSpace(n) != n {
			t.Fatalf("Normalize(%q) = %q has stray spaces", s, n)
		}
		for _, w := range strings.Fields(n) {
			if w == "a" || w == "an" || w == "the" {
				t.Fatalf("Normalize(%q) = %q keeps an article", s, n)
			}
		}
		if TokenF1(s, s) != 1 {
			t.Fatalf("TokenF1(%q, itself) = %v", s, TokenF1(s, s))
		}
	})
}
