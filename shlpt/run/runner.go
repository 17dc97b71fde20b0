// Package run is the lifelong runner: it trains a sequence of tasks one
// after another with a method (shlpt/method), evaluates every seen task
// after each one, and keeps a run directory (its schema is shlpt/rundir) —
// the resolved configuration, per-epoch metrics, the results matrices, the
// method's artifacts and a checkpoint from which an interrupted run resumes
// to byte-identical results.
package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// Options are what a run needs besides its Config.
type Options struct {
	// Dir is the run directory. A new run needs it absent or empty; Resume
	// continues the run it holds.
	Dir    string
	Resume bool
	// Engine is the autograd engine on the device to train on.
	Engine *ag.Engine
	// Version names the program that runs (recorded in config.json).
	Version string
	// Reporter shows progress (nil: none).
	Reporter Reporter
}

// configHash identifies a configuration in checkpoints.
func configHash(c *rundir.Config) string {
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// ErrInterrupted is returned (wrapped) when the context is cancelled: the
// run stopped at a step boundary after writing its checkpoint.
var ErrInterrupted = errors.New("interrupted")

// runner holds one run's state.
type runner struct {
	cfg    rundir.Config
	opt    Options
	dir    string
	rep    Reporter
	e      *ag.Engine
	m      *t5.Model
	tok    *tokenizer.Tokenizer
	data   []*taskData
	meth   method.Method
	optim  *ag.AdamW // the current task's optimizer (kept across tasks when the method says so)
	res    *rundir.Results
	ev     *evaluator
	hash   string
	base   []float64 // per-task scores for FWT
	start  time.Time
	timing rundir.Timing // of earlier sessions of this run
	// metricsLen is the length of metrics.jsonl after the last line.
	metricsLen int64
	lock       *os.File // held while the run writes the directory
	stageList  []*stage
}

// Run trains the configured sequence in opt.Dir and returns the results.
// A cancelled ctx stops the run at the next step after a checkpoint and
// returns an error wrapping ErrInterrupted.
func Run(ctx context.Context, cfg rundir.Config, opt Options) (*rundir.Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, opt: opt, dir: opt.Dir, rep: opt.Reporter, e: opt.Engine, start: time.Now()}
	if r.rep == nil {
		r.rep = Quiet
	}
	if r.e == nil {
		return nil, errors.New("run: no engine")
	}
	if err := r.prepare(); err != nil {
		return nil, err
	}
	defer r.release()
	return r.loop(ctx)
}

// prepare loads and checks every input, then creates (or, resuming,
// checks) the run directory and builds the method. A run refused for bad
// input leaves no directory behind.
func (r *runner) prepare() error {
	cfg := &r.cfg
	if r.opt.Resume {
		if _, err := rundir.ReadInfo(r.dir); err != nil {
			return err
		}
	} else {
		empty, err := emptyOrAbsent(r.dir)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("run directory %s is not empty: resume it with --resume, or choose another --out", r.dir)
		}
	}
	tokDir := cfg.Tokenizer
	if tokDir == "" {
		tokDir = cfg.Model
	}
	var err error
	if r.tok, err = tokenizer.Load(tokDir); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	info := &rundir.Info{Settings: *cfg, DataSHA256: map[string]string{}, Version: r.opt.Version,
		Created: time.Now().UTC().Format(time.RFC3339)}
	di := r.e.Device().Info()
	info.Device, info.Driver = di.Name, di.DriverName
	mf, err := modelFiles(cfg.Model)
	if err != nil {
		return err
	}
	if info.ModelSHA256, err = fingerprint(cfg.Model, mf); err != nil {
		return err
	}
	if r.data, err = loadTasks(cfg, r.tok); err != nil {
		return err
	}
	for _, td := range r.data {
		if info.DataSHA256[td.task.Name], err = fingerprint(cfg.Data, dataFiles(td)); err != nil {
			return err
		}
	}
	if cfg.PerTaskScores != "" {
		if r.base, err = rundir.ReadBaseline(cfg.PerTaskScores, cfg.Tasks); err != nil {
			return err
		}
	}
	w, err := t5.ParseWeights(cfg.Weights)
	if err != nil {
		return err
	}
	if r.m, err = t5.LoadWith(r.e, cfg.Model, t5.LoadOptions{Weights: w}); err != nil {
		return err
	}
	if err := checkVocab(r.data, r.m.Config.VocabSize, cfg.Model); err != nil {
		return err
	}
	r.warnNotV10()
	if err := r.checkMemory(); err != nil {
		return err
	}

	if r.opt.Resume {
		stored, err := rundir.ReadInfo(r.dir)
		if err != nil {
			return err
		}
		if err := sameRun(stored, info); err != nil {
			return fmt.Errorf("cannot resume %s: %w", r.dir, err)
		}
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	lock, err := lockDir(r.dir)
	if err != nil {
		return err
	}
	r.lock = lock
	if !r.opt.Resume {
		b, err := marshalJSON(info)
		if err != nil {
			return err
		}
		if err := WriteFileAtomic(filepath.Join(r.dir, rundir.ConfigFile), b); err != nil {
			return err
		}
	}
	scratch := filepath.Join(r.dir, scratchDir)
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	r.hash = configHash(cfg)
	r.ev = &evaluator{m: r.m, tok: r.tok, cfg: cfg}
	env := &method.Env{Model: r.m, Seed: cfg.Seed, NumTasks: len(cfg.Tasks), PromptLen: cfg.PromptLen, Store: dirStore{r.dir}, Scratch: scratch, Logf: r.rep.Logf}
	r.meth, err = newMethod(cfg, env)
	return err
}

// sameRun explains how a resumed invocation differs from the stored run.
func sameRun(stored, now *rundir.Info) error {
	if !reflect.DeepEqual(normalized(stored.Settings), normalized(now.Settings)) {
		a, _ := json.Marshal(stored.Settings)
		b, _ := json.Marshal(now.Settings)
		var sa, sb map[string]any
		json.Unmarshal(a, &sa)
		json.Unmarshal(b, &sb)
		for k, v := range sa {
			if !reflect.DeepEqual(v, sb[k]) {
				return fmt.Errorf("setting %s is %v in the run directory but %v now", k, jsonString(v), jsonString(sb[k]))
			}
		}
		return errors.New("the settings differ from the run directory's")
	}
	if stored.ModelSHA256 != now.ModelSHA256 {
		return fmt.Errorf("the model files in %s changed since the run began", now.Settings.Model)
	}
	for task, h := range stored.DataSHA256 {
		if now.DataSHA256[task] != h {
			return fmt.Errorf("the data files of task %s changed since the run began", task)
		}
	}
	return nil
}

// normalized is a configuration through JSON, as stored.
func normalized(c rundir.Config) rundir.Config {
	b, _ := json.Marshal(c)
	var out rundir.Config
	json.Unmarshal(b, &out)
	return out
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (r *runner) release() {
	if r.ev != nil {
		r.ev.release() // recorded eval passes, before the model they read
	}
	if r.optim != nil {
		r.optim.Release()
	}
	if r.meth != nil {
		r.meth.Release()
	}
	if r.m != nil {
		r.m.Release()
	}
	if r.lock != nil {
		os.RemoveAll(filepath.Join(r.dir, scratchDir))
		r.lock.Close()
	}
}

// newMethod builds the configured method through its registration.
func newMethod(cfg *rundir.Config, env *method.Env) (method.Method, error) {
	spec, err := cfg.Spec()
	if err != nil {
		return nil, err
	}
	return spec.New(env, cfg.Settings)
}

// loop runs the tasks from the checkpoint (or the start) to the end.
func (r *runner) loop(ctx context.Context) (*rundir.Results, error) {
	var ck *checkpoint
	if r.opt.Resume {
		var err error
		if ck, err = loadCheckpoint(r.dir); err != nil {
			return nil, err
		}
	}
	metricsLen := int64(0)
	first := 0
	r.res = rundir.NewResults(r.cfg.Method, r.cfg.Tasks)
	r.res.Multitask = r.cfg.Multitask
	r.setMetrics()
	stages := r.stages()
	if ck != nil {
		if err := ck.checkAgainst(filepath.Join(r.dir, rundir.CheckpointFile), r.hash, &r.cfg, len(stages), r.stepsPerStage); err != nil {
			return nil, err
		}
		r.res = ck.Results
		r.timing = ck.Results.Timing
		metricsLen = ck.MetricsLen
		first = ck.Task
		if err := r.meth.SetState(ck.method); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		name := "done"
		if ck.Task < len(stages) {
			name = stages[ck.Task].task.Name
		}
		r.rep.Logf("resuming %s at task %d/%d (%s), epoch %d, step %d", r.dir, ck.Task+1, len(stages), name, ck.Epoch+1, ck.Step)
	}
	if err := truncateMetrics(filepath.Join(r.dir, rundir.MetricsFile), metricsLen); err != nil {
		return nil, err
	}
	r.metricsLen = metricsLen
	for t := first; t < len(stages); t++ {
		var at *checkpoint
		if ck != nil && ck.Task == t {
			at = ck
		}
		if err := r.runStage(ctx, stages[t], at); err != nil {
			return nil, err
		}
	}
	if err := r.writeResults(); err != nil {
		return nil, err
	}
	return r.res, nil
}

// truncateMetrics cuts metrics.jsonl to n bytes (creating it when absent):
// lines written after the checkpoint will be written again.
func truncateMetrics(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < n {
		return fmt.Errorf("%s is shorter (%d bytes) than the checkpoint recorded (%d)", path, st.Size(), n)
	}
	return f.Truncate(n)
}

// appendMetrics appends one JSON line and returns the file's new length.
func appendMetrics(path string, v any) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// writeResults writes results.json with the timing so far.
func (r *runner) writeResults() error {
	if err := finishStageSafe(r.res, r.base); err != nil {
		return err
	}
	r.res.Timing.TotalSeconds = r.timing.TotalSeconds + time.Since(r.start).Seconds()
	b, err := marshalJSON(r.res)
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(r.dir, rundir.ResultsFile), b)
}

// finishStageSafe derives the summary when at least one stage is done.
func finishStageSafe(res *rundir.Results, base []float64) error {
	if res.StagesDone == 0 {
		res.Complete = false
		return nil
	}
	return res.FinishStage(base)
}
