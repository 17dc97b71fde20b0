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
	"strings"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// Options are what a run needs besides its Config.
type Options struct {
	// Dir is the run directory. An absent or empty one gets a new run; one
	// holding the same run (the same settings, model and data) is resumed,
	// and one holding another run is refused. With Resume, Dir must hold a
	// run.
	Dir    string
	Resume bool
	// Engine is the autograd engine on the device to train on.
	Engine *ag.Engine
	// Version names the program that runs (recorded in config.json).
	Version string
	// Reporter shows progress (nil: none).
	Reporter Reporter
	// ContinueCommand is the command an interrupted run tells the user to
	// continue with ("": shlpt-vk train --resume Dir).
	ContinueCommand string
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
	// resuming says that the directory held this run already.
	resuming bool
	// out writes the outputs a checkpoint vouches for.
	out       *outputs
	stageList []*stage
	// logs receive every step, epoch and stage (logs.go); globalStep
	// counts the run's training steps.
	logs       *logSet
	globalStep int
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

// prepare loads and checks every input, then creates the run directory or
// finds the same run in it to resume, and builds the method. A run refused
// for bad input leaves no directory behind.
func (r *runner) prepare() error {
	cfg := &r.cfg
	kind, err := inspectDir(r.dir)
	if err != nil {
		return err
	}
	switch {
	case r.opt.Resume && kind != dirRun:
		_, err := rundir.ReadInfo(r.dir) // names what is missing
		return err
	case kind == dirOther:
		return fmt.Errorf("%s holds files but no %s: it is not a run directory; choose another --out", r.dir, rundir.ConfigFile)
	}
	info := &rundir.Info{Settings: *cfg, DataSHA256: map[string]string{}, Version: r.opt.Version,
		Created: time.Now().UTC().Format(time.RFC3339)}
	di := r.e.Device().Info()
	info.Device, info.Driver = di.Name, di.DriverName
	if r.tok, r.data, info.ModelSHA256, err = readInputs(cfg); err != nil {
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
	if r.m, err = loadModel(r.e, cfg, r.data); err != nil {
		return err
	}
	r.warnNotV10()
	if err := r.checkMemory(); err != nil {
		return err
	}

	if kind == dirRun {
		stored, err := rundir.ReadInfo(r.dir)
		if err != nil {
			return err
		}
		if err := sameRun(stored, info); err != nil {
			if r.opt.Resume {
				return fmt.Errorf("cannot resume %s: %w", r.dir, err)
			}
			return fmt.Errorf("run directory %s holds another run: %v; choose another --out", r.dir, err)
		}
		r.resuming = true
	} else {
		b, err := marshalJSON(info)
		if err != nil {
			return err
		}
		if err := createDirWith(r.dir, rundir.ConfigFile, b); err != nil {
			return err
		}
	}
	lock, err := lockDir(r.dir)
	if err != nil {
		return err
	}
	r.lock = lock
	if err := removeTempFiles(r.dir); err != nil {
		return err
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
	r.out = &outputs{dir: r.dir, files: map[string][]byte{}}
	env := &method.Env{Model: r.m, Seed: cfg.Seed, NumTasks: len(cfg.Tasks), PromptLen: cfg.PromptLen, Store: dirStore{r.out}, Scratch: scratch, Logf: r.rep.Logf}
	r.meth, err = newMethod(cfg, env)
	return err
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
	if r.logs != nil {
		r.logs.Close()
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
	if r.resuming {
		var err error
		if ck, err = loadCheckpoint(r.dir); err != nil {
			return nil, err
		}
		if ck == nil {
			if err := r.checkNoProgress(); err != nil {
				return nil, err
			}
		}
	}
	first := 0
	r.res = rundir.NewResults(r.cfg.Method, r.cfg.Tasks)
	r.res.Multitask = r.cfg.Multitask
	r.setMetrics()
	stages := r.stages()
	files := map[string][]byte{}
	if ck != nil {
		if err := ck.checkAgainst(filepath.Join(r.dir, rundir.CheckpointFile), r.hash, &r.cfg, len(stages), r.stepsPerStage); err != nil {
			return nil, err
		}
		r.res = ck.Results
		r.timing = ck.Results.Timing
		r.metricsLen = ck.MetricsLen
		first = ck.Task
		files = ck.files
	}
	// Every output the checkpoint vouches for is checked, and rewritten
	// from its copy when missing or damaged.
	restored, err := r.out.restore(files)
	if err != nil {
		return nil, err
	}
	for _, rel := range restored {
		r.rep.Logf("%s was missing or damaged: restored it from the checkpoint", rel)
	}
	if first == len(stages) {
		r.res.AlreadyComplete = len(restored) == 0
		return r.res, nil
	}
	if ck == nil {
		// The first checkpoint, before any other output: from here on a
		// directory with outputs but no checkpoint has lost it.
		if err := r.save(&checkpoint{Task: 0}, false); err != nil {
			return nil, err
		}
	}
	if ck != nil {
		if err := r.meth.SetState(ck.method); err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		r.rep.Logf("resuming %s at task %d/%d (%s), epoch %d, step %d", r.dir, ck.Task+1, len(stages), stages[ck.Task].task.Name, ck.Epoch+1, ck.Step)
	}
	if err := r.openLogs(ck); err != nil {
		return nil, err
	}
	for t := first; t < len(stages); t++ {
		var at *checkpoint
		if ck != nil && ck.Task == t {
			at = ck
		}
		if err := r.runStage(ctx, stages[t], at); err != nil {
			return nil, err
		}
	}
	return r.res, nil
}

// appendMetrics appends one JSON line to metrics.jsonl.
func (r *runner) appendMetrics(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := r.out.append(rundir.MetricsFile, append(b, '\n')); err != nil {
		return err
	}
	r.metricsLen = int64(len(r.out.files[rundir.MetricsFile]))
	return nil
}

// writeResults writes results.json with the timing so far.
func (r *runner) writeResults() error {
	if err := finishStageSafe(r.res, r.base); err != nil {
		return err
	}
	r.res.Timing.TotalSeconds = r.timing.TotalSeconds + time.Since(r.start).Seconds()
	b, err := marshalJSON(r.res)
	if err != nil {
		return fmt.Errorf("%s: %w", rundir.ResultsFile, err)
	}
	return r.out.write(rundir.ResultsFile, b)
}

// finishStageSafe derives the summary when at least one stage is done.
func finishStageSafe(res *rundir.Results, base []float64) error {
	if res.StagesDone == 0 {
		res.Complete = false
		return nil
	}
	return res.FinishStage(base)
}

// checkNoProgress refuses to start a resumed run afresh when its directory
// shows progress but has no checkpoint: the checkpoint was lost, and
// starting over would silently replace what the directory holds.
func (r *runner) checkNoProgress() error {
	var found []string
	if st, err := os.Stat(filepath.Join(r.dir, rundir.MetricsFile)); err == nil && st.Size() > 0 {
		found = append(found, rundir.MetricsFile)
	}
	if _, err := os.Stat(filepath.Join(r.dir, rundir.ResultsFile)); err == nil {
		found = append(found, rundir.ResultsFile)
	}
	if entries, err := os.ReadDir(filepath.Join(r.dir, rundir.PromptsDir)); err == nil && len(entries) > 0 {
		found = append(found, rundir.PromptsDir+"/")
	}
	if len(found) > 0 {
		return fmt.Errorf("%s has no %s but holds %s: the checkpoint is lost and the run cannot be resumed exactly; start it again in a new directory",
			r.dir, rundir.CheckpointFile, strings.Join(found, ", "))
	}
	return nil
}
