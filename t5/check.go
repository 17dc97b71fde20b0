package t5

import (
	"fmt"
	"math"
	"sort"
	"strings"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// A reference case (testdata/t5-tiny-relu/case.safetensors and files of
// the same format) holds one batch of inputs and the outputs an independent
// float64 implementation of HF T5 computed for it: see the fixture README.

// CaseResult is the comparison of one expected tensor.
type CaseResult struct {
	Name string
	// MaxErr is the largest absolute difference, Scale the largest
	// magnitude of the expected tensor, Tol the allowed MaxErr.
	MaxErr, Scale, Tol float64
	// Mismatches counts differing ids for integer tensors.
	Mismatches int
	OK         bool
}

func (r CaseResult) String() string {
	status := "ok"
	if !r.OK {
		status = "FAIL"
	}
	if r.Tol == 0 {
		return fmt.Sprintf("%-70s %d mismatches  %s", r.Name, r.Mismatches, status)
	}
	return fmt.Sprintf("%-70s max err %.3g (scale %.3g, tolerance %.3g)  %s", r.Name, r.MaxErr, r.Scale, r.Tol, status)
}

// Relative tolerances of CheckCase: of each tensor's largest magnitude.
const (
	CaseTol     = 1e-4
	CaseGradTol = 1e-3
)

// CaseFile is an open reference case file.
type CaseFile struct {
	*safetensors.File
}

// OpenCase opens a case file.
func OpenCase(path string) (*CaseFile, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	return &CaseFile{f}, nil
}

// Floats returns a float tensor of the case and its shape.
func (c *CaseFile) Floats(name string) ([]float32, []int, error) {
	t, ok := c.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("%s: tensor %q is missing", c.Path(), name)
	}
	v, err := t.Float32()
	return v, t.Shape, err
}

// Ints returns an integer tensor of the case and its shape.
func (c *CaseFile) Ints(name string) ([]int64, []int, error) {
	t, ok := c.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("%s: tensor %q is missing", c.Path(), name)
	}
	v, err := t.Int64()
	return v, t.Shape, err
}

// Batch reads the case's input_ids, attention_mask, labels and
// decoder_input_ids, checks their shapes and ids against m, and uploads
// them.
func (c *CaseFile) Batch(m *Model) (*Batch, error) {
	path := c.Path()
	ids, idShape, err := c.Ints("input_ids")
	if err != nil {
		return nil, err
	}
	am, amShape, err := c.Ints("attention_mask")
	if err != nil {
		return nil, err
	}
	labels, lShape, err := c.Ints("labels")
	if err != nil {
		return nil, err
	}
	dec, dShape, err := c.Ints("decoder_input_ids")
	if err != nil {
		return nil, err
	}
	if len(idShape) != 2 || !sameShape(idShape, amShape) || len(lShape) != 2 || !sameShape(lShape, dShape) || lShape[0] != idShape[0] {
		return nil, fmt.Errorf("%s: shapes do not fit: input_ids %v, attention_mask %v, labels %v, decoder_input_ids %v",
			path, idShape, amShape, lShape, dShape)
	}
	V := int64(m.Config.VocabSize)
	for _, x := range append(append([]int64(nil), ids...), dec...) {
		if x < 0 || x >= V {
			return nil, fmt.Errorf("%s: token id %d outside the vocabulary of %d", path, x, V)
		}
	}
	for _, x := range labels {
		if x != IgnoreIndex && (x < 0 || x >= V) {
			return nil, fmt.Errorf("%s: label %d outside the vocabulary of %d", path, x, V)
		}
	}
	toI32 := func(v []int64) []int32 {
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out
	}
	e := m.e
	b := &Batch{
		InputIDs:        e.FromInt32(toI32(ids), idShape...),
		InputMask:       e.FromFloat32(AdditiveMask(am), amShape...),
		DecoderInputIDs: e.FromInt32(toI32(dec), dShape...),
		Labels:          e.FromInt32(toI32(labels), lShape...),
	}
	if err := e.Err(); err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}

// Compare compares got with the case's expected tensor name, which must
// have as many values, within CaseTol of its largest magnitude (CaseGradTol
// for gradients).
func (c *CaseFile) Compare(name string, got []float32, grad bool) (CaseResult, error) {
	want, shape, err := c.Floats(name)
	if err != nil {
		return CaseResult{}, err
	}
	if len(got) != len(want) {
		return CaseResult{}, fmt.Errorf("%s: %s has %d values (shape %v), the engine gave %d", c.Path(), name, len(want), shape, len(got))
	}
	r := CaseResult{Name: name}
	for i := range want {
		r.Scale = math.Max(r.Scale, math.Abs(float64(want[i])))
		d := math.Abs(float64(got[i] - want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		r.MaxErr = math.Max(r.MaxErr, d)
	}
	tol := CaseTol
	if grad {
		tol = CaseGradTol
	}
	r.Tol = tol * r.Scale
	if r.Scale == 0 {
		r.Tol = tol
	}
	r.OK = r.MaxErr <= r.Tol
	return r, nil
}

// CheckCase runs the model on the case file at path and compares every
// expected tensor. The model's weights are made trainable for the weight
// gradients and frozen again afterwards; dropout is turned off.
func CheckCase(m *Model, path string) ([]CaseResult, error) {
	c, err := OpenCase(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	e := m.e
	m.SetTraining(false)

	batch, err := c.Batch(m)
	if err != nil {
		return nil, err
	}
	defer batch.Release()
	prompt, pShape, err := c.Floats("prompt")
	if err != nil {
		return nil, err
	}
	if len(pShape) != 2 || pShape[1] != m.Config.DModel {
		return nil, fmt.Errorf("%s: prompt %v must be (Lp, %d)", path, pShape, m.Config.DModel)
	}
	p := e.Param("prompt", prompt, pShape...)
	defer p.Release()

	var results []CaseResult
	compare := func(name string, got []float32, grad bool) error {
		r, err := c.Compare(name, got, grad)
		if err != nil {
			return err
		}
		results = append(results, r)
		return nil
	}
	read := func(t *ag.Tensor) ([]float32, error) {
		if t == nil {
			return nil, e.Err()
		}
		return t.Float32s()
	}

	// Pass 1: frozen weights, as in prompt tuning: outputs and the prompt's
	// gradient.
	out := m.Forward(batch, Options{Prompt: p, Logits: true, Hidden: true, FFNActFirst: true, EncoderOut: true})
	if err := e.Err(); err != nil {
		return nil, err
	}
	checks := []struct {
		name string
		t    *ag.Tensor
	}{
		{"expected.encoder_last_hidden_state", out.EncoderOut},
		{"expected.logits", out.Logits},
		{"expected.loss", out.Loss},
		{"expected.last_ffn_activation_first", out.FFNActFirst},
	}
	if _, ok := c.Tensor("expected.decoder_last_hidden_first"); ok {
		first := ag.Slice(out.Hidden, 1, 0, 1)
		checks = append(checks, struct {
			name string
			t    *ag.Tensor
		}{"expected.decoder_last_hidden_first", first})
		defer first.Release()
	}
	for _, ck := range checks {
		if _, ok := c.Tensor(ck.name); !ok {
			continue
		}
		v, err := read(ck.t)
		if err != nil {
			return nil, fmt.Errorf("computing %s: %w", ck.name, err)
		}
		if err := compare(ck.name, v, false); err != nil {
			return nil, err
		}
	}
	if err := e.Backward(out.Loss); err != nil {
		return nil, err
	}
	out.Release()
	if pg := p.Grad(); pg != nil {
		v, err := pg.Float32s()
		if err != nil {
			return nil, err
		}
		if err := compare("expected.grad.prompt", v, true); err != nil {
			return nil, err
		}
	} else {
		return nil, fmt.Errorf("the prompt received no gradient")
	}
	for _, w := range m.Parameters() {
		if w.Grad() != nil {
			return nil, fmt.Errorf("frozen weight %s received a gradient", w.Name())
		}
	}

	// Pass 2: every weight trainable (full fine-tuning): weight gradients.
	var wnames []string
	for _, name := range c.Names() {
		if strings.HasPrefix(name, "expected.grad.") && name != "expected.grad.prompt" {
			wnames = append(wnames, strings.TrimPrefix(name, "expected.grad."))
		}
	}
	sort.Strings(wnames)
	if len(wnames) > 0 {
		m.SetTrainable(true)
		defer m.SetTrainable(false)
		p.ZeroGrad()
		out := m.Forward(batch, Options{Prompt: p})
		if err := e.Backward(out.Loss); err != nil {
			return nil, err
		}
		out.Release()
		for _, name := range wnames {
			w := m.Parameter(name)
			if w == nil {
				return nil, fmt.Errorf("%s: expected gradient of %q, which the model does not have", path, name)
			}
			if w.Grad() == nil {
				return nil, fmt.Errorf("weight %s received no gradient", name)
			}
			v, err := w.Grad().Float32s()
			if err != nil {
				return nil, err
			}
			if err := compare("expected.grad."+name, v, true); err != nil {
				return nil, err
			}
		}
		for _, w := range m.Parameters() {
			w.ZeroGrad()
		}
		// Leaves keep handles to the gradients; drop them.
	}
	p.ZeroGrad()

	// Greedy decoding with the prompt, without early stopping.
	if want, shape, err := c.Ints("expected.greedy_ids"); err == nil {
		steps := shape[1] - 1
		enc, encMask := m.EncodeBatch(batch, p)
		got, err := m.Greedy(enc, encMask, steps, false)
		release(enc, encMask)
		if err != nil {
			return nil, err
		}
		r := CaseResult{Name: "expected.greedy_ids"}
		for b := 0; b < shape[0]; b++ {
			for j := 0; j < shape[1]; j++ {
				g := -1
				if j < len(got[b]) {
					g = got[b][j]
				}
				if int64(g) != want[b*shape[1]+j] {
					r.Mismatches++
				}
			}
		}
		r.OK = r.Mismatches == 0
		results = append(results, r)
	}
	return results, e.Err()
}
