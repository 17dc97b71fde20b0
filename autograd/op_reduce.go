package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Sum returns the sum of all elements of x, one element.
func Sum(x *Tensor) *Tensor { return reduceAll("sum", x, false) }

// Mean returns the mean of all elements of x, one element.
func Mean(x *Tensor) *Tensor { return reduceAll("mean", x, true) }

func reduceAll(op string, x *Tensor, mean bool) *Tensor {
	e := x.e
	if !e.inputsOK(op, x) {
		return e.poisoned([]int{1}, F32)
	}
	n := int64(x.Len())
	out := e.newTensor(op, F32, 1)
	if e.ok() {
		if mean {
			e.fail(kernels.Mean(e.rec, out.Mem(), x.Mem(), 1, n, 1))
		} else {
			e.fail(kernels.Sum(e.rec, out.Mem(), x.Mem(), 1, n, 1))
		}
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if !e.ok() {
				return
			}
			if mean {
				e.fail(kernels.MeanBackward(e.rec, dst, g.Mem(), 1, n, 1, acc))
			} else {
				e.fail(kernels.SumBackward(e.rec, dst, g.Mem(), 1, n, 1, acc))
			}
		})
	}
	return out
}

// SumAxis sums x over one axis (removed from the shape).
func SumAxis(x *Tensor, axis int) *Tensor {
	e := x.e
	const op = "sum_axis"
	axis = normAxis(axis, x.Rank())
	shape := x.Shape()
	if axis >= 0 && axis < x.Rank() {
		shape = append(shape[:axis], x.shape[axis+1:]...)
	}
	if len(shape) == 0 {
		shape = []int{1}
	}
	if !e.inputsOK(op, x) {
		return e.poisoned(shape, F32)
	}
	if axis < 0 || axis >= x.Rank() {
		e.failf("%s: axis %d of %v", op, axis, x)
		return e.poisoned(shape, F32)
	}
	outer, a, inner := seqView(x.shape, axis)
	out := e.newTensor(op, F32, shape...)
	if e.ok() {
		e.fail(kernels.Sum(e.rec, out.Mem(), x.Mem(), outer, a, inner))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.SumBackward(e.rec, dst, g.Mem(), outer, a, inner, acc))
			}
		})
	}
	return out
}

// MaxPool returns the maximum over the sequence axis of x (B, T, C),
// ignoring positions where mask (B, T) is 0 (nil: no mask): (B, C).
// Columns with every position masked give 0.
func MaxPool(x, mask *Tensor) *Tensor {
	e := x.e
	const op = "max_pool"
	ins := []*Tensor{x}
	if mask != nil {
		ins = append(ins, mask)
	}
	placeholder := []int{x.d(0), x.d(2)}
	if !e.inputsOK(op, ins...) {
		return e.poisoned(placeholder, F32)
	}
	if x.Rank() != 3 || (mask != nil && !sameShape(mask.shape, x.shape[:2])) {
		e.failf("%s: x %v must be (B, T, C) and mask %v (B, T)", op, x, mask)
		return e.poisoned(placeholder, F32)
	}
	B, T, C := int64(x.Dim(0)), int64(x.Dim(1)), int64(x.Dim(2))
	out := e.newTensor(op, F32, int(B), int(C))
	idx := e.newTensor(op, I32, int(B), int(C))
	var mm kernels.Mem
	if mask != nil {
		mm = mask.Mem()
	}
	if e.ok() {
		e.fail(kernels.MaxPool(e.rec, out.Mem(), idx.Mem(), x.Mem(), mm, B, T, C))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, []*Tensor{idx}, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.MaxPoolBackward(e.rec, dst, g.Mem(), idx.Mem(), B, T, C, acc))
			}
		})
	}
	idx.Release()
	return out
}

// Cosine returns the cosine similarity of the rows of a and b (..., C),
// as torch.nn.functional.cosine_similarity: (...).
func Cosine(a, b *Tensor) *Tensor {
	e := a.e
	const op = "cosine"
	shape := leading(a.shape, 1)
	if len(shape) == 0 {
		shape = []int{1}
	}
	if !e.inputsOK(op, a, b) {
		return e.poisoned(shape, F32)
	}
	if a.Rank() < 1 || !sameShape(a.shape, b.shape) {
		e.failf("%s: shapes %v and %v differ", op, a, b)
		return e.poisoned(shape, F32)
	}
	C := int64(a.Dim(-1))
	n := int64(a.Len()) / C
	out := e.newTensor(op, F32, shape...)
	if e.ok() {
		e.fail(kernels.Cosine(e.rec, out.Mem(), a.Mem(), b.Mem(), n, C))
		e.afterDispatch()
	}
	if e.needsGrad(a, b) {
		e.record(op, out, []*Tensor{a, b}, []*Tensor{a, b}, func(g *Tensor) {
			if a.requiresGrad {
				da, acc := e.gradDst(a)
				if e.ok() {
					e.fail(kernels.CosineBackward(e.rec, da, kernels.Mem{}, g.Mem(), a.Mem(), b.Mem(), n, C, acc))
				}
			}
			if b.requiresGrad {
				db, acc := e.gradDst(b)
				if e.ok() {
					e.fail(kernels.CosineBackward(e.rec, kernels.Mem{}, db, g.Mem(), a.Mem(), b.Mem(), n, C, acc))
				}
			}
		})
	}
	return out
}
