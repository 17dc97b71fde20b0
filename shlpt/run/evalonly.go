package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// EvalOptions say what an eval-only pass scores. Zero values keep the
// run's own settings.
type EvalOptions struct {
	// Dir is the run directory; Name names the pass: eval/<Name>.json
	// (default: the split and the decoding, and a hash of the tasks, data
	// and prompts when they are not the run's).
	Dir, Name string
	// Split is "test" (default) or "valid".
	Split string
	// Tasks are the tasks to score (default: every learned task).
	Tasks []string
	// Data is another data root to draw the examples from, in the same
	// layout.
	Data string
	// Decode, NumBeams and RepetitionPenalty choose another decoding.
	Decode            string
	NumBeams          int
	RepetitionPenalty float64
	// Prompts is a folder of imported prompts (prompts/<task>.safetensors,
	// as `shlpt-vk import` writes): the tasks it holds are scored with
	// them instead of the run's.
	Prompts string
	Engine  *ag.Engine
	Version string
	// Reporter shows progress (nil: none).
	Reporter Reporter
}

// evalName is what a pass name may look like (it becomes a file name).
var evalName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Evaluate scores the learned state of the run in o.Dir — each task
// tested with what the run tests it with after the last finished task —
// without training, and writes eval/<name>.json (the schema of
// results.json, the last row of the matrices filled for the split) and
// eval/<name>.predictions.jsonl. The run's own files are not touched.
// Methods that store one prompt per task are scored with their stored
// prompts (rundir.TestPrompt); the others with their state from the
// checkpoint.
func Evaluate(ctx context.Context, o EvalOptions) (*rundir.Results, error) {
	start := time.Now()
	rep := o.Reporter
	if rep == nil {
		rep = Quiet
	}
	if o.Engine == nil {
		return nil, errors.New("eval: no engine")
	}
	if o.Split == "" {
		o.Split = "test"
	}
	info, err := rundir.ReadInfo(o.Dir)
	if err != nil {
		return nil, err
	}
	orig := info.Settings
	cfg, index, name, err := evalConfig(o, info)
	if err != nil {
		return nil, err
	}
	tok, data, modelSHA256, err := readInputs(cfg)
	if err != nil {
		return nil, err
	}
	if modelSHA256 != info.ModelSHA256 {
		return nil, fmt.Errorf("the model files in %s changed since run %s was trained", cfg.Model, o.Dir)
	}
	m, err := loadModel(o.Engine, cfg, data)
	if err != nil {
		return nil, err
	}
	defer m.Release()
	src := &testPrompts{dir: o.Dir, imported: o.Prompts, run: &orig, m: m}
	defer src.release()
	ev := &evaluator{m: m, tok: tok, cfg: cfg}
	defer ev.release()

	res := rundir.NewResults(orig.Method, cfg.Tasks)
	res.Multitask = orig.Multitask
	T := len(cfg.Tasks)
	row := res.Matrix.Test[T-1]
	if o.Split == "valid" {
		row = res.Matrix.Valid[T-1]
	}
	var lines bytes.Buffer
	sum := 0.0
	for i, td := range data {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("eval %s: %w", o.Dir, ErrInterrupted)
		}
		began := time.Now()
		raw, exs := td.data.Test, td.test
		if o.Split == "valid" {
			raw, exs = td.data.Valid, td.valid
		}
		pr, err := src.prompter(td.task.Name, index[i])
		if err != nil {
			return nil, err
		}
		preds, scores, err := ev.predict(td.task, exs, pr)
		pr.Release()
		if err != nil {
			return nil, err
		}
		r, err := metrics.Evaluate(td.task, raw, preds, rundir.MetricOptions(cfg.PrimaryMetrics))
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", td.task.Name, err)
		}
		row[i] = pct(r.Primary().Value)
		res.Metric[i] = r.Primary().Name
		sum += *row[i]
		tr := rundir.TaskResult{Task: td.task.Name, Index: index[i], Truncated: td.truncated, BestEpoch: -1,
			Scores: map[string]map[string]float64{o.Split: scoreMap(r)}, Seconds: time.Since(began).Seconds()}
		if o.Split == "valid" {
			tr.ValidExamples = len(exs)
		} else {
			tr.TestExamples = len(exs)
		}
		res.PerTask = append(res.PerTask, tr)
		for k, ex := range raw {
			p := rundir.Prediction{Task: td.task.Name, Index: k, Input: ex.Input, Target: ex.Target, Prediction: preds[k]}
			if scores != nil {
				p.Scores = scores[k]
			}
			b, err := json.Marshal(p)
			if err != nil {
				return nil, err
			}
			lines.Write(append(b, '\n'))
		}
		rep.Logf("%s %s: %s %.2f (%d examples)", o.Split, td.task.Name, r.Primary().Name, *row[i], len(exs))
	}
	res.Complete, res.StagesDone = true, T
	res.Average = map[string]float64{o.Split: sum / float64(T)}
	res.Timing.EvalSeconds = time.Since(start).Seconds()
	res.Timing.TotalSeconds = res.Timing.EvalSeconds
	di := o.Engine.Device().Info()
	res.Eval = &rundir.EvalSpec{Name: name, Split: o.Split, Decode: cfg.Decode, NumBeams: cfg.NumBeams,
		RepetitionPenalty: cfg.RepetitionPenalty, Data: cfg.Data, Prompts: o.Prompts, Device: di.Name,
		Version: o.Version, Created: time.Now().UTC().Format(time.RFC3339)}
	b, err := marshalJSON(res)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, rundir.EvalDir), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(rundir.PredictionsFile(o.Dir, name), lines.Bytes()); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(rundir.EvalFile(o.Dir, name), b); err != nil {
		return nil, err
	}
	return res, nil
}

// evalConfig checks o against the run and returns the settings to
// evaluate with (the run's, with o's changes, its tasks the ones to
// score), each task's index in the run's sequence and the pass's name.
func evalConfig(o EvalOptions, info *rundir.Info) (*rundir.Config, []int, string, error) {
	orig := info.Settings
	cfg := orig
	switch o.Split {
	case "test", "valid":
	default:
		return nil, nil, "", fmt.Errorf("unknown split %q (expected valid or test)", o.Split)
	}
	res, err := rundir.ReadResults(o.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, "", fmt.Errorf("run %s has not finished a task yet (no %s)", o.Dir, rundir.ResultsFile)
	}
	if err != nil {
		return nil, nil, "", err
	}
	learned := res.Learned()
	want := o.Tasks
	if len(want) == 0 {
		want = orig.Tasks[:min(learned, len(orig.Tasks))]
	}
	if len(want) == 0 {
		return nil, nil, "", fmt.Errorf("run %s has not finished a task yet", o.Dir)
	}
	picked := map[int]bool{}
	for _, n := range want {
		i := orig.TaskIndex(n)
		switch {
		case i < 0:
			return nil, nil, "", fmt.Errorf("run %s has no task %q (its tasks: %s)", o.Dir, n, strings.Join(orig.Tasks, ", "))
		case picked[i]:
			return nil, nil, "", fmt.Errorf("task %s is named twice", orig.Tasks[i])
		case i >= learned:
			return nil, nil, "", fmt.Errorf("run %s has not learned task %s yet (%d of %d tasks done)", o.Dir, orig.Tasks[i], learned, len(orig.Tasks))
		}
		picked[i] = true
	}
	var index []int
	cfg.Tasks = nil
	for i, t := range orig.Tasks {
		if picked[i] {
			cfg.Tasks = append(cfg.Tasks, t)
			index = append(index, i)
		}
	}
	if o.Data != "" {
		if cfg.Data, err = filepath.Abs(o.Data); err != nil {
			return nil, nil, "", err
		}
	}
	if o.Decode != "" {
		cfg.Decode = o.Decode
	}
	if o.NumBeams != 0 {
		cfg.NumBeams = o.NumBeams
	}
	if o.RepetitionPenalty != 0 {
		cfg.RepetitionPenalty = o.RepetitionPenalty
	}
	cfg.PerTaskScores = ""
	if err := cfg.Validate(); err != nil {
		return nil, nil, "", err
	}
	if o.Prompts != "" {
		if st, err := os.Stat(filepath.Join(o.Prompts, rundir.PromptsDir)); err != nil || !st.IsDir() {
			return nil, nil, "", fmt.Errorf("--prompts %s holds no %s folder (write one with shlpt-vk import)", o.Prompts, rundir.PromptsDir)
		}
	}
	name := o.Name
	if name == "" {
		name = o.Split + "-" + cfg.Decode
		if len(o.Tasks) > 0 || o.Data != "" || o.Prompts != "" {
			h := sha256.Sum256([]byte(strings.Join(cfg.Tasks, ",") + "\x00" + cfg.Data + "\x00" + o.Prompts))
			name += "-" + hex.EncodeToString(h[:4])
		}
	}
	if !evalName.MatchString(name) {
		return nil, nil, "", fmt.Errorf("eval name %q must be letters, digits, '.', '_' or '-' (a file name), starting with a letter or digit", name)
	}
	return &cfg, index, name, nil
}

// testPrompts gives each task the prompts it is tested with: an imported
// prompt, the run's stored prompt (methods that store one per task), or
// the method's state from the checkpoint.
type testPrompts struct {
	dir, imported string
	run           *rundir.Config
	m             *t5.Model
	meth          method.Method // built from the checkpoint when needed
}

func (s *testPrompts) release() {
	if s.meth != nil {
		s.meth.Release()
	}
}

// prompter returns the prompts of task name, the index-th of the run's
// sequence.
func (s *testPrompts) prompter(name string, index int) (method.Prompter, error) {
	if s.imported != "" {
		path := rundir.PromptFile(s.imported, name)
		if _, err := os.Stat(path); err == nil {
			return s.fixed(path, func() (*rundir.Prompt, error) { return rundir.ReadPrompt(path) })
		}
	}
	if rundir.Exportable(s.run.Method) == nil {
		return s.fixed(s.dir, func() (*rundir.Prompt, error) { return rundir.TestPrompt(s.dir, s.run, name) })
	}
	if s.meth == nil {
		if err := s.loadMethod(); err != nil {
			return nil, err
		}
	}
	with := index
	if s.run.Multitask {
		with = 0 // the one stage
	}
	return s.meth.EvalPrompts(method.Test, with)
}

// fixed uploads a prompt read by read (from where) as a FixedPrompt.
func (s *testPrompts) fixed(where string, read func() (*rundir.Prompt, error)) (method.Prompter, error) {
	p, err := read()
	if err != nil {
		return nil, err
	}
	if d := s.m.Config.DModel; p.D != d {
		return nil, fmt.Errorf("%s: a prompt of width %d for a model of d_model %d", where, p.D, d)
	}
	e := s.m.Engine()
	return method.FixedPrompt{P: e.FromFloat32(p.Data, p.Lp, p.D)}, e.Err()
}

// loadMethod builds the run's method with its state from the checkpoint.
func (s *testPrompts) loadMethod() error {
	ck, err := loadCheckpoint(s.dir)
	if err != nil {
		return err
	}
	if ck == nil {
		return fmt.Errorf("run %s has no %s to read the %s method's state from", s.dir, rundir.CheckpointFile, s.run.Method)
	}
	if ck.ConfigHash != configHash(s.run) {
		return fmt.Errorf("%s belongs to another configuration than %s", filepath.Join(s.dir, rundir.CheckpointFile), rundir.ConfigFile)
	}
	env := &method.Env{Model: s.m, Seed: s.run.Seed, NumTasks: len(s.run.Tasks), PromptLen: s.run.PromptLen}
	meth, err := newMethod(s.run, env)
	if err != nil {
		return err
	}
	if err := meth.SetState(ck.method); err != nil {
		meth.Release()
		return fmt.Errorf("%s: %w", filepath.Join(s.dir, rundir.CheckpointFile), err)
	}
	s.meth = meth
	return nil
}
