// Package runtest trains the small runs that tests of the packages above
// the runner (export, serving) read: the tiny random T5 with the real
// vocabulary over a few examples of two real tasks, one epoch.
package runtest

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Model is the tiny full-vocabulary T5 of testdata.
func Model(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "t5-tiny-fullvocab")
}

// Config is a small run of method over tasks: prompt length 4 (or the
// method's smaller default), one epoch, a handful of examples, rank
// classification (the tiny random model never generates a label word,
// its ranked labels vary).
func Config(t testing.TB, method string, tasks ...string) rundir.Config {
	t.Helper()
	c, err := rundir.DefaultConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UseMethod(method); err != nil {
		t.Fatal(err)
	}
	c.PromptLen = min(c.PromptLen, 4)
	c.Model = Model(t)
	c.Tokenizer = testenv.Tokenizer(t)
	c.Data = filepath.Join(testenv.Data(t), "shlpt")
	c.Tasks = tasks
	c.KTrain, c.KVal, c.KTest = 4, 2, 4
	c.Epochs, c.EvalFrom, c.Patience = 1, 0, 5
	// An odd input length: padded batches of several lengths, none a
	// multiple of 4, as real inputs give.
	c.MaxInputLen = 37
	c.Decode = "rank"
	c.Seed = 5
	return c
}

// Train runs cfg into dir.
func Train(t testing.TB, e *ag.Engine, cfg rundir.Config, dir string) string {
	t.Helper()
	if _, err := run.Run(context.Background(), cfg, run.Options{Dir: dir, Engine: e, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	return dir
}
