package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func init() { benchSubcommands["t5"] = runBenchT5 }

func runBenchT5(args []string, stdout io.Writer) error {
	fs := newFlags("bench t5", "bench t5 [--size t5-small|t5-base|t5-large | --config FILE | --model DIR] [flags]")
	size := fs.String("size", "t5-small", "named configuration with random weights")
	config := fs.String("config", "", "config.json of the architecture (random weights)")
	model := fs.String("model", "", "HF model folder to load instead of random weights")
	weights := weightsFlag(fs)
	o := t5.DefaultBench
	fs.IntVar(&o.Batch, "batch", o.Batch, "batch size")
	fs.IntVar(&o.Prompt, "prompt", o.Prompt, "soft prompt length")
	fs.IntVar(&o.Input, "input", o.Input, "input tokens per row")
	fs.IntVar(&o.Target, "target", o.Target, "target tokens per row")
	fs.IntVar(&o.Runs, "runs", o.Runs, "timed runs per step kind (after one warm-up)")
	profile := fs.Bool("profile", true, "per-kernel time breakdown from timestamps")
	top := fs.Int("top", 12, "kernels listed in the breakdown")
	asJSON := fs.Bool("json", false, "print one JSON object per step kind")
	opts := deviceFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := checkModelFlags(fs); err != nil {
		return err
	}
	if err := checkBenchOptions(o); err != nil {
		return err
	}
	if *top < 0 {
		return fmt.Errorf("--top %d: must be at least 0", *top)
	}
	wt, err := t5.ParseWeights(*weights)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	o.Profile = *profile
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	e := ag.New(d)
	start := time.Now()
	m, name, err := benchModel(e, *size, *config, *model, wt)
	if err != nil {
		return err
	}
	defer m.Release()
	load := time.Since(start)
	res, err := t5.BenchSteps(m, o)
	if err != nil {
		return err
	}
	for _, r := range res {
		if *asJSON {
			out := struct {
				Impl    string `json:"impl"`
				Config  string `json:"config"`
				Device  string `json:"device"`
				Weights string `json:"weights"`
				t5.BenchResult
				Batch, Prompt, Input, Target int
			}{"shlpt-vk", name, d.String(), wt.String(), r, o.Batch, o.Prompt, o.Input, o.Target}
			if err := json.NewEncoder(stdout).Encode(out); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s %s step on %s (batch %d, %d prompt + %d input tokens, %d target; %v weights loaded in %.1fs):\n",
			name, r.Step, d, o.Batch, o.Prompt, o.Input, o.Target, wt, load.Seconds())
		fmt.Fprintf(stdout, "  %.1f ms/step, %.0f tokens/s, peak device memory %s (weights %s), %d dispatches and %d barriers replayed\n",
			r.MsPerStep, r.TokensPerS, gpu.FormatBytes(r.PeakBytes), gpu.FormatBytes(r.WeightBytes), r.Dispatches, r.Barriers)
		var total time.Duration
		for _, op := range r.Ops {
			total += op.Time
		}
		for i, op := range r.Ops {
			if i >= *top {
				break
			}
			fmt.Fprintf(stdout, "    %-22s %5d calls %10.2f ms %5.1f%%\n", op.Kernel, op.Calls,
				float64(op.Time.Microseconds())/1e3, 100*float64(op.Time)/float64(total))
		}
	}
	return d.ValidationError()
}

// checkModelFlags refuses flags of fs that contradict each other: --model
// loads a checkpoint whose config.json gives the architecture, so it
// excludes --size and --config, and --config excludes --size.
func checkModelFlags(fs *pflag.FlagSet) error {
	switch {
	case fs.Changed("model") && fs.Changed("size"):
		return errors.New("--model and --size: the model folder's config.json gives the architecture; give one of them")
	case fs.Changed("model") && fs.Changed("config"):
		return errors.New("--model and --config: the model folder's config.json gives the architecture; give one of them")
	case fs.Changed("size") && fs.Changed("config"):
		return errors.New("--size and --config both name an architecture; give one of them")
	}
	return nil
}

// Bounds of the benchmark flags: beyond them the host arrays alone would
// exhaust memory.
const (
	maxBenchRuns   = 1 << 20
	maxBenchLen    = 1 << 20 // --batch, --prompt, --input, --target
	maxBenchTokens = 1 << 24 // batch·(prompt + input + target)
)

// checkBenchOptions checks the sizes of a benchmarked step, naming the
// flag that is out of range.
func checkBenchOptions(o t5.BenchOptions) error {
	for _, f := range []struct {
		name   string
		v, min int
	}{
		{"batch", o.Batch, 1}, {"prompt", o.Prompt, 1}, {"input", o.Input, 2}, {"target", o.Target, 1},
	} {
		if err := intRange(f.name, f.v, f.min, maxBenchLen); err != nil {
			return err
		}
	}
	if err := intRange("runs", o.Runs, 1, maxBenchRuns); err != nil {
		return err
	}
	if n := o.Batch * (o.Prompt + o.Input + o.Target); n > maxBenchTokens {
		return fmt.Errorf("--batch %d × (--prompt %d + --input %d + --target %d) = %d tokens, more than the %d allowed",
			o.Batch, o.Prompt, o.Input, o.Target, n, maxBenchTokens)
	}
	return nil
}

// benchModel loads the model folder, or builds random weights for the
// config file or the named configuration; name says which. The 2-D weights
// are stored as weights (f32, bf16 or f16).
func benchModel(e *ag.Engine, size, config, model string, weights ag.DType) (*t5.Model, string, error) {
	o := t5.LoadOptions{Weights: weights}
	if model != "" {
		m, err := t5.LoadWith(e, model, o)
		return m, model, err
	}
	var cfg t5.Config
	var err error
	name := size
	if config != "" {
		name = config
		cfg, err = t5.LoadConfig(config)
	} else {
		cfg, err = t5.NamedConfig(size)
	}
	if err != nil {
		return nil, name, err
	}
	m, err := t5.NewRandomWith(e, cfg, 1, o)
	return m, name, err
}
