package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// CrossEntropyRows returns each row's cross-entropy, logsumexp(logits[r]) −
// logits[r, labels[r]], with labels' shape (0 where the label is -100): the
// per-token losses that CrossEntropy averages, for rank classification. It
// has no gradient, so it fails when logits would need one (call it under
// NoGrad).
func CrossEntropyRows(logits, labels *Tensor) *Tensor {
	e := logits.e
	const op = "cross_entropy_rows"
	var shape []int
	if labels != nil {
		shape = labels.Shape()
	}
	if !e.inputsOK(op, logits) || !e.idsOK(op, "labels", labels) {
		return e.poisoned(shape, F32)
	}
	if logits.Rank() < 1 {
		e.failf("%s: logits %v must be (..., V)", op, logits)
		return e.poisoned(shape, F32)
	}
	V := int64(logits.Dim(-1))
	n := int64(logits.Len()) / V
	if int64(labels.Len()) != n {
		e.failf("%s: %d label(s) for logits %v", op, labels.Len(), logits)
		return e.poisoned(shape, F32)
	}
	if e.needsGrad(logits) {
		e.failf("%s: %v: per-row losses have no gradient; record them under NoGrad", op, logits)
		return e.poisoned(shape, F32)
	}
	loss := e.newTensor(op, F32, 1)
	scratch := e.newTensor(op, F32, int(kernels.CrossEntropyScratch(n)))
	defer loss.Release()
	defer scratch.Release()
	if !e.ok() {
		return e.poisoned(shape, F32)
	}
	e.fail(kernels.CrossEntropy(e.rec, loss.Mem(), scratch.Mem(), logits.Mem(), labels.Mem(), n, V))
	e.afterDispatch()
	// The row losses are part of the kernel's scratch; the result is a view
	// of them, which keeps the scratch alive.
	at := kernels.CrossEntropyRowLosses(scratch.Mem(), n).Off - scratch.Mem().Off
	return scratch.View(int(at), shape...)
}
