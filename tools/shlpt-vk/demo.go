package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/demo"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/synth"
)

func init() {
	register(command{name: "demo", summary: "pretrain a small T5 on a synthetic task family and show SHLPT at work, from nothing", run: runDemo})
}

func runDemo(args []string, stdout io.Writer) error {
	fs := newFlags("demo", "demo [--quick] [--seed N] [--json] [flags]")
	quick := fs.Bool("quick", false, "tiny sizes (a smoke test in seconds, not a demonstration)")
	seed := fs.Uint64("seed", 1, "seed of the lifelong runs")
	asJSON := fs.Bool("json", false, "print the results as one JSON object")
	cache := fs.String("cache", "", "folder of the data, the pretrained model and the runs (default: the user's cache folder/shlpt-vk/demo)")
	quiet := fs.Bool("quiet", false, "no progress")
	def := demo.DefaultSettings(false)
	s := &def
	fs.IntVar(&s.Epochs, "epochs", s.Epochs, "epochs per lifelong task")
	fs.IntVar(&s.PromptLen, "prompt-len", s.PromptLen, "prompt length")
	fs.Float64Var(&s.TauSim, "tau-sim", s.TauSim, "SHLPT's similarity temperature")
	fs.Float64Var(&s.Delta, "delta", s.Delta, "SHLPT's similarity threshold")
	fs.IntVar(&s.KTrain, "k-train", s.KTrain, "training examples per class of each lifelong task")
	opts := deviceFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	o := demo.Options{Cache: *cache, Quick: *quick, Seed: *seed}
	if *quick {
		// --quick sets its own sizes: a flag it would override is refused
		// rather than silently ignored.
		for _, name := range []string{"epochs", "prompt-len", "tau-sim", "delta", "k-train"} {
			if fs.Changed(name) {
				return usageError(fs, "--"+name+" cannot be combined with --quick, which sets its own sizes")
			}
		}
	} else {
		if err := s.Validate(); err != nil {
			return err
		}
		o.Settings = s
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	o.Engine = ag.New(d)
	set := demo.DefaultSettings(*quick)
	if o.Settings != nil {
		set = *o.Settings
	}
	rep := newDemoReporter(*quiet, set)
	o.Reporter = rep
	ctx, stop := interruptible()
	defer stop()
	res, err := demo.Run(ctx, o)
	rep.close()
	if err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return d.ValidationError()
	}
	printDemo(stdout, res)
	return d.ValidationError()
}

// printDemo prints the matrices, averages, FWT and the similarity table.
func printDemo(w io.Writer, r *demo.Result) {
	pre := "pretrained"
	if r.Pretrain.Reused {
		pre = "reused from the cache"
	}
	fmt.Fprintf(w, "model: %s (%s; pretraining tasks at %.1f%%), %s\n", r.Settings.ArchName, pre, r.Pretrain.Average, r.Model)
	fmt.Fprintf(w, "lifelong tasks (chance %.0f%% each):", r.Chance[r.Tasks[0]])
	fam := synth.DemoFamily()
	for i, t := range fam.Lifelong {
		inv := ""
		if t.Inverted {
			inv = ", inverted"
		}
		fmt.Fprintf(w, "\n  %d %-9s %s%s", i+1, t.Name, t.Skill, inv)
	}
	fmt.Fprintln(w)
	for _, m := range demo.Methods {
		mr := r.Methods[m]
		fmt.Fprintf(w, "\n%s: test accuracy %% (row: after training task, column: task)\n", m)
		fmt.Fprintf(w, "%10s", "")
		for _, t := range r.Tasks {
			fmt.Fprintf(w, "%10s", t)
		}
		fmt.Fprintln(w)
		for t, row := range mr.Matrix {
			fmt.Fprintf(w, "%10s", r.Tasks[t])
			for _, v := range row {
				if v == nil {
					fmt.Fprintf(w, "%10s", "")
				} else {
					fmt.Fprintf(w, "%10.1f", *v)
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "average %.1f", mr.Average)
		if mr.FWT != nil {
			fmt.Fprintf(w, ", FWT against per-task %+.1f", *mr.FWT)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nSHLPT's mixture weight of each earlier task (ᾱ) next to the designed relation:\n")
	for t := 1; t < len(r.Tasks); t++ {
		fmt.Fprintf(w, "  %-9s", r.Tasks[t])
		for j := 0; j < t; j++ {
			rel, a := r.Similarity.Designed[j][t], r.Similarity.Alpha[j][t]
			if rel == nil || a == nil {
				continue
			}
			fmt.Fprintf(w, "  %s %.2f (%s)", r.Tasks[j], *a, synth.RelationName(*rel))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n%.0f s in all; see docs/demo.md for what to look for\n", r.Seconds)
}

// demoReporter shows one bar over the whole demo (pretraining steps and
// every method's training steps, as planned; early stopping ends sooner),
// with the time left, and the runner's messages above it.
type demoReporter struct {
	bar   *progressbar.ProgressBar
	lines *run.LineReporter
	quiet bool
	done  int
}

func newDemoReporter(quiet bool, s demo.Settings) *demoReporter {
	r := &demoReporter{quiet: quiet}
	if quiet {
		return r
	}
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		r.lines = &run.LineReporter{W: os.Stderr, Interval: 30 * time.Second}
		return r
	}
	perTask := s.Epochs * ((2*s.KTrain + 7) / 8)
	total := s.PretrainSteps + len(demo.Methods)*len(synth.DemoFamily().Lifelong)*perTask
	r.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("demo"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish())
	return r
}

func (r *demoReporter) BeginEpoch(task string, i, n, epoch, epochs, steps int) {
	if r.lines != nil {
		r.lines.BeginEpoch(task, i, n, epoch, epochs, steps)
	}
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("demo: %s epoch %d", task, epoch+1))
	}
}

func (r *demoReporter) Step(step int, loss, tps float64) {
	if r.lines != nil {
		r.lines.Step(step, loss, tps)
	}
	if r.bar != nil {
		r.done++
		r.bar.Set(min(r.done, r.bar.GetMax()-1))
	}
}

func (r *demoReporter) EndEpoch(l rundir.EpochLine) {
	if r.lines != nil {
		r.lines.EndEpoch(l)
	}
}

func (r *demoReporter) Logf(format string, args ...any) {
	switch {
	case r.lines != nil:
		r.lines.Logf(format, args...)
	case r.bar != nil && strings.HasPrefix(format, "demo:"):
		r.bar.Clear()
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

func (r *demoReporter) close() {
	if r.bar != nil {
		r.bar.Clear()
	}
}
