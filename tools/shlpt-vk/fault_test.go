package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// faultArgs is the smallest SHLPT run that writes every kind of output:
// two tasks of one training step each, validated, with a stored prompt,
// the estimator and the mixture weights after each.
func faultArgs(t *testing.T, out string) []string {
	t.Helper()
	return []string{"train", "--model", "../../testdata/t5-tiny-fullvocab", "--tokenizer", testenv.Tokenizer(t),
		"--data", filepath.Join(testenv.Data(t), "shlpt"), "--tasks", "cb,copa",
		"--k-train", "1", "--k-val", "1", "--k-test", "1", "--epochs", "1", "--eval-from", "0",
		"--prompt-len", "4", "--max-input-len", "24", "--delta", "0.45", "--tau-sim", "0.05", "--seed", "5",
		"--decode", "greedy", "--quiet", "--out", out}
}

// runFaulty runs shlpt-vk in a child process with env added; it returns
// the child's exit error and stderr. The child runs without Vulkan
// validation, which would only slow it down: the runs that finish these
// tests (in this process) and the rest of the suite run with it.
func runFaulty(t *testing.T, env []string, args ...string) (error, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), cliEnv+"=1", "SHLPT_VK_VALIDATE=0"), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	return err, errb.String()
}

// killedBySIGKILL reports whether a child's exit error is a SIGKILL.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// sameOutputs compares what a run's outputs say, byte for byte: the
// matrices and scores of results.json, the stored prompts, the estimator
// and the mixture weights.
func sameOutputs(t *testing.T, ref, dir string) {
	t.Helper()
	for _, f := range []string{"prompts/cb.safetensors", "prompts/copa.safetensors", "estimator.safetensors", "alpha.json"} {
		a, err1 := os.ReadFile(filepath.Join(ref, f))
		b, err2 := os.ReadFile(filepath.Join(dir, f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted run's (%v, %v)", f, err1, err2)
		}
	}
	ra, err1 := rundir.ReadResults(ref)
	rb, err2 := rundir.ReadResults(dir)
	if err1 != nil || err2 != nil {
		t.Fatalf("results: %v, %v", err1, err2)
	}
	ma, _ := json.Marshal([]any{ra.Matrix, ra.PerTask[1].Scores})
	mb, _ := json.Marshal([]any{rb.Matrix, rb.PerTask[len(rb.PerTask)-1].Scores})
	if !rb.Complete || !bytes.Equal(ma, mb) {
		t.Errorf("results differ: complete %v\n%s\n%s", rb.Complete, ma, mb)
	}
	lines, err := rundir.ReadMetrics(dir)
	if err != nil || len(lines) != 2 {
		t.Errorf("metrics.jsonl: %d lines, %v", len(lines), err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if atomicfile.IsTemp(e.Name()) {
			t.Errorf("temporary file %s left in the run directory", e.Name())
		}
	}
}

// A run killed with SIGKILL in the middle of each of its durable writes,
// one after another, and started again with the same command ends with
// the outputs of an uninterrupted run, byte for byte.
func TestKillAtEveryWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("a run per durable write")
	}
	base := t.TempDir()
	ref := filepath.Join(base, "ref")
	trainCLI(t, faultArgs(t, ref)...)
	for k := 1; ; k++ {
		dir := filepath.Join(base, fmt.Sprintf("kill%02d", k))
		err, stderr := runFaulty(t, []string{fmt.Sprintf("%s=%d", atomicfile.KillAtEnv, k)}, faultArgs(t, dir)...)
		if err == nil {
			// The run has fewer durable writes than k: every one was hit.
			if k < 10 {
				t.Fatalf("only %d durable writes in a two-task run", k-1)
			}
			t.Logf("killed at each of %d durable writes", k-1)
			break
		}
		if !killedBySIGKILL(err) {
			t.Fatalf("write %d: the run ended with %v, not SIGKILL:\n%s", k, err, stderr)
		}
		trainCLI(t, faultArgs(t, dir)...)
		sameOutputs(t, ref, dir)
		if t.Failed() {
			t.Fatalf("after a kill at durable write %d", k)
		}
	}
}

// A run that finds the disk full stops with an error naming the file it
// could not write, and started again with room ends as an uninterrupted
// run; a start that could not write config.json leaves nothing behind.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("several runs")
	}
	base := t.TempDir()
	ref := filepath.Join(base, "ref")
	trainCLI(t, faultArgs(t, ref)...)
	// The run writes about 350 KB in all: these budgets run out in
	// config.json, in the first checkpoint, in the first task and in the
	// second.
	for _, budget := range []int{100, 20 << 10, 100 << 10, 220 << 10} {
		dir := filepath.Join(base, fmt.Sprintf("budget%d", budget))
		err, stderr := runFaulty(t, []string{fmt.Sprintf("%s=%d", atomicfile.WriteBudgetEnv, budget)}, faultArgs(t, dir)...)
		if err == nil {
			t.Fatalf("budget %d: the run did not run out of disk", budget)
		}
		if !strings.Contains(stderr, "no space left on device") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("budget %d: stderr %q, want one line naming the full disk", budget, stderr)
		}
		if budget == 100 {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a start that could not write config.json left %s (%v)", dir, err)
			}
		}
		trainCLI(t, faultArgs(t, dir)...)
		sameOutputs(t, ref, dir)
	}
}
