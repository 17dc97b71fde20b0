package autograd

import "testing"

// A scope releases every handle made inside it that was not kept: op
// outputs, leaves, views and reshapes; device memory returns to where it
// was. A kept result joins the enclosing scope, whose End releases it
// unless it is kept again; handles made before the scope are untouched.
func TestScopeReleases(t *testing.T) {
	e := newEngine(t)
	dev := e.Device()
	x := e.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	defer x.Release()
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	start := dev.MemoryStats().Allocated

	outer := e.Scope()
	a := Scale(x, 2)
	inner := e.Scope()
	b := Add(a, x)
	c := b.Reshape(3, 2)
	v := c.View(2, 4)
	z := e.Zeros(5)
	kept := inner.Keep(Mul(b, b))
	inner.End()
	for _, h := range []*Tensor{b, c, v, z} {
		if !h.Released() {
			t.Errorf("%v made in the inner scope is not released", h)
		}
	}
	if a.Released() || kept.Released() || x.Released() {
		t.Fatal("the inner scope released a tensor of the outer scope, its result or an input")
	}
	got, err := kept.Float32s()
	if err != nil || got[5] != 18*18 {
		t.Fatalf("kept result %v (%v), want (2x+x)² = 324 last", got, err)
	}
	result := outer.Keep(Sum(kept))
	outer.End()
	if !kept.Released() || !a.Released() || result.Released() {
		t.Errorf("after the outer scope: inner result released %v, a released %v, outer result released %v",
			kept.Released(), a.Released(), result.Released())
	}
	s, err := result.Item()
	if err != nil || s != 4*(1+4+9+16+25+36)*9/4 {
		t.Errorf("sum %v (%v)", s, err)
	}
	result.Release()
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	if end := dev.MemoryStats().Allocated; end != start {
		t.Errorf("device memory %d after the scopes, %d before", end, start)
	}
	outer.End() // twice: nothing
}

// Backward inside a scope leaves the parameters' gradients alone; an
// inner scope left open is closed by its parent's End.
func TestScopeBackwardAndNesting(t *testing.T) {
	e := newEngine(t)
	w := e.Param("w", []float32{1, -2, 3}, 3)
	defer w.Release()
	sc := e.Scope()
	y := Mul(w, w)
	loss := Sum(y)
	if err := e.Backward(loss); err != nil {
		t.Fatal(err)
	}
	open := e.Scope()
	tmp := e.Zeros(2)
	_ = open // never ended by its code
	sc.End()
	if !tmp.Released() || !y.Released() || !loss.Released() {
		t.Error("the scope did not release its tensors, or its open inner scope's")
	}
	g := w.Grad()
	if g == nil || g.Released() {
		t.Fatal("the parameter's gradient was released with the scope")
	}
	got, err := g.Float32s()
	if err != nil || got[0] != 2 || got[1] != -4 || got[2] != 6 {
		t.Errorf("gradient %v (%v), want 2w", got, err)
	}
	w.ZeroGrad()
	if e.scope != nil {
		t.Error("a scope is still open")
	}
}
