package method

import (
	"math"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/t5"
)

// EWC's penalty is Σ F·(θ − θ*)² over every weight, checked against the
// host on known values; the Fisher update is F ← γ·F + the mean over the
// examples of each one's squared gradient (not the square of the batch's
// mean gradient), checked against per-example gradients read back.
func TestEWCPenaltyAndFisher(t *testing.T) {
	m := tinyModel(t)
	e := m.Engine()
	f, err := NewEWC(&Env{Model: m, Seed: 1, NumTasks: 2}, EWCConfig{Lambda: 0.7, Gamma: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	defer m.SetTrainable(false)
	task := tinyTask(0)
	task.BatchSize = 3 // one batch: the old, batch-level Fisher would be its squared mean gradient

	// The mean over the examples of each one's squared gradient (each
	// example unpadded), for the expected Fisher.
	grad := func() [][]float32 {
		t.Helper()
		m.SetTraining(false)
		var sum [][]float64
		for _, ex := range task.Train {
			b, err := m.NewBatch([][]int{ex.Input}, [][]int{ex.Target}, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			out := m.Forward(b, t5.Options{})
			if err := e.Backward(out.Loss); err != nil {
				t.Fatal(err)
			}
			out.Release()
			b.Release()
			for i, p := range f.params {
				g, err := p.Grad().Float32s()
				if err != nil {
					t.Fatal(err)
				}
				if len(sum) <= i {
					sum = append(sum, make([]float64, len(g)))
				}
				for k, v := range g {
					sum[i][k] += float64(v) * float64(v) / float64(len(task.Train))
				}
				p.ZeroGrad()
			}
		}
		// Returned as the square roots, so that checks square them back.
		out := make([][]float32, len(sum))
		for i, s := range sum {
			out[i] = make([]float32, len(s))
			for k, v := range s {
				out[i][k] = float32(math.Sqrt(v))
			}
		}
		return out
	}
	g1 := grad()
	if err := f.BeginTask(task); err != nil {
		t.Fatal(err)
	}
	if _, err := f.EndTask(); err != nil {
		t.Fatal(err)
	}
	check := func(name string, want func(i, k int) float64) {
		t.Helper()
		for i, ft := range f.fisher {
			got, _ := ft.Float32s()
			for k, v := range got {
				if w := want(i, k); math.Abs(float64(v)-w) > 1e-6+1e-4*math.Abs(w) {
					t.Fatalf("%s of %s[%d] = %v, want %v", name, f.params[i].Name(), k, v, w)
				}
			}
		}
	}
	check("Fisher after task 1", func(i, k int) float64 { return float64(g1[i][k]) * float64(g1[i][k]) })

	// Move the weights, then the penalty is Σ F·(θ − θ*)² with θ* the
	// weights at the end of the task.
	var anchors, moved [][]float32
	for i, p := range f.params {
		a, _ := f.anchor[i].Float32s()
		v := make([]float32, len(a))
		for k := range v {
			v[k] = a[k] + float32(math.Sin(float64(k+i)))*0.01
		}
		if err := p.WriteFloat32(v); err != nil {
			t.Fatal(err)
		}
		anchors, moved = append(anchors, a), append(moved, v)
	}
	pen := f.penalty()
	got, err := pen.Item()
	pen.Release()
	if err != nil {
		t.Fatal(err)
	}
	want := 0.0
	for i := range f.params {
		fv, _ := f.fisher[i].Float32s()
		for k := range fv {
			d := float64(moved[i][k]) - float64(anchors[i][k])
			want += float64(fv[k]) * d * d
		}
	}
	if math.Abs(float64(got)-want) > 1e-4*math.Abs(want)+1e-9 {
		t.Errorf("penalty %v, want %v", got, want)
	}

	// A second task: F ← γ·F + F_task at the moved weights.
	g2 := grad()
	if err := f.BeginTask(tinyTask(1)); err != nil {
		t.Fatal(err)
	}
	f.task.BatchSize = 3
	if _, err := f.EndTask(); err != nil {
		t.Fatal(err)
	}
	check("Fisher after task 2", func(i, k int) float64 {
		return 0.5*float64(g1[i][k])*float64(g1[i][k]) + float64(g2[i][k])*float64(g2[i][k])
	})
	// The state round trip keeps the Fisher and the anchor.
	st, err := f.State()
	if err != nil {
		t.Fatal(err)
	}
	g, _ := NewEWC(&Env{Model: m, Seed: 1, NumTasks: 2}, EWCConfig{Lambda: 0.7, Gamma: 0.5})
	defer g.Release()
	if err := g.SetState(st); err != nil || g.fisher == nil {
		t.Fatalf("SetState: %v", err)
	}
}

// Reservoir sampling keeps every example of the stream with the same
// probability, memory/seen, whatever task it came from.
func TestReservoirUniform(t *testing.T) {
	const memory, perTask, tasks, trials = 4, 10, 3, 3000
	counts := map[int]int{}
	for seed := uint64(0); seed < trials; seed++ {
		f := &FullWeight{env: &Env{Seed: seed}, er: &ERConfig{Memory: memory}}
		for ti := 0; ti < tasks; ti++ {
			task := &Task{Index: ti}
			for k := 0; k < perTask; k++ {
				task.Train = append(task.Train, Example{Input: []int{ti*perTask + k}})
			}
			f.reservoir(task)
		}
		if len(f.memory) != memory || f.seen != tasks*perTask {
			t.Fatalf("memory %d of %d seen", len(f.memory), f.seen)
		}
		for _, ex := range f.memory {
			counts[ex.Input[0]]++
		}
	}
	p := float64(memory) / float64(tasks*perTask)
	sd := math.Sqrt(p * (1 - p) / trials)
	for id := 0; id < tasks*perTask; id++ {
		if got := float64(counts[id]) / trials; math.Abs(got-p) > 4*sd {
			t.Errorf("example %d kept in %.3f of the runs, want %.3f ± %.3f", id, got, p, 4*sd)
		}
	}
}

// The memory's token ids round-trip through the state, and a damaged one
// is an error.
func TestMemoryEncoding(t *testing.T) {
	exs := []Example{{Input: []int{5, 1}, Target: []int{7, 1}}, {Input: []int{32000, 9, 1}, Target: []int{1}}}
	back, err := decodeExamples("memory", encodeExamples("memory", exs))
	if err != nil || len(back) != 2 || back[1].Input[0] != 32000 || len(back[0].Target) != 2 {
		t.Fatalf("round trip %v, %v", back, err)
	}
	bad := encodeExamples("memory", exs)
	bad[2].Data[1] = 9 // the second example's input length overruns
	if _, err := decodeExamples("memory", bad); err == nil {
		t.Error("overrunning lengths were accepted")
	}
}
