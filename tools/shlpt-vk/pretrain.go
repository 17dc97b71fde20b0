package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func init() {
	register(command{name: "pretrain", summary: "train every weight of a new T5 on tasks into an HF model folder", run: runPretrain})
}

// pretrainFlags binds the flags of pretrain.
type pretrainFlags struct {
	fs                  *pflag.FlagSet
	pc                  run.PretrainConfig
	config, size, tasks string
	out, resume         string
	quiet               bool
}

func newPretrainFlags() *pretrainFlags {
	f := &pretrainFlags{fs: newFlags("pretrain", `pretrain (--config FILE | --size NAME) --data DIR [--tasks a,b] --steps N --tokenizer DIR --out DIR [flags]
   or: pretrain --resume DIR

--out starts a new pretraining in an absent or empty folder and continues
the same pretraining where one was interrupted; --resume continues the one
in DIR with the settings it began with.`)}
	fs := f.fs
	f.pc = run.PretrainConfig{BatchSize: 32, LR: 1e-3, WeightDecay: 0.01, MaxInputLen: 64, Seed: 1, KVal: 10, KTest: 20}
	pc := &f.pc
	fs.StringVar(&f.config, "config", "", "config.json of the architecture")
	fs.StringVar(&f.size, "size", "", "named architecture (t5-small, ...)")
	fs.StringVar(&pc.Data, "data", "", "folder of the tasks (custom task folders with task.json)")
	fs.StringVar(&f.tasks, "tasks", "", "comma-separated tasks (default: every custom task under --data)")
	fs.IntVar(&pc.Steps, "steps", 0, "training steps")
	fs.StringVar(&pc.Tokenizer, "tokenizer", "", "folder with tokenizer.json (copied into the model)")
	fs.IntVar(&pc.BatchSize, "batch-size", pc.BatchSize, "examples per step, from every task at once")
	fs.Float64Var(&pc.LR, "lr", pc.LR, "AdamW learning rate")
	fs.Float64Var(&pc.WeightDecay, "weight-decay", pc.WeightDecay, "AdamW weight decay")
	fs.IntVar(&pc.MaxInputLen, "max-input-len", pc.MaxInputLen, "input tokens per example, including </s>")
	fs.Uint64Var(&pc.Seed, "seed", pc.Seed, "seed of the initialization, sampling and shuffles")
	fs.IntVar(&pc.KVal, "k-val", pc.KVal, "validation examples per class of each task scored at the end")
	fs.IntVar(&pc.KTest, "k-test", pc.KTest, "test examples per class of each task scored at the end")
	fs.StringVar(&f.out, "out", "", "model folder to write (continued when it holds the same pretraining)")
	fs.StringVar(&f.resume, "resume", "", "continue the interrupted pretraining in this folder")
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing but errors and the final scores")
	return f
}

// resolve builds the pretraining's settings from the flags.
func (f *pretrainFlags) resolve() (run.PretrainConfig, error) {
	pc := f.pc
	fs := f.fs
	switch {
	case f.out == "":
		return pc, usageError(fs, "no model folder: give --out DIR, or --resume DIR")
	case pc.Data == "":
		return pc, usageError(fs, "no task folder: give --data DIR")
	case pc.Tokenizer == "":
		return pc, usageError(fs, "no tokenizer: give --tokenizer DIR")
	case !fs.Changed("steps"):
		return pc, usageError(fs, "no step count: give --steps N")
	case pc.Steps < 1:
		return pc, fmt.Errorf("--steps %d: must be at least 1", pc.Steps)
	case (f.config == "") == (f.size == ""):
		return pc, errors.New("give the architecture with --config FILE or --size NAME (one of them)")
	}
	var err error
	if f.config != "" {
		pc.Arch, err = t5.LoadConfig(f.config)
	} else {
		pc.Arch, err = t5.NamedConfig(f.size)
	}
	if err != nil {
		return pc, err
	}
	if f.tasks != "" {
		pc.Tasks = strings.Split(f.tasks, ",")
	}
	for _, p := range []*string{&pc.Data, &pc.Tokenizer} {
		if *p, err = filepath.Abs(*p); err != nil {
			return pc, err
		}
	}
	return pc, nil
}

// resumed returns the settings stored in the folder, refusing flags given
// on the command line that differ from them.
func (f *pretrainFlags) resumed(dir string) (run.PretrainConfig, error) {
	stored, err := run.ReadPretrain(dir)
	if err != nil {
		return stored, err
	}
	var differ []string
	f.fs.Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "resume", "out", "quiet", "device", "validate":
			return
		}
		given, err := f.withFlag(stored, fl.Name)
		if err != nil || run.PretrainDifference(stored, given) != "" {
			differ = append(differ, "--"+fl.Name)
		}
	})
	if len(differ) > 0 {
		return stored, fmt.Errorf("%s cannot change when resuming %s (it keeps the settings it began with; see %s)",
			strings.Join(differ, ", "), dir, filepath.Join(dir, run.PretrainFile))
	}
	return stored, nil
}

// withFlag returns stored with the value of flag name as given.
func (f *pretrainFlags) withFlag(stored run.PretrainConfig, name string) (run.PretrainConfig, error) {
	pc := stored
	v := f.pc
	switch name {
	case "config", "size":
		var err error
		if f.config != "" {
			pc.Arch, err = t5.LoadConfig(f.config)
		} else {
			pc.Arch, err = t5.NamedConfig(f.size)
		}
		return pc, err
	case "data":
		abs, err := filepath.Abs(v.Data)
		pc.Data = abs
		return pc, err
	case "tokenizer":
		abs, err := filepath.Abs(v.Tokenizer)
		pc.Tokenizer = abs
		return pc, err
	case "tasks":
		pc.Tasks = strings.Split(f.tasks, ",")
	case "steps":
		pc.Steps = v.Steps
	case "batch-size":
		pc.BatchSize = v.BatchSize
	case "lr":
		pc.LR = v.LR
	case "weight-decay":
		pc.WeightDecay = v.WeightDecay
	case "max-input-len":
		pc.MaxInputLen = v.MaxInputLen
	case "seed":
		pc.Seed = v.Seed
	case "k-val":
		pc.KVal = v.KVal
	case "k-test":
		pc.KTest = v.KTest
	}
	return pc, nil
}

func runPretrain(args []string, stdout io.Writer) error {
	f := newPretrainFlags()
	opts := deviceFlags(f.fs)
	if err := parseNoArgs(f.fs, args); err != nil {
		return err
	}
	dir := f.out
	var pc run.PretrainConfig
	var err error
	if f.resume != "" {
		if f.out != "" && filepath.Clean(f.out) != filepath.Clean(f.resume) {
			return errors.New("--out and --resume name different folders")
		}
		dir = f.resume
		pc, err = f.resumed(dir)
	} else {
		pc, err = f.resolve()
	}
	if err != nil {
		return err
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	rep := newReporter(f.quiet)
	ctx, stop := interruptible()
	defer stop()
	res, err := run.Pretrain(ctx, pc, dir, f.resume != "", run.Options{Engine: ag.New(d), Version: version(), Reporter: rep})
	rep.Close()
	if err != nil {
		return err
	}
	if res.AlreadyComplete {
		fmt.Fprintf(stdout, "model folder %s holds this pretraining, complete: nothing to do\n", dir)
	}
	fmt.Fprintf(stdout, "test scores after pretraining (%s):\n", strings.Join(res.Tasks, ", "))
	last := res.Matrix.Test[len(res.Tasks)-1]
	for i, t := range res.Tasks {
		fmt.Fprintf(stdout, "  %-28s %6.2f\n", t, *last[i])
	}
	fmt.Fprintf(stdout, "average %.2f\nmodel folder: %s\n", res.Average["test"], dir)
	return d.ValidationError()
}
