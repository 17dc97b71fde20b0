package method

import (
	"fmt"
	"slices"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// l2pSpec registers L2P.
var l2pSpec = Define(Definition[L2PConfig]{
	Name:     "l2p",
	Summary:  "L2P: a pool of prompts with keys; each task's own slots (task identity given) or each input's top-N keys",
	Defaults: Defaults{PromptLen: DefaultL2P().PromptLen, LR: 0.3, WeightDecay: 1e-5},
	Export:   ExportNone,
	Settings: DefaultL2P(),
	Flags: func(s *L2PConfig) []Flag {
		return []Flag{
			intFlag("l2p-pool", "l2p: prompts in the pool (0: max(10, tasks × top-n))", &s.PoolSize),
			intFlag("l2p-top-n", "l2p: prompts selected per input", &s.TopN),
			floatFlag("l2p-pull", "l2p: weight of the surrogate key loss", &s.PullCoeff),
			stringFlag("l2p-selection", "l2p: task (each task trains and is tested with its own pool slots, frozen afterwards; task identity given) or instance (each input selects its prompts by key, the original L2P)", &s.Selection),
		}
	},
	Validate: func(s *L2PConfig, r RunShape) error {
		return s.Validate(r.NumTasks)
	},
	New: func(env *Env, s *L2PConfig) (Method, error) { return NewL2P(env, *s) },
})

// L2PConfig holds the settings of L2P (Wang et al., "Learning to Prompt
// for Continual Learning", CVPR 2022), with the defaults of
// JH-LEE-KR/l2p-pytorch.
type L2PConfig struct {
	// PromptLen is the length of each pool prompt: the run's --prompt-len
	// (l2p-pytorch's --length, 5).
	PromptLen int `json:"-"`
	// PoolSize is the number of prompts and keys in the pool; 0 means
	// max(10, NumTasks·TopN), so that task slots do not collide.
	PoolSize int `json:"pool_size"`
	// TopN is the number of prompts each row uses (l2p-pytorch's top_k).
	TopN int `json:"top_n"`
	// PullCoeff weighs the surrogate loss that pulls the selected keys
	// towards the query (l2p-pytorch's pull_constraint_coeff).
	PullCoeff float64 `json:"pull_coeff"`
	// Selection is how a row's prompts are chosen: L2PTaskSlots or
	// L2PInstance.
	Selection string `json:"selection"`
}

// L2P's selections.
const (
	// L2PTaskSlots uses the task identity, which the SHLPT paper grants:
	// task t trains and is tested with the fixed slots t·N … t·N+N−1
	// (l2p-pytorch's prompt mask). Only those slots and their keys train
	// during task t, with the task's fresh optimizer; earlier tasks' slots
	// never change afterwards (BWT is exactly 0). Keys then play no part
	// in choosing prompts: the key loss still pulls the task's keys
	// towards its queries, as l2p-pytorch trains them, without effect on
	// predictions.
	L2PTaskSlots = "task"
	// L2PInstance is the original L2P: every row selects the N prompts
	// whose keys are most similar to its query, in training and in test,
	// and the whole pool trains for the whole sequence (earlier tasks can
	// be forgotten).
	L2PInstance = "instance"
)

// DefaultL2P is l2p-pytorch's configuration: prompts of length 5, top-5
// selection, pull-constraint coefficient 0.1, the pool sized for the
// sequence (10 prompts unless the tasks need more slots), task slots
// (the SHLPT paper grants task identity at test time).
func DefaultL2P() L2PConfig {
	return L2PConfig{PromptLen: 5, TopN: 5, PullCoeff: 0.1, Selection: L2PTaskSlots}
}

// Validate checks the settings for a sequence of numTasks tasks.
func (c L2PConfig) Validate(numTasks int) error {
	switch {
	case c.PromptLen < 1:
		return fmt.Errorf("l2p: prompt length %d must be at least 1", c.PromptLen)
	case c.TopN < 1:
		return fmt.Errorf("l2p: top-N %d must be at least 1", c.TopN)
	case c.PoolSize < 0:
		return fmt.Errorf("l2p: pool size %d must not be negative (0: sized for the sequence)", c.PoolSize)
	case c.TopN > c.poolFor(numTasks):
		return fmt.Errorf("l2p: top-N %d exceeds the pool of %d prompts", c.TopN, c.poolFor(numTasks))
	case !(c.PullCoeff >= 0):
		return fmt.Errorf("l2p: pull-constraint coefficient %v must not be negative", c.PullCoeff)
	case c.Selection != L2PTaskSlots && c.Selection != L2PInstance:
		return fmt.Errorf("l2p: unknown selection %q (expected %s or %s)", c.Selection, L2PTaskSlots, L2PInstance)
	case c.Selection == L2PTaskSlots && c.poolFor(numTasks) < numTasks*c.TopN:
		return fmt.Errorf("l2p: task slots need a pool of at least %d prompts (%d tasks × top-N %d), not %d",
			numTasks*c.TopN, numTasks, c.TopN, c.poolFor(numTasks))
	}
	return nil
}

// poolFor is the pool size in effect for a sequence of numTasks.
func (c L2PConfig) poolFor(numTasks int) int {
	if c.PoolSize > 0 {
		return c.PoolSize
	}
	return max(10, numTasks*c.TopN)
}

// L2P is the prompt-pool baseline: a pool of prompts with keys. Each row's
// prompt is the concatenation of N pool prompts: task t's own slots
// (L2PTaskSlots), or the N whose keys have the highest cosine similarity
// with the row's query (query.go; L2PInstance); a surrogate loss pulls the
// chosen keys towards the queries.
type L2P struct {
	env *Env
	cfg L2PConfig
	P   int // pool size in effect
	d   int // model width

	// The pool and its keys between tasks, on the host (task slots):
	// (P, Lp·d) and (P, d).
	hostPool, hostKeys []float32
	// What trains: with task slots the current task's slots (N, Lp, d)
	// and keys (N, d), fresh each task; with instance selection the whole
	// pool (P, Lp, d) and keys (P, d) for the whole sequence.
	pool, keys *ag.Tensor
	task       *Task
}

// NewL2P returns the method with its pool initialized: each prompt from
// embedding rows at random vocabulary ids, each key uniform in [-1, 1]
// (l2p-pytorch's prompt_key_init "uniform").
func NewL2P(env *Env, cfg L2PConfig) (*L2P, error) {
	if err := cfg.Validate(env.NumTasks); err != nil {
		return nil, err
	}
	m := env.Model
	e := m.Engine()
	d := m.Config.DModel
	l := &L2P{env: env, cfg: cfg, P: cfg.poolFor(env.NumTasks), d: d}
	Lp := cfg.PromptLen
	l.hostKeys = make([]float32, l.P*d)
	rng := Stream(env.Seed, "l2p-keys")
	for i := range l.hostKeys {
		l.hostKeys[i] = float32(2*rng.Float64() - 1)
	}
	if err := func() error {
		sc := e.Scope()
		defer sc.End()
		rows := e.Zeros(l.P*Lp, d)
		err := InitPromptFromVocab(m, rows, Stream(env.Seed, "l2p-pool"))
		if err == nil {
			l.hostPool, err = rows.Float32s()
		}
		return err
	}(); err != nil {
		return nil, err
	}
	if !l.taskSlots() {
		l.pool = e.Param("l2p.pool", l.hostPool, l.P, Lp, d)
		l.keys = e.Param("l2p.keys", l.hostKeys, l.P, d)
		l.hostPool, l.hostKeys = nil, nil
		if err := e.Err(); err != nil {
			l.Release()
			return nil, err
		}
	}
	return l, nil
}

// Name is "l2p".
func (l *L2P) Name() string { return "l2p" }

// Config returns the settings (PoolSize as given; see PoolSize).
func (l *L2P) Config() L2PConfig { return l.cfg }

// PoolSize is the number of prompts in the pool.
func (l *L2P) PoolSize() int { return l.P }

// PromptLen is the length of the prompt the encoder gets: N·PromptLen.
func (l *L2P) PromptLen() int { return l.cfg.TopN * l.cfg.PromptLen }

// taskSlots says whether task t uses slots t·N … t·N+N−1.
func (l *L2P) taskSlots() bool { return l.cfg.Selection == L2PTaskSlots }

// Params are the current task's slots and keys (task slots), or the whole
// pool and its keys.
func (l *L2P) Params() []*ag.Tensor { return []*ag.Tensor{l.pool, l.keys} }

// FreshOptimizer: every task starts with a new optimizer state.
func (l *L2P) FreshOptimizer() bool { return true }

// TestsFrozen: with task slots every task is tested with its own slots,
// which never change after it.
func (l *L2P) TestsFrozen() bool { return l.taskSlots() }

// BeginTask uploads task t's slots and keys as fresh trainable tensors
// (task slots); the instance-selected pool carries over.
func (l *L2P) BeginTask(t *Task) error {
	if t.Index < 0 || t.Index >= l.env.NumTasks {
		return fmt.Errorf("l2p: task index %d of a sequence of %d", t.Index, l.env.NumTasks)
	}
	l.task = t
	if !l.taskSlots() {
		return nil
	}
	l.releaseTask()
	e := l.env.Model.Engine()
	N, Lp, d := l.cfg.TopN, l.cfg.PromptLen, l.d
	lo, hi := t.Index*N, (t.Index+1)*N
	l.pool = e.Param("l2p.slots", hostRows(l.hostPool, Lp*d, lo, hi), N, Lp, d)
	l.keys = e.Param("l2p.slot_keys", hostRows(l.hostKeys, d, lo, hi), N, d)
	if err := e.Err(); err != nil {
		l.releaseTask()
		return err
	}
	return nil
}

// releaseTask frees the current task's slots (task slots).
func (l *L2P) releaseTask() {
	if l.taskSlots() {
		l.pool.Release()
		l.keys.Release()
		l.pool, l.keys = nil, nil
	}
}

// slots are task t's fixed pool slots t·N … t·N+N−1.
func (l *L2P) slots(t int) []int32 {
	N := l.cfg.TopN
	out := make([]int32, N)
	for j := range out {
		out[j] = int32(t*N + j)
	}
	return out
}

// needsQuery says whether a training step computes the query: to select
// by key, or for the key loss.
func (l *L2P) needsQuery() bool { return !l.taskSlots() || l.cfg.PullCoeff > 0 }

// selectTopN returns, for every row of q (B, d), the indices of the n
// keys (P, d) with the highest cosine similarity to it, in rank order,
// ties to the lower index: (B·n) values, row-major.
func selectTopN(q, keys []float32, B, P, d, n int) []int32 {
	out := make([]int32, 0, B*n)
	sim := make([]float64, P)
	order := make([]int, P)
	for b := 0; b < B; b++ {
		for j := 0; j < P; j++ {
			sim[j] = cosine64(q[b*d:(b+1)*d], keys[j*d:(j+1)*d])
			order[j] = j
		}
		slices.SortStableFunc(order, func(x, y int) int {
			switch {
			case sim[x] > sim[y]:
				return -1
			case sim[x] < sim[y]:
				return 1
			}
			return 0
		})
		for _, j := range order[:n] {
			out = append(out, int32(j))
		}
	}
	return out
}

// indices returns the rows' indices into the trainable pool (B·N): with
// task slots 0 … N−1 (the task's slots) for every row, otherwise the
// top-N keys of each row's query q (B·d values).
func (l *L2P) indices(q []float32, B int) ([]int32, error) {
	if l.taskSlots() {
		out := make([]int32, 0, B*l.cfg.TopN)
		for b := 0; b < B; b++ {
			for j := 0; j < l.cfg.TopN; j++ {
				out = append(out, int32(j))
			}
		}
		return out, nil
	}
	keys, err := l.keys.Float32s()
	if err != nil {
		return nil, err
	}
	return selectTopN(q, keys, B, l.P, l.d, l.cfg.TopN), nil
}

// gather records the prompts of the indices idx (B, N) int32 into pool
// (M, Lp, d): the selected prompts concatenated in rank order,
// (B, N·Lp, d). Gradients reach the selected prompts only.
func gather(pool, idx *ag.Tensor) *ag.Tensor {
	sc := pool.Engine().Scope()
	defer sc.End()
	M, Lp, d := pool.Dim(0), pool.Dim(1), pool.Dim(2)
	rows := ag.Embedding(pool.Reshape(M, Lp*d), idx) // (B, N, Lp·d)
	return sc.Keep(rows.Reshape(idx.Dim(0), idx.Dim(1)*Lp, d))
}

// keyLoss records the surrogate key loss of queries q (B, d) and slots
// idx (B, N): coeff·(N − reduce_sim) with reduce_sim = Σ_b Σ_k
// cos(q_b, key[idx[b,k]]) / B, l2p-pytorch's −coeff·reduce_sim shifted by
// the constant coeff·N (the same gradient, non-negative). (1,)
func (l *L2P) keyLoss(q, idx *ag.Tensor) *ag.Tensor {
	e := q.Engine()
	sc := e.Scope()
	defer sc.End()
	B, N := idx.Dim(0), idx.Dim(1)
	c := l.cfg.PullCoeff
	cos := ag.Cosine(ag.Expand(q, 1, N), ag.Embedding(l.keys, idx)) // (B, N)
	neg := ag.Scale(ag.Sum(cos), float32(-c/float64(B)))
	return sc.Keep(ag.Add(neg, e.Full(float32(c*float64(N)), 1)))
}

// l2pStep is L2P's training step for batches of B rows.
type l2pStep struct {
	l   *L2P
	B   int
	q   *queryInput // nil when the step needs no query
	idx *ag.Tensor  // (B, N) int32: each row's slots
}

// NewStep allocates the step's query and slot tensors.
func (l *L2P) NewStep(B int) (Step, error) {
	if l.task == nil {
		return nil, fmt.Errorf("l2p: NewStep outside a task")
	}
	m := l.env.Model
	e := m.Engine()
	st := &l2pStep{l: l, B: B}
	if l.needsQuery() {
		var err error
		if st.q, err = newQueryInput(m, B); err != nil {
			return nil, err
		}
	}
	st.idx = e.FromInt32(make([]int32, B*l.cfg.TopN), B, l.cfg.TopN)
	if err := e.Err(); err != nil {
		st.Release()
		return nil, err
	}
	return st, nil
}

// Write computes the batch's query and writes it and the rows' slots.
func (st *l2pStep) Write(b *Batch) error {
	l := st.l
	if b.Device == nil || b.Device.InputIDs.Dim(0) != st.B {
		return fmt.Errorf("l2p: a batch that is not of the step's %d rows", st.B)
	}
	var q []float32
	if st.q != nil {
		var err error
		if q, err = st.q.write(b.Device); err != nil {
			return err
		}
	}
	idx, err := l.indices(q, st.B)
	if err != nil {
		return err
	}
	return st.idx.WriteInt32(idx)
}

// Loss records the cross-entropy with the rows' prompts plus the key loss.
func (st *l2pStep) Loss(b *Batch) (*ag.Tensor, []Part) {
	l := st.l
	sc := l.pool.Engine().Scope()
	defer sc.End()
	out := l.env.Model.Forward(b.Device, t5.Options{Prompt: gather(l.pool, st.idx)})
	if out.Loss == nil {
		return nil, nil
	}
	ce := sc.Keep(out.Loss)
	if st.q == nil || l.cfg.PullCoeff == 0 {
		return ce, []Part{{"ce", ce}}
	}
	key := sc.Keep(l.keyLoss(st.q.q, st.idx))
	return sc.Keep(ag.Add(ce, key)), []Part{{"ce", ce}, {"key", key}}
}

// Release frees the step's tensors.
func (st *l2pStep) Release() {
	st.q.release()
	st.idx.Release()
}

// EvalPrompts: with task slots, task i's slots (the trainable ones while
// task i is learned, the stored ones after); otherwise the pool as it is
// now, with each row's top-N keys. Validation and test alike.
func (l *L2P) EvalPrompts(p Purpose, i int) (Prompter, error) {
	if i < 0 {
		return nil, fmt.Errorf("l2p: no task %d", i)
	}
	if !l.taskSlots() {
		return l2pSelection{l}, nil
	}
	e := l.env.Model.Engine()
	defer e.NoGrad()()
	N, Lp, d := l.cfg.TopN, l.cfg.PromptLen, l.d
	if l.task != nil && i == l.task.Index {
		return FixedPrompt{l.pool.Reshape(N*Lp, d)}, e.Err()
	}
	if p == Validation || i >= l.env.NumTasks || (l.task != nil && i > l.task.Index) {
		return nil, fmt.Errorf("l2p: no slots of task %d to %s", i, map[Purpose]string{Validation: "validate", Test: "test"}[p])
	}
	return FixedPrompt{e.FromFloat32(hostRows(l.hostPool, Lp*d, i*N, (i+1)*N), N*Lp, d)}, e.Err()
}

// l2pSelection gives each row of a batch the prompts of its top-N keys.
type l2pSelection struct{ l *L2P }

func (s l2pSelection) Prompt(b *Batch) (*ag.Tensor, error) {
	l := s.l
	e := l.env.Model.Engine()
	q, err := encoderQuery(l.env.Model, b.Device)
	if err != nil {
		return nil, err
	}
	B := b.Device.InputIDs.Dim(0)
	idx, err := l.indices(q, B)
	if err != nil {
		return nil, err
	}
	defer e.NoGrad()()
	sc := e.Scope()
	defer sc.End()
	return sc.Keep(gather(l.pool, e.FromInt32(idx, B, l.cfg.TopN))), e.Err()
}

func (l2pSelection) Release() {}

// EndTask stores the task's slots and keys (task slots; instance
// selection keeps training the whole pool), writes the pool and keys to
// l2p.safetensors and reports the task's slots, or with instance selection
// how often each slot is chosen over the task's training inputs.
func (l *L2P) EndTask() (map[string]any, error) {
	t := l.task
	if t == nil {
		return nil, fmt.Errorf("l2p: EndTask without BeginTask")
	}
	details := map[string]any{"pool_size": l.P}
	if l.taskSlots() {
		pool, err1 := l.pool.Float32s()
		keys, err2 := l.keys.Float32s()
		if err := firstErr(err1, err2); err != nil {
			return nil, err
		}
		N, n := l.cfg.TopN, l.cfg.PromptLen*l.d
		copy(hostRows(l.hostPool, n, t.Index*N, (t.Index+1)*N), pool)
		copy(hostRows(l.hostKeys, l.d, t.Index*N, (t.Index+1)*N), keys)
		details["slots"] = l.slots(t.Index)
	} else {
		counts, err := l.selectionCounts(t)
		if err != nil {
			return nil, err
		}
		details["selected"] = counts
	}
	if s := l.env.Store; s != nil {
		ts, err := l.State()
		if err != nil {
			return nil, err
		}
		meta := map[string]string{"after_task": t.Name, "index": fmt.Sprint(t.Index), "method": l.Name(),
			"top_n": fmt.Sprint(l.cfg.TopN), "selection": l.cfg.Selection}
		if err := s.WriteTensors("l2p.safetensors", ts, meta); err != nil {
			return nil, err
		}
	}
	l.releaseTask()
	l.task = nil
	return details, nil
}

// selectionCounts counts how often each pool slot is among the top-N of
// the task's training inputs.
func (l *L2P) selectionCounts(t *Task) ([]int, error) {
	m := l.env.Model
	counts := make([]int, l.P)
	bs := t.EvalBatch
	if bs < 1 {
		bs = max(t.BatchSize, 1)
	}
	for lo := 0; lo < len(t.Train); lo += bs {
		rows := t.Train[lo:min(lo+bs, len(t.Train))]
		inputs := make([][]int, len(rows))
		for i, r := range rows {
			inputs[i] = r.Input
		}
		b, err := m.NewBatch(inputs, nil, t.InputLen, 1)
		if err != nil {
			return nil, err
		}
		q, err := encoderQuery(m, b)
		b.Release()
		if err != nil {
			return nil, err
		}
		idx, err := l.indices(q, len(rows))
		if err != nil {
			return nil, err
		}
		for _, j := range idx {
			counts[j]++
		}
	}
	return counts, nil
}

// State is the whole pool and its keys.
func (l *L2P) State() ([]HostTensor, error) {
	Lp, d := l.cfg.PromptLen, l.d
	pool, keys := l.hostPool, l.hostKeys
	if !l.taskSlots() {
		var err1, err2 error
		pool, err1 = l.pool.Float32s()
		keys, err2 = l.keys.Float32s()
		if err := firstErr(err1, err2); err != nil {
			return nil, err
		}
	}
	return []HostTensor{{Name: "pool", Shape: []int{l.P, Lp, d}, Data: slices.Clone(pool)},
		{Name: "keys", Shape: []int{l.P, d}, Data: slices.Clone(keys)}}, nil
}

// SetState restores State's tensors.
func (l *L2P) SetState(ts []HostTensor) error {
	if err := onlyNames(ts, func(n string) bool { return n == "pool" || n == "keys" }); err != nil {
		return fmt.Errorf("l2p: %w", err)
	}
	if len(ts) != 2 {
		return fmt.Errorf("l2p: state holds %d tensors, not the pool and the keys", len(ts))
	}
	Lp, d := l.cfg.PromptLen, l.d
	pool, err1 := find(ts, "pool", l.P, Lp, d)
	keys, err2 := find(ts, "keys", l.P, d)
	if err := firstErr(err1, err2); err != nil {
		return fmt.Errorf("l2p: %w", err)
	}
	if l.taskSlots() {
		l.hostPool, l.hostKeys = slices.Clone(pool), slices.Clone(keys)
		return nil
	}
	return firstErr(l.pool.WriteFloat32(pool), l.keys.WriteFloat32(keys))
}

// Release frees the device memory.
func (l *L2P) Release() {
	l.pool.Release()
	l.keys.Release()
}

// setPromptLen gives the settings the run's prompt length.
func (c *L2PConfig) setPromptLen(n int) { c.PromptLen = n }
