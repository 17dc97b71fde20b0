package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Relu returns max(x, 0).
func Relu(x *Tensor) *Tensor { return activate("relu", x, kernels.ReLU) }

// GeluNew returns the tanh approximation of GELU that T5 v1.1 uses.
func GeluNew(x *Tensor) *Tensor { return activate("gelu_new", x, kernels.GELUNew) }

// SiLU returns x·sigmoid(x).
func SiLU(x *Tensor) *Tensor { return activate("silu", x, kernels.SiLU) }

func activate(op string, x *Tensor, act kernels.Activation) *Tensor {
	e := x.e
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

// GatedGelu returns gelu_new(a) ⊙ b, T5 v1.1's gated feed-forward
// activation (a = x·Wi0ᵀ, b = x·Wi1ᵀ), in one kernel.
func GatedGelu(a, b *Tensor) *Tensor {
	e := a.e
	const op = "gated_gelu"
	out, ok := e.binarySameShape(op, a, b)
	if !ok {
		return out
	}
	n := int64(a.Len())
	e.fail(kernels.GatedActivation(e.rec, out.Mem(), a.Mem(), b.Mem(), n, kernels.GELUNew))
	e.afterDispatch()
	if e.needsGrad(a, b) {
		e.record(op, out, []*Tensor{a, b}, []*Tensor{a, b}, func(g *Tensor) {
			if a.requiresGrad && b.requiresGrad && (a.grad == nil) == (b.grad == nil) {
				da, acc := e.gradDst(a)
				db, _ := e.gradDst(b)
				if e.ok() {
					e.fail(kernels.GatedActivationBackward(e.rec, da, db, g.Mem(), a.Mem(), b.Mem(), n, kernels.GELUNew, acc))
				}
				return
			}
			// The kernel writes both gradients; compute into temporaries
			// and keep the wanted ones.
			ta := e.newTensor(op, F32, a.shape...)
			tb := e.newTensor(op, F32, b.shape...)
			if e.ok() {
				e.fail(kernels.GatedActivationBackward(e.rec, ta.Mem(), tb.Mem(), g.Mem(), a.Mem(), b.Mem(), n, kernels.GELUNew, false))
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
