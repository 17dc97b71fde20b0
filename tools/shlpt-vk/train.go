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
}

// newTrainFlags binds the flags to a copy of base, which gives every
// default: the reference's settings, or a resumed run's stored ones.
func newTrainFlags(base rundir.Config) *trainFlags {
	f := &trainFlags{fs: newFlags("train", trainSynopsis), cfg: base, noDropout: !base.Dropout}
	fs := f.fs
	c := &f.cfg
	fs.StringVar(&c.Method, "method", c.Method, "lifelong method: "+strings.Join(rundir.Methods(), ", "))
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
	fs.Float64Var(&c.LR, "lr", c.LR, "AdamW learning rate")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&c.MaxGradNorm, "max-grad-norm", c.MaxGradNorm, "gradient clipping norm (0: off)")
	fs.IntVar(&c.MaxInputLen, "max-input-len", c.MaxInputLen, "input tokens per example, including </s>")
	fs.StringVar(&c.Weights, "weights", c.Weights, "storage of the frozen model's weights: f32, bf16 or f16 (halves their memory; computation stays fp32; full-weight methods need f32)")
	fs.BoolVar(&f.noDropout, "no-dropout", f.noDropout, "train without the model's dropout (the reference trains with it)")
	fs.StringVar(&c.Decode, "decode", c.Decode, "evaluation decoding: beam (4 beams, repetition penalty 2.5, as the reference), greedy, or rank (label words by likelihood)")
	fs.IntVar(&c.NumBeams, "num-beams", c.NumBeams, "beams of --decode beam")
	fs.Float64Var(&c.RepetitionPenalty, "repetition-penalty", c.RepetitionPenalty, "repetition penalty of --decode beam")
	fs.BoolVar(&c.ReferenceMetrics, "reference-metrics", c.ReferenceMetrics, "make the reference's metric variants primary (MultiRC micro-F1, SQuAD F1 against the first answer)")
	fs.BoolVar(&c.MultiRCAccumulate, "multirc-accumulate", c.MultiRCAccumulate, "reference behaviour: each MultiRC input repeats its passage's earlier blocks")
	fs.StringVar(&c.PerTaskScores, "per-task-scores", c.PerTaskScores, "results.json of a per-task prompt-tuning run: FWT is measured against its scores")
	s := &c.SHLPT
	fs.IntVar(&c.PromptLen, "prompt-len", c.PromptLen, "soft prompt length (default: the method's: 150 for shlpt, per-task and continual-init, 10 per task for progprompt, 5 per pool prompt for l2p, 8 per component for coda)")
	fs.Float64Var(&s.Delta, "delta", s.Delta, "SHLPT: similarity threshold δ (default: the benchmark's, 0.06 or 1.5)")
	fs.Float64Var(&s.TauSim, "tau-sim", s.TauSim, "SHLPT: temperature of the similarity softmax")
	fs.BoolVar(&s.AllDissimilar, "all-dissimilar", s.AllDissimilar, "SHLPT: treat every earlier task as dissimilar (the Negative Transfer setting; default with --benchmark nt)")
	fs.Float64Var(&s.LambdaHSC, "lambda-hsc", s.LambdaHSC, "SHLPT: weight of the hidden-state contrastive loss")
	fs.Float64Var(&s.LambdaASC, "lambda-asc", s.LambdaASC, "SHLPT: weight of the activation contrastive loss")
	fs.Float64Var(&s.TauHSC, "tau-hsc", s.TauHSC, "SHLPT: temperature of HSC")
	fs.Float64Var(&s.TauASC, "tau-asc", s.TauASC, "SHLPT: temperature of ASC")
	fs.IntVar(&s.EstimatorRank, "estimator-rank", s.EstimatorRank, "SHLPT: bottleneck of the similarity estimator")
	fs.BoolVar(&s.NoASE, "no-ase", s.NoASE, "SHLPT ablation -ASE: uniform similarity over earlier tasks instead of the estimator")
	fs.BoolVar(&s.NoASC, "no-asc", s.NoASC, "SHLPT ablation -ASC: no activation contrastive loss")
	fs.BoolVar(&s.NoHSC, "no-hsc", s.NoHSC, "SHLPT ablation -HSC: no hidden-state contrastive loss")
	fs.BoolVar(&s.NoSTT, "no-stt", s.NoSTT, "SHLPT ablation -STT: no similar-task prompts mixed into the new one")
	fs.BoolVar(&c.Multitask, "multitask", c.Multitask, "train every task of the sequence at once with one prompt (the usual upper reference; method per-task)")
	fs.BoolVar(&c.ProgPrompt.MLP, "progprompt-mlp", c.ProgPrompt.MLP, "progprompt: train each new prompt through a residual MLP (stored as its output)")
	fs.IntVar(&c.ProgPrompt.Bottleneck, "progprompt-bottleneck", c.ProgPrompt.Bottleneck, "progprompt: the MLP's bottleneck")
	fs.IntVar(&c.L2P.PoolSize, "l2p-pool", c.L2P.PoolSize, "l2p: prompts in the pool (0: max(10, tasks × top-n))")
	fs.IntVar(&c.L2P.TopN, "l2p-top-n", c.L2P.TopN, "l2p: prompts selected per input")
	fs.Float64Var(&c.L2P.PullCoeff, "l2p-pull", c.L2P.PullCoeff, "l2p: weight of the surrogate key loss")
	fs.BoolVar(&c.L2P.TaskSlots, "l2p-task-slots", c.L2P.TaskSlots, "l2p: each task trains and is tested with its own pool slots (task identity given); false selects by keys")
	fs.IntVar(&c.CODA.Pool, "coda-pool", c.CODA.Pool, "coda: prompt components, shared out evenly over the tasks")
	fs.Float64Var(&c.CODA.OrthoMu, "coda-ortho", c.CODA.OrthoMu, "coda: weight of the orthogonality penalty")
	fs.Float64Var(&c.EWC.Lambda, "ewc-lambda", c.EWC.Lambda, "ewc: weight of the penalty")
	fs.Float64Var(&c.EWC.Gamma, "ewc-gamma", c.EWC.Gamma, "ewc: decay of the accumulated Fisher information")
	fs.IntVar(&c.ER.Memory, "er-memory", c.ER.Memory, "er: examples kept in the replay memory (reservoir sampling)")
	fs.BoolVar(&s.Quirks, "quirks", s.Quirks, "reproduce the authors' code where shlpt-vk's default differs (see docs/shlpt.md)")
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing but errors and the final results")
	return f
}

// resolve builds the run's configuration from the flags: the benchmark's
// defaults, then every flag given.
func (f *trainFlags) resolve() (rundir.Config, error) {
	fs := f.fs
	c := f.cfg
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.benchmark != "" {
		def, err := rundir.DefaultConfig(f.benchmark)
		if err != nil {
			return c, err
		}
		if !fs.Changed("epochs") {
			c.Epochs = def.Epochs
		}
		if !fs.Changed("patience") {
			c.Patience = def.Patience
		}
		if !fs.Changed("delta") {
			c.SHLPT.Delta = def.SHLPT.Delta
		}
		if !fs.Changed("all-dissimilar") {
			c.SHLPT.AllDissimilar = def.SHLPT.AllDissimilar
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
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, name := range []string{"tasks", "benchmark", "order"} {
		if fs.Changed(name) {
			return c, fmt.Errorf("--%s cannot change on --resume (the run's sequence is %s)", name, strings.Join(c.Tasks, ","))
		}
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
