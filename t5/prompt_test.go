package t5

import (
	"math"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// Rows of different input and target lengths, so that padding is involved.
var (
	promptInputs  = [][]int{{5, 9, 13, 2, 7, 1}, {4, 4, 8, 1}, {11, 3, 1}}
	promptTargets = [][]int{{6, 3, 1}, {9, 1}, {2, 8, 5, 1}}
)

const promptLp = 3

// promptValues returns n deterministic prompt values; rows with another
// salt differ.
func promptValues(n int, salt float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)*0.7+salt)) * 0.5
	}
	return v
}

// maxAbsDiff returns max |a−b| and max |b|.
func maxAbsDiff(a, b []float32) (diff, scale float64) {
	for i := range b {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff, scale
}

func readAll(t *testing.T, x *ag.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A (B, Lp, d) prompt whose rows all equal a shared (Lp, d) prompt gives the
// shared prompt's loss, and its per-row gradients sum to the shared
// prompt's gradient.
func TestPerRowPromptMatchesShared(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	b, err := m.NewBatch(promptInputs, promptTargets, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	B, d := len(promptInputs), m.Config.DModel
	pv := promptValues(promptLp*d, 0)
	step := func(p *ag.Tensor) (float64, []float32) {
		t.Helper()
		defer p.Release()
		out := m.Forward(b, Options{Prompt: p})
		defer out.Release()
		if err := e.Backward(out.Loss); err != nil {
			t.Fatal(err)
		}
		return float64(readAll(t, out.Loss)[0]), readAll(t, p.Grad())
	}
	lShared, gShared := step(e.Param("prompt", pv, promptLp, d))
	var rows []float32
	for i := 0; i < B; i++ {
		rows = append(rows, pv...)
	}
	lRows, gRows := step(e.Param("prompt", rows, B, promptLp, d))
	if math.Abs(lRows-lShared) > 1e-6*math.Abs(lShared) {
		t.Errorf("per-row loss %v, shared loss %v", lRows, lShared)
	}
	sum := make([]float32, len(gShared))
	for i := 0; i < B; i++ {
		for j := range sum {
			sum[j] += gRows[i*len(sum)+j]
		}
	}
	if diff, scale := maxAbsDiff(sum, gShared); scale == 0 || diff > 1e-5*scale {
		t.Errorf("per-row gradients summed differ from the shared gradient by %.3g (largest %.3g)", diff, scale)
	}
}

// With a different prompt per row, each row's decoder hidden states (and its
// encoder output at real positions, through EncodeBatch) equal those of the
// row run alone with its prompt.
func TestPerRowPromptMatchesSingleRows(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	defer e.NoGrad()()
	B, d := len(promptInputs), m.Config.DModel
	var pv []float32
	for i := 0; i < B; i++ {
		pv = append(pv, promptValues(promptLp*d, float64(i))...)
	}
	b, err := m.NewBatch(promptInputs, promptTargets, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	p := e.FromFloat32(pv, B, promptLp, d)
	defer p.Release()
	out := m.Forward(b, Options{Prompt: p, Hidden: true})
	defer out.Release()
	hidden := readAll(t, out.Hidden)
	enc, encMask := m.EncodeBatch(b, p)
	defer release(enc, encMask)
	encAll := readAll(t, enc)
	T, L := out.Hidden.Dim(1), b.InputIDs.Dim(1)
	for i := 0; i < B; i++ {
		one, err := m.NewBatch(promptInputs[i:i+1], promptTargets[i:i+1], 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		pi := e.FromFloat32(pv[i*promptLp*d:(i+1)*promptLp*d], promptLp, d)
		o := m.Forward(one, Options{Prompt: pi, Hidden: true})
		h := readAll(t, o.Hidden)
		// The row's own target positions; the batch pads shorter rows.
		Ti := o.Hidden.Dim(1)
		got := hidden[i*T*d : (i*T+Ti)*d]
		if diff, scale := maxAbsDiff(got, h); diff > 1e-5*scale {
			t.Errorf("row %d: decoder hidden states differ by %.3g (largest %.3g)", i, diff, scale)
		}
		en, em := m.EncodeBatch(one, pi)
		encOne := readAll(t, en)
		real := (promptLp + len(promptInputs[i])) * d
		got = encAll[i*(promptLp+L)*d : i*(promptLp+L)*d+real]
		if diff, scale := maxAbsDiff(got, encOne[:real]); diff > 1e-5*scale {
			t.Errorf("row %d: encoder outputs differ by %.3g (largest %.3g)", i, diff, scale)
		}
		release(pi, en, em)
		o.Release()
		one.Release()
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
}

// A per-row prompt whose batch size differs from the batch's is an error.
func TestPerRowPromptBatchMismatch(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	b, err := m.NewBatch(promptInputs, promptTargets, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	d := m.Config.DModel
	p := e.FromFloat32(promptValues(2*promptLp*d, 0), 2, promptLp, d)
	defer p.Release()
	out := m.Forward(b, Options{Prompt: p})
	out.Release()
	if e.Err() == nil {
		t.Fatal("a (2, Lp, d) prompt for a batch of 3 was accepted")
	}
	e.ClearErr()
}
