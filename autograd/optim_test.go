package autograd

import (
	"math"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// An optimizer restored from State continues bit for bit like the one it
// was read from: the checkpoint of a resumable run depends on it.
func TestAdamWStateRoundTrip(t *testing.T) {
	e := newEngine(t)
	rng := newRNG(7)
	x := reftest.Randn(rng, mlpN*mlpIn, 1)
	xt := e.FromFloat32(reftest.F32s(x), mlpN, mlpIn)
	defer xt.Release()
	lab := make([]int32, len(mlpLabels))
	for i, l := range mlpLabels {
		lab[i] = int32(l)
	}
	labels := e.FromInt32(lab, mlpN)
	defer labels.Release()
	cfg := AdamWConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1}

	newRun := func(vals [][]float32) ([]*Tensor, *AdamW) {
		ps := make([]*Tensor, len(mlpShapes))
		for i, sh := range mlpShapes {
			ps[i] = e.Param("p", vals[i], sh...)
		}
		opt, err := NewAdamW(e, ps, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return ps, opt
	}
	steps := func(ps []*Tensor, opt *AdamW, n int) {
		for i := 0; i < n; i++ {
			loss := mlpForward(xt, ps, labels)
			if err := e.Backward(loss); err != nil {
				t.Fatal(err)
			}
			loss.Release()
			opt.Step()
			opt.ZeroGrad()
		}
	}
	read := func(ps []*Tensor) [][]float32 {
		out := make([][]float32, len(ps))
		for i, p := range ps {
			v, err := p.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			out[i] = v
		}
		return out
	}
	init := make([][]float32, len(mlpShapes))
	for i, sh := range mlpShapes {
		n := 1
		for _, d := range sh {
			n *= d
		}
		init[i] = reftest.F32s(reftest.Randn(rng, n, 0.3))
	}

	a, optA := newRun(init)
	steps(a, optA, 3)
	state, err := optA.State()
	if err != nil {
		t.Fatal(err)
	}
	mid := read(a)
	steps(a, optA, 2)
	want := read(a)

	b, optB := newRun(mid)
	if err := optB.SetState(state); err != nil {
		t.Fatal(err)
	}
	steps(b, optB, 2)
	got := read(b)
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("parameter %d element %d: restored %v, uninterrupted %v", i, j, got[i][j], want[i][j])
			}
		}
	}
	bad := state
	bad.M = bad.M[:1]
	if err := optB.SetState(bad); err == nil {
		t.Error("SetState accepted a state with too few moments")
	}
	for _, p := range append(a, b...) {
		p.Release()
	}
	optA.Release()
	optB.Release()
}
