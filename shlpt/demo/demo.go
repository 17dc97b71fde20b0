// Package demo is `shlpt-vk demo`: from nothing, on any Vulkan device, it
// writes the synthetic task family (shlpt/synth), pretrains a small T5 on
// its pretraining tasks (cached), and runs the lifelong sequence with
// per-task prompts, continual initialization and SHLPT, so that the
// method's transfer can be seen against relations known by construction.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/synth"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Methods are the lifelong methods the demo compares, in order.
var Methods = []string{"per-task", "continual-init", "shlpt"}

// Settings are the demo's sizes and hyperparameters.
type Settings struct {
	Arch          t5.Config   `json:"-"`
	ArchName      string      `json:"arch"`
	PretrainSizes synth.Sizes `json:"pretrain_sizes"`
	LifelongSizes synth.Sizes `json:"lifelong_sizes"`
	PretrainSteps int         `json:"pretrain_steps"`
	PretrainBatch int         `json:"pretrain_batch"`
	PretrainLR    float64     `json:"pretrain_lr"`
	// The lifelong runs: examples per class, epochs, prompt length, and
	// SHLPT's similarity temperature and threshold, scaled to the small
	// model (the paper's τ_sim of 2·10⁴ suits T5-large's embeddings).
	KTrain, KVal, KTest int     `json:"-"`
	Epochs              int     `json:"epochs"`
	PromptLen           int     `json:"prompt_len"`
	TauSim              float64 `json:"tau_sim"`
	Delta               float64 `json:"delta"`
	DataSeed            uint64  `json:"data_seed"`
}

// familyVersion changes whenever the family or its generator does, so
// that a cached model of another version is not reused.
const familyVersion = 3

// DefaultSettings are the demo's; quick ones are tiny, for tests.
func DefaultSettings(quick bool) Settings {
	arch := t5.Config{
		DModel: 64, DKV: 16, DFF: 128, NumLayers: 2, NumDecoderLayers: 2, NumHeads: 4, VocabSize: synth.ModelVocab,
		RelativeAttentionNumBuckets: 32, RelativeAttentionMaxDistance: 128, LayerNormEpsilon: 1e-6,
		FeedForwardProj: "relu", DenseActFn: "relu", TieWordEmbeddings: true, EOSTokenID: 1,
	}
	s := Settings{Arch: arch, ArchName: "d64-ff128-2+2L-4H", PretrainSizes: synth.Sizes{Train: 300, Valid: 10, Test: 50},
		LifelongSizes: synth.Sizes{Train: 100, Valid: 50, Test: 200}, PretrainSteps: 600, PretrainBatch: 32, PretrainLR: 1e-3,
		KTrain: 32, KVal: 16, KTest: 200, Epochs: 20, PromptLen: 10, TauSim: 2000, Delta: 0.1, DataSeed: 1}
	if quick {
		s.Arch.DModel, s.Arch.DKV, s.Arch.DFF, s.Arch.NumLayers, s.Arch.NumDecoderLayers, s.Arch.NumHeads = 16, 8, 32, 1, 1, 2
		s.ArchName = "d16-ff32-1+1L-2H"
		s.PretrainSizes, s.LifelongSizes = synth.Sizes{Train: 20, Valid: 4, Test: 4}, synth.Sizes{Train: 10, Valid: 4, Test: 10}
		s.PretrainSteps, s.KTrain, s.KVal, s.KTest, s.Epochs, s.PromptLen = 20, 4, 2, 5, 2, 4
	}
	return s
}

// Validate checks the lifelong runs' settings as train checks its flags:
// each error names the demo's flag.
func (s Settings) Validate() error {
	switch {
	case s.Epochs < 1:
		return fmt.Errorf("--epochs %d: must be at least 1", s.Epochs)
	case s.PromptLen < 1:
		return fmt.Errorf("--prompt-len %d: must be at least 1", s.PromptLen)
	case s.KTrain < 1:
		return fmt.Errorf("--k-train %d: must be at least 1", s.KTrain)
	case !(s.TauSim > 0) || s.TauSim > math.MaxFloat32:
		return fmt.Errorf("--tau-sim %v: must be a positive finite number", s.TauSim)
	case !(s.Delta >= 0) || s.Delta > math.MaxFloat32:
		return fmt.Errorf("--delta %v: must be a finite number, not negative", s.Delta)
	}
	return nil
}

// modelKey identifies the data and the pretrained model of settings in
// the cache; runsKey the lifelong runs' settings.
func (s Settings) modelKey() string {
	return shortHash(struct {
		V        int
		Arch     t5.Config
		Pre      synth.Sizes
		Life     synth.Sizes
		Steps    int
		Batch    int
		LR       float64
		DataSeed uint64
	}{familyVersion, s.Arch, s.PretrainSizes, s.LifelongSizes, s.PretrainSteps, s.PretrainBatch, s.PretrainLR, s.DataSeed})
}

// runsVersion changes whenever run directories of an earlier version
// cannot be continued, so that cached runs of another version are not
// resumed.
const runsVersion = 2

func (s Settings) runsKey() string {
	return shortHash([]any{runsVersion, s.KTrain, s.KVal, s.KTest, s.Epochs, s.PromptLen, s.TauSim, s.Delta})
}

func shortHash(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}

// Options are what Run needs.
type Options struct {
	// Cache is the folder of the data, the pretrained model and the runs
	// (default: the user's cache folder/shlpt-vk/demo).
	Cache    string
	Quick    bool
	Seed     uint64 // of the lifelong runs
	Engine   *ag.Engine
	Reporter run.Reporter
	// Settings override DefaultSettings(Quick) when not nil.
	Settings *Settings
}

// MethodResult is one method's lifelong run.
type MethodResult struct {
	Average float64      `json:"average"`
	FWT     *float64     `json:"fwt"`
	Matrix  [][]*float64 `json:"matrix"` // test accuracy, percent
	RunDir  string       `json:"run_dir"`
}

// Result is what the demo found.
type Result struct {
	Tasks []string `json:"tasks"`
	// Chance is each task's accuracy by guessing, in percent.
	Chance  map[string]float64      `json:"chance"`
	Methods map[string]MethodResult `json:"methods"`
	// Similarity compares, for an earlier task j (row) and a task t
	// (column), their designed relation (1 similar, −1 dissimilar, 0
	// unrelated; null unless j < t) with SHLPT's task-averaged mixture
	// weight ᾱ of j in t's stored prompt.
	Similarity struct {
		Designed [][]*int     `json:"designed"`
		Alpha    [][]*float64 `json:"alpha"`
	} `json:"similarity"`
	Pretrain struct {
		Reused  bool    `json:"reused"`
		Average float64 `json:"average"` // test accuracy over the pretraining tasks
		Seconds float64 `json:"seconds"`
	} `json:"pretrain"`
	Settings Settings `json:"settings"`
	Model    string   `json:"model"`
	Seconds  float64  `json:"seconds"`
}

// DefaultCache is the demo's folder in the user's cache.
func DefaultCache() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "shlpt-vk", "demo"), nil
}

// Run runs the demo.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	s := DefaultSettings(o.Quick)
	if o.Settings != nil {
		s = *o.Settings
	}
	rep := o.Reporter
	if rep == nil {
		rep = run.Quiet
	}
	if o.Cache == "" {
		var err error
		if o.Cache, err = DefaultCache(); err != nil {
			return nil, err
		}
	}
	root := filepath.Join(o.Cache, s.modelKey())
	fam := synth.DemoFamily()
	res := &Result{Tasks: synth.Names(fam.Lifelong), Chance: map[string]float64{}, Methods: map[string]MethodResult{}, Settings: s}
	for _, t := range fam.Lifelong {
		res.Chance[t.Name] = 100 * synth.Chance(t)
	}

	tokDir := filepath.Join(root, "tokenizer")
	preData, lifeData := filepath.Join(root, "data", "pretrain"), filepath.Join(root, "data", "lifelong")
	if err := writeData(root, tokDir, preData, lifeData, fam, s); err != nil {
		return nil, err
	}

	modelDir := filepath.Join(root, "model")
	res.Model = modelDir
	t0 := time.Now()
	pre, reused, err := pretrain(ctx, modelDir, tokDir, preData, s, o, rep)
	if err != nil {
		return nil, err
	}
	res.Pretrain.Reused, res.Pretrain.Seconds = reused, time.Since(t0).Seconds()
	if pre != nil {
		res.Pretrain.Average = pre.Average["test"]
	}

	runs := filepath.Join(root, "runs", fmt.Sprintf("%s-seed-%d", s.runsKey(), o.Seed))
	for _, m := range Methods {
		cfg, err := rundir.DefaultConfig("")
		if err != nil {
			return nil, err
		}
		if err := cfg.UseMethod(m); err != nil {
			return nil, err
		}
		cfg.Model, cfg.Data, cfg.Tasks, cfg.Seed = modelDir, lifeData, res.Tasks, o.Seed
		cfg.KTrain, cfg.KVal, cfg.KTest, cfg.Epochs, cfg.Patience, cfg.EvalFrom = s.KTrain, s.KVal, s.KTest, s.Epochs, s.Epochs, 0
		cfg.PromptLen, cfg.Decode, cfg.MaxInputLen = s.PromptLen, "rank", 32
		if sh := rundir.MethodSettings[method.SHLPTConfig](&cfg); sh != nil {
			sh.TauSim, sh.Delta = s.TauSim, s.Delta
		}
		if m != "per-task" {
			cfg.PerTaskScores = filepath.Join(runs, "per-task", rundir.ResultsFile)
		}
		dir := filepath.Join(runs, m)
		_, statErr := os.Stat(filepath.Join(dir, rundir.ConfigFile))
		rep.Logf("demo: %s over %d tasks", m, len(res.Tasks))
		r, err := run.Run(ctx, cfg, run.Options{Dir: dir, Resume: statErr == nil, Engine: o.Engine, Reporter: rep, Version: "demo"})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		mr := MethodResult{Average: r.Average["test"], Matrix: r.Matrix.Test, RunDir: dir}
		if v, ok := r.FWT["test"]; ok {
			mr.FWT = &v
		}
		res.Methods[m] = mr
	}
	if err := res.similarity(fam, filepath.Join(runs, "shlpt")); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// writeData writes the tokenizer and the family's tasks unless the cache
// holds them already.
func writeData(root, tokDir, preData, lifeData string, fam synth.Family, s Settings) error {
	done := filepath.Join(root, "data", ".complete")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	if err := synth.WriteTokenizer(tokDir); err != nil {
		return err
	}
	for _, t := range fam.Pretrain {
		if err := synth.WriteTask(preData, t, s.DataSeed, s.PretrainSizes); err != nil {
			return err
		}
	}
	for _, t := range fam.Lifelong {
		if err := synth.WriteTask(lifeData, t, s.DataSeed, s.LifelongSizes); err != nil {
			return err
		}
	}
	return os.WriteFile(done, nil, 0o644)
}

// pretrain returns the pretrained model in modelDir: reused when complete,
// resumed when interrupted, trained otherwise.
func pretrain(ctx context.Context, modelDir, tokDir, data string, s Settings, o Options, rep run.Reporter) (*rundir.Results, bool, error) {
	if _, err := os.Stat(filepath.Join(modelDir, "model.safetensors")); err == nil {
		r, err := rundir.ReadResults(filepath.Join(modelDir, "run"))
		return r, true, err
	}
	_, err := os.Stat(filepath.Join(modelDir, "run"))
	resume := err == nil
	rep.Logf("demo: pretraining a %s T5 for %d steps on %d tasks", s.ArchName, s.PretrainSteps, len(synth.DemoFamily().Pretrain))
	pc := run.PretrainConfig{Arch: s.Arch, Tokenizer: tokDir, Data: data, Steps: s.PretrainSteps, BatchSize: s.PretrainBatch,
		LR: s.PretrainLR, WeightDecay: 0.01, MaxInputLen: 32, Seed: s.DataSeed, KVal: s.PretrainSizes.Valid, KTest: s.PretrainSizes.Test}
	r, err := run.Pretrain(ctx, pc, modelDir, resume, run.Options{Engine: o.Engine, Reporter: rep, Version: "demo"})
	return r, false, err
}

// similarity fills the designed relations and SHLPT's ᾱ.
func (res *Result) similarity(fam synth.Family, shlptDir string) error {
	b, err := limitio.ReadFile(filepath.Join(shlptDir, "alpha.json"), 1<<20, "an alpha.json")
	if err != nil {
		return err
	}
	var a struct{ Alpha [][]float64 }
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	T := len(fam.Lifelong)
	if len(a.Alpha) != T {
		return errors.New("demo: SHLPT's alpha.json does not cover every task")
	}
	res.Similarity.Designed = make([][]*int, T)
	res.Similarity.Alpha = make([][]*float64, T)
	for j := 0; j < T; j++ {
		res.Similarity.Designed[j] = make([]*int, T)
		res.Similarity.Alpha[j] = make([]*float64, T)
	}
	for t := 0; t < T; t++ {
		for j := 0; j < t; j++ {
			r := synth.Relation(fam.Lifelong[j], fam.Lifelong[t])
			res.Similarity.Designed[j][t] = &r
			if j < len(a.Alpha[t]) {
				v := a.Alpha[t][j]
				res.Similarity.Alpha[j][t] = &v
			}
		}
	}
	return nil
}
