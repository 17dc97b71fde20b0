package method

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// stepInputs are the per-batch tensors of an SHLPT step besides the
// model's batch. Nil where the step does not need them.
type stepInputs struct {
	real   *ag.Tensor // (B, L): 1 for real tokens, 0 for padding; nil with the pad-maxpool quirk
	hscW   *ag.Tensor // (B, T): weight of each target position in HSC's mean
	ascM   *ag.Tensor // (B, F): ASC's neuron mask m
	hidNeg *ag.Tensor // (B, P, T, d): h_j of each row
	actNeg *ag.Tensor // (B, P, F): a_j ⊙ m of each row
}

func (in *stepInputs) release() {
	for _, t := range []*ag.Tensor{in.real, in.hscW, in.ascM, in.hidNeg, in.actNeg} {
		t.Release()
	}
}

// stepResult holds the tensors of one SHLPT step (nil where not computed).
type stepResult struct {
	XHat      *ag.Tensor // (B, d)
	Alpha     *ag.Tensor // (B, P)
	Mixed     *ag.Tensor // (B, P): kept, renormalized weights α̃
	Negatives *ag.Tensor // (B, P): 1 where pool prompt j is a negative of row b
	Prompt    *ag.Tensor // (B, Lp, d) mixed, or (Lp, d) when nothing is mixed
	LossDown  *ag.Tensor
	LossHSC   *ag.Tensor
	LossASC   *ag.Tensor
	Loss      *ag.Tensor
}

func (r *stepResult) tensors() []*ag.Tensor {
	return []*ag.Tensor{r.XHat, r.Alpha, r.Mixed, r.Negatives, r.Prompt, r.LossDown, r.LossHSC, r.LossASC, r.Loss}
}

func (r *stepResult) release() {
	for _, t := range r.tensors() {
		t.Release()
	}
}

// compute records one SHLPT step on batch b (paper Eq. 3–12; the exact
// semantics are those of the shlpt-step cases, docs/shlpt.md):
//
//  1. x̂ = max-pool of the input embeddings; α from the estimator (a
//     constant with one stored prompt, or under -ASE);
//  2. the partition: kept weights α̃ (renormalized) and the negatives;
//  3. the prompt P(X) = Σ_j α̃_j·pool[j] + P^t per row, forward, L_down;
//  4. HSC on the decoder's final hidden states and ASC on the last
//     block's first-position activation against the precomputed negatives;
//  5. L = L_down + λ_hsc·L_hsc + λ_asc·L_asc.
//
// With report, α (and x̂) are computed even where training would skip
// them, without gradients (for shlptcheck).
func (s *SHLPT) compute(b *t5.Batch, in *stepInputs, report bool) *stepResult {
	m := s.env.Model
	e := m.Engine()
	c := s.cfg
	r := &stepResult{}
	sc := e.Scope()
	defer func() {
		for _, t := range r.tensors() {
			sc.Keep(t)
		}
		sc.End()
	}()
	B, P := b.InputIDs.Dim(0), len(s.pool)
	prompt := s.prompt.Reshape(s.prompt.Shape()...)
	if P > 0 {
		switch {
		case c.trainMixes():
			if c.usesEstimator(P) || report {
				r.XHat = s.xhat(b.InputIDs, in.real)
			}
			r.Alpha = s.alphaFor(r.XHat, B)
		case report:
			// Every earlier task is dissimilar: α is not needed, but the
			// case records the estimator's.
			func() {
				defer e.NoGrad()()
				r.XHat = s.xhat(b.InputIDs, in.real)
				r.Alpha = s.est.Alpha(r.XHat, s.phat, c.TauSim)
			}()
		default:
			r.Alpha = e.Zeros(B, P) // not read: every task is a negative
		}
		r.Mixed, r.Negatives = ag.Partition(r.Alpha, c.partition())
		if c.trainMixes() {
			prompt = s.mixPrompts(r.Mixed)
		}
	}
	hsc, asc := P > 0 && c.useHSC(), P > 0 && c.useASC()
	out := m.Forward(b, t5.Options{Prompt: prompt, Hidden: hsc, FFNActFirst: asc})
	r.Prompt = prompt
	if out.Loss == nil { // the forward pass failed; the engine has the error
		return r
	}
	r.LossDown = out.Loss
	r.Loss = out.Loss.Reshape(1)
	if hsc {
		r.LossHSC = s.hsc(out.Hidden, in, r.Negatives)
		r.Loss = ag.Add(r.Loss, ag.Scale(r.LossHSC, float32(c.LambdaHSC)))
	}
	if asc {
		r.LossASC = s.asc(out.FFNActFirst, in, r.Negatives)
		r.Loss = ag.Add(r.Loss, ag.Scale(r.LossASC, float32(c.LambdaASC)))
	}
	return r
}

// hsc is Eq. 8: per row, InfoNCE of the mean cosine of the hidden states
// with themselves (the positive) against their mean cosine with each
// negative's h_j, over the weighted target positions.
func (s *SHLPT) hsc(h *ag.Tensor, in *stepInputs, negs *ag.Tensor) *ag.Tensor {
	sc := h.Engine().Scope()
	defer sc.End()
	P := len(s.pool)
	cos := ag.Cosine(ag.Expand(h, 1, P), in.hidNeg)              // (B, P, T)
	neg := ag.SumAxis(ag.Mul(cos, ag.Expand(in.hscW, 1, P)), -1) // (B, P)
	pos := ag.SumAxis(ag.Mul(ag.Cosine(h, h), in.hscW), -1)      // (B,)
	return sc.Keep(ag.Contrastive(pos, neg, negs, float32(s.cfg.TauHSC)))
}

// asc is Eqs. 10–11: per row, InfoNCE of cos(a, a) against
// cos(a ⊙ m, a_j ⊙ m) for each negative.
func (s *SHLPT) asc(a *ag.Tensor, in *stepInputs, negs *ag.Tensor) *ag.Tensor {
	sc := a.Engine().Scope()
	defer sc.End()
	P := len(s.pool)
	neg := ag.Cosine(ag.Expand(ag.Mul(a, in.ascM), 1, P), in.actNeg) // (B, P)
	pos := ag.Cosine(a, a)                                           // (B,)
	return sc.Keep(ag.Contrastive(pos, neg, negs, float32(s.cfg.TauASC)))
}

// shlptStep is the Step of SHLPT for batches of B rows.
type shlptStep struct {
	s  *SHLPT
	B  int
	in stepInputs
}

// NewStep allocates the per-batch inputs of a step for B rows.
func (s *SHLPT) NewStep(B int) (Step, error) {
	t := s.task
	if t == nil {
		return nil, fmt.Errorf("shlpt: NewStep outside a task")
	}
	m := s.env.Model
	e := m.Engine()
	P, T, D, F := len(s.pool), t.TargetLen, m.Config.DModel, m.Config.DFF
	st := &shlptStep{s: s, B: B}
	c := s.cfg
	if (c.usesEstimator(P) || (s.report && P > 0)) && !c.quirk(QuirkPadMaxPool) {
		st.in.real = e.Zeros(B, t.InputLen)
	}
	if P > 0 && c.useHSC() {
		st.in.hscW = e.Zeros(B, T)
		st.in.hidNeg = e.Zeros(B, P, T, D)
	}
	if P > 0 && c.useASC() {
		st.in.ascM = e.Zeros(B, F)
		st.in.actNeg = e.Zeros(B, P, F)
	}
	if err := e.Err(); err != nil {
		st.Release()
		return nil, err
	}
	return st, nil
}

// stepValues are the host values of a step's per-batch inputs (nil where
// the step has no such tensor).
type stepValues struct {
	real, hscW, ascM, hidNeg, actNeg []float32
}

// stepValues builds the per-batch inputs of rows exs (examples index of
// the task's training set) for a step that has the tensors of in, with
// inputs padded to L tokens and targets to T: the real-token mask, HSC's
// position weights, ASC's mask and the gathered negatives masked by it.
// It is the one builder of SHLPT's step inputs: training, shlptcheck and
// the tests all go through it.
func (s *SHLPT) stepValues(in *stepInputs, exs []Example, index []int, L, T int) (stepValues, error) {
	var v stepValues
	if in.real != nil {
		v.real = make([]float32, len(exs)*L)
		for r, ex := range exs {
			for j := 0; j < len(ex.Input) && j < L; j++ {
				v.real[r*L+j] = 1
			}
		}
	}
	if in.hscW == nil && in.ascM == nil {
		return v, nil
	}
	if s.negs == nil {
		return v, fmt.Errorf("shlpt: the negatives were not computed")
	}
	P, F := len(s.pool), s.env.Model.Config.DFF
	if in.hidNeg != nil {
		v.hidNeg = make([]float32, 0, in.hidNeg.Len())
	}
	if in.ascM != nil {
		v.ascM, v.actNeg = make([]float32, 0, in.ascM.Len()), make([]float32, 0, in.actNeg.Len())
	}
	if in.hscW != nil {
		valid := make([][]bool, len(exs))
		for r, ex := range exs {
			valid[r] = make([]bool, T)
			for t := 0; t < T && t < len(ex.Target); t++ {
				valid[r][t] = true
			}
		}
		v.hscW = hscWeights(valid, s.cfg.quirk(QuirkHSCPadding))
	}
	for _, i := range index {
		h, a, s0, err := s.negs.read(i)
		if err != nil {
			return v, err
		}
		if in.hscW != nil {
			v.hidNeg = append(v.hidNeg, h...)
		}
		if in.ascM == nil {
			continue
		}
		m := ascMask(s0, s.cfg.quirk(QuirkASCSignMask))
		v.ascM = append(v.ascM, m...)
		for j := 0; j < P; j++ {
			for k := 0; k < F; k++ {
				v.actNeg = append(v.actNeg, a[j*F+k]*m[k])
			}
		}
	}
	return v, nil
}

// Write uploads the batch's real-token mask, HSC weights and gathered
// negatives.
func (st *shlptStep) Write(b *Batch) error {
	if len(b.Examples) != st.B || len(b.Index) != st.B {
		return fmt.Errorf("shlpt: a batch of %d rows for a step of %d", len(b.Examples), st.B)
	}
	t := st.s.task
	v, err := st.s.stepValues(&st.in, b.Examples, b.Index, t.InputLen, t.TargetLen)
	if err != nil {
		return err
	}
	var errs []error
	for _, x := range []struct {
		t *ag.Tensor
		v []float32
	}{{st.in.real, v.real}, {st.in.hscW, v.hscW}, {st.in.hidNeg, v.hidNeg}, {st.in.ascM, v.ascM}, {st.in.actNeg, v.actNeg}} {
		if x.t != nil {
			errs = append(errs, x.t.WriteFloat32(x.v))
		}
	}
	return firstErr(errs...)
}

// hscWeights returns HSC's weights (B, T) of target positions: 1/n_b on
// the n_b positions of row b that count (labels other than -100), or 1/T
// on every position with the hsc-padding quirk (the reference averages
// over padding).
func hscWeights(valid [][]bool, padding bool) []float32 {
	var w []float32
	for _, row := range valid {
		n := 0
		for _, v := range row {
			if v || padding {
				n++
			}
		}
		for _, v := range row {
			if (v || padding) && n > 0 {
				w = append(w, float32(1/float64(n)))
			} else {
				w = append(w, 0)
			}
		}
	}
	return w
}

// Loss records the step.
func (st *shlptStep) Loss(b *Batch) (*ag.Tensor, []Part) {
	sc := b.Device.InputIDs.Engine().Scope()
	defer sc.End()
	r := st.s.compute(b.Device, &st.in, false)
	parts := []Part{{"ce", sc.Keep(r.LossDown)}}
	if r.LossHSC != nil {
		parts = append(parts, Part{"hsc", sc.Keep(r.LossHSC)})
	}
	if r.LossASC != nil {
		parts = append(parts, Part{"asc", sc.Keep(r.LossASC)})
	}
	return sc.Keep(r.Loss), parts
}

// Release frees the step's inputs.
func (st *shlptStep) Release() { st.in.release() }
