package synth

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// Family is a set of pretraining tasks and a lifelong sequence.
type Family struct {
	Pretrain []Task
	Lifelong []Task
}

// keywords name the pretraining tasks (one word each, unrelated to the
// word groups and the label words).
var keywords = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "eleven", "twelve"}

// DemoFamily is the family of `shlpt-vk demo`. The animal tasks answer yes
// or no and the food tasks true or false, so that within a skill only the
// rule tells tasks apart. The sequence is laid
// out so that continual initialization meets a similar predecessor (task
// 2), dissimilar ones (3, 4, 6) and an unrelated one (5), and so that two
// tasks (4 and 7) have both similar and dissimilar predecessors, whose
// mixture weights SHLPT's estimator must tell apart:
//
//	1 animal    has-animal            "words:"
//	2 animal2   has-animal            "list:"   similar to 1
//	3 noanimal  has-animal, inverted  "words:"  dissimilar to 1, 2
//	4 animal3   has-animal            "items:"  similar to 1, 2; dissimilar to 3
//	5 food      has-food              "words:"  unrelated to 1-4
//	6 nofood    has-food, inverted    "list:"   dissimilar to 5
//	7 food2     has-food              "items:"  similar to 5; dissimilar to 6
//
// Pretraining covers every skill in both polarities, each with two label
// pairs, marked by a keyword; no lifelong task is a pretraining task
// without its keyword (the animal skill is never pretrained with yes/no,
// the food skill never with true/false).
func DemoFamily() Family {
	L := LabelPairs
	yes, tf := L[0], L[1]
	f := Family{Lifelong: []Task{
		{Name: "animal", Skill: HasAnimal, Labels: yes, Template: "words:"},
		{Name: "animal2", Skill: HasAnimal, Labels: yes, Template: "list:"},
		{Name: "noanimal", Skill: HasAnimal, Inverted: true, Labels: yes, Template: "words:"},
		{Name: "animal3", Skill: HasAnimal, Labels: yes, Template: "items:"},
		{Name: "food", Skill: HasFood, Labels: tf, Template: "words:"},
		{Name: "nofood", Skill: HasFood, Inverted: true, Labels: tf, Template: "list:"},
		{Name: "food2", Skill: HasFood, Labels: tf, Template: "items:"},
	}}
	pre := []struct {
		s   Skill
		inv bool
		l   [2]int
	}{
		{HasAnimal, false, [2]int{1, 2}}, {HasAnimal, true, [2]int{1, 3}},
		{HasFood, false, [2]int{0, 2}}, {HasFood, true, [2]int{0, 3}},
		{HasColor, false, [2]int{0, 1}}, {HasColor, true, [2]int{2, 3}},
	}
	templates := []string{"words:", "list:"}
	for _, p := range pre {
		for k, li := range p.l {
			i := len(f.Pretrain)
			pol := ""
			if p.inv {
				pol = "not-"
			}
			f.Pretrain = append(f.Pretrain, Task{
				Name:  fmt.Sprintf("pre-%s%s-%s", pol, p.s, L[li][1]),
				Skill: p.s, Inverted: p.inv, Labels: L[li], Template: templates[k], Keyword: keywords[i],
			})
		}
	}
	return f
}

// Names returns the tasks' names.
func Names(ts []Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// Sizes are the examples per class written for a task.
type Sizes struct{ Train, Valid, Test int }

// WriteTask writes a task as a custom task folder dir/<name> (task.json and
// LFPT5 text files), its examples drawn from the seed and the task's name.
// Without Valid examples the runner splits valid ones off the train file.
func WriteTask(dir string, t Task, seed uint64, s Sizes) error {
	folder := filepath.Join(dir, t.Name)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return err
	}
	def := map[string]any{"name": t.Name, "labels": []string{t.Labels[0], t.Labels[1]}, "target_len": 3,
		"train": "train.txt", "test": "test.txt"}
	splits := []struct {
		file string
		n    int
	}{{"train.txt", s.Train}, {"test.txt", s.Test}}
	if s.Valid > 0 {
		def["valid"] = "valid.txt"
		splits = append(splits, struct {
			file string
			n    int
		}{"valid.txt", s.Valid})
	}
	for _, sp := range splits {
		rng := rand.New(rand.NewPCG(seed, hash(t.Name+"/"+sp.file)))
		if err := tasks.WriteLFPT5(filepath.Join(folder, sp.file), t.Examples(rng, sp.n)); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(def, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(folder, tasks.TaskFile), append(b, '\n'))
}

// hash is FNV-1a of s, to seed a task's streams.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
