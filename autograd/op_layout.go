package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// seqView splits shape around axis: (outer, shape[axis], inner).
func seqView(shape []int, axis int) (outer, t, inner int64) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < axis:
			outer *= int64(d)
		case i > axis:
			inner *= int64(d)
		}
	}
	return outer, int64(shape[axis]), inner
}

func normAxis(axis, rank int) int {
	if axis < 0 {
		axis += rank
	}
	return axis
}

// takeRows copies rows [t0, t1) of src viewed as (outer, T, inner) into dst
// (outer, t1−t0, inner), adding when accumulate.
func (e *Engine) takeRows(dst kernels.Mem, acc bool, src kernels.Mem, outer, T, inner, t0, t1 int64) {
	n := t1 - t0
	shape := [4]int64{1, outer, n, inner}
	ys := [4]int64{0, n * inner, inner, 1}
	xs := [4]int64{0, T * inner, inner, 1}
	e.fail(kernels.StridedCopy(e.rec, dst, ys, src.At(t0*inner), xs, shape, acc))
}

// Concat joins a and b along axis; the other axes must agree.
func Concat(a, b *Tensor, axis int) *Tensor {
	e := a.e
	const op = "concat"
	axis = normAxis(axis, a.Rank())
	shape := withAxis(a.shape, axis, a.d(axis)+b.d(axis))
	if !e.inputsOK(op, a, b) {
		return e.poisoned(shape, F32)
	}
	ok := a.Rank() == b.Rank() && axis >= 0 && axis < a.Rank()
	for i := 0; ok && i < a.Rank(); i++ {
		ok = i == axis || a.shape[i] == b.shape[i]
	}
	if !ok {
		e.failf("%s: %v and %v along axis %d", op, a, b, axis)
		return e.poisoned(shape, F32)
	}
	outer, ta, inner := seqView(a.shape, axis)
	_, tb, _ := seqView(b.shape, axis)
	out := e.newTensor(op, F32, shape...)
	if e.ok() {
		e.fail(kernels.Concat(e.rec, out.Mem(), a.Mem(), b.Mem(), outer, ta, tb, inner))
		e.afterDispatch()
	}
	if e.needsGrad(a, b) {
		e.record(op, out, []*Tensor{a, b}, nil, func(g *Tensor) {
			if a.requiresGrad {
				dst, acc := e.gradDst(a)
				if e.ok() {
					e.takeRows(dst, acc, g.Mem(), outer, ta+tb, inner, 0, ta)
				}
			}
			if b.requiresGrad {
				dst, acc := e.gradDst(b)
				if e.ok() {
					e.takeRows(dst, acc, g.Mem(), outer, ta+tb, inner, ta, ta+tb)
				}
			}
		})
	}
	return out
}

// Slice returns x[..., start:start+n, ...] along axis.
func Slice(x *Tensor, axis, start, n int) *Tensor {
	e := x.e
	const op = "slice"
	axis = normAxis(axis, x.Rank())
	shape := withAxis(x.shape, axis, n)
	if !e.inputsOK(op, x) {
		return e.poisoned(shape, F32)
	}
	if axis < 0 || axis >= x.Rank() || start < 0 || n <= 0 || start+n > x.shape[axis] {
		e.failf("%s: [%d:%d] along axis %d of %v", op, start, start+n, axis, x)
		return e.poisoned(shape, F32)
	}
	outer, T, inner := seqView(x.shape, axis)
	t0, t1 := int64(start), int64(start+n)
	out := e.newTensor(op, F32, shape...)
	if e.ok() {
		e.fail(kernels.Slice(e.rec, out.Mem(), x.Mem(), outer, T, inner, t0, t1))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.SliceBackward(e.rec, dst, g.Mem(), outer, T, inner, t0, t1, acc))
			}
		})
	}
	return out
}

// PrependRows returns [p; x[b]] for every batch row b, or [p[b]; x[b]] with
// one prompt per row: p is (Lp, C) or (B, Lp, C), x is (B, L, C), the result
// (B, Lp+L, C). This is how a soft prompt enters the encoder. A shared
// prompt's gradient is the sum over the batch; a per-row prompt's gradient
// is each row's own.
func PrependRows(p, x *Tensor) *Tensor {
	e := p.e
	const op = "prepend_rows"
	placeholder := []int{x.d(0), p.d(-2) + x.d(1), x.d(2)}
	if !e.inputsOK(op, p, x) {
		return e.poisoned(placeholder, F32)
	}
	perRow := p.Rank() == 3
	if (p.Rank() != 2 && !perRow) || x.Rank() != 3 || p.Dim(-1) != x.Dim(2) || (perRow && p.Dim(0) != x.Dim(0)) {
		e.failf("%s: prompt %v must be (Lp, C) or (B, Lp, C) for x %v (B, L, C)", op, p, x)
		return e.poisoned(placeholder, F32)
	}
	B, Lp, L, C := int64(x.Dim(0)), int64(p.Dim(-2)), int64(x.Dim(1)), int64(x.Dim(2))
	T := Lp + L
	out := e.newTensor(op, F32, int(B), int(T), int(C))
	if e.ok() {
		// A shared prompt is read with a batch stride of 0.
		ps := [4]int64{0, 0, C, 1}
		if perRow {
			ps[1] = Lp * C
		}
		e.fail(kernels.StridedCopy(e.rec, out.Mem(), [4]int64{0, T * C, C, 1}, p.Mem(), ps,
			[4]int64{1, B, Lp, C}, false))
		e.fail(kernels.StridedCopy(e.rec, out.Mem().At(Lp*C), [4]int64{0, T * C, C, 1}, x.Mem(), [4]int64{0, L * C, C, 1},
			[4]int64{1, B, L, C}, false))
		e.afterDispatch()
	}
	if e.needsGrad(p, x) {
		e.record(op, out, []*Tensor{p, x}, nil, func(g *Tensor) {
			if x.requiresGrad {
				dst, acc := e.gradDst(x)
				if e.ok() {
					e.takeRows(dst, acc, g.Mem(), B, T, C, Lp, T)
				}
			}
			if p.requiresGrad && perRow {
				dst, acc := e.gradDst(p)
				if e.ok() {
					e.takeRows(dst, acc, g.Mem(), B, T, C, 0, Lp)
				}
			} else if p.requiresGrad {
				rows := e.newTensor(op, F32, int(B), int(Lp), int(C))
				if !e.ok() {
					return
				}
				e.takeRows(rows.Mem(), false, g.Mem(), B, T, C, 0, Lp)
				sum := e.newTensor(op, F32, int(Lp), int(C))
				if e.ok() {
					e.fail(kernels.Sum(e.rec, sum.Mem(), rows.Mem(), 1, B, Lp*C))
					e.accumulateGrad(p, sum.Mem())
				}
				rows.Release()
				sum.Release()
			}
		})
	}
	return out
}

// SplitHeads reshapes x (B, T, H·D) into (B, H, T, D).
func SplitHeads(x *Tensor, heads int) *Tensor {
	e := x.e
	const op = "split_heads"
	placeholder := []int{x.d(0), heads, x.d(1), 0}
	if heads > 0 {
		placeholder[3] = x.d(2) / heads
	}
	if !e.inputsOK(op, x) {
		return e.poisoned(placeholder, F32)
	}
	if x.Rank() != 3 || heads <= 0 || x.Dim(2)%heads != 0 {
		e.failf("%s: %v into %d heads", op, x, heads)
		return e.poisoned(placeholder, F32)
	}
	B, T, H, D := int64(x.Dim(0)), int64(x.Dim(1)), int64(heads), int64(x.Dim(2)/heads)
	out := e.newTensor(op, F32, int(B), int(H), int(T), int(D))
	if e.ok() {
		e.fail(kernels.SplitHeads(e.rec, out.Mem(), x.Mem(), B, T, H, D))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.SplitHeadsBackward(e.rec, dst, g.Mem(), B, T, H, D, acc))
			}
		})
	}
	return out
}

// MergeHeads reshapes x (B, H, T, D) into (B, T, H·D).
func MergeHeads(x *Tensor) *Tensor {
	e := x.e
	const op = "merge_heads"
	placeholder := []int{x.d(0), x.d(2), x.d(1) * x.d(3)}
	if !e.inputsOK(op, x) {
		return e.poisoned(placeholder, F32)
	}
	if x.Rank() != 4 {
		e.failf("%s: %v must be (B, H, T, D)", op, x)
		return e.poisoned(placeholder, F32)
	}
	B, H, T, D := int64(x.Dim(0)), int64(x.Dim(1)), int64(x.Dim(2)), int64(x.Dim(3))
	out := e.newTensor(op, F32, int(B), int(T), int(H*D))
	if e.ok() {
		e.fail(kernels.MergeHeads(e.rec, out.Mem(), x.Mem(), B, H, T, D))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.MergeHeadsBackward(e.rec, dst, g.Mem(), B, H, T, D, acc))
			}
		})
	}
	return out
}
