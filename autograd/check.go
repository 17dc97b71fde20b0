package autograd

import "fmt"

// Shared argument checks of the ops.

// inputsOK checks that every tensor is usable, F32 and not empty,
// recording an error naming op otherwise.
func (e *Engine) inputsOK(op string, ts ...*Tensor) bool {
	if !e.ok() {
		return false
	}
	for _, t := range ts {
		if !e.operandOK(op, t) {
			return false
		}
		if t.dtype != F32 {
			if t.dtype.Is16() {
				e.failf("%s: %v must be f32: 16-bit tensors are frozen weights, read only by linear (the weight), matmul (b) and embedding (the table)", op, t)
				return false
			}
			e.failf("%s: %v must be f32", op, t)
			return false
		}
	}
	return true
}

// weightOK checks a weight operand: usable, not empty, and f32, or f16 or
// bf16 when it does not require a gradient (frozen 16-bit storage, widened
// by the kernel that reads it). A 16-bit weight that requires a gradient
// is an error naming it.
func (e *Engine) weightOK(op, what string, w *Tensor) bool {
	if !e.ok() {
		return false
	}
	if !e.operandOK(op, w) {
		return false
	}
	switch {
	case w.dtype == F32:
	case w.dtype.Is16() && w.requiresGrad:
		e.failf("%s: %s %v requires a gradient, but 16-bit weights are frozen storage: train it in f32", op, what, w)
		return false
	case !w.dtype.Is16():
		e.failf("%s: %s %v must be f32, f16 or bf16", op, what, w)
		return false
	}
	return true
}

// idsOK checks an int32 operand (ids, labels) as inputsOK checks floats.
func (e *Engine) idsOK(op, what string, t *Tensor) bool {
	if !e.ok() {
		return false
	}
	if !e.operandOK(op, t) {
		return false
	}
	if t.dtype != I32 {
		e.failf("%s: %s %v must be int32", op, what, t)
		return false
	}
	return true
}

// operandOK checks that t is usable, belongs to e and has no empty axis:
// kernels take only positive dimensions, and ops divide by them.
func (e *Engine) operandOK(op string, t *Tensor) bool {
	if err := t.usable(op); err != nil {
		e.fail(err)
		return false
	}
	if t.e != e {
		e.failf("%s: %v belongs to another engine", op, t)
		return false
	}
	for _, d := range t.shape {
		if d <= 0 {
			e.failf("%s: %v: dimensions must be positive", op, t)
			return false
		}
	}
	return true
}

// leading returns shape without its last n axes (fewer when it has fewer).
func leading(shape []int, n int) []int {
	return append([]int(nil), shape[:max(len(shape)-n, 0)]...)
}

// withAxis returns shape with axis set to n, or shape when it has no such
// axis (the placeholder of an op whose arguments are wrong).
func withAxis(shape []int, axis, n int) []int {
	out := append([]int(nil), shape...)
	if axis >= 0 && axis < len(out) {
		out[axis] = n
	}
	return out
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// binarySameShape checks an elementwise op's operands and allocates its output.
func (e *Engine) binarySameShape(op string, a, b *Tensor) (*Tensor, bool) {
	if !e.inputsOK(op, a, b) {
		return e.poisoned(a.shape, F32), false
	}
	if !sameShape(a.shape, b.shape) {
		e.fail(fmt.Errorf("%s: shapes %v and %v differ", op, shapeString(a.shape), shapeString(b.shape)))
		return e.poisoned(a.shape, F32), false
	}
	out := e.newTensor(op, F32, a.shape...)
	return out, e.ok()
}
