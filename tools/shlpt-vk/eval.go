package main

import (
	"encoding/json"
	"fmt"
	"io"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

func init() {
	register(command{name: "eval", summary: "score a run's learned prompts without training (another split, decoding, data or tasks) into eval/<name>.json", run: runEval})
}

const evalSynopsis = `eval RUN_DIR [--split valid|test] [--tasks a,b] [--decode beam|greedy|rank] [--data DIR]
       [--prompts IMPORTED_DIR] [--name NAME] [--json]`

func runEval(args []string, stdout io.Writer) error {
	fs := newFlags("eval", evalSynopsis)
	var o run.EvalOptions
	var tasks string
	var asJSON, quiet bool
	fs.StringVar(&o.Split, "split", "test", "split to score: valid or test")
	fs.StringVar(&tasks, "tasks", "", "comma-separated tasks to score (default: every task the run has learned)")
	fs.StringVar(&o.Decode, "decode", "", "decoding: beam, greedy or rank (default: the run's)")
	fs.IntVar(&o.NumBeams, "num-beams", 0, "beams of --decode beam (default: the run's)")
	fs.Float64Var(&o.RepetitionPenalty, "repetition-penalty", 0, "repetition penalty of --decode beam (default: the run's)")
	fs.StringVar(&o.Data, "data", "", "another data root in the same layout to draw the examples from (default: the run's)")
	fs.StringVar(&o.Prompts, "prompts", "", "folder written by 'shlpt-vk import': its tasks are scored with its prompts instead of the run's")
	fs.StringVar(&o.Name, "name", "", "name of the output, eval/NAME.json (default: the split and decoding, and a hash of --tasks, --data and --prompts when given)")
	fs.BoolVar(&asJSON, "json", false, "print the written results as JSON")
	fs.BoolVar(&quiet, "quiet", false, "print nothing but errors and the results")
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	o.Dir = fs.Arg(0)
	o.Tasks = splitList(tasks)
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	o.Engine, o.Version = ag.New(d), version()
	rep := newReporter(quiet)
	o.Reporter = rep
	ctx, stop := interruptible()
	defer stop()
	res, err := run.Evaluate(ctx, o)
	rep.Close()
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printEval(stdout, res)
		fmt.Fprintf(stdout, "written: %s\n", rundir.EvalFile(o.Dir, res.Eval.Name))
	}
	return d.ValidationError()
}

// printEval prints each task's primary score of an eval-only pass.
func printEval(w io.Writer, r *rundir.Results) {
	e := r.Eval
	fmt.Fprintf(w, "%s scores of %s (%s decoding):\n", e.Split, r.Method, e.Decode)
	row := r.Matrix.Test[len(r.Tasks)-1]
	if e.Split == "valid" {
		row = r.Matrix.Valid[len(r.Tasks)-1]
	}
	for i, t := range r.Tasks {
		fmt.Fprintf(w, "  %-10s %-10s %6.2f\n", t, r.Metric[i], *row[i])
	}
	fmt.Fprintf(w, "  %-21s %6.2f\n", "average", r.Average[e.Split])
}
