package autograd

import (
	"math"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// A 2-layer MLP with LayerNorm and cross-entropy, trained several AdamW
// steps (with gradient clipping) on the device, ends with the parameters of
// the same computation in float64 on the CPU.

const (
	mlpN, mlpIn, mlpH, mlpK = 7, 6, 8, 5
	mlpSteps                = 5
)

var mlpShapes = [][]int{{mlpH, mlpIn}, {mlpH}, {mlpH}, {mlpH}, {mlpK, mlpH}, {mlpK}} // W1 b1 lnw lnb W2 b2

var mlpLabels = []int{0, 3, 4, -100, 1, 1, 2}

// mlpLossRef is the float64 loss for parameters ps and inputs x.
func mlpLossRef(ps [][]float64, x []float64) float64 {
	h := make([]float64, mlpN*mlpH)
	kernels.MatMulRef(h, x, ps[0], kernels.MatMulParams{M: mlpN, N: mlpH, K: mlpIn, TransB: true, Alpha: 1}, ps[1])
	ln := make([]float64, len(h))
	kernels.LayerNormRef(ln, nil, nil, h, ps[2], ps[3], mlpN, mlpH, 1e-5)
	for i, v := range ln {
		ln[i] = math.Max(v, 0)
	}
	logits := make([]float64, mlpN*mlpK)
	kernels.MatMulRef(logits, ln, ps[4], kernels.MatMulParams{M: mlpN, N: mlpK, K: mlpH, TransB: true, Alpha: 1}, ps[5])
	loss, cnt := 0.0, 0
	for r, l := range mlpLabels {
		if l < 0 {
			continue
		}
		row := logits[r*mlpK : (r+1)*mlpK]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		loss += m + math.Log(s) - row[l]
		cnt++
	}
	return loss / float64(cnt)
}

func mlpForward(x *Tensor, ps []*Tensor, labels *Tensor) *Tensor {
	h := AddRow(Linear(x, ps[0]), ps[1])
	a := Relu(LayerNorm(h, ps[2], ps[3], 1e-5))
	logits := AddRow(Linear(a, ps[4]), ps[5])
	return CrossEntropy(logits, labels)
}

func TestMLPTrainingMatchesFloat64(t *testing.T) {
	rng := newRNG(99)
	x := reftest.F64s(reftest.F32s(reftest.Randn(rng, mlpN*mlpIn, 1)))
	init := make([][]float64, len(mlpShapes))
	for i, s := range mlpShapes {
		init[i] = reftest.F64s(reftest.F32s(reftest.Randn(rng, numel(s), 0.7)))
	}
	cfg := AdamWConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, MaxGradNorm: 1}

	// float64 reference: gradients by central differences of the loss.
	ref := make([][]float64, len(init))
	ms, vs := make([][]float64, len(init)), make([][]float64, len(init))
	for i := range init {
		ref[i] = append([]float64(nil), init[i]...)
		ms[i], vs[i] = make([]float64, len(init[i])), make([]float64, len(init[i]))
	}
	for step := 1; step <= mlpSteps; step++ {
		grads := make([][]float64, len(ref))
		total := 0.0
		for i := range ref {
			grads[i] = reftest.NumGrad(func(v []float64) float64 {
				saved := ref[i]
				ref[i] = v
				l := mlpLossRef(ref, x)
				ref[i] = saved
				return l
			}, append([]float64(nil), ref[i]...), 1e-6)
			for _, g := range grads[i] {
				total += g * g
			}
		}
		clip := math.Min(1, float64(cfg.MaxGradNorm)/(math.Sqrt(total)+1e-6))
		h := kernels.AdamWHyper{LR: cfg.LR, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, WeightDecay: cfg.WeightDecay, Step: int64(step)}
		for i := range ref {
			kernels.AdamWRef(ref[i], grads[i], ms[i], vs[i], h, clip)
		}
	}

	for _, capture := range []bool{false, true} {
		name := "eager"
		if capture {
			name = "captured program"
		}
		t.Run(name, func(t *testing.T) {
			e := newEngine(t)
			xt := e.FromFloat32(reftest.F32s(x), mlpN, mlpIn)
			lab := make([]int32, len(mlpLabels))
			for i, l := range mlpLabels {
				lab[i] = int32(l)
			}
			labels := e.FromInt32(lab, mlpN)
			ps := make([]*Tensor, len(init))
			for i := range init {
				ps[i] = e.Param("p", reftest.F32s(init[i]), mlpShapes[i]...)
			}
			opt, err := NewAdamW(e, ps, cfg)
			if err != nil {
				t.Fatal(err)
			}
			step := func() error {
				loss := mlpForward(xt, ps, labels)
				if err := e.Backward(loss); err != nil {
					return err
				}
				loss.Release()
				opt.Step()
				opt.ZeroGrad()
				return e.Err()
			}
			if capture {
				prog, err := e.Capture(step)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < mlpSteps; i++ {
					if err := prog.Run(); err != nil {
						t.Fatal(err)
					}
				}
				if err := e.Sync(); err != nil {
					t.Fatal(err)
				}
				defer prog.Release()
			} else {
				for i := 0; i < mlpSteps; i++ {
					if err := step(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, p := range ps {
				got, err := p.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				// fp32 arithmetic against float64 over several steps: 1e-9 in
				// normalized squared error is about 3e-5 relative.
				reftest.CheckNMSE(t, "parameter", reftest.F64s(got), ref[i], 1e-9)
				if reftest.NMSE(reftest.F64s(got), init[i]) < 1e-6 {
					t.Errorf("parameter %d barely moved", i)
				}
			}
			for _, p := range ps {
				p.Release()
			}
			opt.Release()
			xt.Release()
			labels.Release()
		})
	}
}
