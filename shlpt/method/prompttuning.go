package method

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// stored is the list of per-task prompts a method keeps, frozen once their
// task ends: what test inference uses with task identity given.
type stored struct {
	Lp, D   int
	prompts [][]float32 // Lp·D values each, in task order
}

// tensors names the stored prompts "<prefix>.<i>" for a checkpoint.
func (s *stored) tensors(prefix string) []HostTensor {
	var out []HostTensor
	for i, p := range s.prompts {
		out = append(out, HostTensor{Name: fmt.Sprintf("%s.%d", prefix, i), Shape: []int{s.Lp, s.D}, Data: p})
	}
	return out
}

// load reads "<prefix>.0", "<prefix>.1", ... until one is missing, and
// returns how many tensors it used.
func (s *stored) load(ts []HostTensor, prefix string) (int, error) {
	s.prompts = nil
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s.%d", prefix, i)
		if !has(ts, name) {
			return i, nil
		}
		p, err := find(ts, name, s.Lp, s.D)
		if err != nil {
			return i, err
		}
		s.prompts = append(s.prompts, p)
	}
}

// write stores prompt i as prompts/<task>.safetensors.
func (s *stored) write(env *Env, method string, t *Task, i int) error {
	if env.Store == nil {
		return nil
	}
	meta := map[string]string{"task": t.Name, "index": fmt.Sprint(t.Index), "method": method}
	return env.Store.WriteTensors("prompts/"+t.Name+".safetensors",
		[]HostTensor{{Name: "prompt", Shape: []int{s.Lp, s.D}, Data: s.prompts[i]}}, meta)
}

// upload returns stored prompts i..0 (newest first) concatenated on the
// device: (k·Lp, d) for k prompts.
func (s *stored) upload(e *ag.Engine, newestFirst []int) *ag.Tensor {
	var flat []float32
	for _, i := range newestFirst {
		flat = append(flat, s.prompts[i]...)
	}
	return e.FromFloat32(flat, len(newestFirst)*s.Lp, s.D)
}

// perTaskSpec and continualInitSpec register prompt tuning.
var (
	perTaskSpec = Define(Definition[struct{}]{
		Name:      "per-task",
		Summary:   "a fresh prompt per task (no transfer; the scores FWT is measured against)",
		Multitask: true,
		Defaults:  Defaults{PromptLen: 150, LR: 0.3, WeightDecay: 1e-5},
		Export:    ExportStoredPrompt,
		Validate:  validatePromptLen,
		New: func(env *Env, _ *struct{}) (Method, error) {
			return NewPromptTuning(env, env.PromptLen, false)
		},
	})
	continualInitSpec = Define(Definition[struct{}]{
		Name:     "continual-init",
		Summary:  "a prompt per task, initialized from the previous task's (the paper's Table 1)",
		Defaults: Defaults{PromptLen: 150, LR: 0.3, WeightDecay: 1e-5},
		Export:   ExportStoredPrompt,
		Validate: validatePromptLen,
		New: func(env *Env, _ *struct{}) (Method, error) {
			return NewPromptTuning(env, env.PromptLen, true)
		},
	})
)

// validatePromptLen checks a run's prompt length.
func validatePromptLen(_ *struct{}, r RunShape) error {
	if r.PromptLen < 1 {
		return fmt.Errorf("prompt length %d must be at least 1", r.PromptLen)
	}
	return nil
}

// PromptTuning learns one prompt per task on the frozen model, with the
// plain cross-entropy loss. As "per-task" every prompt starts from
// embedding rows at random vocabulary ids (no transfer: the scores FWT is
// measured against); as "continual-init" a task's prompt starts from the
// previous task's trained prompt (the SHLPT paper's Table 1). Stored
// prompts never change, so BWT is 0.
type PromptTuning struct {
	env        *Env
	name       string
	continuing bool
	prompt     *ag.Tensor // (Lp, d), re-initialized per task
	store      stored
	task       *Task
}

// NewPromptTuning returns per-task prompt tuning, or continual
// initialization when continuing.
func NewPromptTuning(env *Env, promptLen int, continuing bool) (*PromptTuning, error) {
	if promptLen < 1 {
		return nil, fmt.Errorf("prompt length %d must be at least 1", promptLen)
	}
	m := env.Model
	d := m.Config.DModel
	p := &PromptTuning{env: env, name: "per-task", continuing: continuing, store: stored{Lp: promptLen, D: d}}
	if continuing {
		p.name = "continual-init"
	}
	e := m.Engine()
	p.prompt = e.Param("prompt", make([]float32, promptLen*d), promptLen, d)
	if err := e.Err(); err != nil {
		p.prompt.Release()
		return nil, err
	}
	return p, nil
}

func (p *PromptTuning) Name() string                 { return p.name }
func (p *PromptTuning) PromptLen() int               { return p.store.Lp }
func (p *PromptTuning) Params() []*ag.Tensor         { return []*ag.Tensor{p.prompt} }
func (p *PromptTuning) FreshOptimizer() bool         { return true }
func (p *PromptTuning) State() ([]HostTensor, error) { return p.store.tensors("stored"), nil }

// BeginTask initializes the task's prompt.
func (p *PromptTuning) BeginTask(t *Task) error {
	p.task = t
	if n := len(p.store.prompts); p.continuing && n > 0 {
		return p.prompt.WriteFloat32(p.store.prompts[n-1])
	}
	return InitPromptFromVocab(p.env.Model, p.prompt, Stream(p.env.Seed, "prompt-init", t.Index))
}

// NewStep is the plain prompt-tuning step.
func (p *PromptTuning) NewStep(B int) (Step, error) {
	return promptStep{m: p.env.Model, prompt: p.prompt}, nil
}

// EvalPrompts: validation with the current prompt, test with the task's
// stored prompt.
func (p *PromptTuning) EvalPrompts(pur Purpose, i int) (Prompter, error) {
	e := p.env.Model.Engine()
	if pur == Validation {
		return FixedPrompt{p.prompt.Reshape(p.prompt.Shape()...)}, e.Err()
	}
	if i < 0 || i >= len(p.store.prompts) {
		return nil, fmt.Errorf("%s: no stored prompt for task %d (%d stored)", p.name, i, len(p.store.prompts))
	}
	return FixedPrompt{p.store.upload(e, []int{i})}, e.Err()
}

// EndTask stores the (best) prompt.
func (p *PromptTuning) EndTask() (map[string]any, error) {
	v, err := p.prompt.Float32s()
	if err != nil {
		return nil, err
	}
	p.store.prompts = append(p.store.prompts, v)
	return nil, p.store.write(p.env, p.name, p.task, len(p.store.prompts)-1)
}

func (p *PromptTuning) SetState(ts []HostTensor) error {
	n, err := p.store.load(ts, "stored")
	if err == nil && n != len(ts) {
		err = fmt.Errorf("%s: state holds %d tensors besides %d stored prompts", p.name, len(ts)-n, n)
	}
	return err
}

func (p *PromptTuning) Release() { p.prompt.Release() }

// promptStep is the plain prompt-tuning training step: the mean token
// cross-entropy with one prompt shared by the batch.
type promptStep struct {
	m      *t5.Model
	prompt *ag.Tensor
}

func (promptStep) Write(*Batch) error { return nil }

func (s promptStep) Loss(b *Batch) (*ag.Tensor, []Part) {
	out := s.m.Forward(b.Device, t5.Options{Prompt: s.prompt})
	return out.Loss, []Part{{"ce", out.Loss}}
}

func (promptStep) Release() {}

// TestsFrozen: every task is tested with its stored prompt(s) alone,
// frozen once the task ends.
func (*PromptTuning) TestsFrozen() bool { return true }
