package method

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// codaRef is CODA's mixture in float64: α_bm = cos(q_b ⊙ A_m, K_m) and
// P_b = Σ_m α_bm·P_m for queries q (B, d) and M components P (M, n),
// keys K (M, d) and attention vectors A (M, d).
func codaRef(q, P, K, A []float64, B, M, n, d int) (alpha, prompt []float64) {
	alpha = make([]float64, B*M)
	prompt = make([]float64, B*n)
	aq := make([]float64, d)
	for b := 0; b < B; b++ {
		for m := 0; m < M; m++ {
			for k := 0; k < d; k++ {
				aq[k] = q[b*d+k] * A[m*d+k]
			}
			alpha[b*M+m] = cos64(aq, K[m*d:(m+1)*d])
			for k := 0; k < n; k++ {
				prompt[b*n+k] += alpha[b*M+m] * P[m*n+k]
			}
		}
	}
	return alpha, prompt
}

// orthoRef is CODA-Prompt's ortho_penalty: mean((X·Xᵀ − I)²)·1e-6 of X (M, n).
func orthoRef(X []float64, M, n int) float64 {
	x := mat(X, M, n)
	g := x.MulMxN(nil, x.Transpose(nil))
	sum := 0.0
	for i := 0; i < M; i++ {
		for j := 0; j < M; j++ {
			v := g.At(i, j)
			if i == j {
				v--
			}
			sum += v * v
		}
	}
	return sum / float64(M*M) * 1e-6
}

// codaOrthoRef is μ·(ortho(K) + ortho(A) + ortho(P)).
func codaOrthoRef(P, K, A []float64, M, n, d int, mu float64) float64 {
	return mu * (orthoRef(K, M, d) + orthoRef(A, M, d) + orthoRef(P, M, n))
}

// orthogonal has torch.nn.init.orthogonal_'s result: Q of A = QR with R
// upper triangular with a positive diagonal, A the normal matrix drawn
// row by row (transposed when it is wide), Q with orthonormal rows or
// columns.
func TestOrthogonal(t *testing.T) {
	for _, c := range [][2]int{{4, 10}, {10, 4}, {5, 5}, {1, 3}, {3, 1}} {
		r, cols := c[0], c[1]
		got := toF64(orthogonal(Stream(1, "orth", r, cols), r, cols))
		a := make([]float64, r*cols)
		rng := Stream(1, "orth", r, cols)
		for i := range a {
			a[i] = rng.NormFloat64()
		}
		// vec(v) is the v-th vector of a matrix: a row when wide, a column
		// otherwise.
		n, length := cols, r
		vec := func(x []float64, v int) []float64 {
			out := make([]float64, length)
			for k := range out {
				out[k] = x[k*cols+v]
			}
			return out
		}
		if r < cols {
			n, length = r, cols
			vec = func(x []float64, v int) []float64 { return x[v*cols : (v+1)*cols] }
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				qi, qj, aj := vec(got, i), vec(got, j), vec(a, j)
				dot, rij := 0.0, 0.0
				for k := 0; k < length; k++ {
					dot += qi[k] * qj[k]
					rij += qi[k] * aj[k]
				}
				want := 0.0
				if i == j {
					want = 1
				}
				if math.Abs(dot-want) > 1e-6 {
					t.Fatalf("%dx%d: q%d·q%d = %v, want %v", r, cols, i, j, dot, want)
				}
				if (i > j && math.Abs(rij) > 1e-6) || (i == j && !(rij > 0)) {
					t.Fatalf("%dx%d: R[%d][%d] = %v: not upper triangular with a positive diagonal", r, cols, i, j, rij)
				}
			}
		}
		again := orthogonal(Stream(1, "orth", r, cols), r, cols)
		if !slices.Equal(again, reftest.F32s(got)) {
			t.Fatalf("%dx%d: not deterministic", r, cols)
		}
	}
}

// newTestCODA returns CODA on the tiny model for numTasks tasks.
func newTestCODA(t *testing.T, cfg CODAConfig, numTasks int, seed uint64, store Store) *CODA {
	t.Helper()
	m := tinyModel(t)
	c, err := NewCODA(&Env{Model: m, Seed: seed, NumTasks: numTasks, Store: store}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	return c
}

// The weights α, the mixed prompts and the orthogonality penalty against
// float64 references in the middle of a sequence (frozen components
// before the current task's), with their gradients with respect to the
// current task's tensors; the frozen components get none.
func TestCODAMixAndOrtho(t *testing.T) {
	cfg := CODAConfig{PromptLen: 2, Pool: 7, OrthoMu: 0.3}
	c := newTestCODA(t, cfg, 3, 1, nil) // 2 components per task, 1 unused
	m := c.env.Model
	e := m.Engine()
	rng := rand.New(rand.NewPCG(9, 10))
	const B, Pool, Lp, pt = 3, 7, 2, 2
	d := m.Config.DModel
	n := Lp * d
	comps, keys, attn := reftest.Randn(rng, Pool*n, 0.5), reftest.Randn(rng, Pool*d, 0.5), reftest.Randn(rng, Pool*d, 0.5)
	if err := c.SetState([]HostTensor{{"components", []int{Pool, Lp, d}, reftest.F32s(comps)}, {"keys", []int{Pool, d}, reftest.F32s(keys)},
		{"attention", []int{Pool, d}, reftest.F32s(attn)}, {"finished", []int{1}, []float32{1}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.BeginTask(&Task{Index: 1, Name: "t1"}); err != nil {
		t.Fatal(err)
	}
	const M = 2 * pt // components [0, 4): [0, 2) frozen, [2, 4) trained
	q := reftest.Randn(rng, B*d, 1)
	proj := reftest.Randn(rng, B*n, 1)
	// full returns the used components with the current task's slices
	// replaced by cur (P, K, A).
	full := func(cur [3][]float64) (P, K, A []float64) {
		P = append(append([]float64(nil), comps[:pt*n]...), cur[0]...)
		K = append(append([]float64(nil), keys[:pt*d]...), cur[1]...)
		A = append(append([]float64(nil), attn[:pt*d]...), cur[2]...)
		return
	}
	cur0 := [3][]float64{comps[pt*n : M*n], keys[pt*d : M*d], attn[pt*d : M*d]}
	mixLoss := func(cur [3][]float64) float64 {
		P, K, A := full(cur)
		_, pr := codaRef(q, P, K, A, B, M, n, d)
		L := 0.0
		for i, v := range pr {
			L += v * proj[i]
		}
		return L
	}
	orthoLoss := func(cur [3][]float64) float64 {
		P, K, A := full(cur)
		return codaOrthoRef(P, K, A, M, n, d, cfg.OrthoMu)
	}
	P0, K0, A0 := full(cur0)
	wantAlpha, wantPrompt := codaRef(q, P0, K0, A0, B, M, n, d)

	qt := e.FromFloat32(reftest.F32s(q), B, d)
	defer qt.Release()
	checkGrads := func(name string, f func([3][]float64) float64) {
		t.Helper()
		for k, p := range c.Params() {
			want := reftest.NumGrad(func(v []float64) float64 {
				cur := cur0
				cur[k] = v
				return f(cur)
			}, append([]float64(nil), cur0[k]...), 1e-6)
			g := p.Grad()
			if g == nil {
				t.Fatalf("%s: %s got no gradient", name, p.Name())
			}
			got, err := g.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			closeTo(t, name+" grad "+p.Name(), got, want, 2e-3)
			p.ZeroGrad()
		}
		for _, old := range []*ag.Tensor{c.oldP, c.oldK, c.oldA} {
			if old.RequiresGrad() || old.Grad() != nil {
				t.Fatalf("%s: frozen %v takes a gradient", name, old)
			}
		}
	}

	P, K, A := c.used()
	alpha, prompt := codaMix(qt, P, K, A)
	if !slices.Equal(alpha.Shape(), []int{B, M}) || !slices.Equal(prompt.Shape(), []int{B, Lp, d}) {
		t.Fatalf("alpha %v, prompt %v", alpha, prompt)
	}
	ga, err1 := alpha.Float32s()
	gp, err2 := prompt.Float32s()
	if err := firstErr(err1, err2); err != nil {
		t.Fatal(err)
	}
	closeTo(t, "alpha", ga, wantAlpha, 1e-5)
	closeTo(t, "prompt", gp, wantPrompt, 1e-5)
	pt32 := e.FromFloat32(reftest.F32s(proj), B, Lp, d)
	prod := ag.Mul(prompt, pt32)
	L := ag.Sum(prod)
	if err := e.Backward(L); err != nil {
		t.Fatal(err)
	}
	checkGrads("mixture", mixLoss)
	for _, x := range []*ag.Tensor{P, K, A, alpha, prompt, pt32, prod, L} {
		x.Release()
	}

	negI := negIdentity(e, M)
	defer negI.Release()
	P, K, A = c.used()
	o := codaOrtho(P, K, A, negI, cfg.OrthoMu)
	got, err := o.Item()
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "ortho", []float32{got}, []float64{orthoLoss(cur0)}, 1e-5)
	if err := e.Backward(o); err != nil {
		t.Fatal(err)
	}
	checkGrads("ortho", orthoLoss)
	for _, x := range []*ag.Tensor{P, K, A, o} {
		x.Release()
	}
}

// codaState reads the host state of c: components, keys, attention.
func codaState(t *testing.T, c *CODA) (P, K, A []float32) {
	t.Helper()
	s, err := c.State()
	if err != nil {
		t.Fatal(err)
	}
	return s[0].Data, s[1].Data, s[2].Data
}

// codaCheckPrompts returns the prompt values EvalPrompts(p, i) gives b,
// checked against the reference with the components in use.
func codaCheckPrompts(t *testing.T, c *CODA, p Purpose, i int, b *Batch, P, K, A []float32, M int) []float32 {
	t.Helper()
	pr, err := c.EvalPrompts(p, i)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Release()
	got, shape := promptValues(t, pr, b)
	B, Lp, d := b.Device.InputIDs.Dim(0), c.cfg.PromptLen, c.d
	if !slices.Equal(shape, []int{B, Lp, d}) {
		t.Fatalf("prompt %v, want (%d, %d, %d)", shape, B, Lp, d)
	}
	q, err := encoderQuery(c.env.Model, b.Device)
	if err != nil {
		t.Fatal(err)
	}
	n := Lp * d
	_, want := codaRef(toF64(q), toF64(P[:M*n]), toF64(K[:M*d]), toF64(A[:M*d]), B, M, n, d)
	closeTo(t, fmt.Sprintf("prompt of task %d", i), got, want, 1e-5)
	return got
}

// CODA through the runner's calls over two tasks: recorded steps whose
// penalty matches the reference, training confined to the current task's
// components, Snapshot/Restore, validation and test prompts, test prompts
// of the first task unchanged by the second (BWT 0), EndTask's details and
// artifact, and State→SetState into a fresh method.
func TestCODALifecycle(t *testing.T) {
	cfg := CODAConfig{PromptLen: 2, Pool: 5, OrthoMu: 0.1}
	store := newMemStore()
	c := newTestCODA(t, cfg, 2, 21, store)
	m := c.env.Model
	const B, Lp, pt = 3, 2, 2
	d := m.Config.DModel
	n := Lp * d
	if c.PerTask() != pt || c.PromptLen() != Lp || c.Name() != "coda" || !c.FreshOptimizer() {
		t.Fatalf("%d per task, prompt length %d, name %q", c.PerTask(), c.PromptLen(), c.Name())
	}
	// Initialized with orthonormal rows (5 ≤ 32 and 5 ≤ 64).
	P, K, A := codaState(t, c)
	ref := orthoRef(toF64(K), 5, d) + orthoRef(toF64(A), 5, d) + orthoRef(toF64(P), 5, n)
	if ref > 1e-18 {
		t.Errorf("initial penalty %v, want 0", ref)
	}
	rng := rand.New(rand.NewPCG(13, 14))
	eb := evalBatch(t, m, randomExamples(m, rng, 4, 7, 2))
	var testPrompts [][]float32
	for ti := 0; ti < 2; ti++ {
		train := randomExamples(m, rng, 5, 6, 3)
		task := &Task{Index: ti, Name: fmt.Sprint("task", ti), Train: train, InputLen: 6, TargetLen: 3, BatchSize: B, EvalBatch: 4}
		if err := c.BeginTask(task); err != nil {
			t.Fatal(err)
		}
		for k, want := range [][]int{{pt, Lp, d}, {pt, d}, {pt, d}} {
			if got := c.Params()[k].Shape(); !slices.Equal(got, want) {
				t.Fatalf("param %d is %v, want %v", k, got, want)
			}
		}
		M := (ti + 1) * pt
		Ps, Ks, As := codaState(t, c)
		opt := newOptimizer(t, c)
		st := recordStep(t, m, c, opt, task, B)
		for _, rows := range [][]int{{0, 1, 2}, {3, 4, 0}} {
			before, err := Snapshot(c)
			if err != nil {
				t.Fatal(err)
			}
			st.write(t, train, rows)
			loss, parts := st.run(t)
			// The penalty of the components in use before the step.
			Pu := append(toF64(Ps[:ti*pt*n]), toF64(before[0].Data)...)
			Ku := append(toF64(Ks[:ti*pt*d]), toF64(before[1].Data)...)
			Au := append(toF64(As[:ti*pt*d]), toF64(before[2].Data)...)
			want := codaOrthoRef(Pu, Ku, Au, M, n, d, cfg.OrthoMu)
			closeTo(t, "ortho part", []float32{float32(parts["ortho"])}, []float64{want}, 1e-4)
			if !(parts["ce"] > 0) || math.Abs(loss-parts["ce"]-parts["ortho"]) > 1e-5*loss {
				t.Fatalf("loss %v, parts %v", loss, parts)
			}
			after, err := Snapshot(c)
			if err != nil {
				t.Fatal(err)
			}
			for k := range after {
				if slices.Equal(before[k].Data, after[k].Data) {
					t.Errorf("task %d: %s did not change", ti, after[k].Name)
				}
			}
			if ti > 0 {
				for _, old := range []*ag.Tensor{c.oldP, c.oldK, c.oldA} {
					if old.Grad() != nil {
						t.Fatalf("frozen %v got a gradient", old)
					}
				}
			}
		}
		// The host state (earlier components included) is what EndTask
		// kept: training does not touch it.
		P2, K2, A2 := codaState(t, c)
		if !slices.Equal(P2, Ps) || !slices.Equal(K2, Ks) || !slices.Equal(A2, As) {
			t.Fatal("training changed the stored components")
		}
		snap, err := Snapshot(c)
		if err != nil {
			t.Fatal(err)
		}
		st.write(t, train, []int{2, 3, 4})
		st.run(t)
		if err := Restore(c, snap); err != nil {
			t.Fatal(err)
		}
		back, _ := Snapshot(c)
		for k := range snap {
			if !slices.Equal(back[k].Data, snap[k].Data) {
				t.Fatalf("Restore did not bring %s back", snap[k].Name)
			}
		}
		Pv := append(slices.Clone(Ps[:ti*pt*n]), snap[0].Data...)
		Kv := append(slices.Clone(Ks[:ti*pt*d]), snap[1].Data...)
		Av := append(slices.Clone(As[:ti*pt*d]), snap[2].Data...)
		codaCheckPrompts(t, c, Validation, ti, eb, Pv, Kv, Av, M)
		if _, err := c.EvalPrompts(Test, ti); err == nil {
			t.Error("a test of the unfinished task succeeded")
		}
		details, err := c.EndTask()
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(details["components"]); got != fmt.Sprint([]int{ti * pt, M}) {
			t.Errorf("details %v", details)
		}
		Pe, Ke, Ae := codaState(t, c)
		if !slices.Equal(Pe[:ti*pt*n], Ps[:ti*pt*n]) || !slices.Equal(Pe[ti*pt*n:M*n], snap[0].Data) ||
			!slices.Equal(Ke[ti*pt*d:M*d], snap[1].Data) || !slices.Equal(Ae[ti*pt*d:M*d], snap[2].Data) {
			t.Fatal("EndTask did not store the task's slices after the earlier ones")
		}
		if art := store.tensors["coda.safetensors"]; len(art) != 4 || !slices.Equal(art[0].Data, Pe) {
			t.Errorf("artifact %v", art)
		}
		for i := 0; i <= ti; i++ {
			got := codaCheckPrompts(t, c, Test, i, eb, Pe, Ke, Ae, (i+1)*pt)
			if i < len(testPrompts) {
				if !slices.Equal(got, testPrompts[i]) {
					t.Errorf("the test prompts of task %d changed after task %d", i, ti)
				}
			} else {
				testPrompts = append(testPrompts, got)
			}
		}
		if err := c.BeginTask(&Task{Index: ti}); err == nil {
			t.Errorf("task %d began again after it finished", ti)
		}
		st.Release()
	}

	state, err := c.State()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := NewCODA(&Env{Model: m, Seed: 99, NumTasks: 2}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.Release)
	if err := c2.SetState(state); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		pr, err := c2.EvalPrompts(Test, i)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := promptValues(t, pr, eb)
		pr.Release()
		if !slices.Equal(got, testPrompts[i]) {
			t.Fatalf("task %d: prompts differ after State→SetState", i)
		}
	}
	bad := slices.Clone(state)
	bad[3] = HostTensor{Name: "finished", Shape: []int{1}, Data: []float32{3}}
	if err := c2.SetState(bad); err == nil {
		t.Error("SetState with 3 finished tasks of 2 succeeded")
	}
	if err := c2.SetState(state[:3]); err == nil {
		t.Error("SetState without the task count succeeded")
	}
}

// Settings CODA cannot run with.
func TestCODAConfigErrors(t *testing.T) {
	if d := DefaultCODA(); d.Pool != 100 || d.PromptLen != 8 || d.OrthoMu != 0.1 {
		t.Errorf("defaults %+v", d)
	}
	m := tinyModel(t)
	for _, c := range []struct {
		cfg   CODAConfig
		tasks int
	}{
		{CODAConfig{PromptLen: 2, Pool: 4}, 0},
		{CODAConfig{PromptLen: 2, Pool: 1}, 2},
		{CODAConfig{PromptLen: 0, Pool: 4}, 1},
		{CODAConfig{PromptLen: 2, Pool: 4, OrthoMu: -1}, 1},
	} {
		if _, err := NewCODA(&Env{Model: m, NumTasks: c.tasks}, c.cfg); err == nil {
			t.Errorf("%+v with %d tasks: no error", c.cfg, c.tasks)
		}
	}
}
