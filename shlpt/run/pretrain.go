package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// PretrainConfig says what Pretrain trains.
type PretrainConfig struct {
	// Arch is the architecture; its weights are drawn fresh (HF's
	// initialization) from Seed.
	Arch t5.Config
	// Tokenizer is the folder of the tokenizer, copied into the model.
	Tokenizer string
	// Data is the root of the tasks; Tasks their names (every custom task
	// folder under Data when empty).
	Data  string
	Tasks []string
	// Steps is the number of training steps, on batches of BatchSize
	// examples drawn from every task at once.
	Steps, BatchSize int
	LR, WeightDecay  float64
	MaxInputLen      int
	Seed             uint64
	// KVal and KTest are the examples per class of each task scored at the
	// end (validation and test).
	KVal, KTest int
}

// Folders under a pretraining output.
const (
	pretrainInit = "init" // the initial weights, as an HF folder
	pretrainRun  = "run"  // the training's run directory
)

// Pretrain trains every weight of a freshly initialized T5 on the tasks
// at once (the runner's finetune method with --multitask: recorded steps,
// checkpoints every epoch, resume) and writes an ordinary HF model folder
// (config.json, model.safetensors, tokenizer files) into out; resume
// continues an interrupted pretraining there. It returns the run's results:
// every task's scores after training.
func Pretrain(ctx context.Context, pc PretrainConfig, out string, resume bool, opt Options) (*rundir.Results, error) {
	if pc.Steps < 1 {
		return nil, fmt.Errorf("pretrain: steps %d must be at least 1", pc.Steps)
	}
	if len(pc.Tasks) == 0 {
		names, err := customTasks(pc.Data)
		if err != nil {
			return nil, err
		}
		pc.Tasks = names
	}
	initDir := filepath.Join(out, pretrainInit)
	cfg, err := rundir.DefaultConfig("")
	if err != nil {
		return nil, err
	}
	if err := cfg.UseMethod("finetune"); err != nil {
		return nil, err
	}
	cfg.Multitask = true
	cfg.Model, cfg.Tokenizer, cfg.Data, cfg.Tasks, cfg.Seed = initDir, pc.Tokenizer, pc.Data, pc.Tasks, pc.Seed
	cfg.PromptLen, cfg.BatchSize, cfg.LR, cfg.WeightDecay = 0, pc.BatchSize, pc.LR, pc.WeightDecay
	cfg.MaxInputLen, cfg.Decode = pc.MaxInputLen, "greedy"
	// Steps, not epochs, end the training; it is validated once, where it
	// stops.
	cfg.Epochs, cfg.MaxSteps, cfg.EvalFrom, cfg.Patience = 1<<30, pc.Steps, 1<<30, 1
	cfg.KTrain, cfg.KVal, cfg.KTest = -1, pc.KVal, pc.KTest
	if err := absPathsOf(&cfg.Model, &cfg.Tokenizer, &cfg.Data); err != nil {
		return nil, err
	}
	if !resume {
		empty, err := emptyOrAbsent(out)
		if err != nil {
			return nil, err
		}
		if !empty {
			return nil, fmt.Errorf("pretraining folder %s is not empty: resume it with --resume, or choose another --out", out)
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		w, err := t5.InitWeights(pc.Arch, pc.Seed)
		if err != nil {
			return nil, err
		}
		if err := t5.WriteModel(initDir, pc.Arch, w, pc.Tokenizer); err != nil {
			return nil, err
		}
	} else if info, err := rundir.ReadInfo(filepath.Join(out, pretrainRun)); err == nil {
		cfg = info.Settings // the settings the pretraining began with
	}
	opt.Dir, opt.Resume = filepath.Join(out, pretrainRun), resume
	if _, err := os.Stat(filepath.Join(opt.Dir, rundir.ConfigFile)); resume && errors.Is(err, os.ErrNotExist) {
		opt.Resume = false // stopped before the run began
	}
	res, err := Run(ctx, cfg, opt)
	if err != nil {
		return nil, err
	}
	arch, err := t5.LoadConfig(initDir)
	if err != nil {
		return nil, err
	}
	return res, exportWeights(opt.Dir, out, arch, cfg.Tokenizer)
}

// exportWeights writes the weights of a finished full-weight run (its
// final checkpoint's state) as an HF model folder.
func exportWeights(runDir, out string, arch t5.Config, tokenizer string) error {
	ck, err := loadCheckpoint(runDir)
	if err != nil {
		return err
	}
	if ck == nil || ck.Started {
		return fmt.Errorf("%s: the run has not finished", runDir)
	}
	return t5.WriteModel(out, arch, method.StateWeights(ck.method), tokenizer)
}

// customTasks lists the custom task folders under root.
func customTasks(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if t, _, err := tasks.LoadCustom(filepath.Join(root, e.Name())); err == nil {
			names = append(names, t.Name)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no custom tasks (folders with %s)", root, tasks.TaskFile)
	}
	sort.Strings(names)
	return names, nil
}

// absPathsOf makes paths absolute.
func absPathsOf(paths ...*string) error {
	for _, p := range paths {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}
