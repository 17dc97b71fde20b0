package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/sweep"
)

// tinyGrid plans a small grid on the tiny full-vocabulary T5: the tasks cb
// and copa with tiny budgets, the given methods and seeds.
func tinyGrid(t *testing.T, out, methods, seeds string) []string {
	t.Helper()
	return []string{"sweep", "plan", "--grid", "--methods", methods, "--tasks", "cb,copa", "--seeds", seeds,
		"--set", "epochs=4", "--set", "k-train=4", "--set", "k-val=2", "--set", "k-test=2", "--set", "eval-from=0",
		"--set", "prompt-len=4", "--set", "max-input-len=32", "--set", "decode=greedy",
		"--model", "../../testdata/t5-tiny-fullvocab", "--tokenizer", testenv.Tokenizer(t),
		"--data", filepath.Join(testenv.Data(t), "shlpt"), "--out", out}
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(args...)
	if strings.Contains(errs, "no Vulkan device") {
		testenv.Missing(t, errs)
	}
	if code != 0 {
		t.Fatalf("shlpt-vk %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// Bad input to sweep plan is a one-line error naming the thing, and no
// plan directory is left behind.
func TestSweepPlanErrors(t *testing.T) {
	var many []string
	for i := 0; i < 2000; i++ {
		many = append(many, fmt.Sprint(i))
	}
	base := []string{"--model", "m", "--data", "d"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"table9"}, `unknown preset "table9" (presets: table2, table3, table4, table5, table10, table11)`},
		{[]string{"--grid", "--methods", "magic", "--benchmarks", "std"}, `unknown method "magic"`},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "std", "--set", "frobnicate=1,2"}, "--set frobnicate: train has no flag --frobnicate"},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "std", "--set", "seed=1,2"}, "--set seed: not a setting a grid sets this way (use --seeds)"},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "std", "--set", "epochs=2,lots"}, `invalid argument "lots" for "--epochs"`},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "std", "--set", "epochs"}, `--set "epochs": expected key=value`},
		{[]string{"--grid", "--methods", "shlpt"}, "empty grid: no sequences"},
		{[]string{"--grid", "--benchmarks", "std"}, "empty grid: no --methods"},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "std", "--seeds", ""}, "empty grid"},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "std", "--orders", "7"}, "benchmark std has no order 7"},
		{[]string{"--grid", "--methods", "shlpt", "--benchmarks", "huge"}, `unknown benchmark "huge"`},
		{[]string{"--grid", "--methods", "shlpt,per-task", "--benchmarks", "std", "--seeds", strings.Join(many, ",")}, "the grid has 12000 runs, more than 10000: give --force"},
		{[]string{"table2", "--benchmarks", "std"}, "--benchmarks: the preset table2 has its own"},
		{[]string{"table2", "--methods", "shlpt,magic"}, `--methods: table2 has no method "magic"`},
		{[]string{"table5", "--pairs", "cb"}, `--pairs "cb": expected source:target`},
		{[]string{"table2", "--grid"}, "give a preset (table2) or --grid, not both"},
		{[]string{}, "give a preset (table2, table3, table4, table5, table10, table11) or --grid"},
		{[]string{"table2", "--max-parallel", "0"}, "--max-parallel 0: must be at least 1"},
	} {
		out := filepath.Join(t.TempDir(), "plan")
		args := append(append(append([]string{"sweep", "plan"}, tc.args...), base...), "--out", out)
		code, stdout, errs := runCLI(args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || stdout != "" || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", tc.args, code, errs, tc.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: the plan directory exists after the error (%v)", tc.args, err)
		}
	}
}

// Every preset is a plan whose every run the train command accepts (plan
// checks each run's arguments against train's flags and settings), with
// the paper's run counts; presets take their overrides.
func TestSweepPresets(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		runs int
	}{
		{[]string{"table2"}, 144},
		{[]string{"table3"}, 72},
		{[]string{"table4"}, 72},
		{[]string{"table5"}, 144},
		{[]string{"table10"}, 300},
		{[]string{"table11"}, 21},
		{[]string{"table2", "--methods", "per-task,shlpt", "--seeds", "42"}, 12},
		{[]string{"table5", "--pairs", "cb:rte,rte:cb", "--set", "epochs=2"}, 36},
		{[]string{"table10", "--tasks", "cb,rte,copa"}, (6 + 3) * 3},
		{[]string{"table11", "--set", "delta=0.05,0.5"}, 6},
	} {
		out := filepath.Join(dir, strings.Join(tc.args, "_"))
		args := append(append([]string{"sweep", "plan"}, tc.args...), "--model", "m", "--data", "d", "--out", out)
		stdout := mustCLI(t, args...)
		if !strings.Contains(stdout, fmt.Sprintf(": %d runs in %s", tc.runs, out)) {
			t.Errorf("%v: %s", tc.args, stdout)
		}
		p, err := sweep.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) != tc.runs {
			t.Errorf("%v: %d runs", tc.args, len(p.Runs))
		}
		// The model and data paths are absolute in every run.
		if a := strings.Join(p.Runs[0].Args, " "); !strings.Contains(a, "--model "+filepath.Join(must(os.Getwd()), "m")) {
			t.Errorf("%v: args %s", tc.args, a)
		}
	}
	p, _ := sweep.Load(filepath.Join(dir, "table11_--set_delta=0.05,0.5"))
	if p.Runs[0].Dir != "std-o1/shlpt/delta=0.05/s42" {
		t.Errorf("table11 run dir %s", p.Runs[0].Dir)
	}
	// The same plan again is no error; the scheduler files are rewritten.
	out := filepath.Join(dir, "table3")
	stdout := mustCLI(t, "sweep", "plan", "table3", "--model", "m", "--data", "d", "--out", out, "--slurm-time", "1-00:00:00")
	if !strings.Contains(stdout, "already holds this plan (72 runs)") {
		t.Errorf("again: %s", stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(out, sweep.SlurmFile)); !strings.Contains(string(b), "#SBATCH --time=1-00:00:00\n") {
		t.Errorf("slurm.sbatch not rewritten:\n%s", b)
	}
	code, _, errs := runCLI("sweep", "plan", "table3", "--seeds", "1", "--model", "m", "--data", "d", "--out", out)
	if code != 1 || !strings.Contains(errs, "holds another plan (it has 72 runs, this plan 24)") {
		t.Errorf("another plan into the same folder: exit %d, %q", code, errs)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// exec, run and status refuse what they cannot do on one line: a plan
// edited by hand, an index out of range, a second 'sweep run'.
func TestSweepRefusals(t *testing.T) {
	out := filepath.Join(t.TempDir(), "plan")
	mustCLI(t, "sweep", "plan", "--grid", "--methods", "per-task,shlpt", "--tasks", "cb,copa", "--seeds", "1", "--model", "m", "--data", "d", "--out", out)
	p, err := sweep.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := p.Lock()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sweep", "exec", out, "--index", "2"}, 1, fmt.Sprintf("--index 2 is out of range: plan %s has 2 runs (0-1)", p.Dir)},
		{[]string{"sweep", "exec", out, "--index", "-1"}, 1, "--index -1 is out of range"},
		{[]string{"sweep", "exec", out}, 1, "--index: which run? (0 to 1)"},
		{[]string{"sweep", "run", out}, 1, "is being run by another 'sweep run'"},
		{[]string{"sweep", "run", out, "--jobs", "0"}, 1, "--jobs 0: must be at least 1"},
		{[]string{"sweep", "status", filepath.Dir(out)}, 1, "is not a plan directory"},
		{[]string{"sweep", "status"}, 2, "no plan directory given"},
		{[]string{"sweep", "frob"}, 2, `unknown subcommand "frob"`},
	} {
		code, _, errs := runCLI(tc.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code != tc.code || !strings.Contains(lines[0], tc.want) || (len(lines) > 1 && tc.code == 1) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	lock.Close()
	pj := filepath.Join(out, sweep.PlanFile)
	b, _ := os.ReadFile(pj)
	os.WriteFile(pj, bytes.Replace(b, []byte(`"cb,copa"`), []byte(`"cb,rte"`), 1), 0o644)
	for _, args := range [][]string{{"sweep", "exec", out, "--index", "0"}, {"sweep", "run", out}, {"sweep", "status", out}} {
		code, _, errs := runCLI(args...)
		if code != 1 || !strings.Contains(errs, "plan.json was edited by hand") {
			t.Errorf("%v on an edited plan: exit %d, %q", args, code, errs)
		}
	}
}

// A run that fails is recorded with its error, which status shows; exec
// exits non-zero.
func TestSweepFailureRecorded(t *testing.T) {
	out := filepath.Join(t.TempDir(), "plan")
	args := tinyGrid(t, out, "per-task", "1")
	for i, a := range args {
		if a == "--model" {
			args[i+1] = filepath.Join(t.TempDir(), "no-model")
		}
	}
	mustCLI(t, args...)
	t.Setenv(cliEnv, "1") // the run's process is this test binary
	code, stdout, errs := runCLI("sweep", "run", out)
	if strings.Contains(stdout+errs, "no Vulkan device") {
		testenv.Missing(t, stdout+errs)
	}
	if code != 1 || !strings.Contains(stdout, "failed cb-copa/per-task/s1") || !strings.Contains(errs, "1 of 1 runs are not complete") {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	stdout = mustCLI(t, "sweep", "status", out, "--json")
	var st struct {
		Runs []struct {
			ID, Dir, State, Error string
		}
		Totals map[string]int
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Runs) != 1 || st.Runs[0].State != "failed" || !strings.Contains(st.Runs[0].Error, "no-model") || st.Totals["failed"] != 1 || st.Runs[0].ID == "" {
		t.Errorf("status %s", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, sweep.FailuresDir, st.Runs[0].ID+".json")); err != nil {
		t.Error(err)
	}
}

// startSweep starts `shlpt-vk sweep ARGS` as a process of its own.
func startSweep(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"sweep"}, args...)...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// epochLines counts the metrics lines of every run of a plan, and the
// complete runs.
func epochLines(p *sweep.Plan) (lines, complete int) {
	for i := range p.Runs {
		b, _ := os.ReadFile(filepath.Join(p.RunDir(i), rundir.MetricsFile))
		lines += bytes.Count(b, []byte("\n"))
		if p.Status(i).State == sweep.Complete {
			complete++
		}
	}
	return lines, complete
}

func waitFor(t *testing.T, what string, out *bytes.Buffer, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `sweep run --jobs 2` stopped by Ctrl-C (forwarded to every run, which
// stops at a checkpoint), then killed with SIGKILL mid-plan (its runs die
// with it), then run to the end, ends with results identical to an
// uninterrupted execution of the same plan.
func TestSweepInterruptKillResume(t *testing.T) {
	base := t.TempDir()
	planA, planB := filepath.Join(base, "a"), filepath.Join(base, "b")
	mustCLI(t, tinyGrid(t, planA, "per-task,shlpt", "5")...)
	mustCLI(t, tinyGrid(t, planB, "per-task,shlpt", "5")...)
	p, err := sweep.Load(planA)
	if err != nil {
		t.Fatal(err)
	}

	// Ctrl-C once the first runs have trained an epoch.
	cmd, out := startSweep(t, "run", planA, "--jobs", "2")
	waitFor(t, "two epochs", out, func() bool { n, _ := epochLines(p); return n >= 2 })
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	if strings.Contains(out.String(), "no Vulkan device") {
		testenv.Missing(t, out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out.String(), "stopping: every run stops") ||
		!strings.Contains(out.String(), "interrupted: run 'shlpt-vk sweep run") || strings.Contains(out.String(), "] failed") {
		t.Fatalf("after Ctrl-C: exit %d (%v)\n%s", code, err, out.String())
	}
	stopped := 0
	for i := range p.Runs {
		switch st := p.Status(i); st.State {
		case sweep.Interrupted:
			stopped++
		case sweep.Failed, sweep.Running:
			t.Fatalf("after Ctrl-C run %d is %s (%s)", i, st.State, st.Error)
		}
	}
	if stopped == 0 {
		t.Fatalf("no run was stopped at a checkpoint\n%s", out.String())
	}

	// SIGKILL mid-plan: after two more epochs, before the end.
	before, _ := epochLines(p)
	cmd, out = startSweep(t, "run", planA, "--jobs", "2")
	waitFor(t, "two more epochs", out, func() bool { n, _ := epochLines(p); return n >= before+2 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !strings.Contains(out.String(), "resuming at task") {
		t.Errorf("the second execution resumed nothing:\n%s", out.String())
	}
	if _, complete := epochLines(p); complete == len(p.Runs) {
		t.Fatalf("the plan ended before it was killed\n%s", out.String())
	}
	// The runs die with the executor: every run lock is released.
	waitFor(t, "the runs to die with the executor", out, func() bool {
		for i := range p.Runs {
			if p.Status(i).State == sweep.Running {
				return false
			}
		}
		return true
	})

	t.Setenv(cliEnv, "1") // the runs' processes are this test binary
	stdout := mustCLI(t, "sweep", "run", planA, "--jobs", "2")
	if !strings.Contains(stdout, fmt.Sprintf("plan grid: %d of %d runs complete", len(p.Runs), len(p.Runs))) {
		t.Errorf("final execution:\n%s", stdout)
	}
	mustCLI(t, "sweep", "run", planB, "--jobs", "2")
	stdout = mustCLI(t, "sweep", "compare", planA, planB)
	if !strings.Contains(stdout, "2 runs complete in both plans, results identical") {
		t.Errorf("compare: %s", stdout)
	}
	// A complete run is not started again.
	stdout = mustCLI(t, "sweep", "exec", planA, "--index", "1")
	if !strings.Contains(stdout, "run 1 (cb-copa/shlpt/s5) is complete") {
		t.Errorf("exec of a complete run: %s", stdout)
	}
	stdout = mustCLI(t, "sweep", "status", planA)
	if !strings.Contains(stdout, "plan grid: 2 runs: 0 pending, 0 running, 0 interrupted, 2 complete, 0 failed") {
		t.Errorf("status:\n%s", stdout)
	}
}
