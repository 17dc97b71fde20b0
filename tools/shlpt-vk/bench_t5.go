package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

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
	if err := parse(fs, args); err != nil {
		return err
	}
	o.Profile = *profile
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	e := ag.New(d)
	start := time.Now()
	m, name, err := benchModel(e, *size, *config, *model)
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
				Impl   string `json:"impl"`
				Config string `json:"config"`
				Device string `json:"device"`
				t5.BenchResult
				Batch, Prompt, Input, Target int
			}{"shlpt-vk", name, d.String(), r, o.Batch, o.Prompt, o.Input, o.Target}
			if err := json.NewEncoder(stdout).Encode(out); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s %s step on %s (batch %d, %d prompt + %d input tokens, %d target; weights loaded in %.1fs):\n",
			name, r.Step, d, o.Batch, o.Prompt, o.Input, o.Target, load.Seconds())
		fmt.Fprintf(stdout, "  %.1f ms/step, %.0f tokens/s, peak device memory %s (weights %s), %d dispatches replayed\n",
			r.MsPerStep, r.TokensPerS, gpu.FormatBytes(r.PeakBytes), gpu.FormatBytes(r.WeightBytes), r.Dispatches)
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

// benchModel loads the model folder, or builds random weights for the
// config file or the named configuration; name says which.
func benchModel(e *ag.Engine, size, config, model string) (*t5.Model, string, error) {
	if model != "" {
		m, err := t5.Load(e, model)
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
	m, err := t5.NewRandom(e, cfg, 1)
	return m, name, err
}
