package run

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// evalRunConfig is a short two-task run of a method for the eval-only
// tests, with rank classification: the tiny random model's generations
// are never label words, its ranked labels are.
func evalRunConfig(t *testing.T, name string) rundir.Config {
	t.Helper()
	c := methodConfig(t, name)
	c.Tasks = []string{"cb", "sst2"}
	c.Epochs, c.KTrain, c.KVal, c.KTest = 1, 4, 3, 8
	c.Decode = "rank"
	return c
}

// readPredictions reads eval/<name>.predictions.jsonl.
func readPredictions(t *testing.T, dir, name string) []rundir.Prediction {
	t.Helper()
	b, err := os.ReadFile(rundir.PredictionsFile(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []rundir.Prediction
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var p rundir.Prediction
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// snapshot returns the contents of every file of dir outside eval/.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == rundir.EvalDir {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// observed is what the runner predicted in its last evaluation of each
// task's split (keyed by task and first input), with rank scores.
type observed struct {
	preds  []string
	scores [][]float64
}

func observe(t *testing.T) map[string]observed {
	t.Helper()
	got := map[string]observed{}
	observePredictions = func(task string, raw []tasks.Example, preds []string, scores [][]float64) {
		got[task+"\x00"+raw[0].Input] = observed{preds, scores}
	}
	t.Cleanup(func() { observePredictions = nil })
	return got
}

// Eval-only scoring of a finished run with its own settings gives exactly
// the predictions and label scores, example by example, that the run's
// own last evaluation of each task gave, and so the last row of its
// results — through stored prompts (ProgPrompt's concatenation), an
// input-dependent prompter restored from the checkpoint (L2P) and
// restored weights (fine-tuning) — and changes no file of the run.
func TestEvalReproducesResults(t *testing.T) {
	e := newEngine(t)
	for _, name := range []string{"progprompt", "l2p", "finetune"} {
		t.Run(name, func(t *testing.T) {
			cfg := evalRunConfig(t, name)
			dir := filepath.Join(t.TempDir(), name)
			runs := observe(t)
			if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e}); err != nil {
				t.Fatal(err)
			}
			observePredictions = nil
			before := snapshot(t, dir)
			want := readResults(t, dir)
			last := len(want.Tasks) - 1
			for _, split := range []string{"test", "valid"} {
				got, err := Evaluate(context.Background(), EvalOptions{Dir: dir, Split: split, Engine: e})
				if err != nil {
					t.Fatal(err)
				}
				read, err := rundir.ReadEval(dir, split+"-rank")
				if err != nil {
					t.Fatal(err)
				}
				if read.Eval == nil || read.Eval.Split != split || len(read.PerTask) != 2 {
					t.Fatalf("eval/%s-rank.json: %+v", split, read)
				}
				preds := readPredictions(t, dir, split+"-rank")
				compared := 0
				for _, task := range want.Tasks {
					var mine []rundir.Prediction
					for _, p := range preds {
						if p.Task == task {
							mine = append(mine, p)
						}
					}
					ref, ok := runs[task+"\x00"+mine[0].Input]
					if !ok || len(ref.preds) != len(mine) {
						t.Fatalf("%s %s: the run's evaluation of these %d examples was not seen", split, task, len(mine))
					}
					for k, p := range mine {
						if p.Prediction != ref.preds[k] || !slices.Equal(p.Scores, ref.scores[k]) {
							t.Errorf("%s %s example %d: eval %q %v, the run %q %v", split, task, k, p.Prediction, p.Scores, ref.preds[k], ref.scores[k])
						}
						compared++
					}
				}
				if compared == 0 {
					t.Fatal("nothing compared")
				}
				wantRow, gotRow := want.Matrix.Test[last], got.Matrix.Test[last]
				if split == "valid" {
					wantRow, gotRow = want.Matrix.Valid[last], got.Matrix.Valid[last]
				}
				for i, task := range want.Tasks {
					if *gotRow[i] != *wantRow[i] {
						t.Errorf("%s %s: eval %v, the run scored %v", split, task, *gotRow[i], *wantRow[i])
					}
				}
				if read.Average[split] != got.Average[split] {
					t.Errorf("average %v in the file, %v returned", read.Average, got.Average)
				}
			}
			after := snapshot(t, dir)
			if len(after) != len(before) {
				t.Errorf("the run holds %d files after eval, %d before", len(after), len(before))
			}
			for f, b := range before {
				if !bytes.Equal(after[f], b) {
					t.Errorf("eval changed %s", f)
				}
			}
		})
	}
}

// Another decoding over a subset of the tasks gets its own name and
// writes every label's score per example; bad requests are refused with
// the thing named.
func TestEvalOptions(t *testing.T) {
	e := newEngine(t)
	cfg := evalRunConfig(t, "per-task")
	cfg.Decode = "greedy"
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e}); err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(context.Background(), EvalOptions{Dir: dir, Tasks: []string{"SST-2"}, Decode: "rank", Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) != 1 || res.Tasks[0] != "sst2" || res.PerTask[0].Index != 1 || res.Eval.Decode != "rank" {
		t.Fatalf("results %+v", res)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, rundir.EvalDir, "test-rank-*.json"))
	if len(matches) != 1 {
		t.Fatalf("eval files %v", matches)
	}
	preds := readPredictions(t, dir, strings.TrimSuffix(filepath.Base(matches[0]), ".json"))
	for _, p := range preds {
		if p.Task != "sst2" || len(p.Scores) != 2 || (p.Prediction != "negative" && p.Prediction != "positive") {
			t.Errorf("prediction %+v", p)
		}
	}
	if n := len(preds); n != res.PerTask[0].TestExamples || n == 0 {
		t.Errorf("%d predictions for %d test examples", n, res.PerTask[0].TestExamples)
	}
	for _, c := range []struct {
		o    EvalOptions
		want string
	}{
		{EvalOptions{Tasks: []string{"rte"}}, `has no task "rte"`},
		{EvalOptions{Tasks: []string{"cb", "cb"}}, "named twice"},
		{EvalOptions{Split: "train"}, `unknown split "train"`},
		{EvalOptions{Name: "../x"}, "eval name"},
		{EvalOptions{Decode: "sample"}, "unknown decoding"},
		{EvalOptions{Prompts: t.TempDir()}, "holds no prompts folder"},
		{EvalOptions{Dir: t.TempDir()}, "is not a run directory"},
	} {
		o := c.o
		if o.Dir == "" {
			o.Dir = dir
		}
		o.Engine = e
		if _, err := Evaluate(context.Background(), o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
	}
}
