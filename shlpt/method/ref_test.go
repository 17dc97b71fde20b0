package method

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/go-gl/mathgl/mgl64"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func TestMain(m *testing.M) { gputest.Main(m) }

// Float64 references of SHLPT's math (Eq. 3–11), written with mgl64's
// matrices independently of the engine's ops, and the device method
// compared with them on shapes unlike the fixture's, forward and (by
// central differences of the reference) backward.

// mat returns an m×n mgl64 matrix of row-major values.
func mat(v []float64, m, n int) *mgl64.MatMxN {
	out := mgl64.NewMatrix(m, n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			out.Set(i, j, v[i*n+j])
		}
	}
	return out
}

// rows returns the row-major values of a matrix.
func rows(a *mgl64.MatMxN) []float64 {
	m, n := a.NumRowCols()
	out := make([]float64, 0, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			out = append(out, a.At(i, j))
		}
	}
	return out
}

// estimatorRef is Eq. 3–4: α = softmax_j(LayerNorm(SiLU(x̂·W_downᵀ)·W_upᵀ)·p̂_j / τ).
func estimatorRef(xhat, phat, down, up, lnw, lnb []float64, B, P, d, r int, tau float64) []float64 {
	X := mat(xhat, B, d)
	Wd := mat(down, r, d)
	Wu := mat(up, d, r)
	h := X.MulMxN(nil, Wd.Transpose(nil)) // (B, r)
	for i := 0; i < B; i++ {
		for j := 0; j < r; j++ {
			v := h.At(i, j)
			h.Set(i, j, v/(1+math.Exp(-v)))
		}
	}
	u := h.MulMxN(nil, Wu.Transpose(nil)) // (B, d)
	for i := 0; i < B; i++ {
		row := mgl64.NewVecN(d)
		for j := 0; j < d; j++ {
			row.Set(j, u.At(i, j))
		}
		mean := 0.0
		for j := 0; j < d; j++ {
			mean += row.Get(j) / float64(d)
		}
		vr := 0.0
		for j := 0; j < d; j++ {
			vr += (row.Get(j) - mean) * (row.Get(j) - mean) / float64(d)
		}
		for j := 0; j < d; j++ {
			u.Set(i, j, (row.Get(j)-mean)/math.Sqrt(vr+EstimatorNormEps)*lnw[j]+lnb[j])
		}
	}
	s := u.MulMxN(nil, mat(phat, P, d).Transpose(nil)) // (B, P)
	out := rows(s)
	for b := 0; b < B; b++ {
		row := out[b*P : (b+1)*P]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v/tau)
		}
		sum := 0.0
		for j := range row {
			row[j] = math.Exp(row[j]/tau - mx)
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
	}
	return out
}

// mixtureRef is Eq. 6: P(X)[b] = Σ_j mixed[b, j]·pool[j] + prompt.
func mixtureRef(mixed, pool, prompt []float64, B, P, n int) []float64 {
	out := rows(mat(mixed, B, P).MulMxN(nil, mat(pool, P, n)))
	for b := 0; b < B; b++ {
		for k := 0; k < n; k++ {
			out[b*n+k] += prompt[k]
		}
	}
	return out
}

func cosRef(a, b []float64) float64 {
	va, vb := mgl64.NewVecNFromData(a), mgl64.NewVecNFromData(b)
	return va.Dot(vb) / math.Max(va.Len()*vb.Len(), kernels.CosineEps)
}

// infoNCERef is the per-row contrastive loss with a fixed positive,
// averaged over all rows (0 for a row without negatives).
func infoNCERef(pos []float64, neg, negs []float64, B, P int, tau float64) float64 {
	total := 0.0
	for b := 0; b < B; b++ {
		sum := math.Exp(pos[b] / tau)
		any := false
		for j := 0; j < P; j++ {
			if negs[b*P+j] != 0 {
				sum += math.Exp(neg[b*P+j] / tau)
				any = true
			}
		}
		if any {
			total += math.Log(sum) - pos[b]/tau
		}
	}
	return total / float64(B)
}

// hscRef is Eq. 8 with weights w (B, T) over target positions.
func hscRef(h, hneg, w, negs []float64, B, P, T, d int, tau float64) float64 {
	pos := make([]float64, B)
	neg := make([]float64, B*P)
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			hb := h[(b*T+t)*d : (b*T+t+1)*d]
			pos[b] += w[b*T+t] * cosRef(hb, hb)
			for j := 0; j < P; j++ {
				o := ((b*P+j)*T + t) * d
				neg[b*P+j] += w[b*T+t] * cosRef(hb, hneg[o:o+d])
			}
		}
	}
	return infoNCERef(pos, neg, negs, B, P, tau)
}

// ascRef is Eqs. 10–11: cos(a, a) against cos(a ⊙ m, aneg) (aneg masked).
func ascRef(a, m, aneg, negs []float64, B, P, F int, tau float64) float64 {
	pos := make([]float64, B)
	neg := make([]float64, B*P)
	for b := 0; b < B; b++ {
		ab := a[b*F : (b+1)*F]
		am := make([]float64, F)
		for k := range am {
			am[k] = ab[k] * m[b*F+k]
		}
		pos[b] = cosRef(ab, ab)
		for j := 0; j < P; j++ {
			neg[b*P+j] = cosRef(am, aneg[(b*P+j)*F:(b*P+j+1)*F])
		}
	}
	return infoNCERef(pos, neg, negs, B, P, tau)
}

// closeTo fails unless got is within tol of want, relative to want's
// largest magnitude.
func closeTo(t *testing.T, name string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	scale := 1e-12
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*scale) {
			t.Fatalf("%s[%d] = %v, want %v (error %.3g of scale %.3g)", name, i, got[i], want[i], d, scale)
		}
	}
}

// newTestSHLPT returns the method on the tiny fixture model with a pool of
// P random stored prompts.
func newTestSHLPT(t *testing.T, cfg SHLPTConfig, P int, rng *rand.Rand) (*SHLPT, *t5.Model) {
	t.Helper()
	e := ag.New(gputest.Device(t))
	m, err := t5.Load(e, "../../testdata/t5-tiny-relu")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSHLPT(&Env{Model: m, Seed: 5}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Release()
		m.Release()
		if err := e.Err(); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	d := m.Config.DModel
	for j := 0; j < P; j++ {
		s.pool = append(s.pool, reftest.F32s(reftest.Randn(rng, cfg.PromptLen*d, 1)))
	}
	if err := s.BeginTask(&Task{Name: "t", InputLen: 4, TargetLen: 2, BatchSize: 2, EvalBatch: 2}); err != nil {
		t.Fatal(err)
	}
	return s, m
}

// The estimator, the partition and the mixture against the float64
// reference, with gradients of a random projection of the mixed prompts
// with respect to the estimator's weights and the prompt.
func TestEstimatorMixtureMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		P    int
		cfg  func(*SHLPTConfig)
	}{
		{"per-row", 5, func(c *SHLPTConfig) {}},
		{"batch negatives", 4, func(c *SHLPTConfig) { c.Quirks = []string{QuirkBatchPartition} }},
		{"one stored prompt", 1, func(c *SHLPTConfig) {}},
		{"-ASE", 3, func(c *SHLPTConfig) { c.NoASE = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, uint64(tc.P)))
			cfg := DefaultSHLPT()
			cfg.PromptLen, cfg.EstimatorRank, cfg.TauSim, cfg.Delta = 3, 7, 0.5, 0.12
			tc.cfg(&cfg)
			s, m := newTestSHLPT(t, cfg, tc.P, rng)
			e := m.Engine()
			const B = 7
			d, r, P, Lp := m.Config.DModel, cfg.EstimatorRank, tc.P, cfg.PromptLen
			xhat := reftest.Randn(rng, B*d, 1)
			down, up := reftest.Randn(rng, r*d, 0.3), reftest.Randn(rng, d*r, 0.3)
			lnw, lnb := reftest.Randn(rng, d, 1), reftest.Randn(rng, d, 0.2)
			prompt := reftest.Randn(rng, Lp*d, 1)
			est := []HostTensor{{estimatorNames[0], []int{r, d}, reftest.F32s(down)}, {estimatorNames[1], []int{d, r}, reftest.F32s(up)},
				{estimatorNames[2], []int{d}, reftest.F32s(lnw)}, {estimatorNames[3], []int{d}, reftest.F32s(lnb)}}
			if err := Restore(s, append([]HostTensor{{"prompt", []int{Lp, d}, reftest.F32s(prompt)}}, est...)); err != nil {
				t.Fatal(err)
			}
			var pool, phat []float64
			for j := 0; j < P; j++ {
				pj := toF64(s.pool[j])
				pool = append(pool, pj...)
				for c := 0; c < d; c++ {
					mx := math.Inf(-1)
					for l := 0; l < Lp; l++ {
						mx = math.Max(mx, pj[l*d+c])
					}
					phat = append(phat, mx)
				}
			}
			proj := reftest.Randn(rng, B*Lp*d, 1)
			// ref computes the mixed prompts and the projection for given
			// estimator weights and prompt.
			ref := func(down, up, lnw, lnb, prompt []float64) (alpha, mixed, out []float64, L float64) {
				if P == 1 || cfg.NoASE {
					alpha = make([]float64, B*P)
					for i := range alpha {
						alpha[i] = 1 / float64(P)
					}
				} else {
					alpha = estimatorRef(xhat, phat, down, up, lnw, lnb, B, P, d, r, cfg.TauSim)
				}
				mixed, _ = kernels.PartitionRef(alpha, B, P, cfg.partition())
				out = mixtureRef(mixed, pool, prompt, B, P, Lp*d)
				for i, v := range out {
					L += v * proj[i]
				}
				return alpha, mixed, out, L
			}
			wantAlpha, wantMixed, wantOut, _ := ref(down, up, lnw, lnb, prompt)

			x := e.FromFloat32(reftest.F32s(xhat), B, d)
			alpha := s.alphaFor(x, B)
			mixed, negs := ag.Partition(alpha, cfg.partition())
			out := s.mixPrompts(mixed)
			pt := e.FromFloat32(reftest.F32s(proj), B, Lp, d)
			prod := ag.Mul(out, pt)
			loss := ag.Sum(prod)
			for _, c := range []struct {
				name string
				t    *ag.Tensor
				want []float64
			}{{"alpha", alpha, wantAlpha}, {"mixed", mixed, wantMixed}, {"prompt_mixed", out, wantOut}} {
				got, err := c.t.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				closeTo(t, c.name, got, c.want, 1e-5)
			}
			if err := e.Backward(loss); err != nil {
				t.Fatal(err)
			}
			args := [][]float64{down, up, lnw, lnb, prompt}
			params := append(s.est.Params(), s.prompt)
			for k, p := range params {
				k := k
				want := reftest.NumGrad(func(v []float64) float64 {
					a := append([][]float64(nil), args...)
					a[k] = v
					_, _, _, L := ref(a[0], a[1], a[2], a[3], a[4])
					return L
				}, append([]float64(nil), args[k]...), 1e-6)
				got := make([]float32, p.Len())
				if g := p.Grad(); g != nil {
					var err error
					if got, err = g.Float32s(); err != nil {
						t.Fatal(err)
					}
				}
				closeTo(t, "grad "+p.Name(), got, want, 2e-3)
				p.ZeroGrad()
			}
			for _, tt := range []*ag.Tensor{x, alpha, mixed, negs, out, pt, prod, loss} {
				tt.Release()
			}
		})
	}
}

// HSC and ASC against the float64 reference, with their gradients with
// respect to the decoder states and the activation.
func TestContrastiveLossesMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	cfg := DefaultSHLPT()
	cfg.PromptLen, cfg.TauHSC, cfg.TauASC = 2, 0.7, 1.3
	const P = 3
	s, m := newTestSHLPT(t, cfg, P, rng)
	e := m.Engine()
	const B, T, d, F = 4, 3, 5, 9
	h := reftest.Randn(rng, B*T*d, 1)
	hneg := reftest.Randn(rng, B*P*T*d, 1)
	valid := [][]bool{{true, true, true}, {true, false, false}, {true, true, false}, {true, true, true}}
	w := toF64(hscWeights(valid, false))
	a := reftest.Randn(rng, B*F, 1)
	mask := make([]float64, B*F)
	for i := range mask {
		mask[i] = float64(rng.IntN(2))
	}
	aneg := reftest.Randn(rng, B*P*F, 1)
	for b := 0; b < B; b++ {
		for j := 0; j < P; j++ {
			for k := 0; k < F; k++ {
				aneg[(b*P+j)*F+k] *= mask[b*F+k]
			}
		}
	}
	// Row 2 has no negatives.
	negs := []float64{1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1}

	in := &stepInputs{hscW: e.FromFloat32(reftest.F32s(w), B, T), hidNeg: e.FromFloat32(reftest.F32s(hneg), B, P, T, d),
		ascM: e.FromFloat32(reftest.F32s(mask), B, F), actNeg: e.FromFloat32(reftest.F32s(aneg), B, P, F)}
	defer in.release()
	nt := e.FromFloat32(reftest.F32s(negs), B, P)
	defer nt.Release()
	ht := e.Param("h", reftest.F32s(h), B, T, d)
	at := e.Param("a", reftest.F32s(a), B, F)
	defer ht.Release()
	defer at.Release()

	lh := s.hsc(ht, in, nt)
	la := s.asc(at, in, nt)
	gotH, err1 := lh.Item()
	gotA, err2 := la.Item()
	if err := firstErr(err1, err2); err != nil {
		t.Fatal(err)
	}
	wantH := hscRef(h, hneg, w, negs, B, P, T, d, cfg.TauHSC)
	wantA := ascRef(a, mask, aneg, negs, B, P, F, cfg.TauASC)
	closeTo(t, "hsc", []float32{gotH}, []float64{wantH}, 1e-5)
	closeTo(t, "asc", []float32{gotA}, []float64{wantA}, 1e-5)

	sum := ag.Add(lh, la)
	if err := e.Backward(sum); err != nil {
		t.Fatal(err)
	}
	gh, _ := ht.Grad().Float32s()
	ga, _ := at.Grad().Float32s()
	closeTo(t, "grad h", gh, reftest.NumGrad(func(v []float64) float64 {
		return hscRef(v, hneg, w, negs, B, P, T, d, cfg.TauHSC)
	}, append([]float64(nil), h...), 1e-6), 2e-3)
	closeTo(t, "grad a", ga, reftest.NumGrad(func(v []float64) float64 {
		return ascRef(v, mask, aneg, negs, B, P, F, cfg.TauASC)
	}, append([]float64(nil), a...), 1e-6), 2e-3)
	for _, tt := range []*ag.Tensor{lh, la, sum} {
		tt.Release()
	}
}

// HSC's weights: 1/n over the counted positions, or 1/T over all with the
// reference's quirk.
func TestHSCWeights(t *testing.T) {
	valid := [][]bool{{true, true, false, false}, {true, false, false, false}}
	got := hscWeights(valid, false)
	want := []float32{0.5, 0.5, 0, 0, 1, 0, 0, 0}
	quirk := hscWeights(valid, true)
	for i := range want {
		if got[i] != want[i] || quirk[i] != 0.25 {
			t.Fatalf("weights %v and %v, want %v and all 0.25", got, quirk, want)
		}
	}
}

// ASC's mask: neurons inactive without a prompt; the reference's 1 − sign.
func TestASCMask(t *testing.T) {
	s0 := []float32{-1, 0, 2}
	if m := ascMask(s0, false); m[0] != 1 || m[1] != 1 || m[2] != 0 {
		t.Errorf("mask %v, want [1 1 0]", m)
	}
	if m := ascMask(s0, true); m[0] != 2 || m[1] != 1 || m[2] != 0 {
		t.Errorf("quirks mask %v, want [2 1 0]", m)
	}
}

// Each ablation and the Negative Transfer setting reduce the step to their
// documented form, on the inputs of the fixture's step case (three stored
// prompts).
func TestAblationsReduce(t *testing.T) {
	// storedIsPrompt reports whether the prompt a task would store (and is
	// validated with) is P^t alone for weights w.
	storedIsPrompt := func(t *testing.T, s *SHLPT) bool {
		t.Helper()
		stored, err := s.storedValues([]float64{0.5, 0.25, 0.25})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := s.prompt.Float32s()
		return slices.Equal(stored, p)
	}
	uniform := func(t *testing.T, r *stepResult) {
		t.Helper()
		for _, x := range []struct {
			name string
			t    *ag.Tensor
			want float32
		}{{"alpha", r.Alpha, float32(1.0 / 3)}, {"mixed", r.Mixed, float32(1.0 / 3)}, {"negatives", r.Negatives, 0}} {
			v, _ := x.t.Float32s()
			for _, y := range v {
				if y != x.want {
					t.Fatalf("-ASE %s %v, want %v everywhere", x.name, v, x.want)
				}
			}
		}
		if r.Prompt.Rank() != 3 || r.LossHSC != nil || r.LossASC != nil {
			t.Errorf("-ASE: prompt %v, HSC %v, ASC %v: every earlier prompt mixed, no negatives, no contrastive loss", r.Prompt, r.LossHSC, r.LossASC)
		}
	}
	for _, tc := range []struct {
		name  string
		set   func(*SHLPTConfig)
		check func(t *testing.T, s *SHLPT, r *stepResult)
	}{
		{"-HSC", func(c *SHLPTConfig) { c.NoHSC = true }, func(t *testing.T, s *SHLPT, r *stepResult) {
			if r.LossHSC != nil || r.LossASC == nil {
				t.Error("-HSC must drop HSC only")
			}
		}},
		{"-ASC", func(c *SHLPTConfig) { c.NoASC = true }, func(t *testing.T, s *SHLPT, r *stepResult) {
			if r.LossASC != nil || r.LossHSC == nil {
				t.Error("-ASC must drop ASC only")
			}
		}},
		// -STT trains as SHLPT (the estimator learns through the mixture
		// and partitions), but the stored prompt is P^t alone.
		{"-STT", func(c *SHLPTConfig) { c.NoSTT = true }, func(t *testing.T, s *SHLPT, r *stepResult) {
			if r.Prompt.Rank() != 3 || r.LossHSC == nil || r.LossASC == nil {
				t.Errorf("-STT trains as SHLPT: prompt %v, HSC %v, ASC %v", r.Prompt, r.LossHSC, r.LossASC)
			}
			for _, p := range s.est.Params() {
				if p.Grad() == nil {
					t.Errorf("-STT: estimator weight %s got no gradient", p.Name())
				}
			}
			if !storedIsPrompt(t, s) {
				t.Error("-STT: the stored prompt mixes earlier prompts")
			}
		}},
		{"SHLPT stores the mixture", func(c *SHLPTConfig) {}, func(t *testing.T, s *SHLPT, r *stepResult) {
			if storedIsPrompt(t, s) {
				t.Error("the stored prompt is P^t alone")
			}
		}},
		{"-ASE", func(c *SHLPTConfig) { c.NoASE = true }, func(t *testing.T, s *SHLPT, r *stepResult) {
			uniform(t, r)
			if storedIsPrompt(t, s) {
				t.Error("-ASE: the stored prompt is P^t alone")
			}
		}},
		// On the Negative Transfer benchmark (δ 1.5, every earlier task
		// dissimilar) -ASE still judges nothing: it mixes every earlier
		// prompt uniformly, unlike SHLPT there.
		{"-ASE on Negative Transfer", func(c *SHLPTConfig) { c.NoASE, c.AllDissimilar, c.Delta = true, true, 1.5 }, func(t *testing.T, s *SHLPT, r *stepResult) {
			uniform(t, r)
		}},
		{"all dissimilar", func(c *SHLPTConfig) { c.AllDissimilar, c.Delta = true, 1.5 }, func(t *testing.T, s *SHLPT, r *stepResult) {
			m, _ := r.Mixed.Float32s()
			n, _ := r.Negatives.Float32s()
			for i := range m {
				if m[i] != 0 || n[i] != 1 {
					t.Fatalf("mixed %v negatives %v, want all 0 and all 1", m, n)
				}
			}
			if r.Prompt.Rank() != 2 || r.LossHSC == nil || r.LossASC == nil {
				t.Error("all dissimilar: P^t alone with both contrastive losses")
			}
			if !storedIsPrompt(t, s) {
				t.Error("all dissimilar: the stored prompt mixes earlier prompts")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, batch, in := loadStepCase(t, tc.set)
			r := s.compute(batch, in, false)
			defer r.release()
			if err := s.env.Model.Engine().Backward(r.Loss); err != nil {
				t.Fatal(err)
			}
			tc.check(t, s, r)
			if g := s.prompt.Grad(); g == nil {
				t.Error("the prompt got no gradient")
			}
			for _, p := range s.Params() {
				p.ZeroGrad()
			}
		})
	}
}

// loadStepCase builds the method, batch and step inputs of the fixture's
// step case under modified settings, through the production builder of
// the step's inputs.
func loadStepCase(t *testing.T, set func(*SHLPTConfig)) (*SHLPT, *t5.Batch, *stepInputs) {
	t.Helper()
	e := ag.New(gputest.Device(t))
	m, err := t5.Load(e, "../../testdata/t5-tiny-relu")
	if err != nil {
		t.Fatal(err)
	}
	path := "../../testdata/t5-tiny-relu/shlpt-step.safetensors"
	c, err := t5.OpenCase(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := caseSettings(path, c.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	set(&cfg)
	s, err := NewSHLPT(&Env{Model: m}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool, _, _ := c.Floats("pool")
	D, Lp := m.Config.DModel, cfg.PromptLen
	for j := 0; j < 3; j++ {
		s.pool = append(s.pool, pool[j*Lp*D:(j+1)*Lp*D])
	}
	batch, err := c.Batch(m)
	if err != nil {
		t.Fatal(err)
	}
	B, L, T := batch.InputIDs.Dim(0), batch.InputIDs.Dim(1), batch.Labels.Dim(1)
	if err := s.BeginTask(&Task{Name: "case", InputLen: L, TargetLen: T, BatchSize: B, EvalBatch: B}); err != nil {
		t.Fatal(err)
	}
	st, _, err := caseStep(s, c, batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Release()
		batch.Release()
		s.Release()
		m.Release()
		if err := e.Err(); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return s, batch, &st.in
}
