package run

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// methodConfig is a small run of one method over the three test tasks.
func methodConfig(t *testing.T, name string) rundir.Config {
	t.Helper()
	c := testConfig(t)
	if err := c.UseMethod(name); err != nil {
		t.Fatal(err)
	}
	if c.PromptLen > 0 {
		c.PromptLen = 4
	}
	if rundir.FullWeight(name) {
		c.LR = 1e-3
	}
	c.Epochs, c.KTrain, c.KVal, c.KTest = 2, 4, 2, 3
	c.Decode = "greedy"
	if er := rundir.MethodSettings[method.ERConfig](&c); er != nil {
		er.Memory = 5
	}
	return c
}

// Every method runs end to end on the tiny model over three real tasks;
// the methods that freeze earlier prompts have BWT exactly 0, and FWT is
// measured against the per-task run's scores.
func TestMethodsEndToEnd(t *testing.T) {
	e := newEngine(t)
	base := t.TempDir()
	perTask := filepath.Join(base, "per-task")
	for _, name := range rundir.Methods() {
		if name == "shlpt" {
			continue // TestRunEndToEnd
		}
		t.Run(name, func(t *testing.T) {
			cfg := methodConfig(t, name)
			if name != "per-task" {
				cfg.PerTaskScores = filepath.Join(perTask, rundir.ResultsFile)
			}
			dir := filepath.Join(base, name)
			if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e}); err != nil {
				t.Fatal(err)
			}
			r := readResults(t, dir)
			if !r.Complete || len(r.PerTask) != 3 {
				t.Fatalf("incomplete results: %+v", r)
			}
			switch name {
			case "per-task", "continual-init", "progprompt", "coda", "l2p":
				if r.BWT["test"] != 0 || r.BWT["valid"] != 0 {
					t.Errorf("BWT %v: earlier prompts are frozen, so it must be 0", r.BWT)
				}
			case "finetune", "ewc", "er":
				// The weights moved: the stored state differs from the model file.
				ck, err := loadCheckpoint(dir)
				if err != nil {
					t.Fatal(err)
				}
				f, err := safetensors.Open(filepath.Join(cfg.Model, "model.safetensors"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				orig, _ := f.Get("shared.weight")
				ov, _ := orig.Float32()
				moved := 0.0
				for _, ht := range ck.method {
					if ht.Name == "weight/shared.weight" {
						for k := range ov {
							moved = math.Max(moved, math.Abs(float64(ht.Data[k]-ov[k])))
						}
					}
				}
				if moved == 0 {
					t.Error("the shared embedding did not change")
				}
			}
			if name != "per-task" {
				if _, ok := r.FWT["test"]; !ok {
					t.Errorf("no FWT against the per-task scores: %+v", r.FWT)
				}
			}
			if name == "progprompt" {
				if _, err := os.Stat(filepath.Join(dir, "prompts", "sst2.safetensors")); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// Multitask trains one prompt on the union and fills only the last row.
func TestMultitask(t *testing.T) {
	cfg := methodConfig(t, "per-task")
	cfg.Multitask = true
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: newEngine(t)}); err != nil {
		t.Fatal(err)
	}
	r := readResults(t, dir)
	if !r.Complete || !r.Multitask || len(r.PerTask) != 1 || r.BWT != nil {
		t.Fatalf("multitask results %+v", r)
	}
	for i := range r.Tasks {
		if r.Matrix.Test[2][i] == nil || (i < 2 && r.Matrix.Test[i][i] != nil) {
			t.Errorf("column %d: only the last row is filled", i)
		}
	}
	if _, ok := r.Average["test"]; !ok {
		t.Error("no average")
	}
}

// A full-weight method with a replay memory resumes byte-identically from
// snapshots of its run directory.
func TestFullWeightResume(t *testing.T) {
	cfg := methodConfig(t, "er")
	e := newEngine(t)
	base := t.TempDir()
	ref := filepath.Join(base, "ref")
	if _, err := Run(context.Background(), cfg, Options{Dir: ref, Engine: e}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "run")
	snap := &snapshotter{Reporter: Quiet, dir: dir, base: base, every: 4}
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e, Reporter: snap}); err != nil {
		t.Fatal(err)
	}
	n := len(snap.copies)
	if n < 2 {
		t.Fatalf("only %d snapshots", n)
	}
	for _, c := range []string{snap.copies[n/3], snap.copies[2*n/3]} {
		if _, err := Run(context.Background(), cfg, Options{Dir: c, Engine: e, Resume: true}); err != nil {
			t.Fatalf("resuming %s: %v", c, err)
		}
		ra, rb := readResults(t, ref), readResults(t, c)
		for i := range ra.Matrix.Test {
			for j := range ra.Matrix.Test[i] {
				a, b := ra.Matrix.Test[i][j], rb.Matrix.Test[i][j]
				if (a == nil) != (b == nil) || (a != nil && *a != *b) {
					t.Fatalf("test matrix [%d][%d] differs after resuming %s", i, j, c)
				}
			}
		}
		x, _ := loadCheckpoint(ref)
		y, _ := loadCheckpoint(c)
		for k := range x.method {
			if x.method[k].Name != y.method[k].Name || !reftest.SameBits(x.method[k].Data, y.method[k].Data) {
				t.Fatalf("final state %s differs after resuming %s", x.method[k].Name, c)
			}
		}
	}
}

// A full-weight method the device cannot hold is refused with the
// estimate; the same run at a small size passes.
func TestFullWeightRefused(t *testing.T) {
	large, err := t5.NamedConfig("t5-large")
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := tasks.Lookup("cb")
	r := &runner{cfg: rundir.Config{Method: "ewc", BatchSize: 4096}, m: &t5.Model{Config: large}, e: newEngine(t), rep: Quiet,
		data: []*taskData{{task: cb, inputLen: 256}}}
	err = r.checkMemory()
	if err == nil || !strings.Contains(err.Error(), "needs an estimated") || !strings.Contains(err.Error(), "GiB") {
		t.Fatalf("t5-large ewc at batch 4096: %v", err)
	}
	small, _ := t5.NamedConfig("t5-small")
	r.m, r.cfg.BatchSize = &t5.Model{Config: small}, 1
	if err := r.checkMemory(); err != nil {
		t.Errorf("t5-small ewc at batch 1: %v", err)
	}
}

// A prompt method runs on 16-bit frozen weights; a full-weight method
// refuses them.
func TestSixteenBitWeights(t *testing.T) {
	cfg := methodConfig(t, "per-task")
	cfg.Weights = "bf16"
	cfg.Tasks = []string{"cb", "copa"}
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: newEngine(t)}); err != nil {
		t.Fatal(err)
	}
	if r := readResults(t, dir); !r.Complete {
		t.Errorf("incomplete: %+v", r)
	}
	ft := methodConfig(t, "finetune")
	ft.Weights = "bf16"
	if err := ft.Validate(); err == nil || !strings.Contains(err.Error(), "f32") {
		t.Errorf("finetune on bf16 weights: %v", err)
	}
	bad := methodConfig(t, "per-task")
	bad.Weights = "f8"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "f8") {
		t.Errorf("weights f8: %v", err)
	}
}

// The paper's primary metric fills the matrices by default (MultiRC
// micro-F1); results.json keeps the official one (F1 over answer options)
// as the alternate, from the same predictions.
func TestPrimaryMetrics(t *testing.T) {
	cfg := methodConfig(t, "per-task")
	cfg.Tasks, cfg.Epochs = []string{"multirc"}, 1
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: newEngine(t)}); err != nil {
		t.Fatal(err)
	}
	r := readResults(t, dir)
	if r.PrimaryMetrics != "paper" || r.Metric[0] != "micro_f1" || r.Alternate == nil || r.Alternate.Metric[0] != "f1a" {
		t.Fatalf("primary metrics %q %v, alternate %+v", r.PrimaryMetrics, r.Metric, r.Alternate)
	}
	for _, split := range []string{"valid", "test"} {
		m, a := r.Matrix.Test, r.Alternate.Matrix.Test
		if split == "valid" {
			m, a = r.Matrix.Valid, r.Alternate.Matrix.Valid
		}
		s := r.PerTask[0].Scores[split]
		if *m[0][0] != s["micro_f1"] || *a[0][0] != s["f1a"] {
			t.Errorf("%s: matrix %v and alternate %v, scores %v", split, *m[0][0], *a[0][0], s)
		}
	}
	if r.Alternate.Average["test"] != *r.Alternate.Matrix.Test[0][0] {
		t.Errorf("alternate average %v", r.Alternate.Average)
	}
}

// logCatcher keeps the run's log lines.
type logCatcher struct {
	Reporter
	lines []string
}

func (l *logCatcher) Logf(format string, args ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// A model that is not an original T5 v1.0 checkpoint is named in a
// warning; a v1.0 one is not.
func TestWarnNotV10(t *testing.T) {
	for _, c := range []struct {
		dir  string
		warn bool
	}{{"t5-tiny-gated", true}, {"t5-tiny-relu-untied", true}, {"t5-tiny-relu", false}} {
		cfg, err := t5.LoadConfig(filepath.Join("../../testdata", c.dir))
		if err != nil {
			t.Fatal(err)
		}
		log := &logCatcher{Reporter: Quiet}
		r := &runner{cfg: rundir.Config{Model: c.dir}, m: &t5.Model{Config: cfg}, rep: log}
		r.warnNotV10()
		got := strings.Join(log.lines, "\n")
		if warned := strings.Contains(got, "not an original T5 v1.0") && strings.Contains(got, c.dir); warned != c.warn {
			t.Errorf("%s: log %q, want a warning %v", c.dir, got, c.warn)
		}
	}
}
