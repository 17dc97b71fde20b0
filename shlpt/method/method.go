// Package method holds the lifelong learning methods that the runner
// (shlpt/run) trains task after task: SHLPT and the prompt-tuning
// baselines. A method answers the runner's questions — what to do when a
// task begins, the loss of one training batch, what to store when the task
// ends, which prompt to evaluate a task with, and what to save in a
// checkpoint — and the runner never branches on its name.
//
// Methods use the T5 model and the autograd engine; they know nothing of
// files other than what they hand to Env.Store.
package method

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Example is one encoded example: input ids ending with </s> (unpadded,
// at most the run's input length) and target ids ending with </s>.
type Example struct {
	Input, Target []int
}

// Task is the task a method is learning.
type Task struct {
	// Index is the task's position in the sequence (0-based); Name its name.
	Index int
	Name  string
	// Train are the task's training examples; batches refer to them by
	// index.
	Train []Example
	// InputLen is the padded input length of training batches, TargetLen
	// the target length (both fixed for the task, so recorded steps replay).
	InputLen, TargetLen int
	// BatchSize is the training batch size; EvalBatch the batch size of
	// passes without gradients.
	BatchSize, EvalBatch int
}

// Batch is one training or evaluation batch: the rows' example indices
// (into Task.Train for training batches; nil for evaluation), their host
// data and the model's device batch.
type Batch struct {
	Index    []int
	Examples []Example
	Device   *t5.Batch
	// Epoch and Step place a training batch in the task (for random draws
	// that must repeat when a run resumes).
	Epoch, Step int
}

// Part is one named term of a loss, for logging.
type Part struct {
	Name  string
	Value *ag.Tensor // one element
}

// Step is a method's training step for batches of one size. The runner
// creates it once per task and batch size, writes every batch with Write
// and records Loss once into a replayed program, so Loss must read
// per-batch data only from tensors that Write fills.
type Step interface {
	// Write uploads the method's per-batch inputs for b (before each run).
	Write(b *Batch) error
	// Loss records the training loss of the batch in b.Device (whose
	// tensors the runner refills) and its parts. The loss is what the
	// runner differentiates.
	Loss(b *Batch) (loss *ag.Tensor, parts []Part)
	// Release frees the step's tensors.
	Release()
}

// Purpose says what an evaluation prompt is for.
type Purpose int

// Purposes of EvalPrompt.
const (
	// Validation scores the task being learned, for early stopping.
	Validation Purpose = iota
	// Test scores a learned task after a task has ended (valid and test
	// sets alike).
	Test
)

// Prompter gives the encoder prompt of each batch of an evaluation pass.
type Prompter interface {
	// Prompt returns the prompt ((Lp, d), or (B, Lp, d) for one per row) for
	// batch b, or nil for no prompt. The caller releases it.
	Prompt(b *Batch) (*ag.Tensor, error)
	Release()
}

// FixedPrompt is a Prompter with the same prompt for every batch (nil: no
// prompt); it owns p.
type FixedPrompt struct{ P *ag.Tensor }

// Prompt returns a new handle on the prompt.
func (f FixedPrompt) Prompt(*Batch) (*ag.Tensor, error) {
	if f.P == nil {
		return nil, nil
	}
	return f.P.Reshape(f.P.Shape()...), f.P.Engine().Err()
}

// Release frees the prompt.
func (f FixedPrompt) Release() { f.P.Release() }

// HostTensor is a named float32 tensor on the host.
type HostTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Store writes a method's artifacts into the run directory, atomically.
type Store interface {
	// WriteTensors writes a safetensors file at the path relative to the
	// run directory.
	WriteTensors(rel string, ts []HostTensor, meta map[string]string) error
	// WriteJSON writes v as indented JSON at the relative path.
	WriteJSON(rel string, v any) error
}

// Env is what a method works with.
type Env struct {
	Model *t5.Model
	// Seed is the run's seed; methods draw random streams with Stream.
	Seed uint64
	// NumTasks is the length of the task sequence.
	NumTasks int
	// PromptLen is the run's --prompt-len (what it means is the method's).
	PromptLen int
	Store     Store
	// Scratch is a folder for large temporary files (SHLPT's negatives);
	// empty means the system's temporary folder.
	Scratch string
	// Logf reports progress of long preparations (may be nil).
	Logf func(format string, args ...any)
}

func (e *Env) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
	}
}

// Method is one lifelong learning method (registered in registry.go).
// Its trainable state between steps is its Params, named uniquely:
// Snapshot and Restore read and write them.
type Method interface {
	// Name is the method's name as --method gives it.
	Name() string
	// BeginTask prepares task t: its fresh trainable state and whatever it
	// precomputes. The runner sets the model's dropout stream first, so
	// random work here is deterministic.
	BeginTask(t *Task) error
	// Params are the tensors the task's optimizer updates. They must be the
	// same tensors for every task when the optimizer carries over.
	Params() []*ag.Tensor
	// FreshOptimizer reports whether every task starts with a new
	// optimizer state (otherwise the state carries over between tasks).
	FreshOptimizer() bool
	// NewStep returns the training step for batches of B rows.
	NewStep(B int) (Step, error)
	// EvalPrompts returns the prompts of one evaluation pass over task i
	// (task i ≤ the current task); the caller releases it after the pass.
	EvalPrompts(p Purpose, i int) (Prompter, error)
	// EndTask stores what the task learned (its trainable state is the
	// restored best). It returns details for the run's results.
	EndTask() (map[string]any, error)
	// State is the method's state between tasks (what EndTask kept) for a
	// checkpoint; SetState restores it into a freshly built method before
	// BeginTask of the next task to run.
	State() ([]HostTensor, error)
	SetState([]HostTensor) error
	// Release frees the method's device memory.
	Release()
}

// Frozen is implemented by methods that test every task with what they
// stored when it ended, never changed afterwards, on frozen weights: their
// earlier tasks' scores cannot move, so the runner carries them over
// instead of evaluating again.
type Frozen interface {
	TestsFrozen() bool
}

// Stream returns a random stream that depends only on the seed and the
// names: every random draw of a run (prompt initialization, shuffles,
// dropout seeds) comes from its own stream, so a resumed run draws exactly
// what an uninterrupted one does.
func Stream(seed uint64, names ...any) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte("shlpt-vk/stream"))
	for _, n := range names {
		fmt.Fprintf(h, "\x00%v", n)
	}
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// Snapshot reads a method's trainable state (the "best state" of early
// stopping): its Params, each under its name.
func Snapshot(m Method) ([]HostTensor, error) { return SnapshotParams(m.Params()) }

// Restore writes a Snapshot back into the method's Params.
func Restore(m Method, ts []HostTensor) error { return RestoreParams(m.Params(), ts) }

// SnapshotParams reads trainable tensors, each under its name (names must
// be unique).
func SnapshotParams(ps []*ag.Tensor) ([]HostTensor, error) {
	out := make([]HostTensor, 0, len(ps))
	for _, p := range ps {
		v, err := p.Float32s()
		if err != nil {
			return nil, err
		}
		out = append(out, HostTensor{Name: p.Name(), Shape: p.Shape(), Data: v})
	}
	return out, nil
}

// RestoreParams writes a snapshot back into the tensors of the same names
// and shapes; a missing, misshapen or extra tensor is an error naming it.
func RestoreParams(ps []*ag.Tensor, ts []HostTensor) error {
	if len(ts) != len(ps) {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = t.Name
		}
		want := make([]string, len(ps))
		for i, p := range ps {
			want[i] = p.Name()
		}
		return fmt.Errorf("a snapshot of %d tensors (%s) for %d trainable ones (%s)", len(ts), strings.Join(names, ", "), len(ps), strings.Join(want, ", "))
	}
	for _, p := range ps {
		v, err := find(ts, p.Name(), p.Shape()...)
		if err != nil {
			return err
		}
		if err := p.WriteFloat32(v); err != nil {
			return err
		}
	}
	return nil
}

// find returns the tensor named name of ts, checking its shape.
func find(ts []HostTensor, name string, shape ...int) ([]float32, error) {
	for _, t := range ts {
		if t.Name != name {
			continue
		}
		n := 1
		for _, d := range shape {
			n *= d
		}
		if len(t.Data) != n || !slices.Equal(t.Shape, shape) {
			return nil, fmt.Errorf("state tensor %q is %v with %d values, expected %v", name, t.Shape, len(t.Data), shape)
		}
		return t.Data, nil
	}
	return nil, fmt.Errorf("state tensor %q is missing", name)
}
