package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/report"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

func init() {
	register(command{name: "report", summary: "the paper's tables and figures from run directories, next to the published numbers", run: runReport})
}

const reportSynopsis = `report RUNS... --out DIR [--activations [--activation-inputs N]] [--no-plots]
   RUNS are run directories, plan directories (runs.tsv) or glob patterns`

func runReport(args []string, stdout io.Writer) error {
	fs := newFlags("report", reportSynopsis)
	out := fs.String("out", "", "folder to write report.md, report.csv, report.tex and plots/ into")
	acts := fs.Bool("activations", false, "first run every stored prompt over each task's test inputs and write each run's activations.json (needs a Vulkan device and the runs' model and data)")
	perTask := fs.Int("activation-inputs", 50, "test inputs of each task the activations pass runs (0: all)")
	noPlots := fs.Bool("no-plots", false, "write the tables only")
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "shlpt-vk report: give run directories and --out DIR")
		fs.Usage()
		return errUsage
	}
	if *perTask < 0 {
		return fmt.Errorf("--activation-inputs %d must not be negative", *perTask)
	}
	var problems []string
	if *acts {
		p, err := activationsPass(fs.Args(), opts(), *perTask, stdout)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	r, err := report.Build(fs.Args())
	if err != nil {
		return err
	}
	r.Problems = append(problems, r.Problems...)
	if !*noPlots {
		if r.Figures, err = r.Plots(*out); err != nil {
			return err
		}
	}
	if err := r.Write(*out); err != nil {
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintf(os.Stderr, "shlpt-vk report: %s\n", p)
	}
	fmt.Fprintf(stdout, "%s: %d runs in %d groups, %d tables, %d figures\n", filepath.Join(*out, report.MarkdownFile),
		len(r.Runs), len(r.Groups), len(r.Tables), len(r.Figures))
	if len(r.Problems) > 0 {
		return fmt.Errorf("%d of the arguments or runs could not be included (listed above and in report.md)", len(r.Problems))
	}
	return nil
}

// activationsPass writes activations.json into every complete run that
// has stored prompts and none yet; a run that fails is a problem, not the
// end of the pass.
func activationsPass(args []string, o gpu.Options, perTask int, stdout io.Writer) ([]string, error) {
	dirs, _ := report.Expand(args)
	runs, _ := report.Load(dirs)
	var todo []*report.Run
	for _, r := range runs {
		_, err := os.Stat(filepath.Join(r.Dir, rundir.ActivationsFile))
		if r.State == report.StateComplete && os.IsNotExist(err) {
			if _, err := os.Stat(filepath.Join(r.Dir, rundir.PromptsDir)); err == nil {
				todo = append(todo, r)
			}
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	d, err := gpu.Open(o)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var problems []string
	for i, r := range todo {
		fmt.Fprintf(stdout, "activations %d/%d: %s\n", i+1, len(todo), r.Dir)
		if _, err := run.Activations(r.Dir, ag.New(d), perTask); err != nil {
			problems = append(problems, fmt.Sprintf("%s: activations: %v", r.Dir, err))
		}
	}
	return problems, nil
}
