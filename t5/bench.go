package t5

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// BenchOptions describe the prompt-tuning step that BenchSteps measures.
type BenchOptions struct {
	Batch, Prompt, Input, Target int
	Runs                         int // timed runs after one warm-up
	Profile                      bool
}

// DefaultBench is the SHLPT setting: batch 8, 150 prompt + 256 input
// tokens, 5 target tokens.
var DefaultBench = BenchOptions{Batch: 8, Prompt: 150, Input: 256, Target: 5, Runs: 5}

// OpTime is the device time of one kernel over a step.
type OpTime struct {
	Kernel string
	Calls  int
	Time   time.Duration
}

// BenchResult is the measurement of one kind of step.
type BenchResult struct {
	Step       string  `json:"step"` // "train" or "eval"
	MsPerStep  float64 `json:"ms_per_step"`
	TokensPerS float64 `json:"tokens_per_s"`
	// PeakBytes is the peak device memory during the step, including the
	// weights; WeightBytes is the weights alone.
	PeakBytes   int64 `json:"peak_bytes"`
	WeightBytes int64 `json:"weight_bytes"`
	Dispatches  int   `json:"dispatches"`
	// Barriers is the number of pipeline barriers in the recorded step:
	// each one waits for the dispatches before it to finish.
	Barriers int      `json:"barriers"`
	Ops      []OpTime `json:"-"`
}

// BenchAdamW is the optimizer of the benches' steps, the SHLPT
// reference's prompt optimizer: AdamW, lr 0.3, weight decay 1e-5,
// gradients clipped to norm 1.
var BenchAdamW = ag.AdamWConfig{LR: 0.3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-5, MaxGradNorm: 1}

// BenchRows draws o.Batch random rows from rng: inputs of o.Input and
// targets of o.Target tokens, ids above the pad and </s> ids 0 and 1,
// each ending with </s>.
func BenchRows(m *Model, o BenchOptions, rng *rand.Rand) (inputs, targets [][]int) {
	V := m.Config.VocabSize
	inputs, targets = make([][]int, o.Batch), make([][]int, o.Batch)
	for b := range inputs {
		for j := 0; j < o.Input-1; j++ {
			inputs[b] = append(inputs[b], 2+rng.IntN(V-2))
		}
		inputs[b] = append(inputs[b], m.Config.EOSTokenID)
		for j := 0; j < o.Target-1; j++ {
			targets[b] = append(targets[b], 2+rng.IntN(V-2))
		}
		targets[b] = append(targets[b], m.Config.EOSTokenID)
	}
	return inputs, targets
}

// BenchSteps measures one prompt-tuning training step (forward, backward to
// the prompt with frozen weights, AdamW with clipping on the prompt, dropout
// on) and one evaluation step (forward and loss without gradients). Each is
// recorded once into a program and replayed; the time is wall-clock from
// submit to completion, median over o.Runs after one warm-up run. With
// o.Profile the per-kernel times come from a second recording of the step
// with timestamps, also from its second run.
func BenchSteps(m *Model, o BenchOptions) ([]BenchResult, error) {
	e := m.e
	d := e.Device()
	if o.Batch < 1 || o.Prompt < 1 || o.Input < 1 || o.Target < 1 || o.Runs < 1 {
		return nil, fmt.Errorf("t5: bench needs at least one row, prompt, input and target token and run, got %+v", o)
	}
	V := m.Config.VocabSize
	if V < 3 {
		// Random ids are drawn above the pad and </s> ids 0 and 1.
		return nil, fmt.Errorf("t5: bench needs a vocabulary of at least 3 ids, the model has %d", V)
	}
	if err := e.Sync(); err != nil {
		return nil, err
	}
	weights := d.MemoryStats().Allocated
	rng := rand.New(rand.NewPCG(1, 2))
	inputs, targets := BenchRows(m, o, rng)
	batch, err := m.NewBatch(inputs, targets, 0, 0)
	if err != nil {
		return nil, err
	}
	defer batch.Release()
	pv := make([]float32, o.Prompt*m.Config.DModel)
	for i := range pv {
		pv[i] = float32(rng.NormFloat64())
	}
	prompt := e.Param("prompt", pv, o.Prompt, m.Config.DModel)
	defer prompt.Release()
	opt, err := ag.NewAdamW(e, []*ag.Tensor{prompt}, BenchAdamW)
	if err != nil {
		return nil, err
	}
	defer opt.Release()
	tokens := float64(o.Batch * (o.Prompt + o.Input + o.Target))

	wasTraining := m.training
	defer m.SetTraining(wasTraining)
	var results []BenchResult
	for _, kind := range []string{"train", "eval"} {
		step := func() error {
			if kind == "train" {
				m.SetTraining(true)
				out := m.Forward(batch, Options{Prompt: prompt})
				err := e.Backward(out.Loss)
				out.Release()
				if err != nil {
					return err
				}
				opt.Step()
				opt.ZeroGrad()
				return e.Err()
			}
			m.SetTraining(false)
			defer e.NoGrad()()
			out := m.Forward(batch, Options{Prompt: prompt})
			out.Release()
			return e.Err()
		}
		d.ResetPeak()
		prog, err := e.Capture(step)
		if err != nil {
			return nil, fmt.Errorf("recording the %s step: %w", kind, err)
		}
		times, err := timeRuns(prog, d, o.Runs)
		if err != nil {
			return nil, errors.Join(err, prog.Release())
		}
		sort.Float64s(times)
		med := times[len(times)/2]
		res := BenchResult{Step: kind, MsPerStep: med, TokensPerS: tokens / (med / 1e3),
			PeakBytes: d.MemoryStats().Peak, WeightBytes: weights, Dispatches: prog.Dispatches(),
			Barriers: prog.Barriers()}
		if err := prog.Release(); err != nil {
			return nil, err
		}
		if o.Profile {
			e.Profile(true)
			pprog, err := e.Capture(step)
			e.Profile(false)
			if err != nil {
				return nil, err
			}
			// Two runs, the timings of the second: the first touches the
			// program's memory for the first time, and on a CPU driver
			// the page faults of that land on whichever kernels write a
			// buffer first (in a training step, the softmax, dropout and
			// activation outputs), several times their own cost.
			for i := 0; i < 2 && err == nil; i++ {
				err = pprog.Run()
				if err == nil {
					err = d.Wait()
				}
			}
			res.Ops = aggregate(pprog.Timings())
			if err := errors.Join(err, pprog.Release()); err != nil {
				return nil, fmt.Errorf("profiling the %s step: %w", kind, err)
			}
		}
		results = append(results, res)
	}
	return results, e.Err()
}

// timeRuns runs prog once to warm up and then runs times, waiting for each,
// and returns the wall-clock milliseconds of the timed runs.
func timeRuns(prog *ag.Program, d *gpu.Device, runs int) ([]float64, error) {
	times := make([]float64, 0, runs)
	for i := -1; i < runs; i++ {
		start := time.Now()
		if err := prog.Run(); err != nil {
			return nil, err
		}
		if err := d.Wait(); err != nil {
			return nil, err
		}
		if i >= 0 {
			times = append(times, float64(time.Since(start).Microseconds())/1e3)
		}
	}
	return times, nil
}

// aggregate sums timings by kernel name (specialization constants dropped).
func aggregate(ts []gpu.Timing) []OpTime {
	by := map[string]*OpTime{}
	for _, t := range ts {
		name := t.Label
		if i := strings.IndexByte(name, '['); i > 0 {
			name = name[:i]
		}
		o := by[name]
		if o == nil {
			o = &OpTime{Kernel: name}
			by[name] = o
		}
		o.Calls++
		o.Time += t.Time
	}
	out := make([]OpTime, 0, len(by))
	for _, o := range by {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time > out[j].Time })
	return out
}
