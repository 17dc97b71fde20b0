package method

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// SHLPTConfig holds SHLPT's settings (paper Eq. 3–12; reference §3).
type SHLPTConfig struct {
	PromptLen int     `json:"-"`       // the run's --prompt-len
	Delta     float64 `json:"delta"`   // threshold δ of the partition
	TauSim    float64 `json:"tau_sim"` // softmax temperature of the estimator
	// AllDissimilar treats every earlier task as dissimilar and mixes
	// nothing (the Negative Transfer benchmark's setting).
	AllDissimilar bool    `json:"all_dissimilar"`
	LambdaHSC     float64 `json:"lambda_hsc"`
	LambdaASC     float64 `json:"lambda_asc"`
	TauHSC        float64 `json:"tau_hsc"`
	TauASC        float64 `json:"tau_asc"`
	EstimatorRank int     `json:"estimator_rank"`
	// Ablations of the paper's Table 4 (docs/shlpt.md, "Ablations"):
	// NoASE replaces the estimator by no similarity judgement at all —
	// every earlier task is similar with weight 1/P, none is a negative;
	// NoSTT lets nothing of the similar tasks reach the stored prompt
	// (training still mixes them, so the estimator learns and partitions);
	// NoASC and NoHSC drop a contrastive loss.
	NoASE bool `json:"no_ase"`
	NoASC bool `json:"no_asc"`
	NoHSC bool `json:"no_hsc"`
	NoSTT bool `json:"no_stt"`
	// Quirks lists the places where the authors' code is reproduced
	// instead of shlpt-vk's default (the Quirk* names; "all" for every
	// one; docs/shlpt.md).
	Quirks []string `json:"quirks"`
}

// The authors' code's behaviours that --quirks reproduces, one name each
// (docs/shlpt.md, "Differences from the authors' code").
const (
	// QuirkBatchPartition: the dissimilar set of a batch is the prompts
	// whose mean weight over the batch is below δ, the same for every row.
	QuirkBatchPartition = "batch-partition"
	// QuirkPadMaxPool: inputs are padded to --max-input-len and x̂'s
	// max-pool runs over the padding too.
	QuirkPadMaxPool = "pad-maxpool"
	// QuirkHSCPadding: HSC's mean runs over every target position,
	// padding included.
	QuirkHSCPadding = "hsc-padding"
	// QuirkASCSignMask: ASC's mask is 1 − sign(s0) (2 where a gated
	// activation is negative).
	QuirkASCSignMask = "asc-sign-mask"
	// QuirkLiveValidation: validation mixes the prompt per instance with
	// the current estimator instead of using the prompt that would be
	// stored.
	QuirkLiveValidation = "live-validation"
	// QuirkSharedOptimizer: one AdamW state for the whole sequence.
	QuirkSharedOptimizer = "shared-optimizer"
	// QuirksAll names every quirk.
	QuirksAll = "all"
)

// QuirkNames are the quirks in their canonical order.
var QuirkNames = []string{QuirkBatchPartition, QuirkPadMaxPool, QuirkHSCPadding, QuirkASCSignMask, QuirkLiveValidation, QuirkSharedOptimizer}

// ParseQuirks returns the quirks a list names ("all" for every one), in
// canonical order without repeats; an unknown name is an error listing
// the known ones.
func ParseQuirks(names []string) ([]string, error) {
	on := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case n == QuirksAll:
			for _, q := range QuirkNames {
				on[q] = true
			}
		case slices.Contains(QuirkNames, n):
			on[n] = true
		default:
			return nil, fmt.Errorf("unknown quirk %q (expected %s or %s)", n, strings.Join(QuirkNames, ", "), QuirksAll)
		}
	}
	out := []string{}
	for _, q := range QuirkNames {
		if on[q] {
			out = append(out, q)
		}
	}
	return out, nil
}

// PadToMax says whether every batch is padded to the run's input length
// (the pad-maxpool quirk: the reference pads every input to max_seq_len
// and its max-pool sees the padding).
func (c SHLPTConfig) PadToMax() bool { return c.quirk(QuirkPadMaxPool) }

// quirk reports whether the named quirk is on.
func (c SHLPTConfig) quirk(name string) bool {
	return slices.Contains(c.Quirks, name) || slices.Contains(c.Quirks, QuirksAll)
}

// DefaultSHLPT is the reference's configuration (reference §0, §3).
func DefaultSHLPT() SHLPTConfig {
	return SHLPTConfig{PromptLen: 150, Delta: 0.06, TauSim: 2e4, LambdaHSC: 0.1, LambdaASC: 0.5,
		TauHSC: 1, TauASC: 1, EstimatorRank: 100, Quirks: []string{}}
}

// Validate checks the settings.
func (c SHLPTConfig) Validate() error {
	switch {
	case c.PromptLen < 1:
		return fmt.Errorf("shlpt: prompt length %d must be at least 1", c.PromptLen)
	case !(c.TauSim > 0) || !(c.TauHSC > 0) || !(c.TauASC > 0):
		return fmt.Errorf("shlpt: temperatures must be positive (tau-sim %v, tau-hsc %v, tau-asc %v)", c.TauSim, c.TauHSC, c.TauASC)
	case !(c.LambdaHSC >= 0) || !(c.LambdaASC >= 0):
		return fmt.Errorf("shlpt: loss weights must not be negative (lambda-hsc %v, lambda-asc %v)", c.LambdaHSC, c.LambdaASC)
	case c.EstimatorRank < 1:
		return fmt.Errorf("shlpt: estimator rank %d must be at least 1", c.EstimatorRank)
	case !(c.Delta >= 0):
		return fmt.Errorf("shlpt: delta %v must not be negative", c.Delta)
	}
	seen := map[string]bool{}
	for _, q := range c.Quirks {
		if _, err := ParseQuirks([]string{q}); err != nil || q == "" {
			return fmt.Errorf("shlpt: unknown quirk %q (expected %s or %s)", q, strings.Join(QuirkNames, ", "), QuirksAll)
		}
		if seen[q] {
			return fmt.Errorf("shlpt: quirk %q given twice", q)
		}
		seen[q] = true
	}
	return nil
}

// contrasts says whether an earlier task can be a contrastive negative:
// not under -ASE, which judges no task dissimilar.
func (c SHLPTConfig) contrasts() bool { return !c.NoASE }

// useHSC and useASC say whether a contrastive loss is computed.
func (c SHLPTConfig) useHSC() bool { return c.contrasts() && !c.NoHSC && c.LambdaHSC > 0 }
func (c SHLPTConfig) useASC() bool { return c.contrasts() && !c.NoASC && c.LambdaASC > 0 }

// trainMixes says whether the training prompt mixes earlier prompts into
// the new one: not when every earlier task is dissimilar, except under
// -ASE, where every one is similar.
func (c SHLPTConfig) trainMixes() bool { return !c.AllDissimilar || c.NoASE }

// storeMixes says whether the stored prompt (and the validation prompt
// that stands for it) mixes them: as training does, except under -STT.
func (c SHLPTConfig) storeMixes() bool { return c.trainMixes() && !c.NoSTT }

// usesEstimator says whether α comes from the estimator with P earlier
// prompts (it is a constant with one, and under -ASE or when every
// earlier task is dissimilar it is not needed).
func (c SHLPTConfig) usesEstimator(P int) bool { return P > 1 && !c.NoASE && !c.AllDissimilar }

func (c SHLPTConfig) partition() kernels.PartitionOpts {
	if c.NoASE {
		// Every earlier prompt is kept (weights 1/P > −1), none is a
		// negative, whatever δ and the all-dissimilar setting say.
		return kernels.PartitionOpts{Delta: -1}
	}
	return kernels.PartitionOpts{Delta: float32(c.Delta), AllDissimilar: c.AllDissimilar, BatchNegatives: c.quirk(QuirkBatchPartition)}
}

// shlptSpec registers SHLPT.
var shlptSpec = Define(Definition[SHLPTConfig]{
	Name:     "shlpt",
	Summary:  "the paper's method: a prompt mixed with the similar earlier tasks' stored prompts, contrasted with the dissimilar ones (HSC, ASC)",
	Defaults: Defaults{PromptLen: 150, LR: 0.3, WeightDecay: 1e-5},
	Export:   ExportStoredPrompt,
	Settings: DefaultSHLPT(),
	Flags: func(s *SHLPTConfig) []Flag {
		return []Flag{
			floatFlag("delta", "SHLPT: similarity threshold δ (default: the benchmark's, 0.06 or 1.5)", &s.Delta),
			floatFlag("tau-sim", "SHLPT: temperature of the similarity softmax", &s.TauSim),
			boolFlag("all-dissimilar", "SHLPT: treat every earlier task as dissimilar: nothing mixed, every stored prompt a contrastive negative (the Negative Transfer setting, default with --benchmark nt; Table 5's Add HSC/ASC)", &s.AllDissimilar),
			floatFlag("lambda-hsc", "SHLPT: weight of the hidden-state contrastive loss", &s.LambdaHSC),
			floatFlag("lambda-asc", "SHLPT: weight of the activation contrastive loss", &s.LambdaASC),
			floatFlag("tau-hsc", "SHLPT: temperature of HSC", &s.TauHSC),
			floatFlag("tau-asc", "SHLPT: temperature of ASC", &s.TauASC),
			intFlag("estimator-rank", "SHLPT: bottleneck of the similarity estimator", &s.EstimatorRank),
			boolFlag("no-ase", "SHLPT ablation -ASE: no similarity estimation: every earlier task similar with weight 1/P, none a negative", &s.NoASE),
			boolFlag("no-asc", "SHLPT ablation -ASC: no activation contrastive loss", &s.NoASC),
			boolFlag("no-hsc", "SHLPT ablation -HSC: no hidden-state contrastive loss", &s.NoHSC),
			boolFlag("no-stt", "SHLPT ablation -STT: nothing of the similar tasks reaches the stored prompt (training still mixes them, so the estimator learns and partitions)", &s.NoSTT),
			{Name: "quirks", Value: quirksValue{&s.Quirks},
				Usage: "SHLPT: reproduce the authors' code where shlpt-vk's default differs: a comma-separated list of " + strings.Join(QuirkNames, ", ") + ", or all (docs/shlpt.md)"},
		}
	},
	Validate: func(s *SHLPTConfig, r RunShape) error {
		return s.Validate()
	},
	New:      func(env *Env, s *SHLPTConfig) (Method, error) { return NewSHLPT(env, *s) },
	PadToMax: func(s *SHLPTConfig) bool { return s.PadToMax() },
})

// quirksValue is the --quirks flag: a comma-separated list of quirk names
// kept in canonical order ("all" expands to every one).
type quirksValue struct{ p *[]string }

func (q quirksValue) String() string { return strings.Join(*q.p, ",") }
func (q quirksValue) Type() string   { return "names" }
func (q quirksValue) Set(s string) error {
	list, err := ParseQuirks(strings.Split(s, ","))
	if err == nil {
		*q.p = list
	}
	return err
}

// SHLPT is the method of the paper: a pool of frozen stored prompts, the
// estimator that weighs them per input, the new task's prompt mixed with
// the similar ones, and the HSC and ASC losses against the dissimilar ones.
type SHLPT struct {
	env *Env
	cfg SHLPTConfig

	prompt *ag.Tensor // (Lp, d): P^t, trainable, re-initialized per task
	est    *Estimator // trainable, kept across tasks

	pool     [][]float32 // stored prompts (Lp·d each), one per finished task
	alphaBar [][]float64 // per finished task t ≥ 1: the task-averaged weights ᾱ over pool[0..t)

	task *Task
	// Device copies of the pool for the current task, made by BeginTask.
	poolT *ag.Tensor // (P, Lp, d)
	phat  *ag.Tensor // (P, d)
	negs  negativeSource
	// report makes steps compute every intermediate a case file checks
	// (shlptcheck), also where training would skip it.
	report bool
}

// NewSHLPT returns the method with an empty pool.
func NewSHLPT(env *Env, cfg SHLPTConfig) (*SHLPT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := env.Model
	e := m.Engine()
	d := m.Config.DModel
	est, err := NewEstimator(e, d, cfg.EstimatorRank, env.Seed)
	if err != nil {
		return nil, err
	}
	s := &SHLPT{env: env, cfg: cfg, est: est}
	s.prompt = e.Param("prompt", make([]float32, cfg.PromptLen*d), cfg.PromptLen, d)
	if err := e.Err(); err != nil {
		s.Release()
		return nil, err
	}
	return s, nil
}

// Name is "shlpt".
func (s *SHLPT) Name() string { return "shlpt" }

// Config returns the settings.
func (s *SHLPT) Config() SHLPTConfig { return s.cfg }

// PromptLen is the length of the prompt the encoder gets.
func (s *SHLPT) PromptLen() int { return s.cfg.PromptLen }

// Params are the prompt and the estimator's weights.
func (s *SHLPT) Params() []*ag.Tensor { return append([]*ag.Tensor{s.prompt}, s.est.Params()...) }

// FreshOptimizer: a new optimizer per task, except with the
// shared-optimizer quirk, where the reference's single AdamW carries its
// moments across tasks.
func (s *SHLPT) FreshOptimizer() bool { return !s.cfg.quirk(QuirkSharedOptimizer) }

// BeginTask re-initializes the prompt from embedding rows at random
// vocabulary ids, uploads the pool and precomputes the negatives.
func (s *SHLPT) BeginTask(t *Task) error {
	s.endTaskState()
	s.task = t
	m := s.env.Model
	if err := InitPromptFromVocab(m, s.prompt, Stream(s.env.Seed, "prompt-init", t.Index)); err != nil {
		return err
	}
	P := len(s.pool)
	if P == 0 {
		return nil
	}
	e := m.Engine()
	Lp, d := s.cfg.PromptLen, m.Config.DModel
	flat := make([]float32, 0, P*Lp*d)
	for _, p := range s.pool {
		flat = append(flat, p...)
	}
	s.poolT = e.FromFloat32(flat, P, Lp, d)
	func() {
		defer e.NoGrad()()
		s.phat = ag.MaxPool(s.poolT, nil)
	}()
	if err := e.Err(); err != nil {
		return err
	}
	if !s.cfg.useHSC() && !s.cfg.useASC() {
		return nil
	}
	negs, err := s.precomputeNegatives(t)
	if err != nil {
		return err
	}
	s.negs = negs
	return nil
}

// endTaskState frees what BeginTask made.
func (s *SHLPT) endTaskState() {
	for _, t := range []*ag.Tensor{s.poolT, s.phat} {
		t.Release()
	}
	s.poolT, s.phat = nil, nil
	if s.negs != nil {
		s.negs.Close()
		s.negs = nil
	}
}

// poolPrompt returns a view of pool prompt j (Lp, d) of the device pool.
func (s *SHLPT) poolPrompt(j int) *ag.Tensor {
	Lp, d := s.poolT.Dim(1), s.poolT.Dim(2)
	return s.poolT.View(j*Lp*d, Lp, d)
}

// alphaFor records the similarity weights α (B, P) of a batch: the
// estimator's (B, P), or a constant — 1 with one stored prompt (the
// reference uses no estimator then), 1/P under the -ASE ablation.
// xhat is the batch's max-pooled embeddings (B, d), nil when α is
// constant.
func (s *SHLPT) alphaFor(xhat *ag.Tensor, B int) *ag.Tensor {
	e := s.env.Model.Engine()
	P := len(s.pool)
	if P == 1 || s.cfg.NoASE {
		return e.Full(float32(1/float64(P)), B, P)
	}
	return s.est.Alpha(xhat, s.phat, s.cfg.TauSim)
}

// xhat records the max-pool of a batch's token embeddings (B, d) over its
// real tokens (realMask (B, L) 1/0), or over every position when realMask
// is nil (the pad-maxpool quirk: padding included, as the reference).
func (s *SHLPT) xhat(ids, realMask *ag.Tensor) *ag.Tensor {
	sc := ids.Engine().Scope()
	defer sc.End()
	return sc.Keep(ag.MaxPool(ag.Embedding(s.env.Model.Shared, ids), realMask))
}

// mixPrompts returns Σ_j w[b, j]·pool[j] + P^t for every row of w (B, P):
// (B, Lp, d).
func (s *SHLPT) mixPrompts(w *ag.Tensor) *ag.Tensor {
	sc := w.Engine().Scope()
	defer sc.End()
	P, Lp, d := s.poolT.Dim(0), s.poolT.Dim(1), s.poolT.Dim(2)
	mix := ag.MatMul(w, s.poolT.Reshape(P, Lp*d), false, false) // (B, Lp·d)
	sum := ag.AddRow(mix, s.prompt.Reshape(Lp*d))
	return sc.Keep(sum.Reshape(w.Dim(0), Lp, d))
}

// taskAlpha returns ᾱ, the mean over the task's training batches of the
// batch means of the kept, renormalized weights (reference §3.2), for the
// current estimator: what the stored prompt mixes. Zero when nothing is
// mixed.
func (s *SHLPT) taskAlpha() ([]float64, error) {
	P := len(s.pool)
	out := make([]float64, P)
	if P == 0 || !s.cfg.storeMixes() {
		return out, nil
	}
	m := s.env.Model
	e := m.Engine()
	defer e.NoGrad()()
	t := s.task
	batches := 0
	for lo := 0; lo < len(t.Train); lo += t.BatchSize {
		hi := min(lo+t.BatchSize, len(t.Train))
		rows := t.Train[lo:hi]
		inputs := make([][]int, len(rows))
		for i, r := range rows {
			inputs[i] = r.Input
		}
		v, err := s.batchMixture(inputs, t.InputLen)
		if err != nil {
			return nil, err
		}
		B := len(rows)
		for j := 0; j < P; j++ {
			sum := 0.0
			for r := 0; r < B; r++ {
				sum += float64(v[r*P+j])
			}
			out[j] += sum / float64(B)
		}
		batches++
	}
	for j := range out {
		// Rounded to float32, the precision it is applied and saved with,
		// so that a resumed run holds exactly the same weights.
		out[j] = float64(float32(out[j] / float64(batches)))
	}
	return out, nil
}

// batchMixture returns the kept, renormalized weights α̃ (B·P values) of
// a batch of inputs padded to L tokens.
func (s *SHLPT) batchMixture(inputs [][]int, L int) ([]float32, error) {
	m := s.env.Model
	e := m.Engine()
	sc := e.Scope()
	defer sc.End()
	b, err := m.NewBatch(inputs, nil, L, 1)
	if err != nil {
		return nil, err
	}
	defer b.Release()
	mixed, _ := ag.Partition(s.batchAlpha(b.InputIDs, inputs), s.cfg.partition())
	return mixed.Float32s()
}

// batchAlpha records α (B, P) of a batch: its inputs' ids (B, L) and token
// lists.
func (s *SHLPT) batchAlpha(ids *ag.Tensor, inputs [][]int) *ag.Tensor {
	var x *ag.Tensor
	if s.cfg.usesEstimator(len(s.pool)) {
		x = s.xhat(ids, s.realMask(inputs, ids.Dim(1)))
	}
	return s.alphaFor(x, len(inputs))
}

// realMask uploads the (B, L) mask of real tokens (1) and padding (0) of
// inputs padded to L, or returns nil with the pad-maxpool quirk (the
// max-pool then runs over padding too).
func (s *SHLPT) realMask(inputs [][]int, L int) *ag.Tensor {
	if s.cfg.quirk(QuirkPadMaxPool) {
		return nil
	}
	v := make([]float32, len(inputs)*L)
	for b, r := range inputs {
		for j := 0; j < len(r) && j < L; j++ {
			v[b*L+j] = 1
		}
	}
	return s.env.Model.Engine().FromFloat32(v, len(inputs), L)
}

// storedPrompt returns P^t + Σ_j w_j·pool[j] (Lp, d) for weights w (the
// prompt a task is stored and validated with).
func (s *SHLPT) storedPrompt(w []float64) *ag.Tensor {
	e := s.env.Model.Engine()
	sc := e.Scope()
	defer sc.End()
	if len(w) == 0 || !s.cfg.storeMixes() {
		return sc.Keep(s.prompt.Reshape(s.prompt.Shape()...))
	}
	mixed := s.mixPrompts(e.FromFloat32(toF32(w), 1, len(w)))
	return sc.Keep(mixed.Reshape(s.prompt.Shape()...))
}

// storedValues reads the stored prompt for weights w (see storedPrompt).
func (s *SHLPT) storedValues(w []float64) ([]float32, error) {
	e := s.env.Model.Engine()
	defer e.NoGrad()()
	sc := e.Scope()
	defer sc.End()
	return s.storedPrompt(w).Float32s()
}

// EvalPrompts: a test pass uses stored prompt i alone; validation of the
// current task uses the prompt it would be stored with now (ᾱ from the
// current estimator), or with the live-validation quirk the live
// per-instance mixture training uses.
func (s *SHLPT) EvalPrompts(p Purpose, i int) (Prompter, error) {
	e := s.env.Model.Engine()
	defer e.NoGrad()()
	if p == Test {
		if i < 0 || i >= len(s.pool) {
			return nil, fmt.Errorf("shlpt: no stored prompt for task %d (%d stored)", i, len(s.pool))
		}
		d := s.env.Model.Config.DModel
		return FixedPrompt{e.FromFloat32(s.pool[i], s.cfg.PromptLen, d)}, e.Err()
	}
	if s.task == nil || i != s.task.Index {
		return nil, fmt.Errorf("shlpt: validation of task %d, which is not being learned", i)
	}
	if len(s.pool) > 0 && s.cfg.trainMixes() && s.cfg.quirk(QuirkLiveValidation) {
		return liveMixture{s}, nil
	}
	w, err := s.taskAlpha()
	if err != nil {
		return nil, err
	}
	return FixedPrompt{s.storedPrompt(w)}, e.Err()
}

// liveMixture mixes the prompt per instance with the estimator's current
// weights, as the reference validates (the live-validation quirk).
type liveMixture struct{ s *SHLPT }

func (l liveMixture) Prompt(b *Batch) (*ag.Tensor, error) {
	s := l.s
	e := s.env.Model.Engine()
	defer e.NoGrad()()
	sc := e.Scope()
	defer sc.End()
	inputs := make([][]int, len(b.Examples))
	for r, ex := range b.Examples {
		inputs[r] = ex.Input
	}
	mixed, _ := ag.Partition(s.batchAlpha(b.Device.InputIDs, inputs), s.cfg.partition())
	return sc.Keep(s.mixPrompts(mixed)), e.Err()
}

func (l liveMixture) Release() {}

// EndTask stores the task's prompt, mixed with the task-averaged weights
// (reference §3.2: t = 0 stores P^0, t = 1 stores pool[0] + P^1, later
// tasks Σ_j ᾱ_j·pool[j] + P^t), and writes it, the estimator and the
// mixture weights into the run directory.
func (s *SHLPT) EndTask() (map[string]any, error) {
	t := s.task
	if t == nil {
		return nil, errors.New("shlpt: EndTask without BeginTask")
	}
	w, err := s.taskAlpha()
	if err != nil {
		return nil, err
	}
	stored, err := s.storedValues(w)
	if err != nil {
		return nil, err
	}
	s.pool = append(s.pool, stored)
	if len(w) > 0 {
		s.alphaBar = append(s.alphaBar, w)
	}
	s.endTaskState()
	s.task = nil
	if err := s.writeArtifacts(t); err != nil {
		return nil, err
	}
	details := map[string]any{"pool_size": len(s.pool) - 1}
	if len(w) > 0 {
		details["alpha"] = w
	}
	return details, nil
}

// writeArtifacts writes prompts/<task>.safetensors, estimator.safetensors
// and alpha.json.
func (s *SHLPT) writeArtifacts(t *Task) error {
	if s.env.Store == nil {
		return nil
	}
	i := len(s.pool) - 1
	d := s.env.Model.Config.DModel
	meta := map[string]string{"task": t.Name, "index": fmt.Sprint(t.Index), "method": s.Name()}
	if i > 0 {
		meta["alpha"] = fmt.Sprint(s.alphaBar[i-1])
	}
	if err := s.env.Store.WriteTensors("prompts/"+t.Name+".safetensors",
		[]HostTensor{{Name: "prompt", Shape: []int{s.cfg.PromptLen, d}, Data: s.pool[i]}}, meta); err != nil {
		return err
	}
	est, err := s.est.HostTensors()
	if err != nil {
		return err
	}
	if err := s.env.Store.WriteTensors("estimator.safetensors", est, map[string]string{"after_task": t.Name}); err != nil {
		return err
	}
	rows := make([][]float64, len(s.pool))
	rows[0] = []float64{}
	for k, a := range s.alphaBar {
		rows[k+1] = a
	}
	return s.env.Store.WriteJSON("alpha.json", map[string]any{
		"doc":   "alpha[t][j]: the task-averaged mixture weight of stored prompt j in task t's stored prompt",
		"alpha": rows,
	})
}

// State is the pool, the mixture weights and the estimator.
func (s *SHLPT) State() ([]HostTensor, error) {
	d := s.env.Model.Config.DModel
	var out []HostTensor
	for i, p := range s.pool {
		out = append(out, HostTensor{Name: fmt.Sprintf("pool.%d", i), Shape: []int{s.cfg.PromptLen, d}, Data: p})
	}
	for k, a := range s.alphaBar {
		out = append(out, HostTensor{Name: fmt.Sprintf("alpha.%d", k+1), Shape: []int{len(a)}, Data: toF32(a)})
	}
	est, err := s.est.HostTensors()
	if err != nil {
		return nil, err
	}
	return append(out, est...), nil
}

// SetState restores State's tensors.
func (s *SHLPT) SetState(ts []HostTensor) error {
	d := s.env.Model.Config.DModel
	if err := onlyNames(ts, func(name string) bool {
		var i int
		_, err1 := fmt.Sscanf(name, "pool.%d", &i)
		_, err2 := fmt.Sscanf(name, "alpha.%d", &i)
		return err1 == nil || err2 == nil || slices.Contains(estimatorNames[:], name)
	}); err != nil {
		return err
	}
	s.pool, s.alphaBar = nil, nil
	for i := 0; ; i++ {
		name := fmt.Sprintf("pool.%d", i)
		if !has(ts, name) {
			break
		}
		p, err := find(ts, name, s.cfg.PromptLen, d)
		if err != nil {
			return err
		}
		s.pool = append(s.pool, p)
		if i > 0 {
			a, err := find(ts, fmt.Sprintf("alpha.%d", i), i)
			if err != nil {
				return err
			}
			s.alphaBar = append(s.alphaBar, toF64(a))
		}
	}
	if want := max(0, 2*len(s.pool)-1) + len(estimatorNames); len(ts) != want {
		return fmt.Errorf("state holds %d tensors, not the %d of %d stored prompts, their mixture weights and the estimator",
			len(ts), want, len(s.pool))
	}
	return s.est.Load(ts)
}

// onlyNames returns an error for the first tensor whose name ok rejects.
func onlyNames(ts []HostTensor, ok func(string) bool) error {
	for _, t := range ts {
		if !ok(t.Name) {
			return fmt.Errorf("unexpected state tensor %q", t.Name)
		}
	}
	return nil
}

// Release frees the device memory.
func (s *SHLPT) Release() {
	s.endTaskState()
	s.prompt.Release()
	s.est.Release()
}

func has(ts []HostTensor, name string) bool {
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func toF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// removeQuietly deletes a scratch file, ignoring a file already gone.
func removeQuietly(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// TestsFrozen: every task is tested with its stored prompt(s) alone,
// frozen once the task ends.
func (*SHLPT) TestsFrozen() bool { return true }

// setPromptLen gives the settings the run's prompt length.
func (c *SHLPTConfig) setPromptLen(n int) { c.PromptLen = n }
