package autograd

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// node is one recorded op: how to send its output's gradient to its inputs.
type node struct {
	op     string
	out    *Tensor
	inputs []*Tensor // the op's inputs that require grad
	saved  []*Tensor // tensors backward reads; the node holds a reference
	// backward receives the gradient of out and accumulates gradients into
	// the inputs (through Engine.gradDst).
	backward func(g *Tensor)
}

// needsGrad reports whether an op on these inputs must be recorded.
func (e *Engine) needsGrad(inputs ...*Tensor) bool {
	if e.noGrad > 0 {
		return false
	}
	for _, t := range inputs {
		if t != nil && t.requiresGrad {
			return true
		}
	}
	return false
}

// record puts a node on the tape for out, keeping references to saved.
func (e *Engine) record(op string, out *Tensor, inputs []*Tensor, saved []*Tensor, backward func(g *Tensor)) {
	var in []*Tensor
	for _, t := range inputs {
		if t != nil && t.requiresGrad {
			in = append(in, t)
		}
	}
	for _, t := range saved {
		if t != nil && t.st != nil {
			t.st.refs++
		}
	}
	n := &node{op: op, out: out, inputs: in, saved: saved, backward: backward}
	out.requiresGrad = true
	out.node = n
	e.tape = append(e.tape, n)
}

// gradDst returns where a gradient for t goes: its existing gradient, to be
// accumulated into, or fresh memory to overwrite.
func (e *Engine) gradDst(t *Tensor) (dst kernels.Mem, accumulate bool) {
	if t.grad != nil {
		return t.grad.Mem(), true
	}
	g := e.newTensor("grad", F32, t.shape...)
	g.name = "grad"
	t.grad = g
	return g.Mem(), false
}

// accumulateGrad adds g into t's gradient (g is an op-computed temporary).
func (e *Engine) accumulateGrad(t *Tensor, g kernels.Mem) {
	if !e.ok() {
		return
	}
	dst, acc := e.gradDst(t)
	if !e.ok() {
		return
	}
	n := int64(t.Len())
	if acc {
		e.fail(kernels.Axpy(e.rec, dst, 1, g, n))
	} else {
		e.fail(kernels.Copy(e.rec, dst, g, n))
	}
	e.afterDispatch()
}

// Backward computes the gradient of loss (a one-element tensor) with
// respect to every tensor that requires grad and was used to compute it.
// Leaves accumulate their gradients across calls (ZeroGrad resets them);
// intermediate gradients and the tensors kept for backward are released as
// soon as backward is past them. The tape is cleared.
func (e *Engine) Backward(loss *Tensor) error {
	if e.err == nil && loss == nil {
		e.failf("backward: nil loss")
	}
	if e.err == nil && loss.Len() != 1 {
		e.failf("backward: loss must be one f32 value, got %v", loss)
	}
	if e.err != nil {
		e.dropTape()
		return e.err
	}
	restore := e.NoGrad()
	one := e.Full(1, loss.shape...)
	restore()
	err := e.BackwardFrom(loss, one)
	one.Release()
	return err
}

// BackwardFrom runs backward with grad as the gradient of out (a
// vector-Jacobian product): every tensor out depends on that requires grad
// receives Σ grad ⊙ ∂out/∂tensor.
func (e *Engine) BackwardFrom(out, grad *Tensor) error {
	if e.err != nil {
		e.dropTape()
		return e.err
	}
	for _, t := range []*Tensor{out, grad} {
		if err := t.usable("backward"); err != nil {
			e.dropTape()
			return err
		}
	}
	if out.dtype != F32 || grad.dtype != F32 || grad.Len() != out.Len() {
		e.dropTape()
		return fmt.Errorf("backward: gradient %v does not match %v", grad, out)
	}
	if !out.requiresGrad {
		e.dropTape()
		return fmt.Errorf("backward: %v does not depend on anything that requires grad", out)
	}
	restore := e.NoGrad()
	defer restore()
	defer e.untrack()()
	e.accumulateGrad(out, grad.Mem())
	for i := len(e.tape) - 1; i >= 0 && e.ok(); i-- {
		n := e.tape[i]
		if n.out.grad != nil {
			n.backward(n.out.grad)
			e.afterDispatch()
		}
		e.releaseNode(n)
		e.tape[i] = nil
	}
	e.tape = e.tape[:0]
	return e.err
}

// releaseNode drops the node's references and its output's gradient.
func (e *Engine) releaseNode(n *node) {
	for _, t := range n.saved {
		if t != nil {
			e.unref(t.st)
		}
	}
	n.saved = nil
	if !n.out.leaf && n.out.grad != nil {
		n.out.grad.Release()
		n.out.grad = nil
	}
	n.out.node = nil
}

// dropTape forgets the tape without computing gradients (for example when
// a forward pass was only evaluated).
func (e *Engine) dropTape() {
	for _, n := range e.tape {
		if n != nil {
			e.releaseNode(n)
		}
	}
	e.tape = e.tape[:0]
}

// DropTape forgets recorded ops without running backward.
func (e *Engine) DropTape() { e.dropTape() }

// TapeLen is the number of recorded ops (for tests and diagnostics).
func (e *Engine) TapeLen() int { return len(e.tape) }
