package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

func init() {
	register(command{name: "train", summary: "train a task sequence with a lifelong method into a run directory", run: runTrain})
}

const trainSynopsis = `train --model DIR [--tokenizer DIR] --data DIR (--tasks a,b,c | --benchmark std|long|nt --order N)
       [--method shlpt] [--seed S] --out RUN_DIR [flags]
   or: train --resume RUN_DIR

--out starts a new run in an absent or empty directory, continues the same
run (same settings, model and data) where one was interrupted, leaves a
finished one as it is, and refuses a directory holding another run.`

// trainFlags binds the flags of train to a configuration.
type trainFlags struct {
	fs        *pflag.FlagSet
	cfg       rundir.Config
	tasks     string
	benchmark string
	out       string
	resume    string
	quiet     bool
	noDropout bool
	// settings are every registered method's settings, bound to its flags
	// (base's own for base's method); owner names each such flag's method.
	settings map[string]any
	owner    map[string]string
}

// newTrainFlags binds the flags to a copy of base, which gives every
// default: the reference's settings, or a resumed run's stored ones.
func newTrainFlags(base rundir.Config) *trainFlags {
	base = base.Clone()
	f := &trainFlags{fs: newFlags("train", trainSynopsis), cfg: base, noDropout: !base.Dropout,
		settings: map[string]any{}, owner: map[string]string{}}
	fs := f.fs
	c := &f.cfg
	fs.StringVar(&c.Method, "method", c.Method, "lifelong method: "+strings.Join(method.Names(), ", ")+" (docs/baselines.md)")
	fs.StringVar(&c.Model, "model", c.Model, "HF T5 model folder (config.json, model.safetensors)")
	fs.StringVar(&c.Tokenizer, "tokenizer", c.Tokenizer, "folder with tokenizer.json (default: the model folder)")
	fs.StringVar(&c.Data, "data", c.Data, "dataset root in the SHLPT layout (CB/train.jsonl, RTE/train.tsv, ...)")
	fs.StringVar(&f.tasks, "tasks", "", "comma-separated task sequence (see 'shlpt-vk data tasks')")
	fs.StringVar(&f.benchmark, "benchmark", "", "the paper's benchmark: std (orders 1-3), long (orders 4-6) or nt (orders 1-3)")
	fs.IntVar(&c.Order, "order", c.Order, "task order of --benchmark")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of sampling, initialization, shuffles and dropout")
	fs.StringVar(&f.out, "out", "", "run directory: created, or continued when it holds the same run")
	fs.StringVar(&f.resume, "resume", "", "continue the interrupted run in this directory")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "epochs per task (default: the benchmark's, 50 or 80)")
	fs.IntVar(&c.Patience, "patience", c.Patience, "validations without improvement before stopping (default: the benchmark's, 35 or 50)")
	fs.IntVar(&c.EvalFrom, "eval-from", c.EvalFrom, "first epoch (0-based) validated; the last is always validated")
	fs.IntVar(&c.KTrain, "k-train", c.KTrain, "train examples per class (-1: all)")
	fs.IntVar(&c.KVal, "k-val", c.KVal, "valid examples per class (-1: all)")
	fs.IntVar(&c.KTest, "k-test", c.KTest, "test examples per class (-1: all)")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "training batch size")
	fs.IntVar(&c.EvalBatchSize, "eval-batch-size", c.EvalBatchSize, "evaluation batch size")
	fs.Float64Var(&c.LR, "lr", c.LR, "AdamW learning rate (default: the method's)")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW weight decay (default: the method's; the SHLPT paper says 0.01 where its code uses 1e-5, docs/shlpt.md)")
	fs.Float64Var(&c.MaxGradNorm, "max-grad-norm", c.MaxGradNorm, "gradient clipping norm (0: off)")
	fs.IntVar(&c.MaxInputLen, "max-input-len", c.MaxInputLen, "input tokens per example, including </s>")
	fs.StringVar(&c.Weights, "weights", c.Weights, "storage of the frozen model's weights: f32, bf16 or f16 (halves their memory; computation stays fp32; full-weight methods need f32)")
	fs.BoolVar(&f.noDropout, "no-dropout", f.noDropout, "train without the model's dropout (the reference trains with it)")
	fs.StringVar(&c.Decode, "decode", c.Decode, "evaluation decoding: beam (4 beams, repetition penalty 2.5, as the reference), greedy, or rank (label words by likelihood)")
	fs.IntVar(&c.NumBeams, "num-beams", c.NumBeams, "beams of --decode beam")
	fs.Float64Var(&c.RepetitionPenalty, "repetition-penalty", c.RepetitionPenalty, "repetition penalty of --decode beam")
	fs.StringVar(&c.PrimaryMetrics, "primary-metrics", c.PrimaryMetrics, "metrics of the matrices and early stopping: paper (MultiRC micro-F1, SQuAD F1 against the first gold answer, as the paper's tables) or official (MultiRC F1 over answer options, SQuAD F1 against every gold answer); results.json keeps both")
	fs.BoolVar(&c.MultiRCAccumulate, "multirc-accumulate", c.MultiRCAccumulate, "reference behaviour: each MultiRC input repeats its passage's earlier blocks")
	fs.StringVar(&c.PerTaskScores, "per-task-scores", c.PerTaskScores, "results.json of a per-task prompt-tuning run: FWT is measured against its scores")
	fs.IntVar(&c.PromptLen, "prompt-len", c.PromptLen, "soft prompt length (default: the method's: "+promptLenDefaults()+")")
	fs.BoolVar(&c.Multitask, "multitask", c.Multitask, "train every task of the sequence at once (the usual upper reference; per-task or a full-weight method)")
	for _, spec := range method.Specs() {
		settings := spec.NewSettings()
		if spec.Name == base.Method {
			settings = base.Settings
		}
		f.settings[spec.Name] = settings
		for _, mf := range spec.Flags(settings) {
			bindMethodFlag(fs, mf)
			f.owner[mf.Name] = spec.Name
		}
	}
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing but errors and the final results")
	return f
}

// promptLenDefaults lists the registered methods' default prompt lengths.
func promptLenDefaults() string {
	var parts []string
	for _, s := range method.Specs() {
		if s.Defaults.PromptLen > 0 {
			parts = append(parts, fmt.Sprintf("%d for %s", s.Defaults.PromptLen, s.Name))
		}
	}
	return strings.Join(parts, ", ")
}

// bindMethodFlag binds one flag of a method's settings.
func bindMethodFlag(fs *pflag.FlagSet, f method.Flag) {
	switch v := f.Value.(type) {
	case *bool:
		fs.BoolVar(v, f.Name, *v, f.Usage)
	case *int:
		fs.IntVar(v, f.Name, *v, f.Usage)
	case *float64:
		fs.Float64Var(v, f.Name, *v, f.Usage)
	case *string:
		fs.StringVar(v, f.Name, *v, f.Usage)
	case *[]string:
		fs.StringSliceVar(v, f.Name, *v, f.Usage)
	case method.Value:
		fs.Var(v, f.Name, f.Usage)
	default:
		panic(fmt.Sprintf("flag --%s: unsupported type %T", f.Name, f.Value))
	}
	if f.NoValue != "" {
		fs.Lookup(f.Name).NoOptDefVal = f.NoValue
	}
}

// methodSettings gives the configuration the settings of its method as
// the flags set them; a flag of another method is an error naming both.
func (f *trainFlags) methodSettings(c *rundir.Config) error {
	if _, err := method.Lookup(c.Method); err != nil {
		return err
	}
	var err error
	f.fs.Visit(func(fl *pflag.Flag) {
		if m, ok := f.owner[fl.Name]; ok && m != c.Method && err == nil {
			err = fmt.Errorf("--%s is a setting of %s, not of %s", fl.Name, m, c.Method)
		}
	})
	c.Settings = f.settings[c.Method]
	return err
}

// resolve builds the run's configuration from the flags: the benchmark's
// defaults, then every flag given.
func (f *trainFlags) resolve() (rundir.Config, error) {
	fs := f.fs
	c := f.cfg
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := f.methodSettings(&c); err != nil {
		return c, err
	}
	if f.benchmark != "" {
		b, err := rundir.LookupBenchmark(f.benchmark)
		if err != nil {
			return c, err
		}
		if err := b.Apply(&c, fs.Changed); err != nil {
			return c, err
		}
		if f.tasks != "" {
			return c, errors.New("give --tasks or --benchmark with --order, not both")
		}
		if !fs.Changed("order") {
			return c, fmt.Errorf("--benchmark %s needs --order", f.benchmark)
		}
		names, err := rundir.SequenceTasks(f.benchmark, c.Order)
		if err != nil {
			return c, err
		}
		c.Benchmark, c.Tasks = f.benchmark, names
	} else {
		if fs.Changed("order") {
			return c, errors.New("--order needs --benchmark")
		}
		for _, t := range strings.Split(f.tasks, ",") {
			if t = strings.TrimSpace(t); t != "" {
				c.Tasks = append(c.Tasks, t)
			}
		}
	}
	c.Dropout = !f.noDropout
	d := rundir.DefaultsFor(c.Method)
	if !fs.Changed("prompt-len") {
		c.PromptLen = d.PromptLen
	}
	if !fs.Changed("lr") {
		c.LR = d.LR
	}
	if !fs.Changed("weight-decay") {
		c.WeightDecay = d.WeightDecay
	}
	if err := absPaths(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// resumed returns the stored settings of a resumed run with the flags
// given on the command line applied (f was built on the stored settings,
// so flags not given keep them). The runner refuses the run if they differ.
func (f *trainFlags) resumed() (rundir.Config, error) {
	fs := f.fs
	c := f.cfg
	for _, name := range []string{"tasks", "benchmark", "order"} {
		if fs.Changed(name) {
			return c, fmt.Errorf("--%s cannot change on --resume (the run's sequence is %s)", name, strings.Join(c.Tasks, ","))
		}
	}
	if err := f.methodSettings(&c); err != nil {
		return c, err
	}
	if fs.Changed("no-dropout") {
		c.Dropout = !f.noDropout
	}
	return c, absPaths(&c)
}

// absPaths makes the configuration's paths absolute, so that a run can be
// resumed from another folder.
func absPaths(c *rundir.Config) error {
	for _, p := range []*string{&c.Model, &c.Tokenizer, &c.Data, &c.PerTaskScores} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	return nil
}

func runTrain(args []string, stdout io.Writer) error {
	def, err := rundir.DefaultConfig("")
	if err != nil {
		return err
	}
	f := newTrainFlags(def)
	opts := deviceFlags(f.fs)
	if err := parseNoArgs(f.fs, args); err != nil {
		return err
	}
	var cfg rundir.Config
	dir := f.out
	resume := f.resume != ""
	switch {
	case resume && f.out != "" && filepath.Clean(f.out) != filepath.Clean(f.resume):
		return errors.New("--out and --resume name different directories")
	case resume:
		dir = f.resume
		info, err := rundir.ReadInfo(dir)
		if err != nil {
			return err
		}
		// The flags again, over the stored settings.
		f = newTrainFlags(info.Settings)
		opts = deviceFlags(f.fs)
		if err := parse(f.fs, args); err != nil {
			return err
		}
		if cfg, err = f.resumed(); err != nil {
			return err
		}
	case f.out == "":
		return usageError(f.fs, "no run directory: give --out DIR (a new run, or the same run to continue), or --resume DIR")
	default:
		if cfg, err = f.resolve(); err != nil {
			return err
		}
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	rep := newReporter(f.quiet)
	ctx, stop := interruptible()
	defer stop()
	res, err := run.Run(ctx, cfg, run.Options{Dir: dir, Resume: resume, Engine: ag.New(d), Version: version(), Reporter: rep})
	rep.Close()
	if err != nil {
		return err
	}
	if res.AlreadyComplete {
		fmt.Fprintf(stdout, "run directory %s holds this run, complete: nothing to do\n", dir)
	}
	printResults(stdout, res)
	fmt.Fprintf(stdout, "run directory: %s\n", dir)
	return d.ValidationError()
}

// interruptible returns a context that the first SIGINT or SIGTERM
// cancels (the runner then stops at the next step, after a checkpoint); a
// second signal ends the process at once. stop releases the signals.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			fmt.Fprintln(os.Stderr, "\nstopping at the next step (interrupt again to quit now)")
			cancel()
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		cancel()
	}
}

// printResults prints the test matrix and the summary numbers.
func printResults(w io.Writer, r *rundir.Results) {
	fmt.Fprintf(w, "test scores (%s; row: after training task, column: task)\n", r.Method)
	width := 8
	for _, t := range r.Tasks {
		width = max(width, len(t)+1)
	}
	fmt.Fprintf(w, "%*s", width, "")
	for _, t := range r.Tasks {
		fmt.Fprintf(w, "%*s", width, t)
	}
	fmt.Fprintln(w)
	for t, row := range r.Matrix.Test {
		fmt.Fprintf(w, "%*s", width, r.Tasks[t])
		for _, v := range row {
			if v == nil {
				fmt.Fprintf(w, "%*s", width, "")
			} else {
				fmt.Fprintf(w, "%*.2f", width, *v)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "average test %.2f (valid %.2f)", r.Average["test"], r.Average["valid"])
	if v, ok := r.BWT["test"]; ok {
		fmt.Fprintf(w, ", BWT %.2f", v)
	}
	if v, ok := r.FWT["test"]; ok {
		fmt.Fprintf(w, ", FWT %.2f", v)
	}
	fmt.Fprintln(w)
}

// version is the program's VCS revision, when the build recorded it.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return bi.Main.Version
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// reporter is a run.Reporter that can be closed.
type reporter interface {
	run.Reporter
	Close()
}

// newReporter returns a progress bar on a terminal, plain lines otherwise,
// nothing with quiet.
func newReporter(quiet bool) reporter {
	switch {
	case quiet:
		return quietReporter{run.Quiet}
	case term.IsTerminal(int(os.Stderr.Fd())):
		return &barReporter{w: os.Stderr}
	}
	return lineReporter{&run.LineReporter{W: os.Stderr, Interval: 30e9}}
}

type quietReporter struct{ run.Reporter }

func (quietReporter) Close() {}

type lineReporter struct{ *run.LineReporter }

func (lineReporter) Close() {}
