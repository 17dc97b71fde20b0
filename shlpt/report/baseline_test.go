package report

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Runs trained without per-task scores get their FWT from the per-task
// run of the same seed and shared settings, each method at its own
// defaults; a run whose shared settings differ gets none, and an FWT
// that results.json holds is kept.
func TestReportMeasuresFWT(t *testing.T) {
	root := t.TempDir()
	model := fakeModel(t, true)
	run := func(name string, s fakeSpec) string {
		s.benchmark, s.order, s.model = "std", 1, model
		dir := filepath.Join(root, name)
		fakeRun(t, dir, s)
		return dir
	}
	for _, seed := range []uint64{42, 142} {
		run("per-task/s"+itoa(seed), fakeSpec{method: "per-task", seed: seed, base: 70})
		run("shlpt/s"+itoa(seed), fakeSpec{method: "shlpt", seed: seed, base: 78, drop: 3})
		// Finetuning's learning rate, weight decay and prompt length are
		// its own defaults, not prompt tuning's: still comparable.
		run("finetune/s"+itoa(seed), fakeSpec{method: "finetune", seed: seed, base: 65})
	}
	run("shlpt-2ep/s42", fakeSpec{method: "shlpt", seed: 42, base: 78, change: func(c *rundir.Config) { c.Epochs = 2 }})
	run("shlpt-s7/s7", fakeSpec{method: "shlpt", seed: 7, base: 78})

	r, err := Build([]string{filepath.Join(root, "*/s*")})
	if err != nil {
		t.Fatal(err)
	}
	if r.FWTMeasured != 4 {
		t.Errorf("FWT measured for %d runs, want 4 (shlpt and finetune, two seeds each)", r.FWTMeasured)
	}
	// Every diagonal score is the spec's base + i + seed%7, so FWT is the
	// difference of the bases.
	want := map[string]float64{"shlpt/s42": 8, "shlpt/s142": 8, "finetune/s42": -5, "finetune/s142": -5}
	for _, run := range r.Runs {
		rel, _ := filepath.Rel(root, run.Dir)
		fwt, ok := run.Results.FWT["test"]
		w, measured := want[rel]
		switch {
		case measured && (!ok || abs(fwt-w) > 1e-9 || !run.FWTFromReport):
			t.Errorf("%s: FWT %v (set %v, from report %v), want %v", rel, fwt, ok, run.FWTFromReport, w)
		case measured && run.Results.Baseline != filepath.Join(root, "per-task", filepath.Base(rel), rundir.ResultsFile):
			t.Errorf("%s: baseline %q", rel, run.Results.Baseline)
		case !measured && ok:
			t.Errorf("%s: FWT %v, want none (no per-task run with its seed and settings)", rel, fwt)
		}
	}

	// An FWT from --per-task-scores stays as results.json has it.
	dir := run("kept/s42", fakeSpec{method: "shlpt", seed: 42, base: 78})
	res, err := rundir.ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	res.FWT = map[string]float64{"test": 1.5}
	write(t, filepath.Join(dir, rundir.ResultsFile), res)
	r, err = Build([]string{filepath.Join(root, "per-task/s42"), dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range r.Runs {
		if run.Dir == dir && (run.Results.FWT["test"] != 1.5 || run.FWTFromReport) {
			t.Errorf("a stored FWT was replaced: %v", run.Results.FWT)
		}
	}
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }
