package autograd

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// AdamWConfig configures AdamW (torch.optim.AdamW's parameters) and the
// optional global gradient-norm clipping before it.
type AdamWConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	// MaxGradNorm > 0 clips the gradients' global norm to it first, as
	// torch.nn.utils.clip_grad_norm_.
	MaxGradNorm float32
}

// DefaultAdamWConfig is torch.optim.AdamW's default, without clipping.
var DefaultAdamWConfig = AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}

// AdamW updates parameters from their gradients. Its state (moments, step
// count, bias corrections, learning rate) lives on the device, so a step
// recorded into a Program replays correctly: every run advances the step.
type AdamW struct {
	e      *Engine
	params []*Tensor
	m, v   []*Tensor
	hyper  *Tensor // kernels.AdamWHyperLen slots
	cfg    AdamWConfig
	coef   *Tensor // clipping coefficient (1,)
	norm   *Tensor // total gradient norm before clipping (1,)
	sumsq  *Tensor // per-parameter sums of squares
}

// NewAdamW creates the optimizer for params with zero moments.
func NewAdamW(e *Engine, params []*Tensor, cfg AdamWConfig) (*AdamW, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("adamw: no parameters")
	}
	for _, p := range params {
		if p != nil && p.dtype != F32 {
			return nil, fmt.Errorf("adamw: parameter %v must be f32 (16-bit tensors are frozen storage)", p)
		}
	}
	o := &AdamW{e: e, params: params, cfg: cfg}
	for _, p := range params {
		if err := p.usable("adamw"); err != nil {
			return nil, err
		}
		o.m = append(o.m, e.Zeros(p.shape...))
		o.v = append(o.v, e.Zeros(p.shape...))
	}
	o.hyper = e.Zeros(kernels.AdamWHyperLen)
	o.coef = e.Zeros(1)
	o.norm = e.Zeros(1)
	o.sumsq = e.Zeros(len(params))
	if err := o.Reset(); err != nil {
		o.Release()
		return nil, err
	}
	return o, nil
}

// Reset zeroes the moments and the step count (a fresh optimizer).
func (o *AdamW) Reset() error {
	e := o.e
	for i := range o.m {
		e.fail(kernels.Fill(e.rec, o.m[i].Mem(), int64(o.m[i].Len()), 0))
		e.fail(kernels.Fill(e.rec, o.v[i].Mem(), int64(o.v[i].Len()), 0))
	}
	if err := e.Sync(); err != nil {
		return err
	}
	return o.write(0)
}

func (o *AdamW) write(step int64) error {
	c := o.cfg
	return kernels.WriteAdamWHyper(o.hyper.Mem(), kernels.AdamWHyper{LR: c.LR, Beta1: c.Beta1, Beta2: c.Beta2,
		Eps: c.Eps, WeightDecay: c.WeightDecay, Step: step})
}

// SetLR changes the learning rate (waits for recorded work).
func (o *AdamW) SetLR(lr float64) error {
	v, err := o.hyper.Float32s()
	if err != nil {
		return err
	}
	o.cfg.LR = lr
	return o.write(int64(v[kernels.HyperStep]))
}

// Step records one optimizer step: the step count advances, gradients are
// clipped if configured, every parameter with a gradient is updated.
// Parameters without a gradient are skipped, as torch does.
func (o *AdamW) Step() {
	e := o.e
	if !e.ok() {
		return
	}
	e.fail(kernels.AdamWStep(e.rec, o.hyper.Mem()))
	var clip kernels.Mem
	if o.cfg.MaxGradNorm > 0 {
		var grads []kernels.Mem
		var sizes []int64
		for _, p := range o.params {
			if p.grad != nil {
				grads = append(grads, p.grad.Mem())
				sizes = append(sizes, int64(p.Len()))
			}
		}
		if len(grads) > 0 {
			e.fail(kernels.ClipGradNorm(e.rec, o.coef.Mem(), o.norm.Mem(), o.sumsq.Mem(), grads, sizes, o.cfg.MaxGradNorm))
			clip = o.coef.Mem()
		}
	}
	for i, p := range o.params {
		if p.grad == nil || !e.ok() {
			continue
		}
		e.fail(kernels.AdamW(e.rec, p.Mem(), p.grad.Mem(), o.m[i].Mem(), o.v[i].Mem(), int64(p.Len()), o.hyper.Mem(), clip))
	}
	e.afterDispatch()
}

// GradNorm is the total gradient norm measured by the last clipping step
// (with MaxGradNorm > 0).
func (o *AdamW) GradNorm() *Tensor { return o.norm }

// ZeroGrad drops the parameters' gradients.
func (o *AdamW) ZeroGrad() {
	for _, p := range o.params {
		p.ZeroGrad()
	}
}

// AdamWState is the optimizer's state on the host, for checkpoints: the
// hyperparameter slots (learning rate, betas, step count and bias
// corrections, as the device holds them) and each parameter's moments.
type AdamWState struct {
	Hyper []float32   // kernels.AdamWHyperLen slots
	M, V  [][]float32 // per parameter, in the order given to NewAdamW
}

// State reads the optimizer's state (waits for recorded work).
func (o *AdamW) State() (AdamWState, error) {
	s := AdamWState{M: make([][]float32, len(o.m)), V: make([][]float32, len(o.v))}
	var err error
	if s.Hyper, err = o.hyper.Float32s(); err != nil {
		return AdamWState{}, err
	}
	for i := range o.m {
		if s.M[i], err = o.m[i].Float32s(); err != nil {
			return AdamWState{}, err
		}
		if s.V[i], err = o.v[i].Float32s(); err != nil {
			return AdamWState{}, err
		}
	}
	return s, nil
}

// SetState restores a state read by State from an optimizer over
// parameters of the same shapes. The values are written exactly, so that a
// restored optimizer continues bit for bit.
func (o *AdamW) SetState(s AdamWState) error {
	if len(s.Hyper) != kernels.AdamWHyperLen || len(s.M) != len(o.m) || len(s.V) != len(o.v) {
		return fmt.Errorf("adamw: state has %d hyper slots and %d/%d moments, the optimizer %d and %d parameters",
			len(s.Hyper), len(s.M), len(s.V), kernels.AdamWHyperLen, len(o.m))
	}
	for i := range o.m {
		if len(s.M[i]) != o.m[i].Len() || len(s.V[i]) != o.v[i].Len() {
			return fmt.Errorf("adamw: state of parameter %d (%v) has %d and %d moment values", i, o.params[i], len(s.M[i]), len(s.V[i]))
		}
	}
	for i := range o.m {
		if err := o.m[i].WriteFloat32(s.M[i]); err != nil {
			return err
		}
		if err := o.v[i].WriteFloat32(s.V[i]); err != nil {
			return err
		}
	}
	return o.hyper.WriteFloat32(s.Hyper)
}

// Release frees the optimizer's state.
func (o *AdamW) Release() {
	for _, t := range append(append([]*Tensor{o.hyper, o.coef, o.norm, o.sumsq}, o.m...), o.v...) {
		t.Release()
	}
}
