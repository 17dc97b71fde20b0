package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/jsonfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// PretrainConfig says what Pretrain trains. A pretraining folder records
// it in pretrain.json, from which a resumed pretraining takes it.
type PretrainConfig struct {
	// Arch is the architecture; its weights are drawn fresh (HF's
	// initialization) from Seed. pretrain.json holds it as an HF
	// config.json under "arch".
	Arch t5.Config `json:"-"`
	// Tokenizer is the folder of the tokenizer, copied into the model.
	Tokenizer string `json:"tokenizer"`
	// Data is the root of the tasks; Tasks their names (every custom task
	// folder under Data when empty).
	Data  string   `json:"data"`
	Tasks []string `json:"tasks"`
	// Steps is the number of training steps, on batches of BatchSize
	// examples drawn from every task at once.
	Steps       int     `json:"steps"`
	BatchSize   int     `json:"batch_size"`
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	MaxInputLen int     `json:"max_input_len"`
	Seed        uint64  `json:"seed"`
	// KVal and KTest are the examples per class of each task scored at the
	// end (validation and test).
	KVal  int `json:"k_val"`
	KTest int `json:"k_test"`
}

// Files and folders of a pretraining folder.
const (
	PretrainFile = "pretrain.json" // the PretrainConfig
	pretrainInit = "init"          // the initial weights, as an HF folder
	pretrainRun  = "run"           // the training's run directory
)

// pretrainRecord is pretrain.json.
type pretrainRecord struct {
	PretrainConfig
	Arch json.RawMessage `json:"arch"`
}

func (pc PretrainConfig) marshal() ([]byte, error) {
	arch, err := pc.Arch.HFJSON()
	if err != nil {
		return nil, err
	}
	return marshalJSON(pretrainRecord{PretrainConfig: pc, Arch: arch})
}

// ReadPretrain reads the settings of the pretraining in folder out.
func ReadPretrain(out string) (PretrainConfig, error) {
	path := filepath.Join(out, PretrainFile)
	var rec pretrainRecord
	err := jsonfile.Read(path, 1<<20, "a pretrain.json", &rec)
	if errors.Is(err, os.ErrNotExist) {
		return PretrainConfig{}, fmt.Errorf("%s is not a pretraining folder (no %s)", out, PretrainFile)
	}
	if err != nil {
		return PretrainConfig{}, err
	}
	pc := rec.PretrainConfig
	if pc.Arch, err = t5.ParseConfig(path+": arch", rec.Arch); err != nil {
		return PretrainConfig{}, err
	}
	return pc, nil
}

// PretrainDifference names the first setting in which a and b differ ("":
// none), for a resumed pretraining given other flags.
func PretrainDifference(a, b PretrainConfig) string {
	ma, mb := pretrainMap(a), pretrainMap(b)
	if d := firstDifference(ma, mb, ""); d != "" {
		return strings.Replace(d, "in the run directory", "in the pretraining folder", 1)
	}
	return ""
}

func pretrainMap(pc PretrainConfig) map[string]any {
	b, err := pc.marshal()
	if err != nil {
		return nil
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// Pretrain trains every weight of a freshly initialized T5 on the tasks
// at once (the runner's finetune method with --multitask: recorded steps,
// checkpoints every epoch, resume) and writes an ordinary HF model folder
// (config.json, model.safetensors, tokenizer files) into out. A folder
// that holds the same pretraining is resumed (a finished one is left as
// it is); with resume, out must hold a pretraining and pc is ignored: its
// settings come from the folder. It returns the run's results: every
// task's scores after training.
func Pretrain(ctx context.Context, pc PretrainConfig, out string, resume bool, opt Options) (*rundir.Results, error) {
	if len(pc.Tasks) == 0 && !resume && pc.Data != "" {
		names, err := customTasks(pc.Data)
		if err != nil {
			return nil, err
		}
		pc.Tasks = names
	}
	stored, err := ReadPretrain(out)
	switch {
	case err == nil && resume:
		pc = stored
	case err == nil:
		if d := PretrainDifference(stored, pc); d != "" {
			return nil, fmt.Errorf("pretraining folder %s holds another pretraining: %s; choose another --out", out, d)
		}
		pc = stored
	case resume:
		return nil, err
	default:
		kind, kerr := inspectDir(out)
		if kerr != nil {
			return nil, kerr
		}
		if kind != dirNew {
			return nil, fmt.Errorf("%s holds files but no %s: it is not a pretraining folder; choose another --out", out, PretrainFile)
		}
	}
	initDir := filepath.Join(out, pretrainInit)
	cfg, err := pretrainRunConfig(pc, initDir)
	if err != nil {
		return nil, err
	}
	if stored.Steps == 0 { // a new pretraining: refuse bad settings before creating anything
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		if err := pc.Arch.Validate(); err != nil {
			return nil, err
		}
		b, err := pc.marshal()
		if err != nil {
			return nil, err
		}
		if err := createDirWith(out, PretrainFile, b); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(initDir, "model.safetensors")); err != nil {
		// Not written yet, or interrupted while writing: the weights are
		// a function of the architecture and the seed.
		w, err := t5.InitWeights(pc.Arch, pc.Seed)
		if err != nil {
			return nil, err
		}
		if err := t5.WriteModel(initDir, pc.Arch, w, pc.Tokenizer); err != nil {
			return nil, err
		}
	}
	opt.Dir, opt.Resume = filepath.Join(out, pretrainRun), false
	if opt.ContinueCommand == "" {
		opt.ContinueCommand = "shlpt-vk pretrain --resume " + out
	}
	res, err := Run(ctx, cfg, opt)
	if err != nil {
		return nil, err
	}
	if res.AlreadyComplete {
		if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err == nil {
			return res, nil
		}
	}
	return res, exportWeights(opt.Dir, out, pc.Arch, cfg.Tokenizer)
}

// pretrainRunConfig is the run that pretrains: finetune with every task at
// once, stopped by steps and validated once, where it stops.
func pretrainRunConfig(pc PretrainConfig, initDir string) (rundir.Config, error) {
	if pc.Steps < 1 {
		return rundir.Config{}, fmt.Errorf("pretrain: steps %d must be at least 1", pc.Steps)
	}
	cfg, err := rundir.DefaultConfig("")
	if err != nil {
		return cfg, err
	}
	if err := cfg.UseMethod("finetune"); err != nil {
		return cfg, err
	}
	cfg.Multitask = true
	cfg.Model, cfg.Tokenizer, cfg.Data, cfg.Tasks, cfg.Seed = initDir, pc.Tokenizer, pc.Data, pc.Tasks, pc.Seed
	cfg.PromptLen, cfg.BatchSize, cfg.LR, cfg.WeightDecay = 0, pc.BatchSize, pc.LR, pc.WeightDecay
	cfg.MaxInputLen, cfg.Decode = pc.MaxInputLen, "greedy"
	cfg.Epochs, cfg.MaxSteps, cfg.EvalFrom, cfg.Patience = 1<<30, pc.Steps, 1<<30, 1
	cfg.KTrain, cfg.KVal, cfg.KTest = -1, pc.KVal, pc.KTest
	return cfg, absPathsOf(&cfg.Model, &cfg.Tokenizer, &cfg.Data)
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
