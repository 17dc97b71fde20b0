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
	// Skipped says why the tensor was not compared (OK is then true): the
	// gradient of a weight stored in 16 bits, which cannot be trained.
	Skipped string
}

func (r CaseResult) String() string {
	if r.Skipped != "" {
		return fmt.Sprintf("%-70s skipped: %s", r.Name, r.Skipped)
	}
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

// ParseCase reads a case file held in data; name is used in messages. The
// tensors alias data.
func ParseCase(name string, data []byte) (*CaseFile, error) {
	f, err := safetensors.Parse(name, data)
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
	h, err := c.hostBatch(m.Config.VocabSize)
	if err != nil {
		return nil, err
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
		InputIDs:        e.FromInt32(toI32(h.ids), h.idShape...),
		InputMask:       e.FromFloat32(AdditiveMask(h.mask), h.idShape...),
		DecoderInputIDs: e.FromInt32(toI32(h.dec), h.labelShape...),
		Labels:          e.FromInt32(toI32(h.labels), h.labelShape...),
	}
	if err := e.Err(); err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}

// caseBatch is the batch of a case file on the host.
type caseBatch struct {
	ids, mask, labels, dec []int64
	idShape, labelShape    []int // (B, L) and (B, T)
}

// hostBatch reads and checks the batch of the case for a vocabulary of
// vocab ids: input_ids and attention_mask (B, L), labels and
// decoder_input_ids (B, T), every dimension at least 1, ids in the
// vocabulary, labels in it or IgnoreIndex, the mask 0 or 1.
func (c *CaseFile) hostBatch(vocab int) (*caseBatch, error) {
	path := c.Path()
	h := &caseBatch{}
	var amShape, dShape []int
	var err error
	if h.ids, h.idShape, err = c.Ints("input_ids"); err != nil {
		return nil, err
	}
	if h.mask, amShape, err = c.Ints("attention_mask"); err != nil {
		return nil, err
	}
	if h.labels, h.labelShape, err = c.Ints("labels"); err != nil {
		return nil, err
	}
	if h.dec, dShape, err = c.Ints("decoder_input_ids"); err != nil {
		return nil, err
	}
	if len(h.idShape) != 2 || !sameShape(h.idShape, amShape) || len(h.labelShape) != 2 || !sameShape(h.labelShape, dShape) || h.labelShape[0] != h.idShape[0] {
		return nil, fmt.Errorf("%s: shapes do not fit: input_ids %v, attention_mask %v, labels %v, decoder_input_ids %v (want (B, L), (B, L), (B, T), (B, T))",
			path, h.idShape, amShape, h.labelShape, dShape)
	}
	if h.idShape[0] < 1 || h.idShape[1] < 1 || h.labelShape[1] < 1 {
		return nil, fmt.Errorf("%s: input_ids %v and labels %v must have at least one row and one position", path, h.idShape, h.labelShape)
	}
	V := int64(vocab)
	for _, t := range []struct {
		name string
		v    []int64
	}{{"input_ids", h.ids}, {"decoder_input_ids", h.dec}} {
		for _, x := range t.v {
			if x < 0 || x >= V {
				return nil, fmt.Errorf("%s: %s: token id %d outside the vocabulary of %d", path, t.name, x, V)
			}
		}
	}
	for _, x := range h.labels {
		if x != IgnoreIndex && (x < 0 || x >= V) {
			return nil, fmt.Errorf("%s: label %d outside the vocabulary of %d", path, x, V)
		}
	}
	for _, x := range h.mask {
		if x != 0 && x != 1 {
			return nil, fmt.Errorf("%s: attention_mask holds %d; expected 0 or 1", path, x)
		}
	}
	return h, nil
}

// greedyIDs reads the optional expected.greedy_ids, which must be (rows,
// n) with n at least 1: the decoder start token and n-1 generated ids per
// row. ok is false when the case has none.
func (c *CaseFile) greedyIDs(rows int) (want []int64, shape []int, ok bool, err error) {
	const name = "expected.greedy_ids"
	if _, has := c.Tensor(name); !has {
		return nil, nil, false, nil
	}
	want, shape, err = c.Ints(name)
	if err != nil {
		return nil, nil, false, err
	}
	if len(shape) != 2 || shape[0] != rows || shape[1] < 1 {
		return nil, nil, false, fmt.Errorf("%s: %s has shape %v, expected (%d, steps+1)", c.Path(), name, shape, rows)
	}
	return want, shape, true, nil
}

// CompareShape compares got, a tensor of the given shape that the engine
// produced, with the case's expected tensor name, which must have the same
// shape, within CaseTol of its largest magnitude (CaseGradTol for
// gradients). A tensor of the right number of values but another shape is
// an error naming the tensor and both shapes.
func (c *CaseFile) CompareShape(name string, got []float32, shape []int, grad bool) (CaseResult, error) {
	t, ok := c.Tensor(name)
	if !ok {
		return CaseResult{}, fmt.Errorf("%s: tensor %q is missing", c.Path(), name)
	}
	if !sameShape(t.Shape, shape) {
		return CaseResult{}, fmt.Errorf("%s: %s has shape %v, the engine gave %v", c.Path(), name, t.Shape, shape)
	}
	if n := numel(shape); n != len(got) {
		return CaseResult{}, fmt.Errorf("%s: the engine gave %d values for %s of shape %v, which holds %d", c.Path(), len(got), name, shape, n)
	}
	return c.Compare(name, got, grad)
}

// Compare compares got with the case's expected tensor name, which must
// have as many values, within CaseTol of its largest magnitude (CaseGradTol
// for gradients). It does not see the shape: CompareShape does.
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
// gradients and frozen again afterwards; dropout is turned off. On a model
// with 16-bit weights (LoadOptions.Weights) only its fp32 weights (norms,
// relative position tables) are made trainable; the expected gradients of
// the 16-bit ones are reported as skipped.
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
	if len(pShape) != 2 || pShape[0] < 1 || pShape[1] != m.Config.DModel {
		return nil, fmt.Errorf("%s: prompt %v must be (Lp, %d) with Lp at least 1", path, pShape, m.Config.DModel)
	}
	p := e.Param("prompt", prompt, pShape...)
	defer p.Release()

	var results []CaseResult
	compare := func(name string, got []float32, shape []int, grad bool) error {
		r, err := c.CompareShape(name, got, shape, grad)
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
	type check struct {
		name  string
		t     *ag.Tensor
		shape []int // nil: the tensor's own
	}
	checks := []check{
		{"expected.encoder_last_hidden_state", out.EncoderOut, nil},
		{"expected.logits", out.Logits, nil},
		{"expected.loss", out.Loss, nil},
		{"expected.last_ffn_activation_first", out.FFNActFirst, nil},
	}
	if _, ok := c.Tensor("expected.decoder_last_hidden_first"); ok {
		first := ag.Slice(out.Hidden, 1, 0, 1) // (B, 1, D): the first position of each row
		checks = append(checks, check{"expected.decoder_last_hidden_first", first, []int{first.Dim(0), first.Dim(2)}})
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
		if ck.t == nil {
			return nil, fmt.Errorf("%s: the model did not compute %s", path, ck.name)
		}
		shape := ck.shape
		if shape == nil {
			shape = ck.t.Shape()
		}
		if err := compare(ck.name, v, shape, false); err != nil {
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
		if err := compare("expected.grad.prompt", v, pg.Shape(), true); err != nil {
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
		for _, w := range m.Parameters() {
			if w.DType() == ag.F32 {
				w.SetRequiresGrad(true)
			}
		}
		// Also on an error: the model is left frozen and without gradients.
		defer func() {
			for _, w := range m.Parameters() {
				w.ZeroGrad()
				w.SetRequiresGrad(false)
			}
		}()
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
			if w.DType() != ag.F32 {
				results = append(results, CaseResult{Name: "expected.grad." + name, OK: true,
					Skipped: fmt.Sprintf("the weight is stored as %v, which is frozen", w.DType())})
				continue
			}
			if w.Grad() == nil {
				return nil, fmt.Errorf("weight %s received no gradient", name)
			}
			v, err := w.Grad().Float32s()
			if err != nil {
				return nil, err
			}
			if err := compare("expected.grad."+name, v, w.Grad().Shape(), true); err != nil {
				return nil, err
			}
		}
		for _, w := range m.Parameters() {
			w.ZeroGrad()
		}
	}
	p.ZeroGrad()

	// Greedy decoding with the prompt, without early stopping.
	want, shape, greedy, err := c.greedyIDs(batch.InputIDs.Dim(0))
	if err != nil {
		return nil, err
	}
	if greedy {
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
