package method

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// cos64 is the device Cosine's formula in float64 (each norm clamped).
func cos64(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / (math.Max(math.Sqrt(aa), kernels.CosineEps) * math.Max(math.Sqrt(bb), kernels.CosineEps))
}

// l2pKeyRef is L2P's key loss coeff·(N − Σ_b Σ_k cos(q_b, key[idx[b,k]]) / B).
func l2pKeyRef(q, keys []float64, idx []int32, B, N, d int, coeff float64) float64 {
	reduceSim := 0.0
	for b := 0; b < B; b++ {
		for k := 0; k < N; k++ {
			j := int(idx[b*N+k])
			reduceSim += cos64(q[b*d:(b+1)*d], keys[j*d:(j+1)*d])
		}
	}
	reduceSim /= float64(B)
	return coeff * (float64(N) - reduceSim)
}

// l2pPromptRef is each row's prompt: the pool prompts of its slots
// concatenated in rank order, (B, N·Lp·d) values.
func l2pPromptRef(pool []float32, idx []int32, n int) []float64 {
	var out []float64
	for _, j := range idx {
		out = append(out, toF64(pool[int(j)*n:(int(j)+1)*n])...)
	}
	return out
}

// Top-N selection by cosine on a hand-computed case: rank order, ties to
// the lower index, the scale of keys ignored.
func TestL2PSelectTopN(t *testing.T) {
	keys := []float32{
		1, 0, // k0
		0, 1, // k1
		2, 0, // k2: the direction of k0
		-1, 0, // k3
		1, 1, // k4
	}
	q := []float32{
		1, 0, // cos 1, 0, 1, −1, 0.71 → k0, k2 (tie, lower first), k4
		0, 3, // cos 0, 1, 0, 0, 0.71 → k1, k4, then k0 of the ties k0, k2, k3
		-1, -1, // cos −0.71, −0.71, −0.71, 0.71, −1 → k3, then k0, k1 of the ties
	}
	got := selectTopN(q, keys, 3, 5, 2, 3)
	want := []int32{0, 2, 4, 1, 4, 0, 3, 0, 1}
	if !slices.Equal(got, want) {
		t.Errorf("selection %v, want %v", got, want)
	}
	if got := selectTopN(q[:2], keys, 1, 5, 2, 1); !slices.Equal(got, []int32{0}) {
		t.Errorf("top-1 %v, want [0]", got)
	}
}

// Task slots t·N … t·N+N−1, the pool's default size, and the settings
// refused (a pool too small for every task's slots among them).
func TestL2PSlotsAndPoolSize(t *testing.T) {
	cfg := DefaultL2P()
	cfg.TopN = 2
	l := &L2P{cfg: cfg, P: 7}
	for _, c := range []struct {
		t    int
		want []int32
	}{{0, []int32{0, 1}}, {2, []int32{4, 5}}} {
		if got := l.slots(c.t); !slices.Equal(got, c.want) {
			t.Errorf("slots of task %d: %v, want %v", c.t, got, c.want)
		}
	}
	idx, err := l.indices(nil, 2)
	if err != nil || !slices.Equal(idx, []int32{0, 1, 0, 1}) {
		t.Errorf("indices of 2 rows into the task's slots: %v (%v)", idx, err)
	}
	d := DefaultL2P()
	if d.PromptLen != 5 || d.TopN != 5 || d.PullCoeff != 0.1 || d.Selection != L2PTaskSlots || d.PoolSize != 0 {
		t.Errorf("defaults %+v", d)
	}
	for _, c := range []struct{ pool, tasks, want int }{{0, 1, 10}, {0, 2, 10}, {0, 3, 15}, {0, 15, 75}, {4, 15, 4}} {
		d.PoolSize = c.pool
		if got := d.poolFor(c.tasks); got != c.want {
			t.Errorf("pool size %d for %d tasks: %d, want %d", c.pool, c.tasks, got, c.want)
		}
	}
	for _, bad := range []func(*L2PConfig){
		func(c *L2PConfig) { c.PromptLen = 0 },
		func(c *L2PConfig) { c.TopN = 0 },
		func(c *L2PConfig) { c.PoolSize = -1 },
		func(c *L2PConfig) { c.PoolSize = 4 },
		func(c *L2PConfig) { c.PullCoeff = -0.1 },
		func(c *L2PConfig) { c.PullCoeff = math.NaN() },
		func(c *L2PConfig) { c.Selection = "keys" },
		func(c *L2PConfig) { c.PoolSize = 14 }, // 3 tasks × 5 slots
	} {
		c := DefaultL2P()
		bad(&c)
		if c.Validate(3) == nil {
			t.Errorf("%+v validates", c)
		}
	}
	c := DefaultL2P()
	c.PoolSize, c.Selection = 14, L2PInstance
	if err := c.Validate(3); err != nil {
		t.Errorf("instance selection from a pool of 14: %v", err)
	}
}

// The gathered prompts and the key loss against float64 references, with
// their gradients: the pool's is the projection scattered to the selected
// prompts, the keys' the central difference of the reference; an
// unselected slot gets none.
func TestL2PKeyLossAndGather(t *testing.T) {
	m := tinyModel(t)
	e := m.Engine()
	cfg := DefaultL2P()
	cfg.PromptLen, cfg.PoolSize, cfg.TopN, cfg.PullCoeff, cfg.Selection = 2, 6, 3, 0.7, L2PInstance
	l, err := NewL2P(&Env{Model: m, Seed: 3, NumTasks: 2}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Release)
	rng := rand.New(rand.NewPCG(4, 5))
	const B, N, P, Lp = 3, 3, 6, 2
	d := m.Config.DModel
	pool, keys := reftest.Randn(rng, P*Lp*d, 1), reftest.Randn(rng, P*d, 1)
	if err := Restore(l, []HostTensor{{"l2p.pool", []int{P, Lp, d}, reftest.F32s(pool)}, {"l2p.keys", []int{P, d}, reftest.F32s(keys)}}); err != nil {
		t.Fatal(err)
	}
	q := reftest.Randn(rng, B*d, 1)
	idx := []int32{0, 4, 2, 4, 1, 5, 2, 0, 1} // slot 3 unused, 4 twice
	proj := reftest.Randn(rng, B*N*Lp*d, 1)

	qt := e.FromFloat32(reftest.F32s(q), B, d)
	it := e.FromInt32(idx, B, N)
	pt := e.FromFloat32(reftest.F32s(proj), B, N*Lp, d)
	key := l.keyLoss(qt, it)
	prompt := gather(l.pool, it)
	prod := ag.Mul(prompt, pt)
	sum := ag.Sum(prod)
	total := ag.Add(key, sum)
	defer func() {
		for _, x := range []*ag.Tensor{qt, it, pt, key, prompt, prod, sum, total} {
			x.Release()
		}
	}()
	if s := prompt.Shape(); !slices.Equal(s, []int{B, N * Lp, d}) {
		t.Fatalf("prompt %v, want (%d, %d, %d)", s, B, N*Lp, d)
	}
	gotP, err := prompt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "prompt", gotP, l2pPromptRef(reftest.F32s(pool), idx, Lp*d), 0)
	gotK, err := key.Item()
	if err != nil {
		t.Fatal(err)
	}
	wantK := l2pKeyRef(q, keys, idx, B, N, d, cfg.PullCoeff)
	closeTo(t, "key loss", []float32{gotK}, []float64{wantK}, 1e-5)

	if err := e.Backward(total); err != nil {
		t.Fatal(err)
	}
	wantGP := make([]float64, P*Lp*d)
	for r, j := range idx {
		for c := 0; c < Lp*d; c++ {
			wantGP[int(j)*Lp*d+c] += proj[r*Lp*d+c]
		}
	}
	gp, err := l.pool.Grad().Float32s()
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "grad pool", gp, wantGP, 1e-6)
	gk, err := l.keys.Grad().Float32s()
	if err != nil {
		t.Fatal(err)
	}
	wantGK := reftest.NumGrad(func(v []float64) float64 { return l2pKeyRef(q, v, idx, B, N, d, cfg.PullCoeff) },
		append([]float64(nil), keys...), 1e-6)
	closeTo(t, "grad keys", gk, wantGK, 2e-3)
	for c := 0; c < d; c++ {
		if gk[3*d+c] != 0 {
			t.Fatalf("unselected key 3 got gradient %v", gk[3*d:4*d])
		}
	}
	for _, p := range l.Params() {
		p.ZeroGrad()
	}
}

// L2P through the runner's calls, with task slots and with instance
// selection: recorded steps whose parts match the references, updates
// confined to what trains (the task's own slots, or the selected ones),
// earlier tasks' slots bitwise frozen under an optimizer with weight
// decay, Snapshot/Restore, EndTask's details and artifact, validation and
// test prompts, and State→SetState into a fresh method.
func TestL2PLifecycle(t *testing.T) {
	for _, sel := range []string{L2PTaskSlots, L2PInstance} {
		t.Run(sel, func(t *testing.T) {
			m := tinyModel(t)
			e := m.Engine()
			cfg := DefaultL2P()
			cfg.PromptLen, cfg.TopN, cfg.Selection = 2, 2, sel
			slots := sel == L2PTaskSlots
			store := newMemStore()
			l, err := NewL2P(&Env{Model: m, Seed: 11, NumTasks: 2, Store: store}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Release)
			const B, N, Lp, P = 3, 2, 2, 10
			d := m.Config.DModel
			if l.PoolSize() != P || l.PromptLen() != N*Lp || l.Name() != "l2p" || !l.FreshOptimizer() || l.TestsFrozen() != slots {
				t.Fatalf("pool %d, prompt length %d, name %q", l.PoolSize(), l.PromptLen(), l.Name())
			}
			rng := rand.New(rand.NewPCG(7, 8))
			evalExs := randomExamples(m, rng, 4, 7, 2)
			eb := evalBatch(t, m, evalExs)
			var tested [][]float32 // task i's test prompt right after it
			for ti := 0; ti < 2; ti++ {
				train := randomExamples(m, rng, 5, 6, 3)
				task := &Task{Index: ti, Name: fmt.Sprint("task", ti), Train: train, InputLen: 6, TargetLen: 3, BatchSize: B, EvalBatch: 4}
				if err := l.BeginTask(task); err != nil {
					t.Fatal(err)
				}
				rows := P
				if slots {
					rows = N
				}
				if got := l.Params()[0].Shape(); !slices.Equal(got, []int{rows, Lp, d}) {
					t.Fatalf("trainable pool %v, want (%d, %d, %d)", got, rows, Lp, d)
				}
				// Weight decay moves every trainable tensor at every step.
				opt, err := ag.NewAdamW(e, l.Params(), ag.AdamWConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 1})
				if err != nil {
					t.Fatal(err)
				}
				st := recordStep(t, m, l, opt, task, B)
				touched := map[int32]bool{}
				for _, rows := range [][]int{{0, 1, 2}, {3, 4, 0}} {
					before, err := Snapshot(l)
					if err != nil {
						t.Fatal(err)
					}
					b := st.write(t, train, rows)
					q, err := encoderQuery(m, b.Device)
					if err != nil {
						t.Fatal(err)
					}
					var idx []int32
					if slots {
						for r := 0; r < B; r++ {
							idx = append(idx, 0, 1)
						}
					} else {
						idx = selectTopN(q, before[1].Data, B, P, d, N)
					}
					for _, j := range idx {
						touched[j] = true
					}
					loss, parts := st.run(t)
					wantK := l2pKeyRef(toF64(q), toF64(before[1].Data), idx, B, N, d, cfg.PullCoeff)
					closeTo(t, "key part", []float32{float32(parts["key"])}, []float64{wantK}, 1e-5)
					if !(parts["ce"] > 0) || math.Abs(loss-parts["ce"]-parts["key"]) > 1e-5*loss {
						t.Fatalf("loss %v, parts %v", loss, parts)
					}
					after, err := Snapshot(l)
					if err != nil {
						t.Fatal(err)
					}
					if !slots {
						continue
					}
					for k := range before {
						if slices.Equal(before[k].Data, after[k].Data) {
							t.Fatalf("%s did not change in a step", before[k].Name)
						}
					}
				}
				if !slots && len(touched) == 0 {
					t.Fatal("no slot selected")
				}
				// Snapshot and Restore.
				snap, err := Snapshot(l)
				if err != nil {
					t.Fatal(err)
				}
				st.write(t, train, []int{2, 3, 4})
				st.run(t)
				if err := Restore(l, snap); err != nil {
					t.Fatal(err)
				}
				back, _ := Snapshot(l)
				for k := range snap {
					if !slices.Equal(back[k].Data, snap[k].Data) {
						t.Fatalf("Restore did not bring %s back", snap[k].Name)
					}
				}
				checkL2PPrompts(t, l, Validation, ti, eb)
				details, err := l.EndTask()
				if err != nil {
					t.Fatal(err)
				}
				state, _ := l.State()
				if slots {
					if got := fmt.Sprint(details["slots"]); got != fmt.Sprint([]int{ti * N, ti*N + 1}) {
						t.Errorf("task %d slots %s", ti, got)
					}
					n := Lp * d
					if !slices.Equal(state[0].Data[ti*N*n:(ti+1)*N*n], snap[0].Data) || !slices.Equal(state[1].Data[ti*N*d:(ti+1)*N*d], snap[1].Data) {
						t.Errorf("task %d's slots were not stored as trained", ti)
					}
				} else {
					counts, _ := details["selected"].([]int)
					total := 0
					for _, c := range counts {
						total += c
					}
					if len(counts) != P || total != N*len(train) {
						t.Errorf("selection counts %v, want %d slots summing to %d", counts, P, N*len(train))
					}
				}
				art := store.tensors["l2p.safetensors"]
				if len(art) != 2 || art[0].Name != "pool" || art[1].Name != "keys" || !slices.Equal(art[0].Data, state[0].Data) {
					t.Errorf("artifact %v", art)
				}
				if store.meta["l2p.safetensors"]["after_task"] != task.Name {
					t.Errorf("artifact metadata %v", store.meta["l2p.safetensors"])
				}
				st.Release()
				opt.Release()
				pr, err := l.EvalPrompts(Test, ti)
				if err != nil {
					t.Fatal(err)
				}
				v, _ := promptValues(t, pr, eb)
				pr.Release()
				tested = append(tested, v)
			}
			for i := 0; i < 2; i++ {
				checkL2PPrompts(t, l, Test, i, eb)
			}
			// With task slots, task 0 is tested after task 1 with exactly
			// the prompt it was tested with right after it (BWT 0).
			pr, err := l.EvalPrompts(Test, 0)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := promptValues(t, pr, eb)
			pr.Release()
			if same := slices.Equal(v, tested[0]); same != slots {
				t.Errorf("task 0's test prompt unchanged by task 1: %v, want %v", same, slots)
			}

			// State into a fresh method (another seed, so nothing comes
			// from its own initialization).
			state, err := l.State()
			if err != nil {
				t.Fatal(err)
			}
			l2, err := NewL2P(&Env{Model: m, Seed: 99, NumTasks: 2}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l2.Release)
			if err := l2.SetState(state); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				p1, err := l.EvalPrompts(Test, i)
				if err != nil {
					t.Fatal(err)
				}
				p2, err := l2.EvalPrompts(Test, i)
				if err != nil {
					t.Fatal(err)
				}
				v1, _ := promptValues(t, p1, eb)
				v2, _ := promptValues(t, p2, eb)
				p1.Release()
				p2.Release()
				if !slices.Equal(v1, v2) {
					t.Fatalf("task %d: prompts differ after State→SetState", i)
				}
			}
			if err := l2.SetState(state[:1]); err == nil {
				t.Error("SetState without the keys succeeded")
			}
			if err := l2.SetState(append(state, HostTensor{Name: "extra", Shape: []int{1}, Data: []float32{0}})); err == nil {
				t.Error("SetState with an extra tensor succeeded")
			}
		})
	}
}

// checkL2PPrompts checks EvalPrompts(p, i) on batch b against the pool:
// task i's slots shared by every row, or each row's top-N keys.
func checkL2PPrompts(t *testing.T, l *L2P, p Purpose, i int, b *Batch) {
	t.Helper()
	pr, err := l.EvalPrompts(p, i)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Release()
	got, shape := promptValues(t, pr, b)
	Lp, N, d := l.cfg.PromptLen, l.cfg.TopN, l.d
	if l.taskSlots() {
		if !slices.Equal(shape, []int{N * Lp, d}) {
			t.Fatalf("prompt %v, want (%d, %d)", shape, N*Lp, d)
		}
		if l.task != nil && i == l.task.Index {
			cur, _ := l.pool.Float32s()
			closeTo(t, "task prompt", got, toF64(cur), 0)
			return
		}
		state, err := l.State()
		if err != nil {
			t.Fatal(err)
		}
		closeTo(t, "task prompt", got, l2pPromptRef(state[0].Data, l.slots(i), Lp*d), 0)
		return
	}
	state, err := l.State()
	if err != nil {
		t.Fatal(err)
	}
	B := b.Device.InputIDs.Dim(0)
	if !slices.Equal(shape, []int{B, N * Lp, d}) {
		t.Fatalf("prompt %v, want (%d, %d, %d)", shape, B, N*Lp, d)
	}
	q, err := encoderQuery(l.env.Model, b.Device)
	if err != nil {
		t.Fatal(err)
	}
	idx := selectTopN(q, state[1].Data, B, l.P, d, N)
	closeTo(t, "selected prompts", got, l2pPromptRef(state[0].Data, idx, Lp*d), 0)
}
