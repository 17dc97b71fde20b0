package method

import (
	"fmt"
	"strings"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/kernels"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// The full-weight methods' registrations.
var (
	finetuneSpec = Define(Definition[struct{}]{
		Name:       "finetune",
		Summary:    "every weight trained, task after task",
		FullWeight: true,
		Multitask:  true,
		Defaults:   fullWeightDefaults,
		Export:     ExportNone,
		New:        func(env *Env, _ *struct{}) (Method, error) { return NewFinetune(env) },
		Memory: func(_ *struct{}, c t5.Config, B, L, T int) MemoryEstimate {
			return FullWeightMemory(c, B, L, T, false, false)
		},
	})
	ewcSpec = Define(Definition[EWCConfig]{
		Name:       "ewc",
		Summary:    "online EWC: finetuning with a penalty on moving the weights earlier tasks' Fisher information marks",
		FullWeight: true,
		Multitask:  true,
		Defaults:   fullWeightDefaults,
		Export:     ExportNone,
		Settings:   DefaultEWC(),
		Flags: func(s *EWCConfig) []Flag {
			return []Flag{
				floatFlag("ewc-lambda", "ewc: weight of the penalty", &s.Lambda),
				floatFlag("ewc-gamma", "ewc: decay of the accumulated Fisher information", &s.Gamma),
			}
		},
		Validate: func(s *EWCConfig, _ RunShape) error { return s.Validate() },
		New:      func(env *Env, s *EWCConfig) (Method, error) { return NewEWC(env, *s) },
		Memory: func(_ *EWCConfig, c t5.Config, B, L, T int) MemoryEstimate {
			return FullWeightMemory(c, B, L, T, true, false)
		},
	})
	erSpec = Define(Definition[ERConfig]{
		Name:       "er",
		Summary:    "experience replay: finetuning with a batch from a reservoir memory of earlier tasks' examples each step",
		FullWeight: true,
		Multitask:  true,
		Defaults:   fullWeightDefaults,
		Export:     ExportNone,
		Settings:   DefaultER(),
		Flags: func(s *ERConfig) []Flag {
			return []Flag{intFlag("er-memory", "er: examples kept in the replay memory (reservoir sampling)", &s.Memory)}
		},
		Validate: func(s *ERConfig, _ RunShape) error { return s.Validate() },
		New:      func(env *Env, s *ERConfig) (Method, error) { return NewER(env, *s) },
		Memory: func(_ *ERConfig, c t5.Config, B, L, T int) MemoryEstimate {
			return FullWeightMemory(c, B, L, T, false, true)
		},
	})
)

// fullWeightDefaults are the reference's full-model settings (its
// t5basic model sets): lr 1e-4, weight decay 0.01, no prompt.
var fullWeightDefaults = Defaults{PromptLen: 0, LR: 1e-4, WeightDecay: 0.01}

// EWCConfig holds online EWC's settings (Schwarz et al., 2018; the SHLPT
// reference's t5ewc defaults).
type EWCConfig struct {
	Lambda float64 `json:"lambda"` // weight of the penalty
	Gamma  float64 `json:"gamma"`  // decay of the accumulated Fisher
}

// DefaultEWC is the reference's configuration: λ 0.7, γ 0.9.
func DefaultEWC() EWCConfig { return EWCConfig{Lambda: 0.7, Gamma: 0.9} }

// Validate checks the settings.
func (c EWCConfig) Validate() error {
	if !(c.Lambda >= 0) || !(c.Gamma >= 0 && c.Gamma <= 1) {
		return fmt.Errorf("ewc: λ %v must not be negative and γ %v must lie in [0, 1]", c.Lambda, c.Gamma)
	}
	return nil
}

// ERConfig holds experience replay's settings (Chaudhry et al., 2019).
type ERConfig struct {
	Memory int `json:"memory"` // examples kept by reservoir sampling
}

// DefaultER is the reference's configuration: a memory of 1,000 examples.
func DefaultER() ERConfig { return ERConfig{Memory: 1000} }

// Validate checks the settings.
func (c ERConfig) Validate() error {
	if c.Memory < 1 {
		return fmt.Errorf("er: memory %d must hold at least 1 example", c.Memory)
	}
	return nil
}

// FullWeight trains every weight of T5, without a prompt, task after task:
// as "finetune" with the cross-entropy alone; as "ewc" with online EWC's
// penalty (λ/2)·Σ F·(θ − θ*)², where after each task F ← γ·F + F_task (the
// diagonal empirical Fisher: the mean over the task's training examples
// of each example's squared gradient) and θ* ← θ; as "er" with experience replay: a
// reservoir memory of examples of earlier tasks, from which every step
// draws a batch whose loss is averaged with the current batch's. Every
// task is tested with the current weights, so earlier tasks can be
// forgotten (BWT below 0).
type FullWeight struct {
	env    *Env
	name   string
	ewc    *EWCConfig
	er     *ERConfig
	params []*ag.Tensor // the model's weights, all trainable

	// EWC: accumulated Fisher and anchor per weight (nil before the first
	// task ends).
	fisher, anchor []*ag.Tensor
	// ER: the memory (token ids of examples of earlier tasks) and how many
	// examples the reservoir has seen.
	memory []Example
	seen   int

	task *Task
}

// NewFinetune, NewEWC and NewER return the full-weight methods; they make
// every weight of env.Model trainable.
func NewFinetune(env *Env) (*FullWeight, error) { return newFullWeight(env, "finetune", nil, nil) }

func NewEWC(env *Env, cfg EWCConfig) (*FullWeight, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newFullWeight(env, "ewc", &cfg, nil)
}

func NewER(env *Env, cfg ERConfig) (*FullWeight, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newFullWeight(env, "er", nil, &cfg)
}

func newFullWeight(env *Env, name string, ewc *EWCConfig, er *ERConfig) (*FullWeight, error) {
	m := env.Model
	if err := m.SetTrainable(true); err != nil {
		return nil, fmt.Errorf("%s trains every weight: %w", name, err)
	}
	return &FullWeight{env: env, name: name, ewc: ewc, er: er, params: m.Parameters()}, nil
}

func (f *FullWeight) Name() string            { return f.name }
func (f *FullWeight) Params() []*ag.Tensor    { return f.params }
func (f *FullWeight) FreshOptimizer() bool    { return true }
func (f *FullWeight) BeginTask(t *Task) error { f.task = t; return nil }

// EvalPrompts: no prompt; the current weights serve every task.
func (f *FullWeight) EvalPrompts(Purpose, int) (Prompter, error) { return FixedPrompt{}, nil }

// NewStep allocates the replay batch (ER with a non-empty memory).
func (f *FullWeight) NewStep(B int) (Step, error) {
	st := &fullStep{f: f}
	if f.er != nil && len(f.memory) > 0 {
		rows := min(B, len(f.memory))
		L, T := 1, 1
		for _, ex := range f.memory {
			L, T = max(L, len(ex.Input)), max(T, len(ex.Target))
		}
		inputs, targets := splitExamples(f.memory[:rows])
		var err error
		if st.replay, err = f.env.Model.NewBatch(inputs, targets, L, T); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// fullStep is the step of the full-weight methods.
type fullStep struct {
	f      *FullWeight
	replay *t5.Batch // ER's replayed rows, nil otherwise
}

// Write draws the replayed rows: uniformly without replacement from the
// memory, from a stream of the task, epoch and step.
func (s *fullStep) Write(b *Batch) error {
	if s.replay == nil {
		return nil
	}
	f := s.f
	rng := Stream(f.env.Seed, "er-replay", f.task.Index, b.Epoch, b.Step)
	pick := rng.Perm(len(f.memory))[:s.replay.InputIDs.Dim(0)]
	rows := make([]Example, len(pick))
	for i, k := range pick {
		rows[i] = f.memory[k]
	}
	inputs, targets := splitExamples(rows)
	return f.env.Model.WriteBatch(s.replay, inputs, targets)
}

// Loss is the cross-entropy, averaged with the replayed batch's (ER), plus
// the EWC penalty.
func (s *fullStep) Loss(b *Batch) (*ag.Tensor, []Part) {
	f := s.f
	m := f.env.Model
	sc := m.Engine().Scope()
	defer sc.End()
	out := m.Forward(b.Device, t5.Options{})
	if out.Loss == nil {
		return nil, nil
	}
	loss := out.Loss.Reshape(1)
	parts := []Part{{"ce", sc.Keep(out.Loss)}}
	if s.replay != nil {
		r := m.Forward(s.replay, t5.Options{})
		if r.Loss == nil {
			return nil, nil
		}
		loss = ag.Scale(ag.Add(loss, r.Loss), 0.5)
		parts = append(parts, Part{"replay", sc.Keep(r.Loss)})
	}
	if f.ewc != nil && f.fisher != nil {
		pen := f.penalty()
		loss = ag.Add(loss, ag.Scale(pen, float32(f.ewc.Lambda/2)))
		parts = append(parts, Part{"ewc", sc.Keep(pen)})
	}
	return sc.Keep(loss), parts
}

func (s *fullStep) Release() {
	if s.replay != nil {
		s.replay.Release()
	}
}

// penalty records Σ_i F_i·(θ_i − θ*_i)² over every weight.
func (f *FullWeight) penalty() *ag.Tensor {
	sc := f.params[0].Engine().Scope()
	defer sc.End()
	var total *ag.Tensor
	for i, p := range f.params {
		d := ag.Add(p, ag.Scale(f.anchor[i], -1))
		s := ag.Sum(ag.Mul(f.fisher[i], ag.Mul(d, d)))
		if total == nil {
			total = s
		} else {
			total = ag.Add(total, s)
		}
	}
	return sc.Keep(total)
}

// EndTask updates EWC's Fisher and anchor or ER's memory.
func (f *FullWeight) EndTask() (map[string]any, error) {
	t := f.task
	details := map[string]any{}
	if f.ewc != nil {
		if err := f.updateFisher(t); err != nil {
			return nil, err
		}
	}
	if f.er != nil {
		f.reservoir(t)
		details["memory"] = len(f.memory)
	}
	f.task = nil
	return details, nil
}

// updateFisher computes the task's diagonal empirical Fisher (dropout
// off), the mean over its training examples of each example's squared
// gradient, F_task = (1/N) Σ_n (∇ℓ_n)², and folds it in: F ← γ·F + F_task;
// θ* ← θ. Each example is a batch of one: the square of a batch's mean
// gradient would be about 1/B of the Fisher, and λ would regularize far
// less than intended. The per-example pass (forward, backward, the
// squares accumulated) is recorded once and replayed for every example.
func (f *FullWeight) updateFisher(t *Task) error {
	m := f.env.Model
	e := m.Engine()
	wasTraining := m.Training()
	m.SetTraining(false)
	defer m.SetTraining(wasTraining)
	if len(t.Train) == 0 {
		return fmt.Errorf("ewc: task %s has no training examples for the Fisher", t.Name)
	}
	fresh := f.fisher == nil
	if fresh {
		for _, p := range f.params {
			f.fisher = append(f.fisher, e.Zeros(p.Shape()...))
			f.anchor = append(f.anchor, e.Zeros(p.Shape()...))
		}
	}
	task := make([]*ag.Tensor, len(f.params))
	for i, p := range f.params {
		task[i] = e.Zeros(p.Shape()...)
	}
	defer func() {
		for _, t := range task {
			t.Release()
		}
	}()
	eos := [][]int{{m.Config.EOSTokenID}}
	batch, err := m.NewBatch(eos, eos, t.InputLen, t.TargetLen)
	if err != nil {
		return err
	}
	defer batch.Release()
	scale := float32(1 / float64(len(t.Train)))
	prog, err := e.Capture(func() error {
		sc := e.Scope()
		defer sc.End()
		out := m.Forward(batch, t5.Options{})
		if out.Loss == nil {
			return fmt.Errorf("ewc: the Fisher's forward pass failed: %w", e.Err())
		}
		if err := e.Backward(out.Loss); err != nil {
			return err
		}
		rec := e.Recorder()
		for i, p := range f.params {
			g := p.Grad()
			if g == nil {
				continue
			}
			n := int64(p.Len())
			sq := e.Empty(ag.F32, p.Len())
			e.Fail(kernels.Mul(rec, sq.Mem(), g.Mem(), g.Mem(), n))
			e.Fail(kernels.Axpy(rec, task[i].Mem(), scale, sq.Mem(), n))
			sq.Release() // now: the next weight's square reuses its memory
			p.ZeroGrad()
		}
		return e.Err()
	})
	if err != nil {
		return fmt.Errorf("ewc: recording the Fisher's pass: %w", err)
	}
	defer prog.Release()
	for _, ex := range t.Train {
		if err := m.WriteBatch(batch, [][]int{ex.Input}, [][]int{ex.Target}); err != nil {
			return err
		}
		if err := prog.Run(); err != nil {
			return err
		}
	}
	rec := e.Recorder()
	gamma := float32(f.ewc.Gamma)
	for i, p := range f.params {
		n := int64(p.Len())
		if !fresh {
			e.Fail(kernels.Scale(rec, f.fisher[i].Mem(), f.fisher[i].Mem(), n, gamma))
		}
		e.Fail(kernels.Axpy(rec, f.fisher[i].Mem(), 1, task[i].Mem(), n))
		e.Fail(kernels.Copy(rec, f.anchor[i].Mem(), p.Mem(), n))
	}
	return e.Sync()
}

// reservoir streams the task's training examples, in an order of their
// own, into the memory by reservoir sampling: example n (counted over the
// whole sequence) enters with probability Memory/n, replacing a uniform
// slot.
func (f *FullWeight) reservoir(t *Task) {
	rng := Stream(f.env.Seed, "er-reservoir", t.Index)
	for _, k := range rng.Perm(len(t.Train)) {
		f.seen++
		if len(f.memory) < f.er.Memory {
			f.memory = append(f.memory, t.Train[k])
			continue
		}
		if j := rng.IntN(f.seen); j < f.er.Memory {
			f.memory[j] = t.Train[k]
		}
	}
}

// State: the weights between tasks (during a task the runner's snapshot
// of the current weights holds them), EWC's Fisher and anchor, ER's memory.
func (f *FullWeight) State() ([]HostTensor, error) {
	var out []HostTensor
	if f.task == nil {
		w, err := hostCopies(f.params, "weight/")
		if err != nil {
			return nil, err
		}
		out = append(out, w...)
	}
	if f.fisher != nil {
		for _, g := range []struct {
			prefix string
			ts     []*ag.Tensor
		}{{"fisher/", f.fisher}, {"anchor/", f.anchor}} {
			c, err := hostCopies(g.ts, g.prefix)
			if err != nil {
				return nil, err
			}
			for i := range c {
				c[i].Name = g.prefix + f.params[i].Name()
			}
			out = append(out, c...)
		}
	}
	if f.er != nil {
		out = append(out, encodeExamples("memory", f.memory)...)
		out = append(out, HostTensor{Name: "memory.seen", Shape: []int{1}, Data: []float32{float32(f.seen)}})
	}
	return out, nil
}

// StateWeights returns the model's weights, by name, that a full-weight
// method's State holds between tasks (for writing the trained model).
func StateWeights(state []HostTensor) map[string][]float32 {
	w := map[string][]float32{}
	for _, t := range state {
		if name, ok := strings.CutPrefix(t.Name, "weight/"); ok {
			w[name] = t.Data
		}
	}
	return w
}

// SetState restores State's tensors into a freshly built method.
func (f *FullWeight) SetState(ts []HostTensor) error {
	e := f.env.Model.Engine()
	if has(ts, "weight/"+f.params[0].Name()) {
		if err := writeCopies(f.params, "weight/", ts); err != nil {
			return err
		}
	}
	if f.ewc != nil && has(ts, "fisher/"+f.params[0].Name()) {
		for _, p := range f.params {
			f.fisher = append(f.fisher, e.Zeros(p.Shape()...))
			f.anchor = append(f.anchor, e.Zeros(p.Shape()...))
		}
		if err := writeNamed(f.fisher, f.params, "fisher/", ts); err != nil {
			return err
		}
		if err := writeNamed(f.anchor, f.params, "anchor/", ts); err != nil {
			return err
		}
	}
	if f.er != nil && has(ts, "memory.seen") {
		seen, err := find(ts, "memory.seen", 1)
		if err != nil {
			return err
		}
		f.seen = int(seen[0])
		if f.memory, err = decodeExamples("memory", ts); err != nil {
			return err
		}
		if len(f.memory) > f.er.Memory || len(f.memory) > f.seen {
			return fmt.Errorf("er: state holds %d memory examples of %d seen, memory size %d", len(f.memory), f.seen, f.er.Memory)
		}
	}
	return nil
}

// Release frees EWC's tensors and the weights' gradients, and freezes the
// weights again; the weights belong to the model.
func (f *FullWeight) Release() {
	for _, t := range append(f.fisher, f.anchor...) {
		t.Release()
	}
	f.fisher, f.anchor = nil, nil
	for _, p := range f.params {
		p.ZeroGrad()
	}
	f.env.Model.SetTrainable(false)
}

// hostCopies reads tensors, named prefix + their names.
func hostCopies(ts []*ag.Tensor, prefix string) ([]HostTensor, error) {
	out := make([]HostTensor, len(ts))
	for i, t := range ts {
		v, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		out[i] = HostTensor{Name: prefix + t.Name(), Shape: t.Shape(), Data: v}
	}
	return out, nil
}

// writeCopies writes hostCopies' tensors back.
func writeCopies(ts []*ag.Tensor, prefix string, src []HostTensor) error {
	return writeNamed(ts, ts, prefix, src)
}

// writeNamed writes into dst[i] the tensor named prefix + names[i]'s name.
func writeNamed(dst, names []*ag.Tensor, prefix string, src []HostTensor) error {
	for i, t := range dst {
		v, err := find(src, prefix+names[i].Name(), t.Shape()...)
		if err != nil {
			return err
		}
		if err := t.WriteFloat32(v); err != nil {
			return err
		}
	}
	return nil
}

// encodeExamples packs token ids of examples into float32 tensors (ids are
// below 2²⁴, exact in float32): name.inputs, name.targets and their
// per-example lengths.
func encodeExamples(name string, exs []Example) []HostTensor {
	var in, tg, lin, ltg []float32
	for _, ex := range exs {
		for _, id := range ex.Input {
			in = append(in, float32(id))
		}
		for _, id := range ex.Target {
			tg = append(tg, float32(id))
		}
		lin, ltg = append(lin, float32(len(ex.Input))), append(ltg, float32(len(ex.Target)))
	}
	return []HostTensor{
		{Name: name + ".inputs", Shape: []int{len(in)}, Data: in},
		{Name: name + ".targets", Shape: []int{len(tg)}, Data: tg},
		{Name: name + ".input_lens", Shape: []int{len(lin)}, Data: lin},
		{Name: name + ".target_lens", Shape: []int{len(ltg)}, Data: ltg},
	}
}

// decodeExamples unpacks encodeExamples' tensors, checking every length.
func decodeExamples(name string, ts []HostTensor) ([]Example, error) {
	get := func(suffix string) ([]float32, error) {
		for _, t := range ts {
			if t.Name == name+suffix {
				if len(t.Shape) != 1 || t.Shape[0] != len(t.Data) {
					return nil, fmt.Errorf("state tensor %s%s is not a vector", name, suffix)
				}
				return t.Data, nil
			}
		}
		return nil, fmt.Errorf("state tensor %s%s is missing", name, suffix)
	}
	var parts [4][]float32
	for i, s := range []string{".inputs", ".targets", ".input_lens", ".target_lens"} {
		var err error
		if parts[i], err = get(s); err != nil {
			return nil, err
		}
	}
	in, tg, lin, ltg := parts[0], parts[1], parts[2], parts[3]
	if len(lin) != len(ltg) {
		return nil, fmt.Errorf("state %s: %d input and %d target lengths", name, len(lin), len(ltg))
	}
	out := make([]Example, len(lin))
	ii, ti := 0, 0
	for k := range out {
		a, b := int(lin[k]), int(ltg[k])
		if a < 1 || b < 1 || ii+a > len(in) || ti+b > len(tg) {
			return nil, fmt.Errorf("state %s: example %d's lengths %d and %d overrun the stored ids", name, k, a, b)
		}
		for _, v := range in[ii : ii+a] {
			out[k].Input = append(out[k].Input, int(v))
		}
		for _, v := range tg[ti : ti+b] {
			out[k].Target = append(out[k].Target, int(v))
		}
		ii, ti = ii+a, ti+b
	}
	if ii != len(in) || ti != len(tg) {
		return nil, fmt.Errorf("state %s: %d ids left over", name, len(in)-ii+len(tg)-ti)
	}
	return out, nil
}
