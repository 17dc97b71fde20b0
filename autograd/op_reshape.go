package autograd

// reshape shares t's memory under a new shape; the gradient flows back
// unchanged (same elements, other shape).
func reshape(t *Tensor, shape []int) *Tensor {
	e := t.e
	if !e.ok() {
		return e.poisoned(shape, t.dtype)
	}
	if err := t.usable("reshape"); err != nil {
		e.fail(err)
		return e.poisoned(shape, t.dtype)
	}
	t.st.refs++
	out := e.track(&Tensor{e: e, st: t.st, off: t.off, shape: append([]int(nil), shape...), dtype: t.dtype})
	if e.needsGrad(t) {
		e.record("reshape", out, []*Tensor{t}, nil, func(g *Tensor) {
			e.accumulateGrad(t, g.Mem())
		})
	}
	return out
}
