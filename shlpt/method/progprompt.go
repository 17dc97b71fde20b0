package method

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// progPromptSpec registers Progressive Prompts.
var progPromptSpec = Define(Definition[ProgPromptConfig]{
	Name:     "progprompt",
	Summary:  "Progressive Prompts: a new prompt per task in front of the frozen earlier ones",
	Defaults: Defaults{PromptLen: DefaultProgPrompt().PromptLen, LR: 0.3, WeightDecay: 1e-5},
	Export:   ExportConcatenated,
	Settings: DefaultProgPrompt(),
	Flags: func(s *ProgPromptConfig) []Flag {
		return []Flag{
			boolFlag("progprompt-mlp", "progprompt: train each new prompt through a residual MLP (stored as its output)", &s.MLP),
			intFlag("progprompt-bottleneck", "progprompt: the MLP's bottleneck", &s.Bottleneck),
		}
	},
	Validate: func(s *ProgPromptConfig, r RunShape) error {
		return s.Validate()
	},
	New: func(env *Env, s *ProgPromptConfig) (Method, error) { return NewProgPrompt(env, *s) },
})

// ProgPromptConfig holds Progressive Prompts' settings (Razdaibiedina et
// al., ICLR 2023; defaults of its T5 code: 10 prompt tokens per task, the
// optional residual MLP with a bottleneck of 800).
type ProgPromptConfig struct {
	PromptLen int `json:"-"` // per task: the run's --prompt-len
	// MLP reparameterizes the new prompt through a residual MLP while it
	// trains (a fresh one per task); the stored prompt is its output.
	MLP        bool `json:"mlp"`
	Bottleneck int  `json:"mlp_bottleneck"`
}

// DefaultProgPrompt is the paper's configuration.
func DefaultProgPrompt() ProgPromptConfig {
	return ProgPromptConfig{PromptLen: 10, Bottleneck: 800}
}

// ProgPrompt is Progressive Prompts: task t learns a new prompt P_t that is
// prepended to the frozen prompts of the earlier tasks,
// [P_t; P_{t−1}; …; P_0], so the encoder input grows by PromptLen tokens
// per task. Task i is tested with [P_i; …; P_0] (task identity given, as
// the SHLPT paper grants), which never changes after task i: BWT is 0.
// Each task starts with a fresh prompt (embedding rows at random
// vocabulary ids) and a fresh optimizer.
type ProgPrompt struct {
	env    *Env
	cfg    ProgPromptConfig
	prompt *ag.Tensor // (Lp, d): P_t
	mlp    *resMLP    // nil without the reparameterization
	prev   *ag.Tensor // (t·Lp, d): [P_{t−1}; …; P_0], nil for t = 0
	store  stored
	task   *Task
}

// Validate checks the settings.
func (c ProgPromptConfig) Validate() error {
	if c.PromptLen < 1 || (c.MLP && c.Bottleneck < 1) {
		return fmt.Errorf("progprompt: prompt length %d and MLP bottleneck %d must be at least 1", c.PromptLen, c.Bottleneck)
	}
	return nil
}

// NewProgPrompt returns the method with no stored prompts.
func NewProgPrompt(env *Env, cfg ProgPromptConfig) (*ProgPrompt, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := env.Model
	d := m.Config.DModel
	p := &ProgPrompt{env: env, cfg: cfg, store: stored{Lp: cfg.PromptLen, D: d}}
	e := m.Engine()
	p.prompt = e.Param("prompt", make([]float32, cfg.PromptLen*d), cfg.PromptLen, d)
	if err := e.Err(); err != nil {
		p.Release()
		return nil, err
	}
	return p, nil
}

func (p *ProgPrompt) Name() string         { return "progprompt" }
func (p *ProgPrompt) FreshOptimizer() bool { return true }

// PromptLen is the encoder prompt's length for the current task.
func (p *ProgPrompt) PromptLen() int { return (len(p.store.prompts) + 1) * p.cfg.PromptLen }

// Params are the new prompt and, with the reparameterization, its MLP.
func (p *ProgPrompt) Params() []*ag.Tensor {
	ps := []*ag.Tensor{p.prompt}
	if p.mlp != nil {
		ps = append(ps, p.mlp.params()...)
	}
	return ps
}

// BeginTask initializes P_t (and a fresh MLP) and uploads the earlier
// prompts.
func (p *ProgPrompt) BeginTask(t *Task) error {
	p.task = t
	m := p.env.Model
	e := m.Engine()
	if err := InitPromptFromVocab(m, p.prompt, Stream(p.env.Seed, "prompt-init", t.Index)); err != nil {
		return err
	}
	if p.mlp != nil {
		p.mlp.release()
		p.mlp = nil
	}
	if p.cfg.MLP {
		p.mlp = newResMLP(e, m.Config.DModel, p.cfg.Bottleneck, Stream(p.env.Seed, "progprompt-mlp", t.Index))
	}
	p.prev.Release()
	p.prev = nil
	if n := len(p.store.prompts); n > 0 {
		order := make([]int, n)
		for k := range order {
			order[k] = n - 1 - k
		}
		p.prev = p.store.upload(e, order)
	}
	return e.Err()
}

// current records the new prompt as the encoder sees it: P_t, or its MLP
// reparameterization (Lp, d).
func (p *ProgPrompt) current() *ag.Tensor {
	if p.mlp == nil {
		return p.prompt.Reshape(p.prompt.Shape()...)
	}
	return p.mlp.forward(p.prompt)
}

// full records [current; earlier prompts] ((t+1)·Lp, d).
func (p *ProgPrompt) full() *ag.Tensor {
	sc := p.prompt.Engine().Scope()
	defer sc.End()
	cur := p.current()
	if p.prev == nil {
		return sc.Keep(cur)
	}
	return sc.Keep(ag.Concat(cur, p.prev, 0))
}

// NewStep is the cross-entropy step with the progressive prompt.
func (p *ProgPrompt) NewStep(B int) (Step, error) { return progStep{p}, nil }

type progStep struct{ p *ProgPrompt }

func (progStep) Write(*Batch) error { return nil }

func (s progStep) Loss(b *Batch) (*ag.Tensor, []Part) {
	sc := s.p.prompt.Engine().Scope()
	defer sc.End()
	out := s.p.env.Model.Forward(b.Device, t5.Options{Prompt: s.p.full()})
	return sc.Keep(out.Loss), []Part{{"ce", out.Loss}}
}

func (progStep) Release() {}

// EvalPrompts: validation with the current progressive prompt; test of
// task i with [P_i; …; P_0].
func (p *ProgPrompt) EvalPrompts(pur Purpose, i int) (Prompter, error) {
	e := p.env.Model.Engine()
	defer e.NoGrad()()
	if pur == Validation {
		return FixedPrompt{p.full()}, e.Err()
	}
	if i < 0 || i >= len(p.store.prompts) {
		return nil, fmt.Errorf("progprompt: no stored prompt for task %d (%d stored)", i, len(p.store.prompts))
	}
	order := make([]int, i+1)
	for k := range order {
		order[k] = i - k
	}
	return FixedPrompt{p.store.upload(e, order)}, e.Err()
}

// EndTask stores the new prompt as the encoder saw it (after the MLP).
func (p *ProgPrompt) EndTask() (map[string]any, error) {
	e := p.env.Model.Engine()
	var v []float32
	var err error
	func() {
		defer e.NoGrad()()
		sc := e.Scope()
		defer sc.End()
		v, err = p.current().Float32s()
	}()
	if err != nil {
		return nil, err
	}
	p.store.prompts = append(p.store.prompts, v)
	if err := p.store.write(p.env, p.Name(), p.task, len(p.store.prompts)-1); err != nil {
		return nil, err
	}
	return map[string]any{"encoder_prompt_len": len(p.store.prompts) * p.cfg.PromptLen}, nil
}

func (p *ProgPrompt) State() ([]HostTensor, error) { return p.store.tensors("stored"), nil }

func (p *ProgPrompt) SetState(ts []HostTensor) error {
	n, err := p.store.load(ts, "stored")
	if err == nil && n != len(ts) {
		err = fmt.Errorf("progprompt: state holds %d tensors besides %d stored prompts", len(ts)-n, n)
	}
	return err
}

func (p *ProgPrompt) Release() {
	p.prompt.Release()
	p.prev.Release()
	if p.mlp != nil {
		p.mlp.release()
	}
}

// resMLP is Progressive Prompts' residual reparameterization of a prompt
// (its "MLP1" with layer norm): x + LayerNorm(ReLU(x·W1ᵀ + b1)·W2ᵀ + b2),
// applied to every prompt row; torch's Linear and LayerNorm initialization.
type resMLP struct {
	w1, b1, w2, b2, lnw, lnb *ag.Tensor
}

func newResMLP(e *ag.Engine, d, r int, rng interface{ Float64() float64 }) *resMLP {
	uniform := func(n, fanIn int) []float32 { return torchUniform(rng, n, fanIn) }
	return &resMLP{
		w1:  e.Param("mlp.w1", uniform(r*d, d), r, d),
		b1:  e.Param("mlp.b1", uniform(r, d), r),
		w2:  e.Param("mlp.w2", uniform(d*r, r), d, r),
		b2:  e.Param("mlp.b2", uniform(d, r), d),
		lnw: e.Param("mlp.norm.weight", ones(d), d),
		lnb: e.Param("mlp.norm.bias", make([]float32, d), d),
	}
}

func (m *resMLP) params() []*ag.Tensor { return []*ag.Tensor{m.w1, m.b1, m.w2, m.b2, m.lnw, m.lnb} }

// forward records the reparameterized prompt of x (Lp, d).
func (m *resMLP) forward(x *ag.Tensor) *ag.Tensor {
	sc := x.Engine().Scope()
	defer sc.End()
	h := ag.Relu(ag.AddRow(ag.Linear(x, m.w1), m.b1))
	n := ag.LayerNorm(ag.AddRow(ag.Linear(h, m.w2), m.b2), m.lnw, m.lnb, EstimatorNormEps)
	return sc.Keep(ag.Add(x, n))
}

func (m *resMLP) release() {
	for _, t := range m.params() {
		t.Release()
	}
}

// TestsFrozen: every task is tested with its stored prompt(s) alone,
// frozen once the task ends.
func (*ProgPrompt) TestsFrozen() bool { return true }

// setPromptLen gives the settings the run's prompt length.
func (c *ProgPromptConfig) setPromptLen(n int) { c.PromptLen = n }
