package main

import (
	"encoding/json"
	"fmt"
	"io"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func init() { benchSubcommands["shlpt"] = runBenchSHLPT }

func runBenchSHLPT(args []string, stdout io.Writer) error {
	fs := newFlags("bench shlpt", "bench shlpt [--size t5-small|t5-base|t5-large | --config FILE | --model DIR] [--pool N] [flags]")
	size := fs.String("size", "t5-small", "named configuration with random weights")
	config := fs.String("config", "", "config.json of the architecture (random weights)")
	model := fs.String("model", "", "HF model folder to load instead of random weights")
	weights := weightsFlag(fs)
	pool := fs.Int("pool", 3, "stored prompts in SHLPT's pool")
	o := t5.DefaultBench
	fs.IntVar(&o.Batch, "batch", o.Batch, "batch size")
	fs.IntVar(&o.Prompt, "prompt", o.Prompt, "soft prompt length")
	fs.IntVar(&o.Input, "input", o.Input, "input tokens per row")
	fs.IntVar(&o.Target, "target", o.Target, "target tokens per row")
	fs.IntVar(&o.Runs, "runs", o.Runs, "timed runs per step (after one warm-up)")
	asJSON := fs.Bool("json", false, "print one JSON object")
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
	if err := intRange("pool", *pool, 1, 1<<10); err != nil {
		return err
	}
	wt, err := t5.ParseWeights(*weights)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	e := ag.New(d)
	m, name, err := benchModel(e, *size, *config, *model, wt)
	if err != nil {
		return err
	}
	defer m.Release()
	res, err := method.BenchSHLPT(m, o, *pool)
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			Config  string `json:"config"`
			Device  string `json:"device"`
			Weights string `json:"weights"`
			*method.SHLPTBench
			Batch, Prompt, Input, Target int
		}{name, d.String(), wt.String(), res, o.Batch, o.Prompt, o.Input, o.Target}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return err
		}
		return d.ValidationError()
	}
	fmt.Fprintf(stdout, "%s on %s (batch %d, %d prompt + %d input tokens, %d target; pool of %d; %v weights), median of %d runs:\n",
		name, d, o.Batch, o.Prompt, o.Input, o.Target, *pool, wt, o.Runs)
	for _, r := range []t5.BenchResult{res.Plain, res.SHLPT} {
		fmt.Fprintf(stdout, "  %-12s %10.1f ms/step %9.0f tokens/s  %d dispatches\n", r.Step, r.MsPerStep, r.TokensPerS, r.Dispatches)
	}
	fmt.Fprintf(stdout, "  peak device memory %s (weights and pool %s)\n", gpu.FormatBytes(res.SHLPT.PeakBytes), gpu.FormatBytes(res.SHLPT.WeightBytes))
	fmt.Fprintf(stdout, "  SHLPT / plain prompt tuning: %.2fx per step (median of back-to-back pairs); negatives precomputed once per task: %.1f ms for these %d rows\n",
		res.Ratio, res.NegativesMs, o.Batch)
	return d.ValidationError()
}
