package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Expand inserts a new axis of size n at position axis (0 to x.Rank()) and
// repeats x along it: (d0, ..., dk) with axis a gives (d0, ..., d(a−1), n,
// da, ..., dk); for example x (B, T, C) with axis 1 gives (B, n, T, C). The
// gradient of x is the sum over the new axis.
func Expand(x *Tensor, axis, n int) *Tensor {
	e := x.e
	const op = "expand"
	at := min(max(axis, 0), x.Rank())
	shape := append(append(x.Shape()[:at:at], n), x.shape[at:]...)
	if !e.inputsOK(op, x) {
		return e.poisoned(shape, F32)
	}
	if axis < 0 || axis > x.Rank() || n <= 0 {
		e.failf("%s: axis %d of size %d for %v (axis must be in [0, %d], size positive)", op, axis, n, x, x.Rank())
		return e.poisoned(shape, F32)
	}
	// x is (outer, inner) around the new axis, the result (outer, n, inner).
	outer, inner := int64(numel(x.shape[:axis])), int64(numel(x.shape[axis:]))
	N := int64(n)
	out := e.newTensor(op, F32, shape...)
	if e.ok() {
		// x is read with a stride of 0 along the new axis.
		sh := [4]int64{1, outer, N, inner}
		e.fail(kernels.StridedCopy(e.rec, out.Mem(), kernels.Contiguous(sh), x.Mem(), [4]int64{0, inner, 0, 1}, sh, false))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		e.record(op, out, []*Tensor{x}, nil, func(g *Tensor) {
			if x.grad == nil {
				// The first gradient: the sum goes straight to it.
				dst, _ := e.gradDst(x)
				if e.ok() {
					e.fail(kernels.Sum(e.rec, dst, g.Mem(), outer, N, inner))
				}
				return
			}
			sum := e.newTensor(op, F32, x.shape...)
			if e.ok() {
				e.fail(kernels.Sum(e.rec, sum.Mem(), g.Mem(), outer, N, inner))
				e.accumulateGrad(x, sum.Mem())
			}
			sum.Release()
		})
	}
	return out
}
