package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Relu returns max(x, 0).
func Relu(x *Tensor) *Tensor { return Activate(x, kernels.ReLU) }

// GeluNew returns the tanh approximation of GELU that T5 v1.1 uses.
func GeluNew(x *Tensor) *Tensor { return Activate(x, kernels.GELUNew) }

// SiLU returns x·sigmoid(x).
func SiLU(x *Tensor) *Tensor { return Activate(x, kernels.SiLU) }

// Activate returns act(x) elementwise.
func Activate(x *Tensor, act kernels.Activation) *Tensor {
	e := x.e
	op := act.String()
	if !e.inputsOK(op, x) {
		return e.poisoned(x.shape, F32)
	}
	n := int64(x.Len())
	out := e.newTensor(op, F32, x.shape...)
	if e.ok() {
		e.fail(kernels.Activate(e.rec, out.Mem(), x.Mem(), n, act))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, []*Tensor{x}, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.ActivateBackward(e.rec, dst, g.Mem(), x.Mem(), n, act, acc))
			}
		})
	}
	return out
}

// Gated returns act(a) ⊙ b, in one kernel: T5's gated feed-forward
// activation (a = x·Wi0ᵀ, b = x·Wi1ᵀ, the same shape; gelu_new in v1.1).
func Gated(a, b *Tensor, act kernels.Activation) *Tensor {
	e := a.e
	op := "gated_" + act.String()
	out, ok := e.binarySameShape(op, a, b)
	if !ok {
		return out
	}
	n := int64(a.Len())
	e.fail(kernels.GatedActivation(e.rec, out.Mem(), a.Mem(), b.Mem(), n, act))
	e.afterDispatch()
	if e.needsGrad(a, b) {
		e.record(op, out, []*Tensor{a, b}, []*Tensor{a, b}, func(g *Tensor) {
			if a.requiresGrad && b.requiresGrad && (a.grad == nil) == (b.grad == nil) {
				da, acc := e.gradDst(a)
				db, _ := e.gradDst(b)
				if e.ok() {
					e.fail(kernels.GatedActivationBackward(e.rec, da, db, g.Mem(), a.Mem(), b.Mem(), n, act, acc))
				}
				return
			}
			// The kernel writes both gradients; compute into temporaries
			// and keep the wanted ones.
			ta := e.newTensor(op, F32, a.shape...)
			tb := e.newTensor(op, F32, b.shape...)
			if e.ok() {
				e.fail(kernels.GatedActivationBackward(e.rec, ta.Mem(), tb.Mem(), g.Mem(), a.Mem(), b.Mem(), n, act, false))
			}
			if a.requiresGrad {
				e.accumulateGrad(a, ta.Mem())
			}
			if b.requiresGrad {
				e.accumulateGrad(b, tb.Mem())
			}
			ta.Release()
			tb.Release()
		})
	}
	return out
}
