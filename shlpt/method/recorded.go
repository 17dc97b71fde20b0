package method

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// RecordedStep is a method's training step for batches of B rows recorded
// once as a program (the loss, backward and the optimizer's step) that
// reads the step's own batch tensors: Write fills them, Run replays it.
// Shapes repeat within a task (its input and target lengths are fixed), so
// one recording serves every batch of that size.
type RecordedStep struct {
	Batch *t5.Batch // (B, InputLen) inputs and (B, TargetLen) targets the program reads
	m     *t5.Model
	step  Step
	prog  *ag.Program
	loss  *ag.Tensor
	parts []Part
}

// RecordStep records meth's training step for batches of B rows of task,
// with opt's update.
func RecordStep(m *t5.Model, meth Method, opt *ag.AdamW, task *Task, B int) (*RecordedStep, error) {
	e := m.Engine()
	eos := make([][]int, B)
	for i := range eos {
		eos[i] = []int{m.Config.EOSTokenID}
	}
	batch, err := m.NewBatch(eos, eos, task.InputLen, task.TargetLen)
	if err != nil {
		return nil, err
	}
	step, err := meth.NewStep(B)
	if err != nil {
		batch.Release()
		return nil, err
	}
	r := &RecordedStep{Batch: batch, m: m, step: step}
	r.prog, err = e.Capture(func() error {
		loss, parts := step.Loss(&Batch{Device: batch})
		if loss == nil {
			return fmt.Errorf("the step's forward pass failed: %w", e.Err())
		}
		if err := e.Backward(loss); err != nil {
			return err
		}
		opt.Step()
		opt.ZeroGrad()
		r.loss, r.parts = loss, parts
		return e.Err()
	})
	if err != nil {
		r.Release()
		return nil, err
	}
	return r, nil
}

// Write fills the step with rows (indices into train) of the given epoch
// and step: the batch tensors, then the method's own per-batch data.
func (r *RecordedStep) Write(train []Example, rows []int, epoch, step int) (*Batch, error) {
	exs := make([]Example, len(rows))
	inputs := make([][]int, len(rows))
	targets := make([][]int, len(rows))
	for i, k := range rows {
		exs[i] = train[k]
		inputs[i], targets[i] = exs[i].Input, exs[i].Target
	}
	if err := r.m.WriteBatch(r.Batch, inputs, targets); err != nil {
		return nil, err
	}
	b := &Batch{Index: rows, Examples: exs, Device: r.Batch, Epoch: epoch, Step: step}
	if err := r.step.Write(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Run replays the program and reads the loss and its parts.
func (r *RecordedStep) Run() (float64, map[string]float64, error) {
	if err := r.prog.Run(); err != nil {
		return 0, nil, err
	}
	loss, err := r.loss.Item()
	if err != nil {
		return 0, nil, err
	}
	parts := map[string]float64{}
	for _, p := range r.parts {
		v, err := p.Value.Item()
		if err != nil {
			return 0, nil, err
		}
		parts[p.Name] = float64(v)
	}
	return float64(loss), parts, nil
}

// Dispatches is the number of kernel dispatches the program replays.
func (r *RecordedStep) Dispatches() int { return r.prog.Dispatches() }

// Release frees the program, the method's step and the batch.
func (r *RecordedStep) Release() {
	if r.prog != nil {
		r.prog.Release()
		r.prog = nil
	}
	if r.step != nil {
		r.step.Release()
		r.step = nil
	}
	if r.Batch != nil {
		r.Batch.Release()
		r.Batch = nil
	}
}
