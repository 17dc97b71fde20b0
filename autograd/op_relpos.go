package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// RelPosBias is T5's relative position bias (H, Tq, Tk) gathered from
// table (buckets, H) for query positions qOffset..qOffset+Tq−1 and key
// positions 0..Tk−1, bucketed as HuggingFace's T5Attention does
// (bidirectional in the encoder, causal in the decoder).
func RelPosBias(table *Tensor, Tq, Tk, qOffset int, bidirectional bool, numBuckets, maxDistance int) *Tensor {
	e := table.e
	const op = "relpos_bias"
	placeholder := []int{table.d(1), Tq, Tk}
	if !e.inputsOK(op, table) {
		return e.poisoned(placeholder, F32)
	}
	if table.Rank() != 2 || table.Dim(0) != numBuckets {
		e.failf("%s: table %v must be (%d buckets, heads)", op, table, numBuckets)
		return e.poisoned(placeholder, F32)
	}
	H := table.Dim(1)
	p := kernels.RelPos{NumBuckets: numBuckets, MaxDistance: maxDistance, Bidirectional: bidirectional}
	out := e.newTensor(op, F32, H, Tq, Tk)
	if e.ok() {
		e.fail(kernels.RelPosBias(e.rec, out.Mem(), table.Mem(), H, Tq, Tk, qOffset, p))
		e.afterDispatch()
	}
	if e.needsGrad(table) {
		e.record(op, out, []*Tensor{table}, nil, func(g *Tensor) {
			dst, acc := e.gradDst(table)
			if e.ok() {
				e.fail(kernels.RelPosBiasBackward(e.rec, dst, g.Mem(), H, Tq, Tk, qOffset, p, acc))
			}
		})
	}
	return out
}
