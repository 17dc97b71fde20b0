package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func init() {
	register(command{name: "pretrain", summary: "train every weight of a new T5 on tasks into an HF model folder", run: runPretrain})
}

func runPretrain(args []string, stdout io.Writer) error {
	fs := newFlags("pretrain", `pretrain (--config FILE | --size NAME) --data DIR [--tasks a,b] --steps N --tokenizer DIR --out DIR [flags]
   or: pretrain --resume DIR`)
	config := fs.String("config", "", "config.json of the architecture")
	size := fs.String("size", "", "named architecture (t5-small, ...)")
	pc := run.PretrainConfig{BatchSize: 32, LR: 1e-3, WeightDecay: 0.01, MaxInputLen: 64, Seed: 1, KVal: 10, KTest: 20}
	fs.StringVar(&pc.Data, "data", "", "folder of the tasks (custom task folders with task.json)")
	taskList := fs.String("tasks", "", "comma-separated tasks (default: every custom task under --data)")
	fs.IntVar(&pc.Steps, "steps", 0, "training steps")
	fs.StringVar(&pc.Tokenizer, "tokenizer", "", "folder with tokenizer.json (copied into the model)")
	fs.IntVar(&pc.BatchSize, "batch-size", pc.BatchSize, "examples per step, from every task at once")
	fs.Float64Var(&pc.LR, "lr", pc.LR, "AdamW learning rate")
	fs.Float64Var(&pc.WeightDecay, "weight-decay", pc.WeightDecay, "AdamW weight decay")
	fs.IntVar(&pc.MaxInputLen, "max-input-len", pc.MaxInputLen, "input tokens per example, including </s>")
	fs.Uint64Var(&pc.Seed, "seed", pc.Seed, "seed of the initialization, sampling and shuffles")
	out := fs.String("out", "", "model folder to write")
	resume := fs.String("resume", "", "continue the interrupted pretraining in this folder")
	quiet := fs.Bool("quiet", false, "print nothing but errors and the final scores")
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	dir := *out
	if *resume != "" {
		if *out != "" && filepath.Clean(*out) != filepath.Clean(*resume) {
			return errors.New("--out and --resume name different folders")
		}
		dir = *resume
	} else {
		switch {
		case dir == "" || pc.Data == "" || pc.Steps < 1 || pc.Tokenizer == "":
			fs.Usage()
			return errUsage
		case (*config == "") == (*size == ""):
			return errors.New("give the architecture with --config FILE or --size NAME (one of them)")
		}
		var err error
		if *config != "" {
			pc.Arch, err = t5.LoadConfig(*config)
		} else {
			pc.Arch, err = t5.NamedConfig(*size)
		}
		if err != nil {
			return err
		}
		if *taskList != "" {
			pc.Tasks = strings.Split(*taskList, ",")
		}
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	rep := newReporter(*quiet)
	ctx, stop := interruptible()
	defer stop()
	res, err := run.Pretrain(ctx, pc, dir, *resume != "", run.Options{Engine: ag.New(d), Version: version(), Reporter: rep})
	rep.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "test scores after pretraining (%s):\n", strings.Join(res.Tasks, ", "))
	last := res.Matrix.Test[len(res.Tasks)-1]
	for i, t := range res.Tasks {
		fmt.Fprintf(stdout, "  %-28s %6.2f\n", t, *last[i])
	}
	fmt.Fprintf(stdout, "average %.2f\nmodel folder: %s\n", res.Average["test"], dir)
	return d.ValidationError()
}
