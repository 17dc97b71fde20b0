package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/sweep"
)

// fakeModel writes a model folder's config.json: t5-large v1.0's shape, or
// a tiny one.
func fakeModel(t *testing.T, large bool) string {
	t.Helper()
	dir := t.TempDir()
	c := map[string]any{"d_model": 32, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 100, "feed_forward_proj": "relu"}
	if large {
		c = map[string]any{"d_model": 1024, "d_ff": 4096, "num_layers": 24, "num_decoder_layers": 24, "num_heads": 16,
			"vocab_size": 32128, "feed_forward_proj": "relu"}
	}
	b, _ := json.Marshal(c)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fakeRun writes a run directory of a benchmark's order whose test matrix
// has score base+i for task i at every stage but the last, where every
// earlier task loses drop; complete false leaves the last stage undone.
type fakeSpec struct {
	method, benchmark string
	order             int
	tasks             []string
	seed              uint64
	model             string
	base, drop        float64
	partial           bool
	change            func(*rundir.Config)
}

func fakeRun(t *testing.T, dir string, s fakeSpec) {
	t.Helper()
	name := s.benchmark
	if name == "" {
		name = "std"
	}
	c, err := rundir.DefaultConfigFor(name, s.method)
	if err != nil {
		t.Fatal(err)
	}
	c.Seed, c.Model, c.Data = s.seed, s.model, "/data"
	c.Benchmark, c.Order, c.Tasks = s.benchmark, s.order, s.tasks
	if s.benchmark != "" {
		if c.Tasks, err = rundir.SequenceTasks(s.benchmark, s.order); err != nil {
			t.Fatal(err)
		}
	}
	if s.change != nil {
		s.change(&c)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	info := rundir.Info{Settings: c, ModelSHA256: "m", DataSHA256: map[string]string{"x": "d"}, Version: "test"}
	write(t, filepath.Join(dir, rundir.ConfigFile), info)
	r := rundir.NewResults(s.method, c.Tasks)
	T := len(c.Tasks)
	stages := T
	if s.partial {
		stages = T - 1
	}
	for st := 0; st < stages; st++ {
		for i := 0; i <= st; i++ {
			v := s.base + float64(i) + float64(s.seed%7)
			if st == T-1 && i < st {
				v -= s.drop
			}
			r.Matrix.Test[st][i], r.Matrix.Valid[st][i] = &v, &v
		}
		r.Metric[st] = PaperPrimary(c.Tasks[st])
	}
	r.StagesDone = stages
	if err := r.FinishStage(nil); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, rundir.ResultsFile), r)
	var lines []string
	for i, task := range c.Tasks[:stages] {
		for ep := 0; ep < 3; ep++ {
			l := rundir.EpochLine{Task: task, TaskIndex: i, Epoch: ep, Steps: 4, Loss: 2 - 0.3*float64(ep),
				Parts: map[string]float64{"ce": 1.5 - 0.3*float64(ep), "hsc": 0.3, "asc": 0.2}}
			v := 50 + 10*float64(ep)
			l.Valid, l.Best = &v, &v
			for j := 0; j < i; j++ {
				l.Alpha = append(l.Alpha, 1/float64(i)+0.01*float64(ep*(j-i/2)))
			}
			b, _ := json.Marshal(l)
			lines = append(lines, string(b))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, rundir.MetricsFile), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A grid of fake runs: SHLPT on Standard CL with the paper's model and
// seeds, the same on a tiny model, and an incomplete per-task group.
func fakeGrid(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	large, tiny := fakeModel(t, true), fakeModel(t, false)
	for _, o := range []int{1, 2, 3} {
		for _, seed := range PaperSeeds {
			fakeRun(t, filepath.Join(root, fmt.Sprintf("std-o%d/shlpt/s%d", o, seed)),
				fakeSpec{method: "shlpt", benchmark: "std", order: o, seed: seed, model: large, base: 78})
			fakeRun(t, filepath.Join(root, fmt.Sprintf("tiny/std-o%d/shlpt/s%d", o, seed)),
				fakeSpec{method: "shlpt", benchmark: "std", order: o, seed: seed, model: tiny, base: 40, drop: 5,
					change: func(c *rundir.Config) { c.Epochs = 2 }})
		}
		fakeRun(t, filepath.Join(root, fmt.Sprintf("std-o%d/per-task/s42", o)),
			fakeSpec{method: "per-task", benchmark: "std", order: o, seed: 42, model: large, base: 70, partial: o == 2})
	}
	return root
}

func TestReportTables(t *testing.T) {
	root := fakeGrid(t)
	r, err := Build([]string{filepath.Join(root, "std-o*/*/s*"), filepath.Join(root, "tiny/*/*/*")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 {
		t.Fatalf("problems: %v", r.Problems)
	}
	if len(r.Runs) != 21 || len(r.Groups) != 9 {
		t.Fatalf("%d runs in %d groups, want 21 in 9", len(r.Runs), len(r.Groups))
	}
	var t2 *Table
	for _, tab := range r.Tables {
		if tab.Name == "Table 2" {
			t2 = tab
		}
	}
	if t2 == nil {
		t.Fatal("no Table 2")
	}
	row := func(prefix string) Row {
		for _, r := range t2.Rows {
			if strings.HasPrefix(r.Label, prefix) {
				return r
			}
		}
		t.Fatalf("no row %q in %v", prefix, t2.Rows)
		return Row{}
	}
	// SHLPT on the paper's setting: order 1's average over tasks is
	// 78 + 1.5 + seed%7 (0, 2, 4 for 42, 142, 242): 81.5 ± 2 over 3 seeds;
	// the Avg column pools the 9 runs and is set against 80.28.
	shlpt := row("SHLPT")
	if shlpt.Label != "SHLPT" {
		t.Errorf("label %q, want the bare method", shlpt.Label)
	}
	c1 := shlpt.Cells[0]
	if c1 == nil || c1.Ours.N != 3 || abs(c1.Ours.Mean-81.5) > 1e-9 || abs(c1.Ours.Std-2) > 1e-9 || !c1.Comparable {
		t.Errorf("SHLPT order 1: %+v", c1)
	}
	avg := shlpt.Cells[3]
	if d, ok := avg.Diff(); !ok || avg.Ours.N != 9 || abs(d-(81.5-80.28)) > 1e-9 {
		t.Errorf("SHLPT Avg: %+v (diff %v %v)", avg.Ours, d, ok)
	}
	// The tiny model's row names what differs and is not compared.
	tiny := row("SHLPT [")
	if !strings.Contains(tiny.Label, "d_model 32") || !strings.Contains(tiny.Label, "epochs 2") {
		t.Errorf("tiny row label %q", tiny.Label)
	}
	if _, ok := tiny.Cells[3].Diff(); ok || tiny.Cells[3].Paper == nil {
		t.Errorf("the tiny model's Avg is compared with the paper: %+v", tiny.Cells[3])
	}
	// Per-task: one seed of three, order 2 partial: incomplete, marked.
	pt := row("Per-task")
	if pt.Cells[0].Comparable || len(pt.Cells[0].Ours.Incomplete) == 0 || pt.Cells[1].Ours.Valid() || len(pt.Cells[1].Ours.Incomplete) == 0 {
		t.Errorf("per-task cells %+v %+v", pt.Cells[0], pt.Cells[1])
	}
	if !strings.Contains(pt.Cells[3].Why, "incomplete") {
		t.Errorf("per-task Avg over two orders: %+v", pt.Cells[3])
	}
	md := string(r.Markdown())
	for _, want := range []string{"| SHLPT | 81.50 ± 2.00 (n=3)", "paper 80.28 · Δ +1.22", "†", "not compared"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	// Forgetting: the tiny runs drop 5 on every earlier task.
	if !strings.Contains(md, "## Forgetting") || !strings.Contains(md, "5.00 ± 0.00 (n=3)") {
		t.Errorf("forgetting table missing or wrong:\n%s", md)
	}
	// report.csv: long format, one row per group × task × metric.
	recs, err := csv.NewReader(strings.NewReader(string(r.CSV()))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	col := func(name string) int {
		for i, h := range head {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %s in %v", name, head)
		return -1
	}
	found := false
	for _, rec := range recs[1:] {
		if rec[col("metric")] == "final_test" && rec[col("task")] == "yahoo" && rec[col("shlpt.delta")] == "0.06" && rec[col("model_name")] == "t5-large v1.0" && rec[col("method")] == "shlpt" {
			found = true
		}
	}
	if !found {
		t.Error("report.csv has no per-task final score row with its settings")
	}
	if tex := string(r.TeX()); !strings.Contains(tex, `\toprule`) || !strings.Contains(tex, `\textcolor{gray}{80.28}`) {
		t.Errorf("report.tex:\n%s", tex)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Bad input: each a one-line problem naming the directory, and the report
// of the rest is still written.
func TestReportBadInput(t *testing.T) {
	root := t.TempDir()
	large := fakeModel(t, true)
	good := filepath.Join(root, "good")
	fakeRun(t, good, fakeSpec{method: "shlpt", benchmark: "std", order: 1, seed: 42, model: large, base: 70})
	clash := filepath.Join(root, "clash")
	fakeRun(t, clash, fakeSpec{method: "shlpt", benchmark: "std", order: 1, seed: 42, model: large, base: 71})
	notRun := filepath.Join(root, "notrun")
	os.MkdirAll(notRun, 0o755)
	other := filepath.Join(root, "otherschema")
	fakeRun(t, other, fakeSpec{method: "shlpt", benchmark: "std", order: 1, seed: 142, model: large, base: 70})
	b, _ := os.ReadFile(filepath.Join(other, rundir.ConfigFile))
	os.WriteFile(filepath.Join(other, rundir.ConfigFile), []byte(strings.Replace(string(b), `"settings"`, `"schema": 9, "settings"`, 1)), 0o644)
	// A plan whose runs never started: each is a problem naming its
	// directory.
	pl, err := sweep.NewPlan(sweep.Spec{Name: "grid", Common: []string{"--model", "/m", "--data", "/d"}, Blocks: []sweep.Block{{
		Sequences: []sweep.Axis{sweep.TaskSequence([]string{"cb", "copa"})},
		Variants:  []sweep.Axis{sweep.MethodVariant("per-task")}, Seeds: []uint64{7},
	}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(root, "plan")
	if err := pl.Write(plan, sweep.DefaultFrontends()); err != nil {
		t.Fatal(err)
	}
	r, err := Build([]string{good, clash, notRun, other, filepath.Join(root, "nothing*"), plan})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nothing*: the pattern matches nothing", "notrun is not a run directory", "otherschema", "same settings and seed 42", "s7: no such run directory"} {
		found := false
		for _, p := range r.Problems {
			if strings.Contains(p, want) && !strings.Contains(p, "\n") {
				found = true
			}
		}
		if !found {
			t.Errorf("no one-line problem with %q in %q", want, r.Problems)
		}
	}
	if len(r.Runs) != 2 || len(r.Groups) != 1 || len(r.Groups[0].Runs) != 1 {
		t.Errorf("%d runs, %d groups", len(r.Runs), len(r.Groups))
	}
	out := filepath.Join(root, "out")
	if err := r.Write(out); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, MarkdownFile))
	if !strings.Contains(string(md), "## Not included") || !strings.Contains(string(md), "Table 2") {
		t.Errorf("report.md:\n%s", md)
	}
}
