package synth

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// Generation is deterministic per seed, every example's target is its
// task's rule, and classes are balanced.
func TestExamples(t *testing.T) {
	f := DemoFamily()
	for _, task := range append(f.Pretrain, f.Lifelong...) {
		a := task.Examples(rand.New(rand.NewPCG(3, 4)), 50)
		b := task.Examples(rand.New(rand.NewPCG(3, 4)), 50)
		c := task.Examples(rand.New(rand.NewPCG(3, 5)), 50)
		if !slices.EqualFunc(a, b, func(x, y tasks.Example) bool { return x.Input == y.Input && x.Target == y.Target }) {
			t.Fatalf("%s: not deterministic", task.Name)
		}
		if slices.EqualFunc(a, c, func(x, y tasks.Example) bool { return x.Input == y.Input }) {
			t.Fatalf("%s: another seed gave the same examples", task.Name)
		}
		counts := [2]int{}
		for _, ex := range a {
			words := strings.Fields(ex.Input)
			if task.Keyword != "" {
				if words[0] != task.Keyword {
					t.Fatalf("%s: input %q lacks the keyword", task.Name, ex.Input)
				}
				words = words[1:]
			}
			if words[0] != task.Template {
				t.Fatalf("%s: input %q lacks the template", task.Name, ex.Input)
			}
			c := task.Class(words[1:])
			if task.Labels[c] != ex.Target || ex.Class != c {
				t.Fatalf("%s: %q has target %q, the rule says %q", task.Name, ex.Input, ex.Target, task.Labels[c])
			}
			counts[c]++
		}
		if counts != [2]int{50, 50} {
			t.Errorf("%s: classes %v", task.Name, counts)
		}
	}
}

// The designed relations hold on shared inputs: similar tasks agree on
// every input's class, dissimilar ones disagree on every input, unrelated
// ones agree about half the time.
func TestRelations(t *testing.T) {
	f := DemoFamily()
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs [][]string
	for i := 0; i < 400; i++ {
		s := Skill(i % 3)
		inputs = append(inputs, s.words(rng, i%2 == 0))
	}
	for _, a := range f.Lifelong {
		for _, b := range f.Lifelong {
			agree := 0
			for _, w := range inputs {
				if a.Class(w) == b.Class(w) {
					agree++
				}
			}
			frac := float64(agree) / float64(len(inputs))
			switch Relation(a, b) {
			case 1:
				if frac != 1 {
					t.Errorf("%s and %s are similar but agree on %.2f", a.Name, b.Name, frac)
				}
			case -1:
				if frac != 0 {
					t.Errorf("%s and %s are dissimilar but agree on %.2f", a.Name, b.Name, frac)
				}
			default:
				if frac < 0.2 || frac > 0.8 {
					t.Errorf("%s and %s are unrelated but agree on %.2f", a.Name, b.Name, frac)
				}
			}
		}
	}
	// No lifelong task is a pretraining task without its keyword.
	for _, l := range f.Lifelong {
		for _, p := range f.Pretrain {
			if l.Skill == p.Skill && l.Inverted == p.Inverted && l.Labels == p.Labels {
				t.Errorf("lifelong %s repeats pretraining %s", l.Name, p.Name)
			}
		}
	}
}

// familyTexts are inputs and targets of every task of the family.
func familyTexts() []string {
	f := DemoFamily()
	var texts []string
	for _, task := range append(f.Pretrain, f.Lifelong...) {
		for _, ex := range task.Examples(rand.New(rand.NewPCG(9, 9)), 20) {
			texts = append(texts, ex.Input, ex.Target)
		}
	}
	return texts
}

func builtinTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	dir := t.TempDir()
	if err := WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	mini, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return mini
}

// The built-in tokenizer knows every piece of the family's texts and
// decodes its ids back to them.
func TestTokenizer(t *testing.T) {
	mini := builtinTokenizer(t)
	for _, text := range familyTexts() {
		ids, err := mini.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if id == 2 {
				t.Fatalf("%q has an unknown piece: %v", text, ids)
			}
		}
		if got := mini.Decode(ids); got != text {
			t.Fatalf("%q decodes to %q", text, got)
		}
	}
}

// The built-in tokenizer gives the family's texts the ids of T5's own.
func TestTokenizerMatchesT5(t *testing.T) {
	mini := builtinTokenizer(t)
	t5tok, err := tokenizer.Load(testenv.Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range familyTexts() {
		a, _ := mini.Encode(text)
		b, _ := t5tok.Encode(text)
		if !slices.Equal(a, b) {
			t.Fatalf("%q: built-in ids %v, T5's %v", text, a, b)
		}
	}
}
