package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// WriteAt copies src into dst[..., start:start+n, ...] along axis, where
// src has dst's shape except n along axis: a key/value cache takes the keys
// and values of a newly decoded position this way. It changes dst in place
// and has no gradient, so it fails when dst or src would need one (call it
// under NoGrad, or on tensors that do not require gradients).
func WriteAt(dst, src *Tensor, axis, start int) {
	e := dst.e
	const op = "write_at"
	if !e.inputsOK(op, dst, src) {
		return
	}
	axis = normAxis(axis, dst.Rank())
	ok := dst.Rank() == src.Rank() && axis >= 0 && axis < dst.Rank()
	for i := 0; ok && i < dst.Rank(); i++ {
		ok = i == axis || dst.shape[i] == src.shape[i]
	}
	if !ok || start < 0 || start+src.shape[axis] > dst.shape[axis] {
		e.failf("%s: %v into %v at %d along axis %d", op, src, dst, start, axis)
		return
	}
	if e.needsGrad(dst, src) {
		e.failf("%s: %v into %v: the write has no gradient; record it under NoGrad", op, src, dst)
		return
	}
	// Both as (outer, rows, inner): src's rows land at start in dst's.
	outer, T, inner := seqView(dst.shape, axis)
	n := int64(src.shape[axis])
	e.fail(kernels.StridedCopy(e.rec, dst.Mem().At(int64(start)*inner), [4]int64{0, T * inner, inner, 1},
		src.Mem(), [4]int64{0, n * inner, inner, 1}, [4]int64{1, outer, n, inner}, false))
	e.afterDispatch()
}
