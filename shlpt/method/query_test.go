package method

import (
	"math"
	"math/rand/v2"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// randomExamples returns n examples with inputs of 1 to maxIn ids and
// targets of 1 to maxOut ids, each ending with </s>.
func randomExamples(m *t5.Model, rng *rand.Rand, n, maxIn, maxOut int) []Example {
	seq := func(maxLen int) []int {
		k := 1 + rng.IntN(maxLen)
		out := make([]int, k)
		for i := range out[:k-1] {
			out[i] = 3 + rng.IntN(m.Config.VocabSize-3)
		}
		out[k-1] = m.Config.EOSTokenID
		return out
	}
	exs := make([]Example, n)
	for i := range exs {
		exs[i] = Example{Input: seq(maxIn), Target: seq(maxOut)}
	}
	return exs
}

// evalBatch uploads the inputs of exs as an evaluation batch (no labels,
// padded to the longest row), as the runner's evaluator does.
func evalBatch(t *testing.T, m *t5.Model, exs []Example) *Batch {
	t.Helper()
	inputs := make([][]int, len(exs))
	for i, ex := range exs {
		inputs[i] = ex.Input
	}
	b, err := m.NewBatch(inputs, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return &Batch{Examples: exs, Device: b}
}

// recordedStep is RecordStep's step with test helpers that fail the test
// on an error, released when the test ends.
type recordedStep struct{ *RecordedStep }

func recordStep(t *testing.T, m *t5.Model, meth Method, opt *ag.AdamW, task *Task, B int) recordedStep {
	t.Helper()
	r, err := RecordStep(m, meth, opt, task, B)
	if err != nil {
		t.Fatalf("recording the step: %v", err)
	}
	t.Cleanup(r.Release)
	return recordedStep{r}
}

// write fills the step with rows (indices into train), as the runner does
// before each run.
func (r recordedStep) write(t *testing.T, train []Example, rows []int) *Batch {
	t.Helper()
	b, err := r.Write(train, rows, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs the program and returns the loss and its parts.
func (r recordedStep) run(t *testing.T) (float64, map[string]float64) {
	t.Helper()
	loss, parts, err := r.Run()
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		t.Fatalf("loss %v", loss)
	}
	return loss, parts
}

// newOptimizer is the runner's AdamW without weight decay (so that
// parameters without a gradient keep their values exactly).
func newOptimizer(t *testing.T, meth Method) *ag.AdamW {
	t.Helper()
	e := meth.Params()[0].Engine()
	opt, err := ag.NewAdamW(e, meth.Params(), ag.AdamWConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(opt.Release)
	return opt
}

// promptValues reads the prompt a Prompter gives batch b, and its shape.
func promptValues(t *testing.T, pr Prompter, b *Batch) ([]float32, []int) {
	t.Helper()
	p, err := pr.Prompt(b)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	v, err := p.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v, p.Shape()
}

// memStore keeps what a method writes into the run directory.
type memStore struct {
	tensors map[string][]HostTensor
	meta    map[string]map[string]string
}

func newMemStore() *memStore {
	return &memStore{tensors: map[string][]HostTensor{}, meta: map[string]map[string]string{}}
}

func (s *memStore) WriteTensors(rel string, ts []HostTensor, meta map[string]string) error {
	s.tensors[rel], s.meta[rel] = ts, meta
	return nil
}

func (s *memStore) WriteJSON(string, any) error { return nil }

// The query is the mean of the frozen encoder's output over the real
// tokens: against a float64 mean of Encode's output, and unchanged by the
// amount of padding.
func TestEncoderQuery(t *testing.T) {
	m := tinyModel(t)
	e := m.Engine()
	rng := rand.New(rand.NewPCG(1, 2))
	exs := randomExamples(m, rng, 4, 9, 2)
	exs[2].Input = []int{7, m.Config.EOSTokenID}
	inputs := make([][]int, len(exs))
	for i, ex := range exs {
		inputs[i] = ex.Input
	}
	b, err := m.NewBatch(inputs, nil, 12, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	m.SetTraining(true)
	got, err := encoderQuery(m, b)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Training() {
		t.Error("the query pass did not restore training mode")
	}
	if e.TapeLen() != 0 {
		t.Errorf("the query pass recorded %d tape nodes", e.TapeLen())
	}
	B, L, d := len(exs), b.InputIDs.Dim(1), m.Config.DModel
	if len(got) != B*d {
		t.Fatalf("%d query values, want %d", len(got), B*d)
	}
	m.SetTraining(false)
	enc, full := m.Encode(b.InputIDs, b.InputMask, nil)
	hv, err := enc.Float32s()
	enc.Release()
	full.Release()
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, B*d)
	for r, ex := range exs {
		n := len(ex.Input)
		for l := 0; l < n; l++ {
			for k := 0; k < d; k++ {
				want[r*d+k] += float64(hv[(r*L+l)*d+k]) / float64(n)
			}
		}
	}
	closeTo(t, "query", got, want, 1e-5)

	// Row 2 alone, without padding.
	alone, err := m.NewBatch([][]int{exs[2].Input}, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Release()
	q2, err := encoderQuery(m, alone)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "query without padding", q2, toF64(got[2*d:3*d]), 1e-4)

	// A step's query tensor holds what Write computed.
	qi, err := newQueryInput(m, B)
	if err != nil {
		t.Fatal(err)
	}
	defer qi.release()
	if _, err := qi.write(b); err != nil {
		t.Fatal(err)
	}
	dev, err := qi.q.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "query tensor", dev, toF64(got), 0)
	if _, err := qi.write(alone); err == nil {
		t.Error("writing a batch of another size succeeded")
	}
}

// cosine64 follows the device's formula.
func TestCosine64(t *testing.T) {
	if c := cosine64([]float32{3, 4}, []float32{4, 3}); math.Abs(c-24.0/25) > 1e-15 {
		t.Errorf("cos = %v, want 0.96", c)
	}
	if c := cosine64([]float32{0, 0}, []float32{1, 0}); c != 0 {
		t.Errorf("cos with a zero vector = %v, want 0", c)
	}
}
