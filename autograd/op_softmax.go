package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Softmax over the last axis of attention scores x (B, H, Tq, Tk), after
// adding bias (H, Tq, Tk, broadcast over B; nil for none; differentiable)
// and the additive key mask (B, Tk; nil for none; 0 for real keys, a large
// negative number for padding), with future keys masked when causal.
// Masked keys get probability 0; a row with every key masked is uniform.
func Softmax(x, bias, mask *Tensor, causal bool) *Tensor {
	y, _ := softmax("softmax", x, bias, mask, causal, nil)
	return y
}

// SoftmaxDropout is Dropout(Softmax(x, bias, mask, causal), p, seed, site),
// with the same mask as Dropout, in one pass over the scores forward and one
// backward: attention dropout without passes of its own over the
// probabilities.
func SoftmaxDropout(x, bias, mask *Tensor, causal bool, p float32, seed *Tensor, site uint32) *Tensor {
	e := x.e
	const op = "softmax_dropout"
	if !e.seedOK(op, seed) {
		return e.poisoned(x.shape, F32)
	}
	y, yd := softmax(op, x, bias, mask, causal, &softmaxDrop{p: p, seed: seed, site: site})
	y.Release() // kept by the tape where backward needs it
	return yd
}

// softmaxDrop is the dropout of SoftmaxDropout.
type softmaxDrop struct {
	p    float32
	seed *Tensor
	site uint32
}

// softmax records the softmax of x, and with drop also its dropout (yd).
// The tape node belongs to the output the caller uses: y without drop, yd
// with it.
func softmax(op string, x, bias, mask *Tensor, causal bool, drop *softmaxDrop) (y, yd *Tensor) {
	e := x.e
	ins := []*Tensor{x}
	if bias != nil {
		ins = append(ins, bias)
	}
	if mask != nil {
		ins = append(ins, mask)
	}
	if !e.inputsOK(op, ins...) {
		return e.poisoned(x.shape, F32), e.poisoned(x.shape, F32)
	}
	if x.Rank() != 4 {
		e.failf("%s: scores %v must be (B, H, Tq, Tk)", op, x)
		return e.poisoned(x.shape, F32), e.poisoned(x.shape, F32)
	}
	B, H, Tq, Tk := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	var o kernels.SoftmaxOpts
	o.Causal = causal
	if bias != nil {
		if !sameShape(bias.shape, []int{H, Tq, Tk}) {
			e.failf("%s: bias %v must be (%d, %d, %d) for scores %v", op, bias, H, Tq, Tk, x)
			return e.poisoned(x.shape, F32), e.poisoned(x.shape, F32)
		}
		o.Bias = bias.Mem()
	}
	if mask != nil {
		if !sameShape(mask.shape, []int{B, Tk}) {
			e.failf("%s: mask %v must be (%d, %d) for scores %v", op, mask, B, Tk, x)
			return e.poisoned(x.shape, F32), e.poisoned(x.shape, F32)
		}
		o.Mask = mask.Mem()
	}
	y = e.newTensor(op, F32, x.shape...)
	out := y // the output the tape node belongs to
	if drop != nil {
		yd = e.newTensor(op, F32, x.shape...)
		out = yd
		o.Dropout = kernels.DropoutMask{P: drop.p, Seed: drop.seed.Mem(), Site: drop.site}
		o.DropoutOut = yd.Mem()
	}
	if !e.ok() {
		return y, yd
	}
	e.fail(kernels.Softmax(e.rec, y.Mem(), x.Mem(), B, H, Tq, Tk, o))
	e.afterDispatch()
	if !e.needsGrad(x, bias) {
		return y, yd
	}
	rows := B * H * Tq
	// backward writes the score gradient for the output gradient g to dst.
	backward := func(dst kernels.Mem, g *Tensor, acc bool) error {
		return kernels.SoftmaxBackward(e.rec, dst, g.Mem(), y.Mem(), rows, Tk, acc)
	}
	saved := []*Tensor{y}
	if drop != nil {
		// The seed may advance before backward runs (as for Dropout).
		kept := e.keepSeed(op, drop.seed)
		saved = append(saved, kept)
		m := kernels.DropoutMask{P: drop.p, Seed: kept.Mem(), Site: drop.site}
		backward = func(dst kernels.Mem, g *Tensor, acc bool) error {
			return kernels.SoftmaxDropoutBackward(e.rec, dst, g.Mem(), y.Mem(), rows, Tk, m, acc)
		}
		defer kept.Release()
	}
	biasGrad := bias != nil && bias.requiresGrad
	e.record(op, out, []*Tensor{x, bias}, saved, func(g *Tensor) {
		if !biasGrad {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(backward(dst, g, acc))
			}
			return
		}
		// The bias gradient is the score gradient summed over B.
		dx := e.newTensor(op, F32, x.shape...)
		if !e.ok() {
			return
		}
		e.fail(backward(dx.Mem(), g, false))
		db, acc := e.gradDst(bias)
		if e.ok() {
			e.fail(kernels.SoftmaxBiasBackward(e.rec, db, dx.Mem(), B, H, Tq, Tk, acc))
		}
		if x.requiresGrad {
			e.accumulateGrad(x, dx.Mem())
		}
		dx.Release()
	})
	return y, yd
}
