package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// TestDataDevZero: a task file that is a device never ending (/dev/zero)
// is refused at once with an error naming it, instead of a read that grows
// to gigabytes.
func TestDataDevZero(t *testing.T) {
	link := filepath.Join(t.TempDir(), "test.jsonl")
	if err := os.Symlink("/dev/zero", link); err != nil {
		testenv.Missing(t, "cannot link to /dev/zero: "+err.Error())
	}
	for _, tc := range []struct {
		args []string
		file string // the file named in the error: the train file, read first
	}{
		{[]string{"data", "stats", "--task", "cb", "--train", "/dev/zero", "--test", "/dev/zero"}, "/dev/zero"},
		{[]string{"data", "show", "--task", "imdb", "--train", link, "--test", "/dev/zero"}, link},
		{[]string{"data", "stats", "--task", "ag", "--format", "lfpt5-txt", "--train", link, "--test", link, "--skip-malformed"}, link},
	} {
		start := time.Now()
		code, _, errs := runCLI(tc.args...)
		if code != 1 || !strings.Contains(errs, tc.file+": is a character device, not a regular file") {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errs)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%v took %v", tc.args, d)
		}
	}
}

// TestNoPositionalArgs: every command that takes only flags refuses a
// positional argument with a usage error (exit 2) before doing anything.
func TestNoPositionalArgs(t *testing.T) {
	for _, args := range [][]string{
		{"data", "tasks", "extra"},
		{"data", "stats", "--task", "cb", "--train", "x", "--test", "y", "extra"},
		{"data", "show", "extra", "--task", "cb"},
		{"devices", "extra"},
		{"devices", "--json", "a", "b"},
		{"bench", "t6"},
		{"bench", "--op", "matmul", "extra"},
		{"bench", "t5", "extra"},
		{"bench", "shlpt", "extra"},
		{"tokenize", "--tokenizer", "x", "extra"},
	} {
		if code, out, errs := runCLI(args...); code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2", args, code, out, errs)
		}
	}
}

// TestBenchFlagErrors: contradictory or out-of-range flags of bench, bench
// t5 and bench shlpt are errors naming the flag, found before a device is
// opened, instead of panics.
func TestBenchFlagErrors(t *testing.T) {
	cfg := filepath.Join("..", "..", "testdata", "t5-tiny-relu", "config.json")
	for _, tc := range []struct {
		args []string
		has  string
	}{
		{[]string{"bench", "t5", "--model", "m", "--size", "t5-base"}, "--model and --size"},
		{[]string{"bench", "t5", "--model", "m", "--config", cfg}, "--model and --config"},
		{[]string{"bench", "t5", "--size", "t5-base", "--config", cfg}, "--size and --config"},
		{[]string{"bench", "shlpt", "--model", "m", "--size", "t5-small"}, "--model and --size"},
		{[]string{"bench", "t5", "--runs", "0"}, "--runs 0: must be between 1 and"},
		{[]string{"bench", "t5", "--runs", "-1"}, "--runs -1"},
		{[]string{"bench", "t5", "--batch", "-1"}, "--batch -1: must be between 1 and"},
		{[]string{"bench", "t5", "--batch", "0"}, "--batch 0"},
		{[]string{"bench", "t5", "--prompt", "-5"}, "--prompt -5"},
		{[]string{"bench", "t5", "--input", "1"}, "--input 1: must be between 2 and"},
		{[]string{"bench", "t5", "--target", "0"}, "--target 0"},
		{[]string{"bench", "t5", "--target", "99999999999"}, "--target 99999999999"},
		{[]string{"bench", "t5", "--batch", "100000"}, "--batch 100000 × (--prompt 150 + --input 256 + --target 5)"},
		{[]string{"bench", "t5", "--top", "-1"}, "--top -1"},
		{[]string{"bench", "shlpt", "--runs", "0"}, "--runs 0"},
		{[]string{"bench", "shlpt", "--pool", "0"}, "--pool 0"},
		{[]string{"bench", "shlpt", "--prompt", "-5"}, "--prompt -5"},
		{[]string{"bench", "--runs", "0"}, "--runs 0"},
		{[]string{"bench", "--runs", "-1"}, "--runs -1"},
		{[]string{"bench", "--copy-mib", "0"}, "--copy-mib 0"},
		{[]string{"data", "show", "--task", "cb", "-n", "-1"}, "--count -1"},
	} {
		code, _, errs := runCLI(tc.args...)
		if code != 1 || !strings.Contains(errs, tc.has) || strings.Contains(errs, "panic") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, errs, tc.has)
		}
	}
}

// TestValidateEnv: a SHLPT_VK_VALIDATE value that is not a boolean is an
// error naming the variable, not a silent "off".
func TestValidateEnv(t *testing.T) {
	t.Setenv(gpu.ValidateEnv, "maybe")
	for _, args := range [][]string{{"devices"}, {"bench", "--op", "copy", "--shape", "256", "--runs", "1", "--copy-mib", "1"}} {
		code, _, errs := runCLI(args...)
		if code != 1 || !strings.Contains(errs, gpu.ValidateEnv+`="maybe" is not a boolean`) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}
