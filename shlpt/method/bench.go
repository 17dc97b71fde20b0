package method

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// SHLPTBench is the measurement of SHLPT's training step next to plain
// prompt tuning on the same shapes.
type SHLPTBench struct {
	Pool int `json:"pool"`
	// Plain is the prompt-tuning train step (the prompt alone, AdamW on
	// it); SHLPT the method's step (estimator, per-row mixture, forward,
	// HSC and ASC, backward to the prompt and the estimator, AdamW). Both
	// are recorded and replayed on the same batch, each run with the host's
	// writes of the batch. PeakBytes (of SHLPT) covers both.
	Plain t5.BenchResult `json:"plain"`
	SHLPT t5.BenchResult `json:"shlpt"`
	// Ratio is the median over back-to-back pairs of runs of SHLPT's time
	// per step over the plain step's.
	Ratio float64 `json:"ratio"`
	// NegativesMs is the one-off precomputation per task, for the bench's
	// batch (P+1 forward passes without gradients), in milliseconds.
	NegativesMs float64 `json:"negatives_ms"`
}

// BenchSHLPT measures SHLPT's training step with a pool of pool stored
// prompts (random) against the plain prompt-tuning step, on random inputs
// of o's shapes, with the reference's settings (δ 0.06, τ_sim 2·10⁴, both
// contrastive losses).
func BenchSHLPT(m *t5.Model, o t5.BenchOptions, pool int) (*SHLPTBench, error) {
	if pool < 1 || o.Runs < 1 {
		return nil, fmt.Errorf("bench shlpt: pool %d and runs %d must be at least 1", pool, o.Runs)
	}
	e := m.Engine()
	d := e.Device()
	cfg := DefaultSHLPT()
	cfg.PromptLen = o.Prompt
	s, err := NewSHLPT(&Env{Model: m, Seed: 1, PromptLen: o.Prompt}, cfg)
	if err != nil {
		return nil, err
	}
	defer s.Release()
	rng := rand.New(rand.NewPCG(1, 2))
	for j := 0; j < pool; j++ {
		v := make([]float32, o.Prompt*m.Config.DModel)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		s.pool = append(s.pool, v)
	}
	inputs, targets := t5.BenchRows(m, o, rng)
	train := make([]Example, o.Batch)
	rows := make([]int, o.Batch)
	for b := range train {
		train[b] = Example{Input: inputs[b], Target: targets[b]}
		rows[b] = b
	}
	task := &Task{Name: "bench", Train: train, InputLen: o.Input, TargetLen: o.Target, BatchSize: o.Batch, EvalBatch: o.Batch}
	wasTraining := m.Training()
	m.SetTraining(true)
	defer m.SetTraining(wasTraining)
	start := time.Now()
	if err := s.BeginTask(task); err != nil {
		return nil, err
	}
	res := &SHLPTBench{Pool: pool, NegativesMs: float64(time.Since(start).Microseconds()) / 1e3}
	opt, err := ag.NewAdamW(e, s.Params(), t5.BenchAdamW)
	if err != nil {
		return nil, err
	}
	defer opt.Release()
	if err := e.Sync(); err != nil {
		return nil, err
	}
	weights := d.MemoryStats().Allocated
	d.ResetPeak()
	sl, err := RecordStep(m, s, opt, task, o.Batch)
	if err != nil {
		return nil, err
	}
	defer sl.Release()
	plain, freePlain, err := recordPlainStep(m, sl.Batch, o.Prompt)
	if err != nil {
		return nil, err
	}
	defer freePlain()
	// Pairs of runs back to back, so that both steps see the same load.
	var tp, ts, ratios []float64
	for i := -1; i < o.Runs; i++ {
		t0 := time.Now()
		// The plain step writes its batch too, as a run would.
		if err := m.WriteBatch(sl.Batch, inputs, targets); err != nil {
			return nil, err
		}
		if err := plain.Run(); err != nil {
			return nil, err
		}
		if err := e.Sync(); err != nil {
			return nil, err
		}
		t1 := time.Now()
		if _, err := sl.Write(train, rows, 0, i+1); err != nil {
			return nil, err
		}
		if _, _, err := sl.Run(); err != nil {
			return nil, err
		}
		if i >= 0 {
			a, b := ms(t1.Sub(t0)), ms(time.Since(t1))
			tp, ts, ratios = append(tp, a), append(ts, b), append(ratios, b/a)
		}
	}
	tokens := float64(o.Batch * (o.Prompt + o.Input + o.Target))
	res.Plain = t5.BenchResult{Step: "train", MsPerStep: median(tp), Dispatches: plain.Dispatches()}
	res.SHLPT = t5.BenchResult{Step: "shlpt-train", MsPerStep: median(ts), PeakBytes: d.MemoryStats().Peak, WeightBytes: weights,
		Dispatches: sl.Dispatches()}
	for _, r := range []*t5.BenchResult{&res.Plain, &res.SHLPT} {
		r.TokensPerS = tokens / (r.MsPerStep / 1e3)
	}
	res.Ratio = median(ratios)
	return res, e.Err()
}

// recordPlainStep records the prompt-tuning step on batch (the prompt of
// length Lp alone, AdamW on it) into a program; free releases the program,
// the prompt and the optimizer.
func recordPlainStep(m *t5.Model, batch *t5.Batch, Lp int) (prog *ag.Program, free func(), err error) {
	e := m.Engine()
	prompt := e.Param("prompt", make([]float32, Lp*m.Config.DModel), Lp, m.Config.DModel)
	opt, err := ag.NewAdamW(e, []*ag.Tensor{prompt}, t5.BenchAdamW)
	if err != nil {
		prompt.Release()
		return nil, nil, err
	}
	free = func() {
		if prog != nil {
			prog.Release()
		}
		opt.Release()
		prompt.Release()
	}
	prog, err = e.Capture(func() error {
		out := m.Forward(batch, t5.Options{Prompt: prompt})
		if err := e.Backward(out.Loss); err != nil {
			return err
		}
		out.Release()
		opt.Step()
		opt.ZeroGrad()
		return e.Err()
	})
	if err != nil {
		free()
		return nil, nil, err
	}
	return prog, free, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
