package autograd

import "fmt"

// Shared argument checks of the ops.

// inputsOK checks that every tensor is usable and F32, recording an error
// naming op otherwise.
func (e *Engine) inputsOK(op string, ts ...*Tensor) bool {
	if !e.ok() {
		return false
	}
	for _, t := range ts {
		if err := t.usable(op); err != nil {
			e.fail(err)
			return false
		}
		if t.e != e {
			e.failf("%s: %v belongs to another engine", op, t)
			return false
		}
		if t.dtype != F32 {
			e.failf("%s: %v must be f32", op, t)
			return false
		}
	}
	return true
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
