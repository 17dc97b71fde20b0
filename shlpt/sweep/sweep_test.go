package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// smallSpec is a grid of 2 sequences × 2 methods × a setting with 2
// values × 2 seeds.
func smallSpec() Spec {
	return Spec{Name: "grid", Common: []string{"--model", "/m", "--data", "/d"}, Blocks: []Block{{
		Sequences: []Axis{BenchmarkSequence("std", 1), TaskSequence([]string{"cb", "copa"})},
		Variants:  []Axis{MethodVariant("per-task"), MethodVariant("shlpt")},
		Sets:      []Set{{Key: "epochs", Values: []string{"2", "3"}}, {Key: "lr", Values: []string{"0.1"}}},
		Seeds:     []uint64{1, 2},
	}}}
}

// writeTestPlan writes spec as a plan in a new folder (default front-ends
// when fe is zero).
func writeTestPlan(t *testing.T, s Spec, fe Frontends) *Plan {
	t.Helper()
	if fe == (Frontends{}) {
		fe = DefaultFrontends()
	}
	p, err := NewPlan(s, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Write(filepath.Join(t.TempDir(), "plan"), fe); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExpand(t *testing.T) {
	s := smallSpec()
	runs, err := s.Expand(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 16 {
		t.Fatalf("%d runs, want 16", len(runs))
	}
	// Directories name the axes (a setting with one value is no axis).
	if runs[0].Dir != "std-o1/per-task/epochs=2/s1" || runs[15].Dir != "cb-copa/shlpt/epochs=3/s2" {
		t.Errorf("dirs %s ... %s", runs[0].Dir, runs[15].Dir)
	}
	want := "--model /m --data /d --benchmark std --order 1 --method per-task --epochs=2 --lr=0.1 --seed 1"
	if got := strings.Join(runs[0].Args, " "); got != want {
		t.Errorf("args %s, want %s", got, want)
	}
	ids := map[string]bool{}
	for _, r := range runs {
		if len(r.ID) != 12 || ids[r.ID] {
			t.Errorf("id %q not unique", r.ID)
		}
		ids[r.ID] = true
	}
	// IDs are stable: they depend on the arguments only.
	again, _ := smallSpec().Expand(false)
	if again[7].ID != runs[7].ID {
		t.Error("ids differ between two expansions")
	}

	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"no methods", func(s *Spec) { s.Blocks[0].Variants = nil }, "empty grid"},
		{"no seeds", func(s *Spec) { s.Blocks[0].Seeds = nil }, "empty grid"},
		{"no blocks", func(s *Spec) { s.Blocks = nil }, "empty grid"},
		{"no values", func(s *Spec) { s.Blocks[0].Sets[0].Values = nil }, "setting epochs has no values"},
		{"same dir", func(s *Spec) { s.Blocks[0].Variants[1].Name = "per-task" }, "share the run directory std-o1/per-task/epochs=2/s1"},
		{"same args", func(s *Spec) { s.Blocks[0].Sets[0].Values = []string{"2", "2"} }, "the same arguments twice"},
		{"too many", func(s *Spec) {
			for i := 0; i < 1300; i++ {
				s.Blocks[0].Seeds = append(s.Blocks[0].Seeds, uint64(10+i))
			}
		}, "more than 10000: give --force"},
	} {
		s := smallSpec()
		tc.edit(&s)
		if _, err := s.Expand(false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	s = smallSpec()
	for i := 0; i < 1300; i++ {
		s.Blocks[0].Seeds = append(s.Blocks[0].Seeds, uint64(10+i))
	}
	if runs, err := s.Expand(true); err != nil || len(runs) != 8*1302 {
		t.Errorf("with force: %d runs, %v", len(runs), err)
	}
}

// The presets are the paper's grids: their run counts follow from the
// issue's arithmetic (Table 2: 2 benchmarks × 3 orders × 3 seeds × 8
// methods, and so on).
func TestPresets(t *testing.T) {
	want := map[string]int{"table2": 144, "table3": 72, "table4": 72, "table5": 144, "table10": 300, "table11": 21}
	for _, p := range Presets {
		s := p.Spec()
		runs, err := s.Expand(false)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		if len(runs) != want[p.Name] {
			t.Errorf("%s: %d runs, want %d", p.Name, len(runs), want[p.Name])
		}
		seeds := map[string]bool{}
		for _, r := range runs {
			seeds[r.Args[len(r.Args)-1]] = true
		}
		if len(seeds) != 3 || !seeds["42"] || !seeds["142"] || !seeds["242"] {
			t.Errorf("%s: seeds %v", p.Name, seeds)
		}
	}
	p, _ := LookupPreset("table2")
	runs, _ := p.Spec().Expand(false)
	if runs[0].Dir != "std-o1/finetune/s42" || runs[len(runs)-1].Dir != "long-o6/shlpt/s242" {
		t.Errorf("table2 dirs %s ... %s", runs[0].Dir, runs[len(runs)-1].Dir)
	}
	p, _ = LookupPreset("table5")
	runs, _ = p.Spec().Expand(false)
	found := false
	for _, r := range runs {
		if r.Dir == "rte-qqp/hsc/s142" {
			found = strings.Contains(strings.Join(r.Args, " "), "--tasks rte,qqp --method shlpt --all-dissimilar --no-asc --seed 142")
		}
	}
	if !found {
		t.Error("table5 has no HSC run of rte→qqp with --all-dissimilar --no-asc")
	}
	if _, err := LookupPreset("table9"); err == nil || !strings.Contains(err.Error(), `unknown preset "table9" (presets: table2, table3, table4, table5, table10, table11)`) {
		t.Errorf("unknown preset: %v", err)
	}
	s := p.Spec()
	if err := s.KeepVariants([]string{"hsc", "magic"}); err == nil || !strings.Contains(err.Error(), `no method "magic"`) {
		t.Errorf("unknown variant: %v", err)
	}
}

func TestPlanWriteLoad(t *testing.T) {
	p := writeTestPlan(t, smallSpec(), Frontends{})
	q, err := Load(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if q.SHA256 != p.SHA256 || len(q.Runs) != 16 {
		t.Fatalf("loaded %d runs, hash %s", len(q.Runs), q.SHA256)
	}
	for _, f := range []string{PlanFile, RunsFile, SlurmFile, K8sFile, ParallelFile, RunsDir, LogsDir, FailuresDir} {
		if _, err := os.Stat(filepath.Join(p.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	tsv, _ := os.ReadFile(filepath.Join(p.Dir, RunsFile))
	lines := strings.Split(strings.TrimSpace(string(tsv)), "\n")
	if len(lines) != 17 || !strings.HasPrefix(lines[1], "0\t"+p.Runs[0].ID+"\tstd-o1/per-task/epochs=2/s1\t--model /m") {
		t.Errorf("runs.tsv:\n%s", tsv)
	}
	par, _ := os.ReadFile(filepath.Join(p.Dir, ParallelFile))
	if n := strings.Count(string(par), "\n"); n != 16 || !strings.Contains(string(par), "shlpt-vk sweep exec "+p.Dir+" --index 15\n") {
		t.Errorf("parallel.txt (%d lines):\n%s", n, par)
	}
	sb, _ := os.ReadFile(filepath.Join(p.Dir, SlurmFile))
	for _, want := range []string{"#SBATCH --array=0-15%8\n", "#SBATCH --requeue\n", "#SBATCH --signal=B:TERM@120\n", "#SBATCH --gres=gpu:1\n",
		`sweep exec ` + p.Dir + ` --index "$SLURM_ARRAY_TASK_ID"`} {
		if !strings.Contains(string(sb), want) {
			t.Errorf("slurm.sbatch lacks %q:\n%s", want, sb)
		}
	}

	// The same plan again: only the front-ends are rewritten.
	fe := DefaultFrontends()
	fe.SlurmPartition, fe.SlurmTime, fe.MaxParallel = "gpu", "2-00:00:00", 3
	again, _ := NewPlan(smallSpec(), false)
	if err := again.Write(p.Dir, fe); !errors.Is(err, ErrSamePlan) {
		t.Errorf("same plan: %v", err)
	}
	sb, _ = os.ReadFile(filepath.Join(p.Dir, SlurmFile))
	if !strings.Contains(string(sb), "--partition=gpu\n") || !strings.Contains(string(sb), "--time=2-00:00:00\n") || !strings.Contains(string(sb), "--array=0-15%3\n") {
		t.Errorf("front-ends not rewritten:\n%s", sb)
	}
	// Another plan in the same folder is refused, naming the difference.
	other := smallSpec()
	other.Blocks[0].Seeds = []uint64{1, 3}
	op, _ := NewPlan(other, false)
	if err := op.Write(p.Dir, DefaultFrontends()); err == nil || !strings.Contains(err.Error(), "holds another plan (its run 1 is std-o1/per-task/epochs=2/s2, this plan's std-o1/per-task/epochs=2/s3)") {
		t.Errorf("another plan: %v", err)
	}
	// A folder with other files is refused, and nothing is left behind.
	busy := t.TempDir()
	os.WriteFile(filepath.Join(busy, "notes.txt"), []byte("x"), 0o644)
	if err := op.Write(busy, DefaultFrontends()); err == nil || !strings.Contains(err.Error(), "is not empty and holds no plan") {
		t.Errorf("non-empty folder: %v", err)
	}
	if entries, _ := os.ReadDir(busy); len(entries) != 1 {
		t.Errorf("the refused write left %d entries", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Dir(p.Dir)); len(entries) != 1 {
		t.Errorf("temporary folders left beside the plan: %v", entries)
	}

	// Edited by hand: plan.json, then runs.tsv.
	pj := filepath.Join(p.Dir, PlanFile)
	orig, _ := os.ReadFile(pj)
	os.WriteFile(pj, bytes.Replace(orig, []byte(`"--seed",`), []byte(`"--seed" ,`), 1), 0o644) // whitespace only: still the same content
	if _, err := Load(p.Dir); err != nil {
		t.Errorf("reformatted plan.json: %v", err)
	}
	os.WriteFile(pj, bytes.Replace(orig, []byte(`"0.1"`), []byte(`"0.2"`), 1), 0o644)
	if _, err := Load(p.Dir); err == nil || !strings.Contains(err.Error(), "plan.json was edited by hand") {
		t.Errorf("edited plan.json: %v", err)
	}
	os.WriteFile(pj, orig, 0o644)
	tp := filepath.Join(p.Dir, RunsFile)
	os.WriteFile(tp, bytes.Replace(tsv, []byte("--seed 2"), []byte("--seed 7"), 1), 0o644)
	if _, err := Load(p.Dir); err == nil || !strings.Contains(err.Error(), "runs.tsv was edited by hand: line 3 differs") {
		t.Errorf("edited runs.tsv: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not a plan directory") {
		t.Errorf("no plan: %v", err)
	}
	if _, err := q.Run(16); err == nil || err.Error() != fmt.Sprintf("--index 16 is out of range: plan %s has 16 runs (0-15)", q.Dir) {
		t.Errorf("index out of range: %v", err)
	}
	if _, err := q.Run(-1); err == nil {
		t.Error("index -1 accepted")
	}
}

// fakeRun writes the files of a run directory that status reads.
func fakeRun(t *testing.T, dir string, complete bool, epochs int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	info := `{"settings": {"tasks": ["cb", "copa"], "epochs": 3}, "created": "x"}`
	os.WriteFile(filepath.Join(dir, rundir.ConfigFile), []byte(info), 0o644)
	var m bytes.Buffer
	for e := 0; e < epochs; e++ {
		fmt.Fprintf(&m, `{"task": "cb", "task_index": 0, "epoch": %d, "train_seconds": 1.5}`+"\n", e)
	}
	os.WriteFile(filepath.Join(dir, rundir.MetricsFile), m.Bytes(), 0o644)
	if complete {
		res := `{"complete": true, "stages_done": 2, "average": {"test": 61.5}, "timing": {"total_seconds": 3}}`
		os.WriteFile(filepath.Join(dir, rundir.ResultsFile), []byte(res), 0o644)
	}
}

func TestStatus(t *testing.T) {
	p := writeTestPlan(t, smallSpec(), Frontends{})
	fakeRun(t, p.RunDir(1), true, 6)
	fakeRun(t, p.RunDir(2), false, 2)
	fakeRun(t, p.RunDir(3), false, 1)
	if err := p.RecordFailure(4, "tokenizer: no tokenizer.json in /m", 1); err != nil {
		t.Fatal(err)
	}
	lock, err := os.Create(filepath.Join(p.RunDir(3), rundir.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	want := []State{Pending, Complete, Interrupted, Running, Failed, Pending}
	for i, w := range want {
		if st := p.Status(i); st.State != w {
			t.Errorf("run %d: %s (%s), want %s", i, st.State, st.Error, w)
		}
	}
	st := p.Status(2)
	if pr := st.Progress; pr == nil || pr.Tasks != 2 || pr.Epoch != 2 || pr.Epochs != 3 || pr.Task != "cb" || pr.EpochLines != 2 || pr.Seconds != 3 {
		t.Errorf("progress %+v", st.Progress)
	}
	if st := p.Status(1); st.Progress.Average != 61.5 || st.Progress.TasksDone != 2 {
		t.Errorf("complete run's progress %+v", st.Progress)
	}
	if st := p.Status(4); st.Error != "tokenizer: no tokenizer.json in /m" {
		t.Errorf("failure: %q", st.Error)
	}
	// Probing a lock neither creates the lock file nor disturbs its holder.
	if _, err := os.Stat(filepath.Join(p.RunDir(2), rundir.LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the probe created a lock file: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Errorf("the holder lost its lock: %v", err)
	}
	statuses := make([]RunStatus, len(p.Runs))
	for i := range p.Runs {
		statuses[i] = p.Status(i)
	}
	tot := Totals(statuses)
	if tot[Pending] != 12 || tot[Complete] != 1 || tot[Running] != 1 || tot[Interrupted] != 1 || tot[Failed] != 1 {
		t.Errorf("totals %v", tot)
	}
	p.ClearFailure(4)
	if st := p.Status(4); st.State != Pending {
		t.Errorf("after clearing the failure: %s", st.State)
	}
}

func TestCompareRuns(t *testing.T) {
	base := t.TempDir()
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	for i, d := range []string{a, b} {
		os.MkdirAll(filepath.Join(d, rundir.PromptsDir), 0o755)
		res := fmt.Sprintf(`{"matrix": {"test": [[50.5]]}, "timing": {"total_seconds": %d}, "per_task": [{"task": "cb", "seconds": %d}]}`, 10+i, 3+i)
		os.WriteFile(filepath.Join(d, rundir.ResultsFile), []byte(res), 0o644)
		met := fmt.Sprintf(`{"task": "cb", "loss": 1.25, "tokens_per_s": %d, "train_seconds": %d, "peak_device_bytes": %d}`+"\n", 100+i, i, 1000*i)
		os.WriteFile(filepath.Join(d, rundir.MetricsFile), []byte(met), 0o644)
		os.WriteFile(filepath.Join(d, rundir.PromptsDir, "cb.safetensors"), []byte("prompt"), 0o644)
		os.WriteFile(filepath.Join(d, rundir.CheckpointFile), []byte(fmt.Sprint(i)), 0o644)
		os.WriteFile(filepath.Join(d, rundir.LockFile), nil, 0o644)
	}
	if err := CompareRuns(a, b); err != nil {
		t.Fatalf("runs differing in wall-clock fields only: %v", err)
	}
	os.WriteFile(filepath.Join(b, rundir.PromptsDir, "cb.safetensors"), []byte("prompT"), 0o644)
	if err := CompareRuns(a, b); err == nil || !strings.Contains(err.Error(), "prompts/cb.safetensors differs") {
		t.Errorf("a different prompt: %v", err)
	}
	os.WriteFile(filepath.Join(b, rundir.PromptsDir, "cb.safetensors"), []byte("prompt"), 0o644)
	os.WriteFile(filepath.Join(b, rundir.MetricsFile), []byte(`{"task": "cb", "loss": 1.2500001, "tokens_per_s": 1}`+"\n"), 0o644)
	if err := CompareRuns(a, b); err == nil || !strings.Contains(err.Error(), "metrics.jsonl differs") {
		t.Errorf("a different loss: %v", err)
	}
	os.Remove(filepath.Join(b, rundir.MetricsFile))
	if err := CompareRuns(a, b); err == nil || !strings.Contains(err.Error(), "no metrics.jsonl") {
		t.Errorf("a missing file: %v", err)
	}
}

// The local executor with stand-in children (a shell script playing a
// run), to check its bookkeeping: complete runs are skipped, a child that
// dies without recording its failure gets one from its last output line,
// the plan's lock keeps a second executor out, and the first interrupt is
// forwarded to every child, which stops.
func TestLocal(t *testing.T) {
	spec := smallSpec()
	spec.Blocks[0].Sets = nil
	spec.Blocks[0].Sequences = spec.Blocks[0].Sequences[:1] // 4 runs
	p := writeTestPlan(t, spec, Frontends{})
	fakeRun(t, p.RunDir(0), true, 2)
	// A run: write a complete run directory, except run 2, which fails
	// loudly, and run 3, which waits for a signal and exits as stopped.
	script := `dir=$1; i=$2
case $i in
2) echo "loading the model: /m: no such folder" >&2; exit 1 ;;
3) trap 'exit 75' TERM; mkdir -p "${dir%/*}"; touch "$dir.started"; while :; do sleep 0.05; done ;;
esac
mkdir -p "$dir" && printf '{"settings": {"tasks": ["cb"]}}' >"$dir/config.json" && printf '{"complete": true, "stages_done": 1}' >"$dir/results.json"`
	var out bytes.Buffer
	sigs := make(chan os.Signal, 1)
	l := &Local{Plan: p, Exe: "/bin/sh", Jobs: 2, Out: &out, Interrupt: sigs, Poll: 10 * time.Millisecond,
		Args: func(i int) []string { return []string{"-c", script, "sh", p.RunDir(i), fmt.Sprint(i)} }}
	go func() {
		// Once run 1 is complete and run 3 waits, a second executor is
		// refused, then Ctrl-C.
		for {
			if _, err := os.Stat(p.RunDir(3) + ".started"); err == nil && p.Status(1).State == Complete {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		l2 := &Local{Plan: p, Exe: "/bin/false", Jobs: 1, Out: &bytes.Buffer{}}
		if _, err := l2.Run(); err == nil || !strings.Contains(err.Error(), "is being run by another 'sweep run'") {
			t.Errorf("second executor: %v", err)
		}
		sigs <- os.Interrupt
	}()
	sum, err := l.Run()
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("error %v", err)
	}
	if sum.Complete != 2 || sum.Failed != 1 || sum.Stopped != 1 || !sum.Interrupted {
		t.Errorf("summary %+v\n%s", sum, out.String())
	}
	o := out.String()
	for _, want := range []string{"plan grid: 4 runs, 1 complete, 3 to run (0 to resume), 2 at a time\n",
		"start std-o1/per-task/s2 (new)", "done std-o1/per-task/s2 in", "failed std-o1/shlpt/s1 after",
		": loading the model: /m: no such folder\n", "stopping: every run stops", "stopped std-o1/shlpt/s2 after"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	f, err := p.ReadFailure(p.Runs[2].ID)
	if err != nil || f == nil || f.Error != "loading the model: /m: no such folder" || f.ExitCode != 1 {
		t.Errorf("failure record %+v, %v", f, err)
	}
	if st := p.Status(2); st.State != Failed {
		t.Errorf("run 2 is %s", st.State)
	}
	log, _ := os.ReadFile(filepath.Join(p.Dir, LogsDir, p.Runs[2].ID+".log"))
	if !strings.Contains(string(log), "no such folder") {
		t.Errorf("log of run 2:\n%s", log)
	}
	var js bytes.Buffer
	json.NewEncoder(&js).Encode(p.Status(2))
	if !strings.Contains(js.String(), `"state":"failed"`) {
		t.Errorf("status JSON %s", js.String())
	}
}
