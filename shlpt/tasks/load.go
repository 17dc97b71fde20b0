package tasks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// QAScale is the factor by which QA tasks, which have no classes, scale the
// per-class sizes: 4·75 = 300 train, 300 valid and 4·100 = 400 test
// examples, as in the reference.
const QAScale = 4

// Config says how many examples to draw.
type Config struct {
	// KTrain and KVal are the train and valid examples per class; a
	// negative value means all. Without a valid file, min(KTrain+KVal, n_c)
	// examples of class c are drawn from the train file and split in half,
	// as in the reference, so only their sum matters.
	KTrain, KVal int
	// KTest is the test examples per class drawn from the test file.
	KTest int
	// Read controls how files are read.
	Read ReadOptions
}

// DefaultConfig is the reference configuration: 75 train, 75 valid and
// 100 test examples per class.
func DefaultConfig() Config { return Config{KTrain: 75, KVal: 75, KTest: 100} }

// Data is the few-shot data of one task for one seed.
type Data struct {
	Task               *Task
	Seed               uint64
	Train, Valid, Test []Example
	// Notes says where the data departs from what the reference would use.
	Notes []string
	// Reports describe the files read: train, then valid when read from
	// its own file, then test.
	Reports []*FileReport
}

// Load reads task t's files and draws its train, valid and test sets for
// seed. The result depends only on the files, the task, the seed and cfg.
func Load(t *Task, files Files, seed uint64, cfg Config) (*Data, error) {
	if err := t.CanRead(files.Format); err != nil {
		return nil, err
	}
	d := &Data{Task: t, Seed: seed}
	read := func(split, path, rows string) ([]Example, [][]int, error) {
		if path == "" {
			return nil, nil, fmt.Errorf("task %s: no %s file given", t.Name, split)
		}
		exs, rep, err := ReadFile(t, files.Format, path, cfg.Read)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, missingFile(t, split, path, files)
			}
			return nil, nil, err
		}
		d.Reports = append(d.Reports, rep)
		if rows != "" {
			if rep.Skipped > 0 || rep.Dropped > 0 {
				return nil, nil, fmt.Errorf("task %s: row filter %s needs every row of %s, but %d were skipped or dropped",
					t.Name, rows, path, rep.Skipped+rep.Dropped)
			}
			if exs, err = keepRows(exs, rows); err != nil {
				return nil, nil, fmt.Errorf("task %s: %w", t.Name, err)
			}
			rep.RowFilter, rep.Examples = rows, len(exs)
			rep.PerClass = CountByClass(t, exs)
		}
		pools, err := classPools(t, exs, split, path)
		return exs, pools, err
	}

	if t.Name == "yahoo" && (files.TrainRows == "" || files.TestRows == "") {
		d.Notes = append(d.Notes, "yahoo: rows are not filtered by good_id_yahoo_{train,test}2.npy as in the reference (set Files.TrainRows and TestRows)")
	}
	trainEx, trainPools, err := read("train", files.Train, files.TrainRows)
	if err != nil {
		return nil, err
	}
	if files.Valid == "" {
		kt, kv := cfg.KTrain, cfg.KVal
		if t.QA {
			kt, kv = scaleK(kt), scaleK(kv)
		}
		for c, pool := range trainPools {
			picks := draw(rngFor(seed, t.Name, "train+valid/"+classStream(t, c)), pool, addK(kt, kv))
			n := len(picks) / 2
			if t.QA && kt >= 0 {
				n = min(kt, len(picks)) // the reference takes the first 4·k_train
			}
			d.Train = appendPicks(d.Train, trainEx, picks[:n])
			d.Valid = appendPicks(d.Valid, trainEx, picks[n:])
		}
	} else {
		validEx, validPools, err := read("valid", files.Valid, "")
		if err != nil {
			return nil, err
		}
		d.Train = drawAll(seed, t, "train", trainEx, trainPools, cfg.KTrain)
		d.Valid = drawAll(seed, t, "valid", validEx, validPools, cfg.KVal)
	}
	testEx, testPools, err := read("test", files.Test, files.TestRows)
	if err != nil {
		return nil, err
	}
	d.Test = drawAll(seed, t, "test", testEx, testPools, cfg.KTest)

	shuffleExamples(seed, t.Name, "train/order", d.Train)
	shuffleExamples(seed, t.Name, "valid/order", d.Valid)
	shuffleExamples(seed, t.Name, "test/order", d.Test)
	return d, nil
}

// drawAll draws k examples per class (QAScale·k for QA).
func drawAll(seed uint64, t *Task, split string, exs []Example, pools [][]int, k int) []Example {
	if t.QA {
		k = scaleK(k)
	}
	var out []Example
	for c, pool := range pools {
		out = appendPicks(out, exs, draw(rngFor(seed, t.Name, split+"/"+classStream(t, c)), pool, k))
	}
	return out
}

// classPools groups example indices by class, in file order; QA has one
// pool. A class without examples is an error.
func classPools(t *Task, exs []Example, split, path string) ([][]int, error) {
	if t.QA {
		if len(exs) == 0 {
			return nil, fmt.Errorf("task %s: %s file %s has no questions", t.Name, split, path)
		}
		all := make([]int, len(exs))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}, nil
	}
	pools := make([][]int, len(t.Labels))
	for i, e := range exs {
		pools[e.Class] = append(pools[e.Class], i)
	}
	var empty []string
	for c, p := range pools {
		if len(p) == 0 {
			empty = append(empty, fmt.Sprintf("%q", t.Labels[c]))
		}
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("task %s: %s file %s has no examples of class %s (expected examples of every class: %s)",
			t.Name, split, path, strings.Join(empty, ", "), quoteList(t.Labels))
	}
	return pools, nil
}

// classStream names the random stream of class c.
func classStream(t *Task, c int) string {
	if t.QA {
		return "all"
	}
	return t.Labels[c]
}

func appendPicks(out, exs []Example, picks []int) []Example {
	for _, i := range picks {
		out = append(out, exs[i])
	}
	return out
}

func shuffleExamples(seed uint64, task, stream string, exs []Example) {
	idx := make([]int, len(exs))
	for i := range idx {
		idx[i] = i
	}
	shuffle(seed, task, stream, idx)
	tmp := append([]Example(nil), exs...)
	for i, j := range idx {
		exs[i] = tmp[j]
	}
}

// missingFile explains a missing file in terms of the layout.
func missingFile(t *Task, split, path string, files Files) error {
	msg := fmt.Sprintf("task %s: %s file %s does not exist", t.Name, split, path)
	dir := filepath.Dir(filepath.Dir(path))
	if files.Format == t.Format && filepath.Base(filepath.Dir(path)) == t.Dir {
		msg += fmt.Sprintf(" (the SHLPT layout expects <root>/%s/%s%s", t.Dir, split, t.Format.ext())
		if st, err := os.Stat(filepath.Join(dir, "shlpt", t.Dir)); err == nil && st.IsDir() {
			msg += fmt.Sprintf("; %s looks like the root's parent: try %s", dir, filepath.Join(dir, "shlpt"))
		}
		msg += ")"
	}
	return errors.New(msg)
}

// CountByClass counts examples per class (index into t.Labels); for QA,
// index 0 counts answerable and 1 unanswerable questions.
func CountByClass(t *Task, exs []Example) []int {
	n := make([]int, max(len(t.Labels), 2))
	if !t.QA {
		n = n[:len(t.Labels)]
	}
	for _, e := range exs {
		switch {
		case !t.QA:
			n[e.Class]++
		case len(e.Answers) > 0:
			n[0]++
		default:
			n[1]++
		}
	}
	return n
}

// CountNames names the entries of CountByClass: the label words, or
// "answerable" and "unanswerable" for QA.
func CountNames(t *Task) []string {
	if t.QA {
		return []string{"answerable", "unanswerable"}
	}
	return t.Labels
}
