package method

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// The registry holds every method once, with flags of unique names,
// defaults that validate and what each can export.
func TestRegistry(t *testing.T) {
	want := map[string]Export{
		"shlpt": ExportStoredPrompt, "per-task": ExportStoredPrompt, "continual-init": ExportStoredPrompt,
		"progprompt": ExportConcatenated, "l2p": ExportNone, "coda": ExportNone,
		"finetune": ExportNone, "ewc": ExportNone, "er": ExportNone,
	}
	if got := Names(); len(got) != len(want) {
		t.Fatalf("registered %v", got)
	}
	flags := map[string]string{}
	for _, s := range Specs() {
		x, ok := want[s.Name]
		if !ok || s.Export != x {
			t.Errorf("%s exports %v, want %v", s.Name, s.Export, x)
		}
		if found, err := Lookup(s.Name); err != nil || found != s {
			t.Errorf("Lookup(%s): %v", s.Name, err)
		}
		settings := s.NewSettings()
		if (settings != nil) != s.HasSettings() || (s.FullWeight != (s.Defaults.PromptLen == 0)) {
			t.Errorf("%s: settings %T, defaults %+v", s.Name, settings, s.Defaults)
		}
		if err := s.Validate(settings, RunShape{PromptLen: max(1, s.Defaults.PromptLen), NumTasks: 15}); err != nil {
			t.Errorf("%s: defaults: %v", s.Name, err)
		}
		for _, f := range s.Flags(settings) {
			if other, dup := flags[f.Name]; dup {
				t.Errorf("flag --%s of %s and %s", f.Name, s.Name, other)
			}
			flags[f.Name] = s.Name
		}
		if s.HasSettings() {
			if err := s.Validate(&struct{}{}, RunShape{PromptLen: 1, NumTasks: 1}); err == nil {
				t.Errorf("%s accepted settings of another type", s.Name)
			}
		}
	}
	if _, err := Lookup("sgd"); err == nil {
		t.Error("an unknown method was found")
	}
}

// registryCase is a registered method on the tiny model with small
// settings: three tasks, short prompts.
type registryCase struct {
	spec  *Spec
	m     *t5.Model
	tasks []*Task
	eval  []Example
}

func newRegistryCase(t *testing.T, spec *Spec) *registryCase {
	t.Helper()
	m := tinyModel(t)
	rng := rand.New(rand.NewPCG(31, 32))
	rc := &registryCase{spec: spec, m: m, eval: randomExamples(m, rng, 3, 6, 2)}
	for i := 0; i < 3; i++ {
		rc.tasks = append(rc.tasks, &Task{Index: i, Name: fmt.Sprint("task", i), Train: randomExamples(m, rng, 5, 6, 3),
			InputLen: 6, TargetLen: 3, BatchSize: 2, EvalBatch: 3})
	}
	return rc
}

// build returns the method with settings small enough for the tiny
// model: prompts of 2 tokens (each L2P prompt, CODA component, ...), an
// SHLPT threshold that lets the third task both mix and contrast.
func (rc *registryCase) build(t *testing.T) Method {
	t.Helper()
	settings := rc.spec.NewSettings()
	switch s := settings.(type) {
	case *SHLPTConfig:
		s.Delta, s.TauSim, s.EstimatorRank = 0.45, 0.05, 7
	case *L2PConfig:
		s.TopN = 2
	case *CODAConfig:
		s.Pool = 6
	case *ERConfig:
		s.Memory = 4
	}
	lp := 2
	if rc.spec.FullWeight {
		lp = 0
	}
	meth, err := rc.spec.New(&Env{Model: rc.m, Seed: 9, NumTasks: len(rc.tasks), PromptLen: lp, Store: newMemStore()}, settings)
	if err != nil {
		t.Fatal(err)
	}
	return meth
}

// optimizer is the runner's AdamW (weight decay on).
func optimizer(t *testing.T, meth Method) *ag.AdamW {
	t.Helper()
	opt, err := ag.NewAdamW(meth.Params()[0].Engine(), meth.Params(), ag.AdamWConfig{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		WeightDecay: 0.01, MaxGradNorm: 1})
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// runTask trains task ti for two recorded steps, validates, ends it and
// tests every task seen so far: every call the runner makes.
func (rc *registryCase) runTask(t *testing.T, meth Method, ti int) {
	t.Helper()
	task := rc.tasks[ti]
	if err := meth.BeginTask(task); err != nil {
		t.Fatal(err)
	}
	opt := optimizer(t, meth)
	defer opt.Release()
	st, err := RecordStep(rc.m, meth, opt, task, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Release()
	for step, rows := range [][]int{{0, 1}, {2, 3}} {
		if _, err := st.Write(task.Train, rows, 0, step); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Run(); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := Snapshot(meth)
	if err != nil {
		t.Fatal(err)
	}
	rc.evaluate(t, meth, Validation, ti)
	if err := Restore(meth, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := meth.EndTask(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= ti; i++ {
		rc.evaluate(t, meth, Test, i)
	}
}

// evaluate reads the prompts of an evaluation pass over the eval examples.
func (rc *registryCase) evaluate(t *testing.T, meth Method, p Purpose, i int) {
	t.Helper()
	pr, err := meth.EvalPrompts(p, i)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Release()
	inputs := make([][]int, len(rc.eval))
	for k, ex := range rc.eval {
		inputs[k] = ex.Input
	}
	b, err := rc.m.NewBatch(inputs, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	defer rc.m.Engine().NoGrad()()
	prompt, err := pr.Prompt(&Batch{Examples: rc.eval, Device: b})
	if err != nil {
		t.Fatal(err)
	}
	enc, mask := rc.m.EncodeBatch(b, prompt)
	prompt.Release()
	_, err = enc.Float32s()
	enc.Release()
	mask.Release()
	if err != nil {
		t.Fatal(err)
	}
}

// For every registered method, the recorded training step (what the
// runner replays) equals the eager step on the same state and batch: the
// loss, its parts and every trainable tensor after the optimizer's step,
// bit for bit. It is checked on the third task, where SHLPT mixes and
// contrasts, EWC has a Fisher, ER a memory and CODA frozen components.
func TestRecordedStepEqualsEager(t *testing.T) {
	for _, spec := range Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			rc := newRegistryCase(t, spec)
			m, e := rc.m, rc.m.Engine()
			meth := rc.build(t)
			defer meth.Release()
			rc.runTask(t, meth, 0)
			rc.runTask(t, meth, 1)
			task := rc.tasks[2]
			if err := meth.BeginTask(task); err != nil {
				t.Fatal(err)
			}
			// One step first, so that the weights have left EWC's anchor.
			first := optimizer(t, meth)
			st, err := RecordStep(m, meth, first, task, 2)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write(task.Train, []int{0, 2}, 3, 4); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.Run(); err != nil {
				t.Fatal(err)
			}
			st.Release()
			first.Release()
			start, err := Snapshot(meth)
			if err != nil {
				t.Fatal(err)
			}
			rows := []int{4, 1}
			m.SetTraining(true)
			defer m.SetTraining(false)

			// Recorded.
			if err := m.SetDropoutSeed(77); err != nil {
				t.Fatal(err)
			}
			opt := optimizer(t, meth)
			st, err = RecordStep(m, meth, opt, task, len(rows))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write(task.Train, rows, 3, 5); err != nil {
				t.Fatal(err)
			}
			recLoss, recParts, err := st.Run()
			if err != nil {
				t.Fatal(err)
			}
			recorded, err := Snapshot(meth)
			if err != nil {
				t.Fatal(err)
			}
			st.Release()
			opt.Release()

			// Eager, from the same state with a fresh optimizer.
			if err := Restore(meth, start); err != nil {
				t.Fatal(err)
			}
			if err := m.SetDropoutSeed(77); err != nil {
				t.Fatal(err)
			}
			opt = optimizer(t, meth)
			defer opt.Release()
			step, err := meth.NewStep(len(rows))
			if err != nil {
				t.Fatal(err)
			}
			defer step.Release()
			exs := []Example{task.Train[rows[0]], task.Train[rows[1]]}
			inputs, targets := splitExamples(exs)
			dev, err := m.NewBatch(inputs, targets, task.InputLen, task.TargetLen)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Release()
			b := &Batch{Index: rows, Examples: exs, Device: dev, Epoch: 3, Step: 5}
			if err := step.Write(b); err != nil {
				t.Fatal(err)
			}
			sc := e.Scope()
			loss, parts := step.Loss(b)
			if err := e.Backward(loss); err != nil {
				t.Fatal(err)
			}
			opt.Step()
			opt.ZeroGrad()
			eagerLoss, err := loss.Item()
			if err != nil {
				t.Fatal(err)
			}
			eagerParts := map[string]float64{}
			for _, p := range parts {
				v, err := p.Value.Item()
				if err != nil {
					t.Fatal(err)
				}
				eagerParts[p.Name] = float64(v)
			}
			sc.End()
			loss.Release()
			for _, p := range parts {
				p.Value.Release()
			}
			eager, err := Snapshot(meth)
			if err != nil {
				t.Fatal(err)
			}

			if float64(eagerLoss) != recLoss || math.IsNaN(recLoss) {
				t.Errorf("loss: recorded %v, eager %v", recLoss, eagerLoss)
			}
			if len(recParts) != len(eagerParts) {
				t.Errorf("parts: recorded %v, eager %v", recParts, eagerParts)
			}
			for k, v := range recParts {
				if !(v > 0) && !(k == "ortho" && v >= 0) {
					t.Errorf("part %s is %v", k, v)
				}
				if eagerParts[k] != v {
					t.Errorf("part %s: recorded %v, eager %v", k, v, eagerParts[k])
				}
			}
			changed := false
			for k := range recorded {
				if !slices.Equal(recorded[k].Data, eager[k].Data) {
					t.Errorf("%s after the step differs between the recorded and the eager step", recorded[k].Name)
				}
				changed = changed || !slices.Equal(recorded[k].Data, start[k].Data)
			}
			if !changed {
				t.Error("the step changed nothing")
			}
			if _, err := meth.EndTask(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// For every registered method, device memory returns to what it was
// before the method existed, over two cycles of building it, training,
// validating and testing three tasks, and releasing it.
func TestMethodMemoryReturns(t *testing.T) {
	for _, spec := range Specs() {
		t.Run(spec.Name, func(t *testing.T) {
			rc := newRegistryCase(t, spec)
			e := rc.m.Engine()
			dev := e.Device()
			if err := e.Sync(); err != nil {
				t.Fatal(err)
			}
			start := dev.MemoryStats().Allocated
			for cycle := 0; cycle < 2; cycle++ {
				meth := rc.build(t)
				for ti := range rc.tasks {
					rc.runTask(t, meth, ti)
				}
				if _, err := meth.State(); err != nil {
					t.Fatal(err)
				}
				meth.Release()
				if err := e.Sync(); err != nil {
					t.Fatal(err)
				}
				if got := dev.MemoryStats().Allocated; got != start {
					t.Errorf("cycle %d: %d bytes of device memory allocated, %d before the method", cycle+1, got, start)
				}
			}
		})
	}
}
