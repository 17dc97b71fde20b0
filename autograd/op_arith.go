package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Mul returns a ⊙ b (same shapes).
func Mul(a, b *Tensor) *Tensor {
	e := a.e
	const op = "mul"
	out, ok := e.binarySameShape(op, a, b)
	if !ok {
		return out
	}
	n := int64(a.Len())
	e.fail(kernels.Mul(e.rec, out.Mem(), a.Mem(), b.Mem(), n))
	e.afterDispatch()
	if e.needsGrad(a, b) {
		e.record(op, out, []*Tensor{a, b}, []*Tensor{a, b}, func(g *Tensor) {
			// Each gradient separately: one may accumulate, the other not.
			if a.requiresGrad {
				da, acc := e.gradDst(a)
				if e.ok() {
					e.fail(kernels.MulBackward(e.rec, da, kernels.Mem{}, g.Mem(), a.Mem(), b.Mem(), n, acc))
				}
			}
			if b.requiresGrad {
				db, acc := e.gradDst(b)
				if e.ok() {
					e.fail(kernels.MulBackward(e.rec, kernels.Mem{}, db, g.Mem(), a.Mem(), b.Mem(), n, acc))
				}
			}
		})
	}
	return out
}

// Scale returns s·x.
func Scale(x *Tensor, s float32) *Tensor {
	e := x.e
	const op = "scale"
	if !e.inputsOK(op, x) {
		return e.poisoned(x.shape, F32)
	}
	n := int64(x.Len())
	out := e.newTensor(op, F32, x.shape...)
	if e.ok() {
		e.fail(kernels.Scale(e.rec, out.Mem(), x.Mem(), n, s))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.ScaleBackward(e.rec, dst, g.Mem(), n, s, acc))
			}
		})
	}
	return out
}

// ScaleBy returns s[0]·x where s is a one-element tensor (both
// differentiable).
func ScaleBy(x, s *Tensor) *Tensor {
	e := x.e
	const op = "scale_by"
	if !e.inputsOK(op, x, s) {
		return e.poisoned(x.shape, F32)
	}
	if s.Len() != 1 {
		e.failf("%s: scale %v must have one element", op, s)
		return e.poisoned(x.shape, F32)
	}
	n := int64(x.Len())
	out := e.newTensor(op, F32, x.shape...)
	if e.ok() {
		e.fail(kernels.ScaleBy(e.rec, out.Mem(), x.Mem(), s.Mem(), n))
		e.afterDispatch()
	}
	if e.needsGrad(x, s) {
		e.record(op, out, []*Tensor{x, s}, []*Tensor{x, s}, func(g *Tensor) {
			if x.requiresGrad {
				dx, acc := e.gradDst(x)
				if e.ok() {
					e.fail(kernels.ScaleByBackward(e.rec, dx, kernels.Mem{}, g.Mem(), x.Mem(), s.Mem(), n, acc))
				}
			}
			if s.requiresGrad {
				ds, acc := e.gradDst(s)
				if e.ok() {
					e.fail(kernels.ScaleByBackward(e.rec, kernels.Mem{}, ds, g.Mem(), x.Mem(), s.Mem(), n, acc))
				}
			}
		})
	}
	return out
}

// AddRow returns x + b with b (C,) added to every row of x (..., C).
func AddRow(x, b *Tensor) *Tensor {
	e := x.e
	const op = "add_row"
	if !e.inputsOK(op, x, b) {
		return e.poisoned(x.shape, F32)
	}
	C := int64(x.d(-1))
	if x.Rank() < 1 || int64(b.Len()) != C {
		e.failf("%s: row vector %v does not match %v", op, b, x)
		return e.poisoned(x.shape, F32)
	}
	rows := int64(x.Len()) / C
	out := e.newTensor(op, F32, x.shape...)
	if e.ok() {
		e.fail(kernels.AddRow(e.rec, out.Mem(), x.Mem(), b.Mem(), rows, C))
		e.afterDispatch()
	}
	if e.needsGrad(x, b) {
		e.record(op, out, []*Tensor{x, b}, nil, func(g *Tensor) {
			if x.requiresGrad {
				e.accumulateGrad(x, g.Mem())
			}
			if b.requiresGrad {
				db, acc := e.gradDst(b)
				if e.ok() {
					e.fail(kernels.AddRowBackward(e.rec, kernels.Mem{}, db, g.Mem(), rows, C, acc))
				}
			}
		})
	}
	return out
}
