package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// adamwParam is one parameter array with its optimizer state, on the device
// and in float64.
type adamwParam struct {
	n          int
	p, m, v    []float64
	pm, gm     Mem
	mm, vm     Mem
	clip       bool
	pad        int64
	grads      [][]float64 // per step
	p0, update []float64
}

// Several AdamW steps, replayed from one recorded program with gradients
// written between runs, agree with the float64 reference of torch's
// algorithm; clipping applies to the arrays that ask for it.
func TestAdamW(t *testing.T) {
	d := gputest.Device(t)
	for _, tc := range []struct {
		name    string
		sizes   []int
		maxNorm float64 // 0: no clipping
		h       AdamWHyper
	}{
		{"awkward/clipped", awkward, 5, AdamWHyper{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}},
		{"awkward/unclipped", awkward, 0, AdamWHyper{LR: 0.02, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0}},
		{"large/clip inactive", []int{1 << 16, 3 << 12}, 1e6, AdamWHyper{LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}},
		{"resumed", []int{33, 129}, 2, AdamWHyper{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testAdamW(t, d, tc.sizes, tc.maxNorm, tc.h)
		})
	}
}

func testAdamW(t *testing.T, d *gpu.Device, sizes []int, maxNorm float64, h AdamWHyper) {
	const steps = 5
	rng := newRNG(70)
	var params []*adamwParam
	for i, n := range sizes {
		q := &adamwParam{n: n, p: reftest.Round32(reftest.Randn(rng, n, 1)), m: make([]float64, n), v: make([]float64, n),
			clip: maxNorm > 0 && i != 1, pad: int64(i % 3)}
		if h.Step > 0 { // a resumed optimizer has moments already
			q.m, q.v = reftest.Round32(reftest.Randn(rng, n, 0.1)), reftest.Round32(reftest.Randn(rng, n, 0.1))
			for j := range q.v {
				q.v[j] = math.Abs(q.v[j])
			}
		}
		q.p0 = append([]float64(nil), q.p...)
		for s := 0; s < steps; s++ {
			q.grads = append(q.grads, reftest.Round32(reftest.Randn(rng, n, 1)))
		}
		q.pm, q.gm = upload(t, d, q.p, q.pad), zeros(t, d, n, 2*q.pad)
		q.mm, q.vm = upload(t, d, q.m, 0), upload(t, d, q.v, q.pad)
		params = append(params, q)
	}
	hyper := zeros(t, d, AdamWHyperLen, 1)
	if err := WriteAdamWHyper(hyper, h); err != nil {
		t.Fatal(err)
	}
	coef, norm := zeros(t, d, 1, 0), zeros(t, d, 1, 1)
	scratch := zeros(t, d, len(sizes), 0)

	r := d.NewRecorder(false)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(AdamWStep(r, hyper))
	var clipped []Mem
	var clippedSizes []int64
	for _, q := range params {
		if q.clip {
			clipped = append(clipped, q.gm)
			clippedSizes = append(clippedSizes, int64(q.n))
		}
	}
	if len(clipped) > 0 {
		must(ClipGradNorm(r, coef, norm, scratch, clipped, clippedSizes, float32(maxNorm)))
	}
	for _, q := range params {
		c := Mem{}
		if q.clip {
			c = coef
		}
		must(AdamW(r, q.pm, q.gm, q.mm, q.vm, int64(q.n), hyper, c))
	}
	prog, err := r.Compile()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()

	for s := 0; s < steps; s++ {
		for _, q := range params {
			f := make([]float32, q.n)
			for j, v := range q.grads[s] {
				f[j] = float32(v)
			}
			must(gpu.WriteSlice(q.gm.Buf, q.gm.Off, f))
		}
		must(prog.Run())
		must(d.Wait())

		// The reference step.
		hs := h
		hs.Step = h.Step + int64(s) + 1
		var cg [][]float64
		for _, q := range params {
			if q.clip {
				cg = append(cg, q.grads[s])
			}
		}
		wantCoef, wantNorm := 1.0, 0.0
		if len(cg) > 0 {
			wantCoef, wantNorm = ClipGradNormRef(cg, maxNorm)
			reftest.CheckNMSE(t, fmt.Sprintf("step %d: norm", s+1), download(t, norm, 1), []float64{wantNorm}, tolFP32)
			reftest.CheckNMSE(t, fmt.Sprintf("step %d: coef", s+1), download(t, coef, 1), []float64{wantCoef}, tolFP32)
		}
		for _, q := range params {
			c := 1.0
			if q.clip {
				c = wantCoef
			}
			AdamWRef(q.p, q.grads[s], q.m, q.v, hs, c)
		}
	}
	gotH := download(t, hyper, AdamWHyperLen)
	wantH := AdamWHyper{LR: h.LR, Beta1: h.Beta1, Beta2: h.Beta2, Eps: h.Eps, WeightDecay: h.WeightDecay, Step: h.Step + steps}.slots()
	for i, w := range wantH {
		if e := math.Abs(gotH[i]-float64(w)) / math.Abs(float64(w)+1e-30); e > 1e-6 {
			t.Errorf("hyper slot %d = %v, want %v", i, gotH[i], w)
		}
	}
	for i, q := range params {
		what := fmt.Sprintf("param %d (%d, clip=%v)", i, q.n, q.clip)
		got := download(t, q.pm, q.n)
		reftest.CheckNMSE(t, what+": p", got, q.p, tolFP32)
		// The change alone, so that a wrong update is not hidden by p.
		gotU, wantU := make([]float64, q.n), make([]float64, q.n)
		for j := range got {
			gotU[j], wantU[j] = got[j]-q.p0[j], q.p[j]-q.p0[j]
		}
		reftest.CheckNMSE(t, what+": p − p0", gotU, wantU, 1e-9)
		reftest.CheckNMSE(t, what+": m", download(t, q.mm, q.n), q.m, tolFP32)
		reftest.CheckNMSE(t, what+": v", download(t, q.vm, q.n), q.v, tolFP32)
	}
}

// The reference's update matches a direct transcription of
// torch.optim.AdamW's single-tensor step (torch/optim/adamw.py).
func TestAdamWRefMatchesTorchSteps(t *testing.T) {
	rng := newRNG(71)
	h := AdamWHyper{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
	p, g := reftest.Randn(rng, 5, 1), reftest.Randn(rng, 5, 1)
	m, v := make([]float64, 5), make([]float64, 5)
	pt, mt, vt := append([]float64(nil), p...), make([]float64, 5), make([]float64, 5)
	for step := 1; step <= 3; step++ {
		h.Step = int64(step)
		AdamWRef(p, g, m, v, h, 1)
		for i := range pt {
			pt[i] *= 1 - h.LR*h.WeightDecay                  // param.mul_(1 - lr * weight_decay)
			mt[i] += (g[i] - mt[i]) * (1 - h.Beta1)          // exp_avg.lerp_(grad, 1 - beta1)
			vt[i] = vt[i]*h.Beta2 + g[i]*g[i]*(1-h.Beta2)    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
			bc1 := 1 - math.Pow(h.Beta1, float64(step))      // bias_correction1
			bc2 := 1 - math.Pow(h.Beta2, float64(step))      // bias_correction2
			denom := math.Sqrt(vt[i])/math.Sqrt(bc2) + h.Eps // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
			pt[i] += -(h.LR / bc1) * mt[i] / denom           // param.addcdiv_(exp_avg, denom, value=-step_size)
		}
	}
	reftest.CheckNMSE(t, "p", p, pt, 1e-28)
}

func TestAdamWErrors(t *testing.T) {
	d := gputest.Device(t)
	x := zeros(t, d, 16, 0)
	hyper := zeros(t, d, AdamWHyperLen, 0)
	r := d.NewRecorder(false)
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s accepted", what)
		} else {
			t.Log(err)
		}
	}
	check("short hyper", WriteAdamWHyper(x.At(10), DefaultAdamW))
	check("beta 1", WriteAdamWHyper(hyper, AdamWHyper{Beta1: 1, Beta2: 0.9}))
	check("adamw with short moments", AdamW(r, x, x, x.At(8), x, 16, hyper, Mem{}))
	check("adamw without hyper", AdamW(r, x, x, x, x, 4, Mem{}, Mem{}))
	check("clip with mismatched sizes", ClipGradNorm(r, x, Mem{}, x, []Mem{x, x}, []int64{4}, 1))
	check("clip with a negative max norm", GradNormCoef(r, x, Mem{}, x, 2, -1))
	check("clip of an array longer than its buffer", ClipGradNorm(r, x, Mem{}, x, []Mem{x}, []int64{17}, 1))
	if r.Err() != nil {
		t.Fatalf("recorder failed: %v", r.Err())
	}
}

func BenchmarkAdamW(b *testing.B)        { arBenchOp(b, "adamw") }
func BenchmarkClipGradNorm(b *testing.B) { arBenchOp(b, "clip_grad_norm") }
