package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// CrossEntropy is the mean token cross-entropy of logits (..., V) against
// labels (..., int32), ignoring labels of -100, as HF's T5 loss. The
// result has one element. Labels outside [0, V) other than -100 are the
// caller's error (they are clamped on the device).
func CrossEntropy(logits, labels *Tensor) *Tensor {
	e := logits.e
	const op = "cross_entropy"
	if !e.inputsOK(op, logits) || !e.idsOK(op, "labels", labels) {
		return e.poisoned([]int{1}, F32)
	}
	if logits.Rank() < 1 {
		e.failf("%s: logits %v must be (..., V)", op, logits)
		return e.poisoned([]int{1}, F32)
	}
	V := int64(logits.Dim(-1))
	n := int64(logits.Len()) / V
	if int64(labels.Len()) != n {
		e.failf("%s: %d label(s) for logits %v", op, labels.Len(), logits)
		return e.poisoned([]int{1}, F32)
	}
	out := e.newTensor(op, F32, 1)
	scratch := e.newTensor(op, F32, int(kernels.CrossEntropyScratch(n)))
	if e.ok() {
		e.fail(kernels.CrossEntropy(e.rec, out.Mem(), scratch.Mem(), logits.Mem(), labels.Mem(), n, V))
		e.afterDispatch()
	}
	if e.needsGrad(logits) {
		e.record(op, out, []*Tensor{logits}, []*Tensor{logits, labels, scratch}, func(g *Tensor) {
			dst, acc := e.gradDst(logits)
			if e.ok() {
				e.fail(kernels.CrossEntropyBackward(e.rec, dst, g.Mem(), scratch.Mem(), logits.Mem(), labels.Mem(), n, V, acc))
			}
		})
	}
	scratch.Release()
	return out
}
