package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Softmax over the last axis of attention scores x (B, H, Tq, Tk), after
// adding bias (H, Tq, Tk, broadcast over B; nil for none; differentiable)
// and the additive key mask (B, Tk; nil for none; 0 for real keys, a large
// negative number for padding), with future keys masked when causal.
// Masked keys get probability 0; a row with every key masked is uniform.
func Softmax(x, bias, mask *Tensor, causal bool) *Tensor {
	e := x.e
	const op = "softmax"
	ins := []*Tensor{x}
	if bias != nil {
		ins = append(ins, bias)
	}
	if mask != nil {
		ins = append(ins, mask)
	}
	if !e.inputsOK(op, ins...) {
		return e.poisoned(x.shape, F32)
	}
	if x.Rank() != 4 {
		e.failf("%s: scores %v must be (B, H, Tq, Tk)", op, x)
		return e.poisoned(x.shape, F32)
	}
	B, H, Tq, Tk := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	var o kernels.SoftmaxOpts
	o.Causal = causal
	if bias != nil {
		if !sameShape(bias.shape, []int{H, Tq, Tk}) {
			e.failf("%s: bias %v must be (%d, %d, %d) for scores %v", op, bias, H, Tq, Tk, x)
			return e.poisoned(x.shape, F32)
		}
		o.Bias = bias.Mem()
	}
	if mask != nil {
		if !sameShape(mask.shape, []int{B, Tk}) {
			e.failf("%s: mask %v must be (%d, %d) for scores %v", op, mask, B, Tk, x)
			return e.poisoned(x.shape, F32)
		}
		o.Mask = mask.Mem()
	}
	out := e.newTensor(op, F32, x.shape...)
	if !e.ok() {
		return out
	}
	e.fail(kernels.Softmax(e.rec, out.Mem(), x.Mem(), B, H, Tq, Tk, o))
	e.afterDispatch()
	biasGrad := bias != nil && bias.requiresGrad
	if e.needsGrad(x, bias) {
		e.record(op, out, []*Tensor{x, bias}, []*Tensor{out}, func(g *Tensor) {
			rows := B * H * Tq
			if !biasGrad {
				dst, acc := e.gradDst(x)
				if e.ok() {
					e.fail(kernels.SoftmaxBackward(e.rec, dst, g.Mem(), out.Mem(), rows, Tk, acc))
				}
				return
			}
			// The bias gradient is the score gradient summed over B.
			dx := e.newTensor(op, F32, x.shape...)
			if !e.ok() {
				return
			}
			e.fail(kernels.SoftmaxBackward(e.rec, dx.Mem(), g.Mem(), out.Mem(), rows, Tk, false))
			db, acc := e.gradDst(bias)
			if e.ok() {
				e.fail(kernels.SoftmaxBiasBackward(e.rec, db, dx.Mem(), B, H, Tq, Tk, acc))
			}
			if x.requiresGrad {
				e.accumulateGrad(x, dx.Mem())
			}
			dx.Release()
		})
	}
	return out
}
