package t5

import (
	"math"
	"testing"
)

// In training mode, with dropout on (attention dropout fused into the
// softmax, the other dropout layers separate), the prompt gradient is the
// derivative of the loss the forward pass computed: the masks of forward and
// backward agree. Checked by a central difference along the gradient, each
// loss drawn with the same dropout seed; also, the masks change with the
// seed and training differs from evaluation.
func TestTrainingDropoutGradient(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	m.Config.DropoutRate = 0.2
	m.SetTraining(true)
	defer m.SetTraining(false)
	b, err := m.NewBatch([][]int{{5, 9, 13, 2, 7, 1}, {4, 4, 8, 1}}, [][]int{{6, 3, 1}, {9, 1}}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	const Lp = 3
	pv := make([]float32, Lp*m.Config.DModel)
	for i := range pv {
		pv[i] = float32(math.Sin(float64(i))) * 0.5
	}
	loss := func(seed uint32, prompt []float32, grad bool) (float64, []float32) {
		t.Helper()
		if err := m.SetDropoutSeed(seed); err != nil {
			t.Fatal(err)
		}
		p := e.Param("prompt", prompt, Lp, m.Config.DModel).SetRequiresGrad(grad)
		defer p.Release()
		if !grad {
			defer e.NoGrad()()
		}
		out := m.Forward(b, Options{Prompt: p})
		defer out.Loss.Release()
		l, err := out.Loss.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !grad {
			return float64(l[0]), nil
		}
		if err := e.Backward(out.Loss); err != nil {
			t.Fatal(err)
		}
		g, err := p.Grad().Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return float64(l[0]), g
	}
	l0, g := loss(7, pv, true)
	norm := 0.0
	for _, v := range g {
		norm += float64(v) * float64(v)
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		t.Fatal("zero prompt gradient")
	}
	const h = 1e-2
	shift := func(s float64) []float32 {
		q := make([]float32, len(pv))
		for i := range q {
			q[i] = pv[i] + float32(s*h*float64(g[i])/norm)
		}
		return q
	}
	lp, _ := loss(7, shift(1), false)
	lm, _ := loss(7, shift(-1), false)
	if d := (lp - lm) / (2 * h); math.Abs(d-norm) > 0.02*norm {
		t.Errorf("directional derivative %.6g, gradient norm %.6g", d, norm)
	}
	if again, _ := loss(7, pv, false); math.Abs(again-l0) > 1e-6*math.Abs(l0) {
		t.Errorf("same seed, losses %v and %v", l0, again)
	}
	if other, _ := loss(8, pv, false); other == l0 {
		t.Errorf("another seed gave the same loss %v", l0)
	}
	m.SetTraining(false)
	if eval, _ := loss(7, pv, false); eval == l0 {
		t.Errorf("evaluation gave the training loss %v", l0)
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
}
