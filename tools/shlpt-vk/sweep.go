package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/sweep"
)

func init() {
	register(command{name: "sweep", summary: "grids of train runs: plan them, run them here, on Slurm or Kubernetes, see where they stand", run: runSweep})
}

const sweepUsage = `usage: shlpt-vk sweep <subcommand> [flags]

subcommands:
  plan     write a plan directory: a preset of the paper's experiments or a custom grid,
           its runs (runs.tsv, plan.json) and its scheduler files (Slurm, Kubernetes, GNU parallel)
  run      execute a plan here, N runs at a time, each its own process
  exec     execute one run of a plan (what a scheduler calls)
  status   the state of every run of a plan
  compare  check that two executions of one plan have identical results

Run 'shlpt-vk sweep <subcommand> --help' for its flags; docs/experiments.md for the paper's tables.
`

func runSweep(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, sweepUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, sweepUsage)
		return errHelp
	case "plan":
		return sweepPlan(args[1:], stdout)
	case "run":
		return sweepRun(args[1:], stdout)
	case "exec":
		return sweepExec(args[1:], stdout)
	case "status":
		return sweepStatus(args[1:], stdout)
	case "compare":
		return sweepCompare(args[1:], stdout)
	}
	return &usageLineError{command: "sweep", msg: fmt.Sprintf("unknown subcommand %q (plan, run, exec, status or compare)", args[0])}
}

func presetList() string {
	var b strings.Builder
	for _, p := range sweep.Presets {
		fmt.Fprintf(&b, "  %-8s %s\n", p.Name, p.Title)
	}
	return b.String()
}

// gridOnly are the plan flags that make a custom grid; a preset refuses
// them (table10 takes --tasks, table5 --pairs).
var gridOnly = []string{"benchmarks", "orders", "tasks", "pairs"}

// passedFlags are the train flags plan passes to every run (the paths
// made absolute; --weights is a storage type).
var passedFlags = []string{"model", "data", "tokenizer", "weights"}

// reservedKeys are train flags that a grid sweeps with its own flags, or
// that the executor sets.
var reservedKeys = map[string]string{
	"out": "the executor sets it", "resume": "the executor resumes by itself",
	"method": "use --methods", "seed": "use --seeds", "tasks": "use --tasks",
	"benchmark": "use --benchmarks", "order": "use --orders",
}

func sweepPlan(args []string, stdout io.Writer) error {
	fs := newFlags("sweep plan", "sweep plan (NAME | --grid ...) --model DIR --data DIR --out PLAN [flags]\n\npresets:\n"+presetList())
	out := fs.String("out", "", "plan directory to write (must not exist, or be empty)")
	grid := fs.Bool("grid", false, "a custom grid of --methods × (--benchmarks with --orders, or --tasks) × --set values × --seeds")
	methods := fs.StringSlice("methods", nil, "methods of the grid (a preset: keep only these rows)")
	benchmarks := fs.StringSlice("benchmarks", nil, "benchmarks of the grid: std, long, nt")
	orders := fs.IntSlice("orders", nil, "orders of each benchmark (default: all)")
	taskSeqs := fs.StringArray("tasks", nil, "a task sequence a,b,c (repeat the flag for several; table10: the tasks of its matrix)")
	pairs := fs.StringSlice("pairs", nil, "table5: source:target pairs (sst2:imdb,mnli:rte)")
	seeds := fs.StringSlice("seeds", nil, "seeds (default 42,142,242, the paper's)")
	sets := fs.StringArray("set", nil, "key=v1,v2: sweep the train flag --key through the values (repeatable; a flag that takes a list gets one value per --set)")
	force := fs.Bool("force", false, fmt.Sprintf("write a plan of more than %d runs", sweep.MaxRuns))
	for _, name := range passedFlags {
		fs.String(name, "", "passed to every run: train --"+name)
	}
	fe := sweep.DefaultFrontends()
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "shlpt-vk" {
		fe.Bin = exe
	}
	fs.StringVar(&fe.Bin, "bin", fe.Bin, "the shlpt-vk program Slurm and GNU parallel call")
	fs.IntVar(&fe.MaxParallel, "max-parallel", fe.MaxParallel, "runs at once on Slurm (%K of the array) and Kubernetes (parallelism)")
	fs.StringVar(&fe.SlurmPartition, "slurm-partition", "", "Slurm partition (default: the cluster's)")
	fs.StringVar(&fe.SlurmTime, "slurm-time", "", "Slurm time limit of one run, e.g. 24:00:00 (default: the partition's)")
	fs.StringVar(&fe.SlurmGres, "slurm-gres", fe.SlurmGres, "Slurm generic resources of one run (none: no --gres)")
	fs.StringVar(&fe.K8sImage, "k8s-image", fe.K8sImage, "Kubernetes: container image with shlpt-vk on its PATH")
	fs.StringVar(&fe.K8sClaim, "k8s-claim", fe.K8sClaim, "Kubernetes: PersistentVolumeClaim holding the plan directory and its runs")
	fs.StringVar(&fe.K8sMount, "k8s-mount", fe.K8sMount, "Kubernetes: where the claim is mounted (the plan is expected at MOUNT/<plan name>)")
	fs.IntVar(&fe.K8sBackoff, "k8s-backoff", fe.K8sBackoff, "Kubernetes: backoffLimitPerIndex, the retries of one run")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError(fs, "no plan directory: give --out PLAN")
	}
	if err := fe.Check(); err != nil {
		return err
	}
	var spec sweep.Spec
	switch {
	case fs.NArg() > 1:
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args()[1:], " "))
	case fs.NArg() == 1 && *grid:
		return fmt.Errorf("give a preset (%s) or --grid, not both", fs.Arg(0))
	case fs.NArg() == 1:
		p, err := sweep.LookupPreset(fs.Arg(0))
		if err != nil {
			return err
		}
		for _, name := range gridOnly {
			allowed := name == "tasks" && p.Tasks != nil || name == "pairs" && p.Pairs != nil
			if fs.Changed(name) && !allowed {
				return fmt.Errorf("--%s: the preset %s has its own; use --grid for a custom grid", name, p.Name)
			}
		}
		if fs.Changed("tasks") {
			if len(*taskSeqs) != 1 {
				return fmt.Errorf("--tasks: %s takes one list of tasks", p.Name)
			}
			p.Tasks = splitList(*taskSeqs...)
			if len(p.Tasks) < 2 {
				return fmt.Errorf("--tasks %s: %s needs at least two tasks", (*taskSeqs)[0], p.Name)
			}
		}
		if fs.Changed("pairs") {
			p.Pairs = nil
			for _, pr := range *pairs {
				st := strings.Split(pr, ":")
				if len(st) != 2 || st[0] == "" || st[1] == "" || st[0] == st[1] {
					return fmt.Errorf("--pairs %q: expected source:target with two different tasks", pr)
				}
				p.Pairs = append(p.Pairs, [2]string{st[0], st[1]})
			}
		}
		spec = p.Spec()
		if fs.Changed("methods") {
			if err := spec.KeepVariants(*methods); err != nil {
				return fmt.Errorf("--methods: %w", err)
			}
		}
	case *grid:
		var err error
		if spec, err = gridSpec(*methods, *benchmarks, *orders, *taskSeqs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("give a preset (%s) or --grid", presetNames())
	}
	if fs.Changed("seeds") || *grid {
		s := sweep.PaperSeeds
		if fs.Changed("seeds") {
			var err error
			if s, err = parseSeeds(*seeds); err != nil {
				return err
			}
		}
		spec.SetSeeds(s)
	}
	setList, err := parseSets(*sets)
	if err != nil {
		return err
	}
	spec.ApplySets(setList)
	var pass []string
	for _, name := range passedFlags {
		if !fs.Changed(name) {
			continue
		}
		v, _ := fs.GetString(name)
		if name != "weights" && v != "" {
			abs, err := filepath.Abs(v)
			if err != nil {
				return err
			}
			v = abs
		}
		pass = append(pass, "--"+name, v)
	}
	spec.Common = pass
	plan, err := sweep.NewPlan(spec, *force)
	if err != nil {
		return err
	}
	for _, r := range plan.Runs {
		if err := checkTrainArgs(append(append([]string{}, r.Args...), "--out", "check")); err != nil {
			return fmt.Errorf("run %s: %w", r.Dir, err)
		}
	}
	err = plan.Write(*out, fe)
	switch {
	case errors.Is(err, sweep.ErrSamePlan):
		fmt.Fprintf(stdout, "%s already holds this plan (%d runs); its scheduler files were rewritten\n", plan.Dir, len(plan.Runs))
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "plan %s: %d runs in %s\n", spec.Name, len(plan.Runs), plan.Dir)
	fmt.Fprintf(stdout, "  here:        shlpt-vk sweep run %s --jobs 1\n", shellWord(plan.Dir))
	fmt.Fprintf(stdout, "  Slurm:       sbatch %s\n", shellWord(filepath.Join(plan.Dir, sweep.SlurmFile)))
	fmt.Fprintf(stdout, "  Kubernetes:  kubectl apply -f %s (after copying the plan onto the claim)\n", shellWord(filepath.Join(plan.Dir, sweep.K8sFile)))
	fmt.Fprintf(stdout, "  GNU parallel: parallel -j 1 < %s\n", shellWord(filepath.Join(plan.Dir, sweep.ParallelFile)))
	return nil
}

func shellWord(s string) string { return sweep.ShellJoin([]string{s}) }

func presetNames() string {
	var names []string
	for _, p := range sweep.Presets {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

// gridSpec is the spec of a custom grid.
func gridSpec(methods, benchmarks []string, orders []int, taskSeqs []string) (sweep.Spec, error) {
	s := sweep.Spec{Name: "grid"}
	var b sweep.Block
	if len(methods) == 0 {
		return s, errors.New("empty grid: no --methods")
	}
	for _, m := range methods {
		b.Variants = append(b.Variants, sweep.MethodVariant(m))
	}
	if len(orders) > 0 && len(benchmarks) == 0 {
		return s, errors.New("--orders needs --benchmarks")
	}
	for _, name := range benchmarks {
		seqs, err := sweep.BenchmarkOrders(name, orders)
		if err != nil {
			return s, fmt.Errorf("--benchmarks: %w", err)
		}
		b.Sequences = append(b.Sequences, seqs...)
	}
	for _, ts := range taskSeqs {
		names := splitList(ts)
		if len(names) == 0 {
			return s, fmt.Errorf("--tasks %q: no tasks", ts)
		}
		b.Sequences = append(b.Sequences, sweep.TaskSequence(names))
	}
	if len(b.Sequences) == 0 {
		return s, errors.New("empty grid: no sequences (give --benchmarks or --tasks)")
	}
	s.Blocks = []sweep.Block{b}
	return s, nil
}

func splitList(lists ...string) []string {
	var out []string
	for _, l := range lists {
		for _, x := range strings.Split(l, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func parseSeeds(list []string) ([]uint64, error) {
	var out []uint64
	for _, s := range list {
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("--seeds %q: not a seed (a non-negative integer)", s)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty grid: --seeds gives no seed")
	}
	return out, nil
}

// parseSets reads --set key=v1,v2 against train's flags: the key must be
// a train flag that a grid may sweep. The same key given again adds
// values. Values are checked with the runs (checkTrainArgs).
func parseSets(list []string) ([]sweep.Set, error) {
	def, err := rundir.DefaultConfig("")
	if err != nil {
		return nil, err
	}
	tf := newTrainFlags(def).fs
	var out []sweep.Set
	at := map[string]int{}
	for _, kv := range list {
		key, vals, ok := strings.Cut(kv, "=")
		key = strings.TrimPrefix(strings.TrimSpace(key), "--")
		if !ok || key == "" {
			return nil, fmt.Errorf("--set %q: expected key=value[,value...]", kv)
		}
		if why, reserved := reservedKeys[key]; reserved {
			return nil, fmt.Errorf("--set %s: not a setting a grid sets this way (%s)", key, why)
		}
		fl := tf.Lookup(key)
		if fl == nil {
			return nil, fmt.Errorf("--set %s: train has no flag --%s (see 'shlpt-vk train --help')", key, key)
		}
		var values []string
		if t := fl.Value.Type(); strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array") {
			values = []string{vals} // the flag takes a list: one value per --set
		} else {
			for _, v := range strings.Split(vals, ",") {
				values = append(values, strings.TrimSpace(v))
			}
		}
		for _, v := range values {
			if v == "" {
				return nil, fmt.Errorf("--set %q: an empty value", kv)
			}
		}
		if i, seen := at[key]; seen {
			out[i].Values = append(out[i].Values, values...)
		} else {
			at[key] = len(out)
			out = append(out, sweep.Set{Key: key, Values: values})
		}
	}
	return out, nil
}

// checkTrainArgs checks a run's arguments the way train reads them,
// without opening a device: the flags, their values and the resolved
// settings.
func checkTrainArgs(args []string) error {
	def, err := rundir.DefaultConfig("")
	if err != nil {
		return err
	}
	f := newTrainFlags(def)
	deviceFlags(f.fs)
	f.fs.SetOutput(io.Discard)
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	_, err = f.resolve()
	return err
}

func loadPlanArg(fs *pflag.FlagSet, what string) (*sweep.Plan, error) {
	switch fs.NArg() {
	case 0:
		return nil, usageError(fs, "no plan directory given")
	case 1:
		return sweep.Load(fs.Arg(0))
	}
	return nil, fmt.Errorf("unexpected arguments after %s: %s", what, strings.Join(fs.Args()[1:], " "))
}

func sweepRun(args []string, stdout io.Writer) error {
	fs := newFlags("sweep run", "sweep run PLAN [--jobs N]")
	jobs := fs.Int("jobs", 1, "runs at once, each its own process")
	if err := parse(fs, args); err != nil {
		return err
	}
	plan, err := loadPlanArg(fs, "PLAN")
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the shlpt-vk program: %w", err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	l := &sweep.Local{Plan: plan, Exe: exe, Jobs: *jobs, Out: stdout, Interrupt: sigs,
		Args: func(i int) []string { return []string{"sweep", "exec", plan.Dir, "--index", strconv.Itoa(i)} }}
	_, err = l.Run()
	return err
}

// exitError ends the process with a given exit code after printing err.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func sweepExec(args []string, stdout io.Writer) error {
	fs := newFlags("sweep exec", "sweep exec PLAN --index I [--requeue-on-interrupt]")
	index := fs.Int("index", -1, "the run: its line in runs.tsv, from 0 (a Slurm array task id, a Kubernetes completion index)")
	requeue := fs.Bool("requeue-on-interrupt", false, "under Slurm: when a signal stops the run, requeue this job so that it resumes")
	if err := parse(fs, args); err != nil {
		return err
	}
	plan, err := loadPlanArg(fs, "PLAN")
	if err != nil {
		return err
	}
	if !fs.Changed("index") {
		return errors.New("--index: which run? (0 to " + strconv.Itoa(len(plan.Runs)-1) + ")")
	}
	r, err := plan.Run(*index)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "sweep exec: run %d of %d: %s (%s)\n", *index, len(plan.Runs), r.Dir, r.ID)
	train := func(targs []string) error {
		if err := checkTrainArgs(targs); err != nil {
			return fmt.Errorf("train arguments: %w", err)
		}
		return runTrain(targs, stdout)
	}
	stopped := func(err error) bool { return errors.Is(err, run.ErrInterrupted) }
	outcome, err := plan.Execute(*index, train, stopped)
	switch outcome {
	case sweep.Done:
		fmt.Fprintf(stdout, "run %d (%s) is complete\n", *index, r.Dir)
		return nil
	case sweep.Stopped:
		msg := fmt.Errorf("run %d (%s) stopped after a checkpoint (%v); executing it again resumes it", *index, r.Dir, err)
		if *requeue {
			if job := os.Getenv("SLURM_JOB_ID"); job != "" {
				requeueSlurmJob(job)
			}
		}
		return &exitError{code: sweep.ExitStopped, err: msg}
	}
	return err
}

// requeueSlurmJob puts a job that a signal stopped back in Slurm's queue,
// so that it resumes: only a job Slurm still counts as running (the
// --signal warning before its time limit). A job being cancelled
// (scancel), or one Slurm requeues itself (preemption, 'scontrol
// requeue'), is left to Slurm.
func requeueSlurmJob(job string) {
	out, err := exec.Command("scontrol", "show", "job", "-o", job).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "sweep exec: scontrol show job %s: %v: %s\n", job, err, strings.TrimSpace(string(out)))
		return
	}
	state := ""
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "JobState="); ok {
			state = v
		}
	}
	if state != "RUNNING" {
		fmt.Fprintf(os.Stderr, "sweep exec: Slurm job %s is %s: not requeued\n", job, state)
		return
	}
	if out, err := exec.Command("scontrol", "requeue", job).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "sweep exec: scontrol requeue %s: %v: %s\n", job, err, strings.TrimSpace(string(out)))
		return
	}
	fmt.Fprintf(os.Stderr, "sweep exec: requeued Slurm job %s\n", job)
}

func sweepStatus(args []string, stdout io.Writer) error {
	fs := newFlags("sweep status", "sweep status PLAN [--json]")
	asJSON := fs.Bool("json", false, "one JSON object: plan, dir, runs (index, id, dir, state, error, progress), totals")
	if err := parse(fs, args); err != nil {
		return err
	}
	plan, err := loadPlanArg(fs, "PLAN")
	if err != nil {
		return err
	}
	runs := make([]sweep.RunStatus, len(plan.Runs))
	for i := range plan.Runs {
		runs[i] = plan.Status(i)
	}
	totals := sweep.Totals(runs)
	if *asJSON {
		b, err := json.Marshal(map[string]any{"plan": plan.Spec.Name, "dir": plan.Dir, "runs": runs, "totals": totals})
		if err != nil {
			return err
		}
		_, err = stdout.Write(append(b, '\n'))
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tID\tSTATE\tDIR\tPROGRESS")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Index, r.ID, r.State, r.Dir, describe(r))
	}
	tw.Flush()
	var parts []string
	for _, s := range sweep.States {
		parts = append(parts, fmt.Sprintf("%d %s", totals[s], s))
	}
	fmt.Fprintf(stdout, "plan %s: %d runs: %s\n", plan.Spec.Name, len(runs), strings.Join(parts, ", "))
	return nil
}

// describe is a run's progress or error in a few words.
func describe(r sweep.RunStatus) string {
	p := r.Progress
	var s string
	switch {
	case r.State == sweep.Complete && p != nil:
		s = fmt.Sprintf("%d/%d tasks, average test %.2f", p.TasksDone, p.Tasks, p.Average)
	case p != nil && p.Epoch > 0:
		s = fmt.Sprintf("task %d/%d (%s), epoch %d/%d", p.TaskIndex+1, p.Tasks, p.Task, p.Epoch, p.Epochs)
	case p != nil:
		s = fmt.Sprintf("task 1/%d, starting", p.Tasks)
	}
	if r.Error != "" {
		if s != "" {
			s += "; "
		}
		s += r.Error
	}
	return s
}

func sweepCompare(args []string, stdout io.Writer) error {
	fs := newFlags("sweep compare", "sweep compare PLAN_A PLAN_B")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError(fs, "give two plan directories")
	}
	a, err := sweep.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	b, err := sweep.Load(fs.Arg(1))
	if err != nil {
		return err
	}
	errs := sweep.ComparePlans(a, b)
	for _, e := range errs {
		fmt.Fprintln(stdout, e)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d differences between %s and %s", len(errs), a.Dir, b.Dir)
	}
	fmt.Fprintf(stdout, "%d runs complete in both plans, results identical (times and memory peaks aside)\n", len(a.Runs))
	return nil
}
