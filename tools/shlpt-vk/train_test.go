package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// cliEnv makes the test binary act as shlpt-vk (for tests that must kill
// a real process).
const cliEnv = "SHLPT_VK_TEST_AS_CLI"

func TestMain(m *testing.M) {
	// go test starts the binary with -test.* flags only: any other first
	// argument is a command (a process the sweep executor started), which
	// must never run the tests again.
	if os.Getenv(cliEnv) == "1" || len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-test.") {
		os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// trainArgs is a small SHLPT run on the tiny full-vocabulary T5.
func trainArgs(t *testing.T, out string) []string {
	t.Helper()
	return []string{"train", "--model", "../../testdata/t5-tiny-fullvocab", "--tokenizer", testenv.Tokenizer(t),
		"--data", filepath.Join(testenv.Data(t), "shlpt"), "--tasks", "cb,copa,sst2",
		"--k-train", "6", "--k-val", "2", "--k-test", "3", "--epochs", "3", "--eval-from", "0",
		"--prompt-len", "5", "--max-input-len", "40", "--delta", "0.45", "--tau-sim", "0.05", "--seed", "5",
		"--decode", "greedy", "--quiet", "--out", out}
}

func trainCLI(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(args, &out, &errb)
	if strings.Contains(errb.String(), "no Vulkan device") {
		testenv.Missing(t, errb.String())
	}
	if code != 0 {
		t.Fatalf("shlpt-vk %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// lines counts the lines of a file (0 when absent).
func lines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// A training process killed with SIGKILL, twice, and resumed ends with the
// results matrices and stored prompts of an uninterrupted run, byte for
// byte.
func TestTrainKillAndResume(t *testing.T) {
	base := t.TempDir()
	ref := filepath.Join(base, "ref")
	out, _ := trainCLI(t, trainArgs(t, ref)...)
	if !strings.Contains(out, "average test") || !strings.Contains(out, "BWT 0.00") {
		t.Errorf("summary:\n%s", out)
	}

	dir := filepath.Join(base, "killed")
	for i, args := range [][]string{trainArgs(t, dir), {"train", "--resume", dir, "--quiet"}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), cliEnv+"=1")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill during the first task, then during the second.
		want := 2 + 3*i
		deadline := time.Now().Add(2 * time.Minute)
		for lines(filepath.Join(dir, rundir.MetricsFile)) < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Kill()
		err := cmd.Wait()
		if lines(filepath.Join(dir, rundir.MetricsFile)) < want {
			t.Fatalf("the process did not get to epoch line %d (%v):\n%s", want, err, errb.String())
		}
	}
	trainCLI(t, "train", "--resume", dir, "--quiet")

	var ra, rb rundir.Results
	for _, p := range []struct {
		dir string
		r   *rundir.Results
	}{{ref, &ra}, {dir, &rb}} {
		b, err := os.ReadFile(filepath.Join(p.dir, rundir.ResultsFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, p.r); err != nil {
			t.Fatal(err)
		}
	}
	ma, _ := json.Marshal(ra.Matrix)
	mb, _ := json.Marshal(rb.Matrix)
	if !bytes.Equal(ma, mb) || !rb.Complete {
		t.Errorf("matrices differ (complete %v):\n%s\n%s", rb.Complete, ma, mb)
	}
	for _, task := range []string{"cb", "copa", "sst2"} {
		a, err1 := os.ReadFile(filepath.Join(ref, "prompts", task+".safetensors"))
		b, err2 := os.ReadFile(filepath.Join(dir, "prompts", task+".safetensors"))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("stored prompt of %s differs (%v, %v)", task, err1, err2)
		}
	}
}

// The flags resolve to the benchmark's settings, and bad combinations are
// one-line errors.
func TestTrainFlags(t *testing.T) {
	f := newTrainFlags(mustDefault(t))
	if err := f.fs.Parse([]string{"--benchmark", "nt", "--order", "2", "--model", "m", "--data", "d", "--out", "o"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if s := rundir.MethodSettings[method.SHLPTConfig](&c); !s.AllDissimilar || s.Delta != 1.5 || c.Epochs != 50 || c.Patience != 35 ||
		strings.Join(c.Tasks, ",") != "qqp,rte,squad,mnli,cb" || !filepath.IsAbs(c.Model) {
		t.Errorf("nt order 2 resolved to %+v", c)
	}
	f = newTrainFlags(mustDefault(t))
	f.fs.Parse([]string{"--benchmark", "long", "--order", "5", "--epochs", "3", "--delta", "0.1", "--model", "m", "--data", "d"})
	if c, err := f.resolve(); err != nil || c.Epochs != 3 || c.Patience != 50 || rundir.MethodSettings[method.SHLPTConfig](&c).Delta != 0.1 || len(c.Tasks) != 15 {
		t.Errorf("long order 5 with overrides: %+v, %v", c, err)
	}
	// Quirks by name, canonical in the configuration; all of them.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--quirks", "live-validation,hsc-padding"}, []string{"hsc-padding", "live-validation"}},
		{[]string{"--quirks", "all"}, method.QuirkNames},
		{[]string{"--quirks=pad-maxpool", "--quirks", "asc-sign-mask,batch-partition"}, []string{"batch-partition", "asc-sign-mask"}},
		{nil, []string{}},
	} {
		f = newTrainFlags(mustDefault(t))
		if err := f.fs.Parse(append(tc.args, "--tasks", "cb", "--model", "m", "--data", "d")); err != nil {
			t.Fatal(err)
		}
		c, err := f.resolve()
		if err != nil {
			t.Fatal(err)
		}
		if got := rundir.MethodSettings[method.SHLPTConfig](&c).Quirks; !slices.Equal(got, tc.want) {
			t.Errorf("%v: quirks %q, want %q", tc.args, got, tc.want)
		}
	}
	if err := newTrainFlags(mustDefault(t)).fs.Parse([]string{"--quirks", "pad-max-pool"}); err == nil || !strings.Contains(err.Error(), `unknown quirk "pad-max-pool"`) {
		t.Errorf("--quirks pad-max-pool: %v", err)
	}
	// Another method's flags set its settings.
	f = newTrainFlags(mustDefault(t))
	f.fs.Parse([]string{"--method", "l2p", "--l2p-selection", "instance", "--tasks", "cb", "--model", "m", "--data", "d"})
	if c, err := f.resolve(); err != nil || rundir.MethodSettings[method.L2PConfig](&c).Selection != "instance" || c.PromptLen != 5 {
		t.Errorf("l2p with instance selection: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tasks", "cb", "--benchmark", "std", "--order", "1"}, "not both"},
		{[]string{"--tasks", "cb", "--l2p-pool", "20"}, "--l2p-pool is a setting of l2p, not of shlpt"},
		{[]string{"--tasks", "cb", "--method", "per-task", "--no-ase"}, "--no-ase is a setting of shlpt, not of per-task"},
		{[]string{"--tasks", "cb", "--primary-metrics", "reference"}, "primary metrics"},
		{[]string{"--tasks", "cb", "--method", "l2p", "--l2p-selection", "keys"}, "selection"},
		{[]string{"--benchmark", "std"}, "needs --order"},
		{[]string{"--benchmark", "std", "--order", "4"}, "no order 4"},
		{[]string{"--tasks", "cb", "--order", "1"}, "needs --benchmark"},
		{[]string{"--tasks", "cb", "extra"}, "unexpected arguments"},
		{[]string{"--tasks", "cb", "--method", "magic"}, "unknown method"},
		{[]string{"--tasks", "cb,nosuch"}, "nosuch"},
		{[]string{"--tasks", "cb", "--decode", "rank", "--epochs", "0"}, "epochs"},
	} {
		f := newTrainFlags(mustDefault(t))
		if err := f.fs.Parse(append(tc.args, "--model", "m", "--data", "d")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.resolve(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func mustDefault(t *testing.T) rundir.Config {
	c, err := rundir.DefaultConfig("")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Resuming with a setting that differs from the run's is refused with the
// setting's name; --tasks cannot be given at all.
func TestTrainResumeRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	// One task, one epoch: the flags given last win.
	trainCLI(t, append(trainArgs(t, dir), "--tasks", "cb", "--epochs", "1", "--k-train", "2")...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--epochs", "9"}, "epochs"},
		{[]string{"--tasks", "cb"}, "cannot change on --resume"},
		{[]string{"--out", "elsewhere"}, "different directories"},
	} {
		var out, errb bytes.Buffer
		code := dispatch(append([]string{"train", "--resume", dir}, tc.args...), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, errb.String())
		}
	}
	// The same command again finds the run complete and changes nothing;
	// with another setting it is refused, naming the first difference.
	args := append(trainArgs(t, dir), "--tasks", "cb", "--epochs", "1", "--k-train", "2")
	before, _ := os.ReadFile(filepath.Join(dir, rundir.ResultsFile))
	out, _ := trainCLI(t, args...)
	if !strings.Contains(out, "holds this run, complete: nothing to do") {
		t.Errorf("starting a finished run again printed:\n%s", out)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, rundir.ResultsFile)); !bytes.Equal(before, after) {
		t.Error("starting a finished run again rewrote results.json")
	}
	var o, errb bytes.Buffer
	code := dispatch(append(args, "--seed", "6"), &o, &errb)
	if code != 1 || !strings.Contains(errb.String(), "holds another run: setting seed is 5 in the run directory but 6 now") {
		t.Errorf("another run into the directory: exit %d, %q", code, errb.String())
	}
}

// Missing or wrong arguments are one line naming the problem (exit 2),
// not the whole usage.
func TestTrainUsageLines(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--tasks", "cb", "--model", "m", "--data", "d"}, "no run directory: give --out DIR"},
		{[]string{"train", "--tasks", "cb", "--model", "m", "--data", "d", "--out", ""}, "no run directory"},
		{[]string{"train", "--tasks", "cb", "--out", "o", "extra"}, `unexpected argument "extra"`},
		{[]string{"pretrain", "--size", "t5-small", "--data", "d", "--tokenizer", "t", "--out", "o"}, "no step count: give --steps N"},
		{[]string{"pretrain", "--size", "t5-small", "--data", "d", "--tokenizer", "t", "--out", "o", "--steps", "0"}, "--steps 0: must be at least 1"},
		{[]string{"pretrain", "--steps", "3"}, "no model folder"},
		{[]string{"demo", "--quick", "--epochs", "3"}, "--epochs cannot be combined with --quick"},
		{[]string{"demo", "--delta", "NaN"}, "--delta NaN"},
		{[]string{"demo", "--epochs", "0"}, "--epochs 0"},
	} {
		code, out, errs := runCLI(tc.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || out != "" || !strings.Contains(lines[0], tc.want) || len(lines) > 1 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", tc.args, code, errs, tc.want)
		}
	}
}

// demo --quick runs end to end from nothing and prints its JSON; a second
// run reuses the cached model.
func TestDemoQuick(t *testing.T) {
	cache := t.TempDir()
	for i := 0; i < 2; i++ {
		var out, errb bytes.Buffer
		code := dispatch([]string{"demo", "--quick", "--json", "--quiet", "--cache", cache}, &out, &errb)
		if strings.Contains(errb.String(), "no Vulkan device") {
			testenv.Missing(t, errb.String())
		}
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var r struct {
			Methods map[string]struct {
				Average float64
				Matrix  [][]*float64
			}
			Chance     map[string]float64
			Similarity struct {
				Designed [][]*int
				Alpha    [][]*float64
			}
			Pretrain struct{ Reused bool }
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		for _, m := range []string{"per-task", "continual-init", "shlpt"} {
			if len(r.Methods[m].Matrix) != 7 {
				t.Errorf("method %s: %+v", m, r.Methods[m])
			}
		}
		if r.Chance["animal"] != 50 || r.Similarity.Designed[0][1] == nil || *r.Similarity.Designed[0][1] != 1 ||
			r.Similarity.Alpha[0][1] == nil || r.Similarity.Designed[1][0] != nil {
			t.Errorf("chance %v, similarity %+v", r.Chance, r.Similarity)
		}
		if r.Pretrain.Reused != (i == 1) {
			t.Errorf("run %d: pretraining reused %v", i, r.Pretrain.Reused)
		}
	}
}

// pretrain --resume takes the settings from the folder and refuses flags
// that differ from them, naming each.
func TestPretrainResumeFlags(t *testing.T) {
	dir := t.TempDir()
	arch, err := os.ReadFile("../../testdata/t5-tiny-fullvocab/config.json")
	if err != nil {
		t.Fatal(err)
	}
	rec := `{"tokenizer": "/tok", "data": "/data", "tasks": ["a", "b"], "steps": 10, "batch_size": 4, "lr": 0.001,
		"weight_decay": 0.01, "max_input_len": 32, "seed": 1, "k_val": 2, "k_test": 2, "arch": ` + string(arch) + `}`
	if err := os.WriteFile(filepath.Join(dir, run.PretrainFile), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("pretrain", "--resume", dir, "--steps", "99", "--lr", "0.001", "--seed", "3")
	if code != 1 || !strings.Contains(errs, "--steps, --seed cannot change when resuming") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI("pretrain", "--resume", t.TempDir())
	if code != 1 || !strings.Contains(errs, "not a pretraining folder") {
		t.Errorf("resume of an empty folder: exit %d, stderr %q", code, errs)
	}
}
