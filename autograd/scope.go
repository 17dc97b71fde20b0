package autograd

// Scope releases what a piece of code allocated when the code is done
// with it. While a scope is the innermost open one of its engine, every
// tensor handle that ops and leaf constructors create (outputs, views,
// reshapes, Zeros, FromFloat32, ...) joins it; End releases every handle
// that was not kept. A result is kept explicitly with Keep, which hands it
// to the enclosing scope (or, with none, to the caller), as a function
// hands back its return value:
//
//	func attention(q, k *Tensor) *Tensor {
//		sc := q.Engine().Scope()
//		defer sc.End()
//		s := MatMul(q, k, false, true)
//		return sc.Keep(Softmax(s, nil, nil, false))
//	}
//
// Releasing a handle twice does nothing, so code inside a scope may still
// release early. Gradients are not the scope's: Backward run inside one
// gives parameters gradients that outlive it, as without a scope.
type Scope struct {
	e       *Engine
	parent  *Scope
	handles []*Tensor
	kept    map[*Tensor]bool
	ended   bool
}

// Scope opens a scope nested in the current one.
func (e *Engine) Scope() *Scope {
	s := &Scope{e: e, parent: e.scope}
	e.scope = s
	return s
}

// Keep keeps t past End: it joins the enclosing scope, if any. It returns
// t, so that `return sc.Keep(out)` reads as a return.
func (s *Scope) Keep(t *Tensor) *Tensor {
	if t == nil {
		return nil
	}
	if s.kept == nil {
		s.kept = map[*Tensor]bool{}
	}
	s.kept[t] = true
	return t
}

// End closes the scope (and any scope still open inside it) and releases
// its handles that were not kept. Ending a scope twice does nothing.
func (s *Scope) End() {
	if s.ended {
		return
	}
	e := s.e
	for e.scope != nil && e.scope != s && !e.scope.ended {
		e.scope.End() // an inner scope left open
	}
	s.ended = true
	e.scope = s.parent
	for _, t := range s.handles {
		if s.kept[t] {
			if s.parent != nil {
				s.parent.handles = append(s.parent.handles, t)
			}
			continue
		}
		t.Release()
	}
	s.handles, s.kept = nil, nil
}

// track adds a new handle to the innermost open scope.
func (e *Engine) track(t *Tensor) *Tensor {
	if e.scope != nil && e.untracked == 0 {
		e.scope.handles = append(e.scope.handles, t)
	}
	return t
}

// untrack stops tracking new handles until the returned function is
// called (backward's gradients belong to the tensors they are of).
func (e *Engine) untrack() (restore func()) {
	e.untracked++
	return func() { e.untracked-- }
}
