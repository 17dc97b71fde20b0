package method

import (
	"slices"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// tinyModel loads the fixture model on the test device.
func tinyModel(t *testing.T) *t5.Model {
	t.Helper()
	e := ag.New(gputest.Device(t))
	m, err := t5.Load(e, "../../testdata/t5-tiny-relu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Release()
		if err := e.Err(); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return m
}

// tinyTask is a task of a few examples for the fixture model.
func tinyTask(i int) *Task {
	train := []Example{{Input: []int{5, 9, 13, 1}, Target: []int{6, 1}}, {Input: []int{4, 8, 1}, Target: []int{7, 3, 1}},
		{Input: []int{11, 12, 13, 14, 1}, Target: []int{9, 1}}}
	return &Task{Index: i, Name: "t" + string(rune('a'+i)), Train: train, InputLen: 5, TargetLen: 3, BatchSize: 2, EvalBatch: 3}
}

// The progressive prompt is [P_t; P_{t−1}; …; P_0]: only P_t gets a
// gradient, and task i is tested with [P_i; …; P_0].
func TestProgPromptConcatenation(t *testing.T) {
	m := tinyModel(t)
	e := m.Engine()
	env := &Env{Model: m, Seed: 3, NumTasks: 3}
	cfg := DefaultProgPrompt()
	cfg.PromptLen = 2
	p, err := NewProgPrompt(env, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	var stored [][]float32
	for ti := 0; ti < 3; ti++ {
		task := tinyTask(ti)
		if err := p.BeginTask(task); err != nil {
			t.Fatal(err)
		}
		cur, _ := p.prompt.Float32s()
		full := p.full()
		got, _ := full.Float32s()
		want := append([]float32(nil), cur...)
		for k := len(stored) - 1; k >= 0; k-- {
			want = append(want, stored[k]...)
		}
		if !slices.Equal(got, want) || full.Dim(0) != 2*(ti+1) {
			t.Fatalf("task %d: prompt %v is not [P_t; earlier] %v", ti, full, want)
		}
		full.Release()
		if p.PromptLen() != 2*(ti+1) {
			t.Errorf("task %d: encoder prompt length %d", ti, p.PromptLen())
		}
		// One step: the gradient reaches P_t only (the earlier prompts are
		// constants of the step).
		inputs, targets := splitExamples(task.Train[:2])
		b, err := m.NewBatch(inputs, targets, task.InputLen, task.TargetLen)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := p.NewStep(2)
		loss, _ := st.Loss(&Batch{Device: b})
		if err := e.Backward(loss); err != nil {
			t.Fatal(err)
		}
		if p.prompt.Grad() == nil || (p.prev != nil && p.prev.Grad() != nil) {
			t.Errorf("task %d: gradient of P_t %v, of the earlier prompts %v", ti, p.prompt.Grad(), p.prev)
		}
		p.prompt.ZeroGrad()
		loss.Release()
		b.Release()
		if _, err := p.EndTask(); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, cur)
	}
	for i := 0; i < 3; i++ {
		pr, err := p.EvalPrompts(Test, i)
		if err != nil {
			t.Fatal(err)
		}
		tp, _ := pr.Prompt(nil)
		got, _ := tp.Float32s()
		var want []float32
		for k := i; k >= 0; k-- {
			want = append(want, stored[k]...)
		}
		if !slices.Equal(got, want) {
			t.Errorf("test prompt of task %d is not [P_%d; …; P_0]", i, i)
		}
		tp.Release()
		pr.Release()
	}
	// The state round trip keeps the stored prompts.
	st, _ := p.State()
	q, _ := NewProgPrompt(env, cfg)
	defer q.Release()
	if err := q.SetState(st); err != nil || len(q.store.prompts) != 3 {
		t.Fatalf("SetState: %v, %d prompts", err, len(q.store.prompts))
	}
}

// With the residual MLP the stored prompt is the MLP's output, and the MLP
// trains with the prompt.
func TestProgPromptMLP(t *testing.T) {
	m := tinyModel(t)
	e := m.Engine()
	cfg := ProgPromptConfig{PromptLen: 2, MLP: true, Bottleneck: 6}
	p, err := NewProgPrompt(&Env{Model: m, Seed: 4, NumTasks: 1}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	task := tinyTask(0)
	if err := p.BeginTask(task); err != nil {
		t.Fatal(err)
	}
	if len(p.Params()) != 7 {
		t.Fatalf("%d parameters, want the prompt and 6 MLP tensors", len(p.Params()))
	}
	inputs, targets := splitExamples(task.Train[:2])
	b, _ := m.NewBatch(inputs, targets, task.InputLen, task.TargetLen)
	defer b.Release()
	st, _ := p.NewStep(2)
	loss, _ := st.Loss(&Batch{Device: b})
	if err := e.Backward(loss); err != nil {
		t.Fatal(err)
	}
	loss.Release()
	for _, q := range p.Params() {
		if q.Grad() == nil {
			t.Errorf("%s got no gradient", q.Name())
		}
		q.ZeroGrad()
	}
	func() {
		defer e.NoGrad()()
		cur := p.current()
		want, _ := cur.Float32s()
		cur.Release()
		if _, err := p.EndTask(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.store.prompts[0], want) {
			t.Error("the stored prompt is not the MLP's output")
		}
		raw, _ := p.prompt.Float32s()
		if slices.Equal(raw, want) {
			t.Error("the MLP left the prompt unchanged")
		}
	}()
}
