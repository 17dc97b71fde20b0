package run

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/internal/tfevents"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

func TestMain(m *testing.M) { gputest.Main(m) }

// End-to-end runs on the tiny random T5 with the real vocabulary over three
// small real tasks: a handful of examples, two or three epochs.

// testConfig is a small SHLPT run. δ and τ_sim are chosen so that the
// third task both mixes and contrasts (the estimator's weights are far
// from uniform and straddle δ).
func testConfig(t *testing.T) rundir.Config {
	t.Helper()
	c, err := rundir.DefaultConfig("")
	if err != nil {
		t.Fatal(err)
	}
	c.Model, _ = filepath.Abs("../../testdata/t5-tiny-fullvocab")
	c.Tokenizer = testenv.Tokenizer(t)
	c.Data = filepath.Join(testenv.Data(t), "shlpt")
	c.Tasks = []string{"cb", "copa", "sst2"}
	c.KTrain, c.KVal, c.KTest = 6, 2, 3
	c.Epochs, c.EvalFrom, c.Patience = 3, 0, 5
	c.MaxInputLen = 40
	c.PromptLen = 5
	s := rundir.MethodSettings[method.SHLPTConfig](&c)
	s.Delta, s.TauSim = 0.45, 0.05
	c.Seed = 3
	return c
}

func newEngine(t *testing.T) *ag.Engine {
	t.Helper()
	e := ag.New(gputest.Device(t))
	t.Cleanup(func() {
		if err := e.Err(); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return e
}

// stepCanceller cancels the run's context after a number of steps.
type stepCanceller struct {
	Reporter
	after  int
	steps  int
	cancel func()
}

func (s *stepCanceller) Step(step int, loss, tps float64) {
	s.steps++
	if s.steps == s.after {
		s.cancel()
	}
}

var (
	refOnce sync.Once
	refDir  string
	refErr  error
)

// reference runs testConfig once, uninterrupted, for the tests to compare
// with.
func reference(t *testing.T) string {
	t.Helper()
	cfg := testConfig(t)
	e := newEngine(t)
	refOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shlpt-run-ref-")
		if err != nil {
			refErr = err
			return
		}
		refDir = filepath.Join(dir, "run")
		_, refErr = Run(context.Background(), cfg, Options{Dir: refDir, Engine: e, Version: "test"})
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refDir
}

func readResults(t *testing.T, dir string) *rundir.Results {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rundir.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	var r rundir.Results
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// sameRunOutputs checks that two runs ended with the same matrices, stored
// prompts, estimator and mixture weights, byte for byte.
func sameRunOutputs(t *testing.T, a, b string) {
	t.Helper()
	ra, rb := readResults(t, a), readResults(t, b)
	ma, _ := json.Marshal(ra.Matrix)
	mb, _ := json.Marshal(rb.Matrix)
	if !bytes.Equal(ma, mb) {
		t.Errorf("matrices differ:\n%s\n%s", ma, mb)
	}
	sa, _ := json.Marshal(ra.PerTask[len(ra.PerTask)-1].Scores)
	sb, _ := json.Marshal(rb.PerTask[len(rb.PerTask)-1].Scores)
	if !bytes.Equal(sa, sb) {
		t.Errorf("scores differ:\n%s\n%s", sa, sb)
	}
	// The logs hold the same steps, epochs and stages, none twice.
	if x, y := deterministicLogs(t, a), deterministicLogs(t, b); x != y {
		t.Errorf("logs differ:\n%s\n---\n%s", x, y)
	}
	for _, f := range []string{"prompts/cb.safetensors", "prompts/copa.safetensors", "prompts/sst2.safetensors", "estimator.safetensors", "alpha.json"} {
		x, err1 := os.ReadFile(filepath.Join(a, f))
		y, err2 := os.ReadFile(filepath.Join(b, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", f, err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between the runs", f)
		}
	}
}

// deterministicLogs is what the run's metrics.csv, eval.csv and TensorBoard
// events say that does not depend on timing: the CSV rows without the
// timing and memory columns, and every scalar but tokens/s with its step.
func deterministicLogs(t *testing.T, dir string) string {
	t.Helper()
	var out strings.Builder
	for _, name := range []string{rundir.MetricsCSVFile, rundir.EvalCSVFile} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, row := range rows {
			if name == rundir.MetricsCSVFile {
				row = row[:len(row)-4] // tokens/s, seconds, peak memory
			}
			fmt.Fprintln(&out, strings.Join(row, ","))
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, tbEventsFile))
	if err != nil {
		t.Fatal(err)
	}
	scalars, err := tfevents.ReadScalars(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scalars {
		if !strings.HasSuffix(s.Tag, "tokens_per_s") {
			fmt.Fprintf(&out, "%d %s %v\n", s.Step, s.Tag, s.Value)
		}
	}
	return out.String()
}

func TestRunEndToEnd(t *testing.T) {
	dir := reference(t)
	r := readResults(t, dir)
	if !r.Complete || r.StagesDone != 3 || len(r.PerTask) != 3 {
		t.Fatalf("results not complete: %+v", r)
	}
	for _, m := range [][][]*float64{r.Matrix.Valid, r.Matrix.Test} {
		for i := range m {
			for j := range m[i] {
				if (m[i][j] == nil) != (j > i) {
					t.Errorf("matrix entry [%d][%d] = %v: null exactly above the diagonal", i, j, m[i][j])
				}
				// Stored prompts never change: a task's score is the same
				// after every later task.
				if j <= i && *m[i][j] != *m[j][j] {
					t.Errorf("score of task %d changed from %v to %v after task %d", j, *m[j][j], *m[i][j], i)
				}
			}
		}
	}
	if r.BWT["test"] != 0 || r.BWT["valid"] != 0 {
		t.Errorf("BWT %v, SHLPT's is exactly 0", r.BWT)
	}
	if r.Metric[0] != "accuracy" || r.PerTask[2].Method["pool_size"] != float64(2) {
		t.Errorf("metric %v, task 3 details %v", r.Metric, r.PerTask[2].Method)
	}
	// metrics.jsonl: one line per epoch, every epoch validated
	// (eval-from 0), the third task with both contrastive losses.
	b, err := os.ReadFile(filepath.Join(dir, rundir.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 9 {
		t.Fatalf("%d lines in metrics.jsonl, want 9", len(lines))
	}
	var last rundir.EpochLine
	if err := json.Unmarshal([]byte(lines[8]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Task != "sst2" || last.Valid == nil || !(last.Parts["hsc"] > 0) || !(last.Parts["asc"] > 0) || !(last.TokensPerS > 0) {
		t.Errorf("last epoch line %+v", last)
	}
	// ᾱ after every epoch: none for the first task, 1 for the second's one
	// predecessor, a distribution over two for the third.
	epochs, err := rundir.ReadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range epochs {
		sum := 0.0
		for _, a := range l.Alpha {
			sum += a
		}
		if len(l.Alpha) != l.TaskIndex || (l.TaskIndex > 0 && math.Abs(sum-1) > 1e-5) {
			t.Errorf("task %s epoch %d: alpha %v", l.Task, l.Epoch, l.Alpha)
		}
	}
	// Forgetting: stored prompts never change, so none.
	if f := r.Forgetting["test"]; f.Mean != 0 || len(f.PerTask) != 2 {
		t.Errorf("forgetting %+v", r.Forgetting)
	}
	// The logs: a header and 9 epochs, 6 scored (stage, task) pairs, and
	// a TensorBoard loss for every step.
	logs := deterministicLogs(t, dir)
	steps := 0
	for _, l := range epochs {
		steps += l.Steps
	}
	if n := strings.Count(logs, " train/loss "); n != steps || !strings.Contains(logs, fmt.Sprintf("%d alpha/sst2/copa ", steps)) ||
		!strings.Contains(logs, "test/average") || !strings.Contains(logs, "training_exp,task,epoch") {
		t.Errorf("%d train/loss scalars for %d steps; logs:\n%s", n, steps, logs)
	}
	if n := strings.Count(logs, "\n2,sst2,"); n != 3+3 {
		t.Errorf("%d rows of stage 3 in metrics.csv and eval.csv, want 6", n)
	}
	// The mixture weights: task 1 mixes pool[0] fully; task 2's weights
	// are a distribution over what was kept.
	var alpha struct{ Alpha [][]float64 }
	ab, _ := os.ReadFile(filepath.Join(dir, "alpha.json"))
	if err := json.Unmarshal(ab, &alpha); err != nil || len(alpha.Alpha) != 3 || len(alpha.Alpha[1]) != 1 || alpha.Alpha[1][0] != 1 ||
		len(alpha.Alpha[2]) != 2 {
		t.Errorf("alpha.json %s (%v)", ab, err)
	}
	// Every stored prompt file is the pool entry the checkpoint holds.
	ck, err := loadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"cb", "copa", "sst2"} {
		f, err := safetensors.Open(filepath.Join(dir, "prompts", name+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := f.Get("prompt")
		v, _ := p.Float32()
		f.Close()
		var pool []float32
		for _, ht := range ck.method {
			if ht.Name == "pool."+string(rune('0'+i)) {
				pool = ht.Data
			}
		}
		if len(pool) != len(v) || len(v) != 5*32 {
			t.Fatalf("prompt %s has %d values, pool entry %d", name, len(v), len(pool))
		}
		for k := range v {
			if v[k] != pool[k] {
				t.Fatalf("prompt file %s differs from the stored pool entry", name)
			}
		}
	}
	var info rundir.Info
	cb, _ := os.ReadFile(filepath.Join(dir, rundir.ConfigFile))
	if err := json.Unmarshal(cb, &info); err != nil || info.ModelSHA256 == "" || len(info.DataSHA256) != 3 || info.Device == "" ||
		info.Settings.PromptLen != 5 {
		t.Errorf("config.json: %s (%v)", cb, err)
	}
}

// A run stopped by its context (SIGINT) in the middle of an epoch and
// resumed ends exactly as the uninterrupted run.
func TestInterruptAndResume(t *testing.T) {
	ref := reference(t)
	cfg := testConfig(t)
	e := newEngine(t)
	dir := filepath.Join(t.TempDir(), "run")
	for _, after := range []int{3, 7} {
		ctx, cancel := context.WithCancel(context.Background())
		rep := &stepCanceller{Reporter: Quiet, after: after, cancel: cancel}
		_, err := Run(ctx, cfg, Options{Dir: dir, Engine: e, Resume: after != 3, Reporter: rep})
		cancel()
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("stopped after %d steps: %v", after, err)
		}
	}
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e, Resume: true}); err != nil {
		t.Fatal(err)
	}
	sameRunOutputs(t, ref, dir)
	// The metrics of the epochs run twice are not repeated.
	b, _ := os.ReadFile(filepath.Join(dir, rundir.MetricsFile))
	if n := strings.Count(string(b), "\n"); n != 9 {
		t.Errorf("%d metrics lines after resuming, want 9", n)
	}
}

// A run directory is a snapshot of the run's files at any moment; copying
// it at every progress callback and resuming from some of the copies is a
// kill at those moments.
func TestResumeFromSnapshots(t *testing.T) {
	ref := reference(t)
	cfg := testConfig(t)
	e := newEngine(t)
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	snap := &snapshotter{Reporter: Quiet, dir: dir, base: base, every: 5}
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e, Reporter: snap}); err != nil {
		t.Fatal(err)
	}
	if len(snap.copies) < 3 {
		t.Fatalf("only %d snapshots", len(snap.copies))
	}
	// The first, one in the middle and the last.
	n := len(snap.copies)
	for _, c := range []string{snap.copies[0], snap.copies[n/2], snap.copies[n-1]} {
		if _, err := Run(context.Background(), cfg, Options{Dir: c, Engine: e, Resume: true}); err != nil {
			t.Fatalf("resuming %s: %v", c, err)
		}
		sameRunOutputs(t, ref, c)
	}
}

// snapshotter copies the run directory at every every-th callback.
type snapshotter struct {
	Reporter
	dir, base string
	every, n  int
	copies    []string
}

func (s *snapshotter) tick() {
	s.n++
	if s.n%s.every != 0 {
		return
	}
	dst := filepath.Join(s.base, "snap"+strings.Repeat("x", len(s.copies)))
	if err := os.CopyFS(dst, os.DirFS(s.dir)); err == nil {
		os.Remove(filepath.Join(dst, lockFile))
		s.copies = append(s.copies, dst)
	}
}

func (s *snapshotter) Step(int, float64, float64) { s.tick() }
func (s *snapshotter) EndEpoch(rundir.EpochLine)  { s.tick() }
func (s *snapshotter) Logf(string, ...any)        { s.tick() }

// With every earlier task dissimilar (the Negative Transfer setting)
// nothing is mixed: every stored prompt's mixture weights are 0, and both
// contrastive losses run. The -ASE ablation changes such a run: without
// the estimator no task is judged dissimilar, so every earlier prompt is
// mixed with weight 1/P and the contrastive losses have no negatives.
func TestAllDissimilar(t *testing.T) {
	cfg := testConfig(t)
	cfg.Tasks = []string{"cb", "copa"}
	cfg.Epochs = 2
	s := rundir.MethodSettings[method.SHLPTConfig](&cfg)
	s.AllDissimilar, s.Delta = true, 1.5
	cfg.Decode = "greedy"
	e := newEngine(t)
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e}); err != nil {
		t.Fatal(err)
	}
	r := readResults(t, dir)
	if a := r.PerTask[1].Method["alpha"].([]any); len(a) != 1 || a[0] != float64(0) {
		t.Errorf("alpha of task 2 is %v, want [0]", a)
	}
	lastParts := func(dir string) map[string]float64 {
		b, _ := os.ReadFile(filepath.Join(dir, rundir.MetricsFile))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var l rundir.EpochLine
		json.Unmarshal([]byte(lines[len(lines)-1]), &l)
		return l.Parts
	}
	if p := lastParts(dir); !(p["hsc"] > 0) || !(p["asc"] > 0) {
		t.Errorf("contrastive losses of task 2: %v", p)
	}

	noASE := cfg.Clone()
	rundir.MethodSettings[method.SHLPTConfig](&noASE).NoASE = true
	dirASE := filepath.Join(base, "no-ase")
	if _, err := Run(context.Background(), noASE, Options{Dir: dirASE, Engine: e}); err != nil {
		t.Fatal(err)
	}
	r = readResults(t, dirASE)
	if a := r.PerTask[1].Method["alpha"].([]any); len(a) != 1 || a[0] != float64(1) {
		t.Errorf("-ASE: alpha of task 2 is %v, want [1]", a)
	}
	if p := lastParts(dirASE); p["hsc"] != 0 || p["asc"] != 0 {
		t.Errorf("-ASE: contrastive losses of task 2: %v, want none", p)
	}
	x, _ := os.ReadFile(filepath.Join(dir, "prompts", "copa.safetensors"))
	y, _ := os.ReadFile(filepath.Join(dirASE, "prompts", "copa.safetensors"))
	if bytes.Equal(x, y) {
		t.Error("-ASE stored the same prompt as SHLPT on the Negative Transfer setting")
	}
}

// Bad input is a one-line error naming what is wrong, and a refused run
// leaves nothing behind.
func TestRunRefusals(t *testing.T) {
	ref := reference(t)
	e := newEngine(t)
	for _, tc := range []struct {
		name   string
		change func(*rundir.Config)
		want   string
	}{
		{"unknown task", func(c *rundir.Config) { c.Tasks = []string{"cb", "nosuchtask"} }, "nosuchtask"},
		{"missing data", func(c *rundir.Config) { c.Data = c.Data + "-missing" }, "does not exist"},
		{"small vocabulary", func(c *rundir.Config) { c.Model, _ = filepath.Abs("../../testdata/t5-tiny-relu") }, "vocabulary of 100"},
		{"no tokenizer", func(c *rundir.Config) { c.Tokenizer = "" }, "tokenizer"},
		{"bad decode", func(c *rundir.Config) { c.Decode = "sample" }, "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.change(&cfg)
			dir := filepath.Join(t.TempDir(), "run")
			_, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line mentioning %q", err, tc.want)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Error("a refused run left its directory behind")
			}
		})
	}
	cfg := testConfig(t)
	// Another run into a used directory, and a resume with other settings:
	// each names the first setting that differs.
	other := cfg
	other.Epochs = 4
	if _, err := Run(context.Background(), other, Options{Dir: ref, Engine: e}); err == nil || !strings.Contains(err.Error(), "holds another run: setting epochs is 3 in the run directory but 4 now") {
		t.Errorf("another run into a used directory: %v", err)
	}
	if _, err := Run(context.Background(), other, Options{Dir: ref, Engine: e, Resume: true}); err == nil || !strings.Contains(err.Error(), "epochs") {
		t.Errorf("resume with other epochs: %v", err)
	}
	if _, err := Run(context.Background(), cfg, Options{Dir: t.TempDir(), Engine: e, Resume: true}); err == nil || !strings.Contains(err.Error(), rundir.ConfigFile) {
		t.Errorf("resume of an empty directory: %v", err)
	}
}

// The activations pass: every stored prompt over two test inputs of each
// task; a prompt is fully alike itself, and the matrix is symmetric.
func TestActivations(t *testing.T) {
	ref := reference(t)
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.CopyFS(dir, os.DirFS(ref)); err != nil {
		t.Fatal(err)
	}
	a, err := Activations(dir, newEngine(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	back, err := rundir.ReadActivations(dir)
	if err != nil || len(back.Similarity) != 3 {
		t.Fatalf("read back %+v, %v", back, err)
	}
	for i := range a.Similarity {
		if math.Abs(a.Similarity[i][i]-1) > 1e-5 {
			t.Errorf("prompt %d is %v alike itself", i, a.Similarity[i][i])
		}
		for j := range a.Similarity {
			if a.Similarity[i][j] != a.Similarity[j][i] || !(a.Similarity[i][j] <= 1+1e-6) {
				t.Errorf("similarity [%d][%d] %v, [%d][%d] %v", i, j, a.Similarity[i][j], j, i, a.Similarity[j][i])
			}
		}
	}
}

// The activations pass, like an eval-only pass, refuses a run whose model
// files changed since it was trained instead of measuring another model.
func TestActivationsChangedModel(t *testing.T) {
	ref := reference(t)
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.CopyFS(dir, os.DirFS(ref)); err != nil {
		t.Fatal(err)
	}
	info, err := rundir.ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	info.ModelSHA256 = strings.Repeat("0", 64)
	b, err := marshalJSON(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rundir.ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Activations(dir, newEngine(t), 2); err == nil || !strings.Contains(err.Error(), "changed since run") {
		t.Errorf("activations of a run whose model changed: %v", err)
	}
}
