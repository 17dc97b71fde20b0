// Package synth generates a family of text-to-text classification tasks
// whose relations are known by construction: which tasks share an
// input→output rule under a different surface (similar), which apply a
// conflicting rule to the same kind of inputs (dissimilar), and which are
// unrelated. The inputs are short lists of common English words, each one
// token of the T5 vocabulary; the targets are label words T5 knows.
//
// A rule (skill) is a property of the word list — it names an animal, a
// food, a colour — read directly or inverted; a task is a rule, a pair of label words and a surface template.
// Pretraining tasks carry a keyword that names the task, so a model learns
// the skills and how label words attach to them; lifelong tasks are new
// combinations of skill, polarity and label words without a keyword, so a
// soft prompt has to find the skill. Everything is generated from a seed.
package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// Word groups, each word a single token of the T5 vocabulary.
var (
	Colors  = []string{"red", "blue", "green", "yellow", "black", "white", "brown", "purple"}
	Animals = []string{"dog", "cat", "horse", "bird", "fish", "cow", "sheep", "mouse"}
	Foods   = []string{"bread", "apple", "rice", "cheese", "milk", "cake", "soup", "meat"}
	Things  = []string{"car", "door", "book", "chair", "table", "phone", "house", "ball"}
)

// Skill is the property of a word list a task's rule reads.
type Skill int

// The skills.
const (
	HasAnimal Skill = iota // some word is an animal
	HasFood                // some word is a food
	HasColor               // some word is a colour
)

func (s Skill) String() string {
	switch s {
	case HasAnimal:
		return "has-animal"
	case HasFood:
		return "has-food"
	case HasColor:
		return "has-color"
	}
	return fmt.Sprintf("skill(%d)", int(s))
}

// LabelPairs are the label words tasks use: [0] is the word of class 0
// (the property does not hold, after polarity), [1] of class 1.
var LabelPairs = [][2]string{{"no", "yes"}, {"false", "true"}, {"bad", "good"}, {"low", "high"}}

// Task is one task of the family.
type Task struct {
	Name     string
	Skill    Skill
	Inverted bool      // class 1 when the property does NOT hold
	Labels   [2]string // class 0, class 1
	// Template is the input's first word ("words:", "list:"); Keyword, for
	// pretraining tasks only, comes before it and names the task.
	Template string
	Keyword  string
}

// Class returns the task's class of a word list.
func (t Task) Class(words []string) int {
	holds := t.Skill.holds(words)
	if holds != t.Inverted {
		return 1
	}
	return 0
}

func (s Skill) holds(words []string) bool {
	g := s.group()
	for _, w := range words {
		if in(w, g) {
			return true
		}
	}
	return false
}

// group is the word group whose presence the skill reads.
func (s Skill) group() []string {
	switch s {
	case HasAnimal:
		return Animals
	case HasFood:
		return Foods
	}
	return Colors
}

func in(w string, group []string) bool {
	for _, g := range group {
		if g == w {
			return true
		}
	}
	return false
}

// Input is the text the model reads for a word list.
func (t Task) Input(words []string) string {
	parts := []string{}
	if t.Keyword != "" {
		parts = append(parts, t.Keyword)
	}
	parts = append(parts, t.Template)
	return strings.Join(append(parts, words...), " ")
}

// Relation says how two tasks relate by construction: 1 similar (the same
// rule: skill and polarity; other label words or template), -1 dissimilar
// (the same skill read with the opposite polarity: on the same inputs
// their classes conflict), 0 unrelated (other skills).
func Relation(a, b Task) int {
	if a.Skill != b.Skill {
		return 0
	}
	if a.Inverted == b.Inverted {
		return 1
	}
	return -1
}

// RelationName names a relation.
func RelationName(r int) string {
	switch r {
	case 1:
		return "similar"
	case -1:
		return "dissimilar"
	}
	return "unrelated"
}

// Chance is the accuracy of guessing: the tasks are balanced over their two
// classes.
func Chance(Task) float64 { return 0.5 }

// words draws a word list of 4 to 8 words in which the skill's property
// holds or not, as asked: the other words come from the other groups, and
// when it holds one to three of them are replaced by words of its group.
func (s Skill) words(rng *rand.Rand, holds bool) []string {
	n := 4 + rng.IntN(5)
	var others []string
	for _, g := range [][]string{Colors, Animals, Foods, Things} {
		if &g[0] != &s.group()[0] {
			others = append(others, g...)
		}
	}
	w := make([]string, n)
	for i := range w {
		w[i] = others[rng.IntN(len(others))]
	}
	if holds {
		g := s.group()
		for k := 1 + rng.IntN(3); k > 0; k-- {
			w[rng.IntN(n)] = g[rng.IntN(len(g))]
		}
	}
	return w
}

// Examples generates n examples per class of the task from rng.
func (t Task) Examples(rng *rand.Rand, perClass int) []tasks.Example {
	var out []tasks.Example
	for c := 0; c < 2; c++ {
		holds := (c == 1) != t.Inverted
		for i := 0; i < perClass; i++ {
			w := t.Skill.words(rng, holds)
			out = append(out, tasks.Example{Input: t.Input(w), Target: t.Labels[c], Class: c})
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
