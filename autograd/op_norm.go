package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// RMSNorm is T5's layer norm: w ⊙ x · rsqrt(mean(x²) + eps) over the last
// axis. x is (..., C), w is (C,).
func RMSNorm(x, w *Tensor, eps float32) *Tensor {
	e := x.e
	const op = "rmsnorm"
	if !e.inputsOK(op, x, w) {
		return e.poisoned(x.shape, F32)
	}
	C := x.d(-1)
	if x.Rank() < 1 || w.Len() != C {
		e.failf("%s: x %v and weight %v", op, x, w)
		return e.poisoned(x.shape, F32)
	}
	rows := x.Len() / C
	out := e.newTensor(op, F32, x.shape...)
	rstd := e.newTensor(op, F32, rows)
	if e.ok() {
		e.fail(kernels.RMSNorm(e.rec, out.Mem(), rstd.Mem(), x.Mem(), w.Mem(), rows, C, eps))
		e.afterDispatch()
	}
	if e.needsGrad(x, w) {
		e.record(op, out, []*Tensor{x, w}, []*Tensor{x, w, rstd}, func(g *Tensor) {
			if x.requiresGrad {
				dst, acc := e.gradDst(x)
				if e.ok() {
					e.fail(kernels.RMSNormBackward(e.rec, dst, g.Mem(), x.Mem(), w.Mem(), rstd.Mem(), rows, C, acc))
				}
			}
			if w.requiresGrad {
				dst, acc := e.gradDst(w)
				if e.ok() {
					e.fail(kernels.RMSNormWeightGrad(e.rec, dst, g.Mem(), x.Mem(), rstd.Mem(), rows, C, acc))
				}
			}
		})
	}
	rstd.Release() // the tape holds its own reference when needed
	return out
}

// LayerNorm normalizes the last axis to zero mean and unit variance, then
// applies w ⊙ · + b. x is (..., C), w and b are (C,).
func LayerNorm(x, w, b *Tensor, eps float32) *Tensor {
	e := x.e
	const op = "layernorm"
	if !e.inputsOK(op, x, w, b) {
		return e.poisoned(x.shape, F32)
	}
	C := x.d(-1)
	if x.Rank() < 1 || w.Len() != C || b.Len() != C {
		e.failf("%s: x %v, weight %v, bias %v", op, x, w, b)
		return e.poisoned(x.shape, F32)
	}
	rows := x.Len() / C
	out := e.newTensor(op, F32, x.shape...)
	mean := e.newTensor(op, F32, rows)
	rstd := e.newTensor(op, F32, rows)
	if e.ok() {
		e.fail(kernels.LayerNorm(e.rec, out.Mem(), mean.Mem(), rstd.Mem(), x.Mem(), w.Mem(), b.Mem(), rows, C, eps))
		e.afterDispatch()
	}
	if e.needsGrad(x, w, b) {
		e.record(op, out, []*Tensor{x, w, b}, []*Tensor{x, w, mean, rstd}, func(g *Tensor) {
			if x.requiresGrad {
				dst, acc := e.gradDst(x)
				if e.ok() {
					e.fail(kernels.LayerNormBackward(e.rec, dst, g.Mem(), x.Mem(), w.Mem(), mean.Mem(), rstd.Mem(), rows, C, acc))
				}
			}
			// The weight and bias gradients share one pass; a frozen one is
			// a nil Mem.
			var dw, db kernels.Mem
			accW, accB := false, false
			if w.requiresGrad {
				dw, accW = e.gradDst(w)
			}
			if b.requiresGrad {
				db, accB = e.gradDst(b)
			}
			if !e.ok() || (!w.requiresGrad && !b.requiresGrad) {
				return
			}
			if accW == accB || !w.requiresGrad || !b.requiresGrad {
				acc := accW || accB
				e.fail(kernels.LayerNormWeightGrad(e.rec, dw, db, g.Mem(), x.Mem(), mean.Mem(), rstd.Mem(), rows, C, acc))
				return
			}
			// One accumulates and the other is fresh: two passes.
			e.fail(kernels.LayerNormWeightGrad(e.rec, dw, kernels.Mem{}, g.Mem(), x.Mem(), mean.Mem(), rstd.Mem(), rows, C, accW))
			e.fail(kernels.LayerNormWeightGrad(e.rec, kernels.Mem{}, db, g.Mem(), x.Mem(), mean.Mem(), rstd.Mem(), rows, C, accB))
		})
	}
	mean.Release()
	rstd.Release()
	return out
}
