package method

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// codaSpec registers CODA-Prompt.
var codaSpec = Define(Definition[CODAConfig]{
	Name:     "coda",
	Summary:  "CODA-Prompt: each input's prompt a weighted sum of components; each task adds its own, earlier ones frozen",
	Defaults: Defaults{PromptLen: DefaultCODA().PromptLen, LR: 0.3, WeightDecay: 0},
	Export:   ExportNone,
	Settings: DefaultCODA(),
	Flags: func(s *CODAConfig) []Flag {
		return []Flag{
			intFlag("coda-pool", "coda: prompt components, shared out evenly over the tasks", &s.Pool),
			floatFlag("coda-ortho", "coda: weight of the orthogonality penalty", &s.OrthoMu),
		}
	},
	Validate: func(s *CODAConfig, r RunShape) error {
		if err := s.Validate(); err != nil {
			return err
		}
		if r.NumTasks > 0 && s.Pool/r.NumTasks == 0 {
			return fmt.Errorf("coda: %d components cannot be shared by %d tasks", s.Pool, r.NumTasks)
		}
		return nil
	},
	New: func(env *Env, s *CODAConfig) (Method, error) { return NewCODA(env, *s) },
})

// CODAConfig holds the settings of CODA-Prompt (Smith et al., "CODA-Prompt:
// COntinual Decomposed Attention-based Prompting", CVPR 2023), with the
// defaults of GT-RIPL/CODA-Prompt (models/zoo.py CodaPrompt,
// prompt_param [100, 8, 0.1]).
type CODAConfig struct {
	// PromptLen is the length of each component (and of the prompt): the
	// run's --prompt-len (CODA-Prompt: 8).
	PromptLen int `json:"-"`
	// Pool is the number of components, shared equally by the tasks.
	Pool int `json:"pool"`
	// OrthoMu weighs the orthogonality penalty.
	OrthoMu float64 `json:"ortho_mu"`
}

// DefaultCODA is CODA-Prompt's configuration: 100 components of length 8,
// μ = 0.1.
func DefaultCODA() CODAConfig { return CODAConfig{PromptLen: 8, Pool: 100, OrthoMu: 0.1} }

// Validate checks the settings.
func (c CODAConfig) Validate() error {
	switch {
	case c.PromptLen < 1:
		return fmt.Errorf("coda: prompt length %d must be at least 1", c.PromptLen)
	case c.Pool < 1:
		return fmt.Errorf("coda: %d components; at least 1 is needed", c.Pool)
	case !(c.OrthoMu >= 0):
		return fmt.Errorf("coda: orthogonality weight %v must not be negative", c.OrthoMu)
	}
	return nil
}

// codaOrthoScale is the factor CODA-Prompt's ortho_penalty multiplies the
// mean by.
const codaOrthoScale = 1e-6

// CODA is CODA-Prompt: components P_m (PromptLen × d), keys K_m and
// attention vectors A_m (d each); each task trains pt = Pool/NumTasks new
// components with the earlier ones frozen. Row b's prompt is
//
//	P_b = Σ_m α_bm·P_m,   α_bm = cos(q_b ⊙ A_m, K_m)
//
// over the components in use, with q the shared query (query.go).
// CODA-Prompt's prefix-tuning at ViT layers becomes prompt tuning at T5's
// encoder input: (B, PromptLen, d) prepended per row. The loss adds the
// orthogonality penalty μ·(ortho(K) + ortho(A) + ortho(P flattened)), with
// ortho(X) = mean((X·Xᵀ − I)²)·1e-6 as the reference code. Task i is
// tested with components [0, (i+1)·pt), which never change after task i:
// BWT is exactly 0.
type CODA struct {
	env *Env
	cfg CODAConfig
	pt  int // components per task
	d   int

	// What EndTask kept, on the host: every component, key and attention
	// vector (Pool, PromptLen·d), (Pool, d), (Pool, d); finished tasks.
	comps, keys, attn []float32
	finished          int

	task *Task
	// The current task's trainable slices (pt, Lp, d), (pt, d), (pt, d),
	// fresh each task, and frozen copies of the earlier components (nil
	// for the first task), made by BeginTask.
	curP, curK, curA *ag.Tensor
	oldP, oldK, oldA *ag.Tensor
}

// NewCODA returns the method with every component, key and attention
// vector initialized orthogonally (torch.nn.init.orthogonal_ on the
// flattened (Pool, ·) matrices).
func NewCODA(env *Env, cfg CODAConfig) (*CODA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if env.NumTasks < 1 || cfg.Pool/env.NumTasks == 0 {
		return nil, fmt.Errorf("coda: %d components cannot be shared by %d tasks", cfg.Pool, env.NumTasks)
	}
	d := env.Model.Config.DModel
	c := &CODA{env: env, cfg: cfg, pt: cfg.Pool / env.NumTasks, d: d}
	c.comps = orthogonal(Stream(env.Seed, "coda-init", "components"), cfg.Pool, cfg.PromptLen*d)
	c.keys = orthogonal(Stream(env.Seed, "coda-init", "keys"), cfg.Pool, d)
	c.attn = orthogonal(Stream(env.Seed, "coda-init", "attention"), cfg.Pool, d)
	return c, nil
}

// orthogonal returns a rows×cols matrix (row-major) with orthonormal rows
// when rows ≤ cols and orthonormal columns otherwise, as
// torch.nn.init.orthogonal_: the Q factor, with R's diagonal positive, of
// a standard normal matrix drawn from rng row by row. Q is computed in
// float64 by modified Gram–Schmidt, twice over for accuracy.
func orthogonal(rng *rand.Rand, rows, cols int) []float32 {
	a := make([]float64, rows*cols)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	// The vectors to orthonormalize: the rows when rows < cols (torch
	// transposes to a tall matrix), the columns otherwise.
	wide := rows < cols
	n, length := cols, rows
	if wide {
		n, length = rows, cols
	}
	vecs := make([][]float64, n)
	for v := range vecs {
		vecs[v] = make([]float64, length)
		for k := range vecs[v] {
			if wide {
				vecs[v][k] = a[v*cols+k]
			} else {
				vecs[v][k] = a[k*cols+v]
			}
		}
	}
	for v, x := range vecs {
		for pass := 0; pass < 2; pass++ {
			for _, u := range vecs[:v] {
				dot := 0.0
				for k := range x {
					dot += u[k] * x[k]
				}
				for k := range x {
					x[k] -= dot * u[k]
				}
			}
		}
		norm := 0.0
		for _, y := range x {
			norm += y * y
		}
		norm = math.Sqrt(norm)
		for k := range x {
			x[k] /= norm
		}
	}
	out := make([]float32, rows*cols)
	for v, x := range vecs {
		for k, y := range x {
			if wide {
				out[v*cols+k] = float32(y)
			} else {
				out[k*cols+v] = float32(y)
			}
		}
	}
	return out
}

// Name is "coda".
func (c *CODA) Name() string { return "coda" }

// Config returns the settings.
func (c *CODA) Config() CODAConfig { return c.cfg }

// PromptLen is the length of the prompt the encoder gets.
func (c *CODA) PromptLen() int { return c.cfg.PromptLen }

// PerTask is the number of components each task adds.
func (c *CODA) PerTask() int { return c.pt }

// Params are the current task's components, keys and attention vectors.
func (c *CODA) Params() []*ag.Tensor { return []*ag.Tensor{c.curP, c.curK, c.curA} }

// FreshOptimizer: every task trains new tensors with a new optimizer.
func (c *CODA) FreshOptimizer() bool { return true }

// hostRows returns rows [lo, hi) of a (Pool, w) host matrix.
func hostRows(v []float32, w, lo, hi int) []float32 { return v[lo*w : hi*w] }

// BeginTask uploads task t's slices [t·pt, (t+1)·pt) as fresh trainable
// tensors and the earlier components as constants.
func (c *CODA) BeginTask(t *Task) error {
	if t.Index != c.finished {
		return fmt.Errorf("coda: task %d begins after %d finished tasks", t.Index, c.finished)
	}
	if t.Index >= c.env.NumTasks {
		return fmt.Errorf("coda: task %d of a sequence of %d", t.Index, c.env.NumTasks)
	}
	c.releaseTask()
	e := c.env.Model.Engine()
	Lp, d, pt := c.cfg.PromptLen, c.d, c.pt
	s, f := t.Index*pt, (t.Index+1)*pt
	c.curP = e.Param("coda.components", hostRows(c.comps, Lp*d, s, f), pt, Lp, d)
	c.curK = e.Param("coda.keys", hostRows(c.keys, d, s, f), pt, d)
	c.curA = e.Param("coda.attention", hostRows(c.attn, d, s, f), pt, d)
	if s > 0 {
		c.oldP = e.FromFloat32(hostRows(c.comps, Lp*d, 0, s), s, Lp, d)
		c.oldK = e.FromFloat32(hostRows(c.keys, d, 0, s), s, d)
		c.oldA = e.FromFloat32(hostRows(c.attn, d, 0, s), s, d)
	}
	if err := e.Err(); err != nil {
		c.releaseTask()
		return err
	}
	c.task = t
	return nil
}

// releaseTask frees what BeginTask made.
func (c *CODA) releaseTask() {
	for _, t := range []*ag.Tensor{c.curP, c.curK, c.curA, c.oldP, c.oldK, c.oldA} {
		t.Release()
	}
	c.curP, c.curK, c.curA, c.oldP, c.oldK, c.oldA = nil, nil, nil, nil, nil, nil
}

// used records the components in use while training: the frozen earlier
// ones followed by the current task's, (M, Lp, d), (M, d), (M, d).
func (c *CODA) used() (P, K, A *ag.Tensor) {
	join := func(old, cur *ag.Tensor) *ag.Tensor {
		if old == nil {
			return cur.Reshape(cur.Shape()...)
		}
		return ag.Concat(old, cur, 0)
	}
	return join(c.oldP, c.curP), join(c.oldK, c.curK), join(c.oldA, c.curA)
}

// codaMix records the weights α_bm = cos(q_b ⊙ A_m, K_m) (B, M) and the
// prompts P_b = Σ_m α_bm·P_m (B, Lp, d) of queries q (B, d) with
// components P (M, Lp, d), keys K (M, d) and attention vectors A (M, d).
func codaMix(q, P, K, A *ag.Tensor) (alpha, prompt *ag.Tensor) {
	sc := q.Engine().Scope()
	defer sc.End()
	B, M, Lp, d := q.Dim(0), P.Dim(0), P.Dim(1), P.Dim(2)
	aq := ag.Mul(ag.Expand(q, 1, M), ag.Expand(A, 0, B))      // (B, M, d)
	alpha = ag.Cosine(aq, ag.Expand(K, 0, B))                 // (B, M)
	mix := ag.MatMul(alpha, P.Reshape(M, Lp*d), false, false) // (B, Lp·d)
	return sc.Keep(alpha), sc.Keep(mix.Reshape(B, Lp, d))
}

// orthoPenalty records mean((X·Xᵀ − I)²)·1e-6 of X (M, n), with negI the
// constant −I (M, M). (1,)
func orthoPenalty(X, negI *ag.Tensor) *ag.Tensor {
	sc := X.Engine().Scope()
	defer sc.End()
	dev := ag.Add(ag.MatMul(X, X, false, true), negI) // (M, M)
	return sc.Keep(ag.Scale(ag.Mean(ag.Mul(dev, dev)), codaOrthoScale))
}

// codaOrtho records μ·(ortho(K) + ortho(A) + ortho(P flattened)). (1,)
func codaOrtho(P, K, A, negI *ag.Tensor, mu float64) *ag.Tensor {
	sc := P.Engine().Scope()
	defer sc.End()
	M := P.Dim(0)
	sum := ag.Add(ag.Add(orthoPenalty(K, negI), orthoPenalty(A, negI)), orthoPenalty(P.Reshape(M, P.Len()/M), negI))
	return sc.Keep(ag.Scale(sum, float32(mu)))
}

// negIdentity uploads −I (M, M).
func negIdentity(e *ag.Engine, M int) *ag.Tensor {
	v := make([]float32, M*M)
	for i := 0; i < M; i++ {
		v[i*M+i] = -1
	}
	return e.FromFloat32(v, M, M)
}

// codaStep is CODA's training step for batches of B rows.
type codaStep struct {
	c    *CODA
	q    *queryInput
	negI *ag.Tensor // (M, M) −I; nil without the penalty
}

// NewStep allocates the step's query (and −I for the penalty).
func (c *CODA) NewStep(B int) (Step, error) {
	if c.task == nil {
		return nil, fmt.Errorf("coda: NewStep outside a task")
	}
	m := c.env.Model
	q, err := newQueryInput(m, B)
	if err != nil {
		return nil, err
	}
	st := &codaStep{c: c, q: q}
	if c.cfg.OrthoMu > 0 {
		e := m.Engine()
		st.negI = negIdentity(e, (c.task.Index+1)*c.pt)
		if err := e.Err(); err != nil {
			st.Release()
			return nil, err
		}
	}
	return st, nil
}

// Write computes the batch's query.
func (st *codaStep) Write(b *Batch) error {
	if b.Device == nil {
		return fmt.Errorf("coda: a batch without device tensors")
	}
	_, err := st.q.write(b.Device)
	return err
}

// Loss records the cross-entropy with the rows' mixed prompts plus the
// orthogonality penalty.
func (st *codaStep) Loss(b *Batch) (*ag.Tensor, []Part) {
	c := st.c
	sc := st.q.q.Engine().Scope()
	defer sc.End()
	P, K, A := c.used()
	_, prompt := codaMix(st.q.q, P, K, A)
	out := c.env.Model.Forward(b.Device, t5.Options{Prompt: prompt})
	if out.Loss == nil {
		return nil, nil
	}
	ce := sc.Keep(out.Loss)
	if st.negI == nil {
		return ce, []Part{{"ce", ce}}
	}
	ortho := sc.Keep(codaOrtho(P, K, A, st.negI, c.cfg.OrthoMu))
	return sc.Keep(ag.Add(ce, ortho)), []Part{{"ce", ce}, {"ortho", ortho}}
}

// Release frees the step's tensors.
func (st *codaStep) Release() {
	st.q.release()
	st.negI.Release()
}

// EvalPrompts: validation of the current task with the components in use
// now; a test of task i (task identity given) with the stored components
// [0, (i+1)·pt).
func (c *CODA) EvalPrompts(p Purpose, i int) (Prompter, error) {
	e := c.env.Model.Engine()
	defer e.NoGrad()()
	var pr codaPrompter
	pr.c = c
	switch {
	case p == Validation:
		if c.task == nil || i != c.task.Index {
			return nil, fmt.Errorf("coda: validation of task %d, which is not being learned", i)
		}
		pr.P, pr.K, pr.A = c.used()
	case i < 0 || i >= c.finished:
		return nil, fmt.Errorf("coda: no stored components for task %d (%d tasks finished)", i, c.finished)
	default:
		Lp, d, M := c.cfg.PromptLen, c.d, (i+1)*c.pt
		pr.P = e.FromFloat32(hostRows(c.comps, Lp*d, 0, M), M, Lp, d)
		pr.K = e.FromFloat32(hostRows(c.keys, d, 0, M), M, d)
		pr.A = e.FromFloat32(hostRows(c.attn, d, 0, M), M, d)
	}
	if err := e.Err(); err != nil {
		pr.Release()
		return nil, err
	}
	return pr, nil
}

// codaPrompter mixes each row's prompt from fixed components.
type codaPrompter struct {
	c       *CODA
	P, K, A *ag.Tensor
}

func (pr codaPrompter) Prompt(b *Batch) (*ag.Tensor, error) {
	m := pr.c.env.Model
	e := m.Engine()
	q, err := encoderQuery(m, b.Device)
	if err != nil {
		return nil, err
	}
	defer e.NoGrad()()
	sc := e.Scope()
	defer sc.End()
	_, prompt := codaMix(e.FromFloat32(q, len(q)/pr.c.d, pr.c.d), pr.P, pr.K, pr.A)
	return sc.Keep(prompt), e.Err()
}

func (pr codaPrompter) Release() {
	for _, t := range []*ag.Tensor{pr.P, pr.K, pr.A} {
		t.Release()
	}
}

// EndTask stores the task's (best) slices with the earlier components,
// where they stay frozen, and writes every component, key and attention
// vector to coda.safetensors.
func (c *CODA) EndTask() (map[string]any, error) {
	t := c.task
	if t == nil {
		return nil, fmt.Errorf("coda: EndTask without BeginTask")
	}
	snap, err := Snapshot(c)
	if err != nil {
		return nil, err
	}
	Lp, d := c.cfg.PromptLen, c.d
	s, f := t.Index*c.pt, (t.Index+1)*c.pt
	copy(hostRows(c.comps, Lp*d, s, f), snap[0].Data)
	copy(hostRows(c.keys, d, s, f), snap[1].Data)
	copy(hostRows(c.attn, d, s, f), snap[2].Data)
	c.finished = t.Index + 1
	c.task = nil
	if st := c.env.Store; st != nil {
		ts, err := c.State()
		if err != nil {
			return nil, err
		}
		meta := map[string]string{"after_task": t.Name, "index": fmt.Sprint(t.Index), "method": c.Name(),
			"per_task": fmt.Sprint(c.pt), "in_use": fmt.Sprint(f)}
		if err := st.WriteTensors("coda.safetensors", ts, meta); err != nil {
			return nil, err
		}
	}
	return map[string]any{"components": []int{s, f}, "in_use": f}, nil
}

// State is every component, key and attention vector and the number of
// finished tasks.
func (c *CODA) State() ([]HostTensor, error) {
	Lp, d, N := c.cfg.PromptLen, c.d, c.cfg.Pool
	return []HostTensor{
		{Name: "components", Shape: []int{N, Lp, d}, Data: slices.Clone(c.comps)},
		{Name: "keys", Shape: []int{N, d}, Data: slices.Clone(c.keys)},
		{Name: "attention", Shape: []int{N, d}, Data: slices.Clone(c.attn)},
		{Name: "finished", Shape: []int{1}, Data: []float32{float32(c.finished)}},
	}, nil
}

// SetState restores State's tensors.
func (c *CODA) SetState(ts []HostTensor) error {
	if err := onlyNames(ts, func(n string) bool {
		return n == "components" || n == "keys" || n == "attention" || n == "finished"
	}); err != nil {
		return fmt.Errorf("coda: %w", err)
	}
	if len(ts) != 4 {
		return fmt.Errorf("coda: state holds %d tensors, not the components, keys, attention vectors and finished tasks", len(ts))
	}
	Lp, d, N := c.cfg.PromptLen, c.d, c.cfg.Pool
	comps, err1 := find(ts, "components", N, Lp, d)
	keys, err2 := find(ts, "keys", N, d)
	attn, err3 := find(ts, "attention", N, d)
	fin, err4 := find(ts, "finished", 1)
	if err := firstErr(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("coda: %w", err)
	}
	n := int(fin[0])
	if float32(n) != fin[0] || n < 0 || n > c.env.NumTasks {
		return fmt.Errorf("coda: %v finished tasks in a sequence of %d", fin[0], c.env.NumTasks)
	}
	c.comps, c.keys, c.attn = slices.Clone(comps), slices.Clone(keys), slices.Clone(attn)
	c.finished = n
	return nil
}

// Release frees the device memory.
func (c *CODA) Release() { c.releaseTask() }

// TestsFrozen: every task is tested with its stored prompt(s) alone,
// frozen once the task ends.
func (*CODA) TestsFrozen() bool { return true }

// setPromptLen gives the settings the run's prompt length.
func (c *CODAConfig) setPromptLen(n int) { c.PromptLen = n }
