package method

import (
	"fmt"
	"slices"
	"strconv"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// An SHLPT case file (testdata/t5-tiny-relu/shlpt-step*.safetensors) holds
// one training step's inputs, settings (in the metadata) and every
// intermediate an independent float64 implementation computed: see the
// fixture README and docs/shlpt.md.

// caseSettings reads the step's settings from the case metadata.
func caseSettings(path string, meta map[string]string) (SHLPTConfig, error) {
	c := DefaultSHLPT()
	num := func(key string, dst *float64) error {
		v, ok := meta[key]
		if !ok {
			return fmt.Errorf("%s: metadata %q is missing", path, key)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%s: metadata %q = %q: %v", path, key, v, err)
		}
		*dst = x
		return nil
	}
	var allDis, quirks, rank, lp, eps float64
	for _, f := range []struct {
		key string
		dst *float64
	}{
		{"tau_sim", &c.TauSim}, {"delta", &c.Delta}, {"all_dissimilar", &allDis}, {"quirks", &quirks},
		{"lambda_hsc", &c.LambdaHSC}, {"lambda_asc", &c.LambdaASC}, {"tau_hsc", &c.TauHSC}, {"tau_asc", &c.TauASC},
		{"estimator_rank", &rank}, {"prompt_len", &lp}, {"estimator_norm_eps", &eps},
	} {
		if err := num(f.key, f.dst); err != nil {
			return c, err
		}
	}
	if eps != EstimatorNormEps {
		return c, fmt.Errorf("%s: estimator_norm_eps %v, but the estimator's LayerNorm uses %v", path, eps, EstimatorNormEps)
	}
	c.AllDissimilar = allDis != 0
	if quirks != 0 {
		c.Quirks = []string{QuirksAll}
	}
	c.EstimatorRank, c.PromptLen = int(rank), int(lp)
	return c, c.Validate()
}

// floats returns an expected-shape float tensor of the case.
func floats(c *t5.CaseFile, name string, shape ...int) ([]float32, error) {
	v, got, err := c.Floats(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(got, shape) {
		return nil, fmt.Errorf("%s: tensor %q is %v, expected %v", c.Path(), name, got, shape)
	}
	return v, nil
}

// CheckSHLPTCase runs the SHLPT step of the case file at path on model m
// (dropout off) and compares every expected tensor: the estimator's x̂ and
// α, the partition, the mixed prompts, the negatives' hidden states and
// activations, the three losses and their sum, the gradients of the prompt
// and the estimator, and the stored prompt.
func CheckSHLPTCase(m *t5.Model, path string) ([]t5.CaseResult, error) {
	c, err := t5.OpenCase(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cfg, err := caseSettings(path, c.Metadata())
	if err != nil {
		return nil, err
	}
	e := m.Engine()
	wasTraining := m.Training()
	m.SetTraining(false)
	defer m.SetTraining(wasTraining)
	D, F := m.Config.DModel, m.Config.DFF

	batch, err := c.Batch(m)
	if err != nil {
		return nil, err
	}
	defer batch.Release()
	B, L, T := batch.InputIDs.Dim(0), batch.InputIDs.Dim(1), batch.Labels.Dim(1)
	poolT, ok := c.Tensor("pool")
	if !ok || len(poolT.Shape) != 3 || poolT.Shape[1] != cfg.PromptLen || poolT.Shape[2] != D {
		return nil, fmt.Errorf("%s: tensor \"pool\" must be (P, %d, %d)", path, cfg.PromptLen, D)
	}
	P, Lp := poolT.Shape[0], cfg.PromptLen
	pool, err := poolT.Float32()
	if err != nil {
		return nil, err
	}
	prompt, err := floats(c, "prompt", Lp, D)
	if err != nil {
		return nil, err
	}
	r := cfg.EstimatorRank
	var est []HostTensor
	for i, shape := range [][]int{{r, D}, {D, r}, {D}, {D}} {
		v, err := floats(c, estimatorNames[i], shape...)
		if err != nil {
			return nil, err
		}
		est = append(est, HostTensor{Name: estimatorNames[i], Shape: shape, Data: v})
	}

	env := &Env{Model: m}
	s, err := NewSHLPT(env, cfg)
	if err != nil {
		return nil, err
	}
	defer s.Release()
	s.report = true
	for j := 0; j < P; j++ {
		s.pool = append(s.pool, pool[j*Lp*D:(j+1)*Lp*D])
	}
	task := &Task{Name: "case", TargetLen: T, InputLen: L, BatchSize: B, EvalBatch: B}
	if err := s.BeginTask(task); err != nil {
		return nil, err
	}
	// The case's prompt replaces BeginTask's fresh one.
	if err := Restore(s, append([]HostTensor{{Name: "prompt", Shape: []int{Lp, D}, Data: prompt}}, est...)); err != nil {
		return nil, err
	}

	var results []t5.CaseResult
	check := func(name string, got []float32, shape []int, grad bool) error {
		res, err := c.CompareShape(name, got, shape, grad)
		if err != nil {
			return err
		}
		results = append(results, res)
		return nil
	}
	read := func(t *ag.Tensor) ([]float32, error) {
		if t == nil {
			if err := e.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: the step did not compute a tensor it should have", path)
		}
		return t.Float32s()
	}

	// The negatives, without gradients, as the runner precomputes them,
	// and the step's inputs from the production builder.
	st, negs, err := caseStep(s, c, batch)
	if err != nil {
		return nil, err
	}
	defer st.Release()
	if P > 0 {
		for _, ck := range []struct {
			name  string
			v     []float32
			shape []int
		}{
			{"expected.hidden_negatives", negs.hid, []int{B, P, T, D}},
			{"expected.act_negatives", negs.act, []int{B, P, F}},
			{"expected.act_noprompt", negs.s0, []int{B, F}},
		} {
			if err := check(ck.name, ck.v, ck.shape, false); err != nil {
				return nil, err
			}
		}
	}

	res := s.compute(batch, &st.in, true)
	defer res.release()
	if err := e.Err(); err != nil {
		return nil, err
	}
	type want struct {
		name  string
		t     *ag.Tensor
		shape []int
	}
	wants := []want{{"expected.loss_down", res.LossDown, []int{1}}, {"expected.loss", res.Loss, []int{1}}}
	if P > 0 {
		wants = append(wants,
			want{"expected.xhat", res.XHat, []int{B, D}},
			want{"expected.alpha", res.Alpha, []int{B, P}},
			want{"expected.alpha_mixed", res.Mixed, []int{B, P}})
		if cfg.trainMixes() {
			wants = append(wants, want{"expected.prompt_mixed", res.Prompt, []int{B, Lp, D}})
		}
		if res.LossHSC != nil {
			wants = append(wants, want{"expected.loss_hsc", res.LossHSC, []int{1}})
		}
		if res.LossASC != nil {
			wants = append(wants, want{"expected.loss_asc", res.LossASC, []int{1}})
		}
	}
	for _, w := range wants {
		v, err := read(w.t)
		if err != nil {
			return nil, fmt.Errorf("computing %s: %w", w.name, err)
		}
		if err := check(w.name, v, w.shape, false); err != nil {
			return nil, err
		}
	}
	if P > 0 && !cfg.trainMixes() {
		// Nothing is mixed: every row's prompt is P^t.
		mixed := make([]float32, 0, B*Lp*D)
		for b := 0; b < B; b++ {
			mixed = append(mixed, prompt...)
		}
		if err := check("expected.prompt_mixed", mixed, []int{B, Lp, D}, false); err != nil {
			return nil, err
		}
	}
	if P > 0 {
		if err := checkNegatives(c, res.Negatives, B, P, &results); err != nil {
			return nil, err
		}
	}

	// Gradients of the whole loss.
	if err := e.Backward(res.Loss); err != nil {
		return nil, err
	}
	grads := append([]HostTensor{{Name: "prompt", Shape: s.prompt.Shape()}}, est...)
	for i, p := range s.Params() {
		name := "expected.grad." + grads[i].Name
		v := make([]float32, p.Len()) // no gradient: zero
		if g := p.Grad(); g != nil {
			if v, err = g.Float32s(); err != nil {
				return nil, err
			}
		}
		if err := check(name, v, p.Shape(), true); err != nil {
			return nil, err
		}
		p.ZeroGrad()
	}

	// End of task: this batch stands for the whole training set.
	if P > 0 {
		mixed, err := read(res.Mixed)
		if err != nil {
			return nil, err
		}
		w := make([]float64, P)
		for j := range w {
			for b := 0; b < B; b++ {
				w[j] += float64(mixed[b*P+j]) / float64(B)
			}
		}
		stored, err := s.storedValues(w)
		if err != nil {
			return nil, err
		}
		if err := check("expected.stored_prompt", stored, []int{Lp, D}, false); err != nil {
			return nil, err
		}
	}
	return results, e.Err()
}

// caseStep builds the SHLPT step of a case's batch through the production
// path: the negative passes (kept in memory in place of the scratch file),
// the examples the case's ids, attention mask and labels stand for, and
// the step's inputs written by its Write. s has begun the case's task.
func caseStep(s *SHLPT, c *t5.CaseFile, batch *t5.Batch) (*shlptStep, *memNegatives, error) {
	m := s.env.Model
	path := c.Path()
	B, L, T := batch.InputIDs.Dim(0), batch.InputIDs.Dim(1), batch.Labels.Dim(1)
	ids, _, err1 := c.Ints("input_ids")
	am, _, err2 := c.Ints("attention_mask")
	labels, _, err3 := c.Ints("labels")
	if err := firstErr(err1, err2, err3); err != nil {
		return nil, nil, err
	}
	if len(ids) != B*L || len(am) != B*L || len(labels) != B*T {
		return nil, nil, fmt.Errorf("%s: input_ids, attention_mask and labels do not match the batch (%d, %d) and targets of %d", path, B, L, T)
	}
	exs := make([]Example, B)
	index := make([]int, B)
	for b := range exs {
		index[b] = b
		n := 0
		for n < L && am[b*L+n] != 0 {
			n++
		}
		k := 0
		for k < T && labels[b*T+k] != t5.IgnoreIndex {
			k++
		}
		for j := 0; j < L; j++ {
			if (am[b*L+j] != 0) != (j < n) {
				return nil, nil, fmt.Errorf("%s: row %d's attention mask is not real tokens followed by padding", path, b)
			}
			if j < n {
				exs[b].Input = append(exs[b].Input, int(ids[b*L+j]))
			}
		}
		for j := 0; j < T; j++ {
			if (labels[b*T+j] != t5.IgnoreIndex) != (j < k) {
				return nil, nil, fmt.Errorf("%s: row %d's labels are not a target followed by %d", path, b, t5.IgnoreIndex)
			}
			if j < k {
				exs[b].Target = append(exs[b].Target, int(labels[b*T+j]))
			}
		}
	}
	negs := &memNegatives{P: len(s.pool), T: T, D: m.Config.DModel, F: m.Config.DFF}
	if negs.P > 0 {
		var err error
		if negs.hid, negs.act, negs.s0, err = s.negativePasses(batch); err != nil {
			return nil, nil, err
		}
		if s.negs != nil {
			s.negs.Close()
		}
		s.negs = negs
	}
	step, err := s.NewStep(B)
	if err != nil {
		return nil, nil, err
	}
	st := step.(*shlptStep)
	if err := st.Write(&Batch{Index: index, Examples: exs, Device: batch}); err != nil {
		st.Release()
		return nil, nil, err
	}
	return st, negs, nil
}

// checkNegatives compares the partition's negatives with the case's
// integer tensor, exactly.
func checkNegatives(c *t5.CaseFile, negs *ag.Tensor, B, P int, results *[]t5.CaseResult) error {
	want, shape, err := c.Ints("expected.negatives")
	if err != nil {
		return err
	}
	if !slices.Equal(shape, []int{B, P}) {
		return fmt.Errorf("%s: expected.negatives is %v, expected %v", c.Path(), shape, []int{B, P})
	}
	got, err := negs.Float32s()
	if err != nil {
		return err
	}
	r := t5.CaseResult{Name: "expected.negatives"}
	for i := range want {
		if int64(got[i]) != want[i] {
			r.Mismatches++
		}
	}
	r.OK = r.Mismatches == 0
	*results = append(*results, r)
	return nil
}
