// Package testenv locates what tests need outside the repository (task data,
// the T5 tokenizer) and decides whether its absence skips or fails a test.
//
// Tests skip when a prerequisite is missing, so that `go test ./...` works on
// a bare checkout; with SHLPT_VK_REQUIRE=1 (set by CI) a missing prerequisite
// fails the test instead, so that nothing is skipped silently.
package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/envflag"
)

// Environment variables read by tests.
const (
	// RequireEnv makes missing prerequisites fail tests instead of skipping.
	RequireEnv = "SHLPT_VK_REQUIRE"
	// DataEnv names the task-data root (the folder holding shlpt/, olora/, ...).
	DataEnv = "SHLPT_DATA"
	// TokenizerEnv names the folder holding the T5 tokenizer.json and spiece.model.
	TokenizerEnv = "SHLPT_TOKENIZER"
)

// Required reports whether SHLPT_VK_REQUIRE is set to a true value (1,
// true, yes, on). A value that is not a boolean counts as set: Missing then
// fails, naming the variable.
func Required() bool {
	v, err := envflag.Bool(RequireEnv)
	return v || err != nil
}

// Missing skips the test, or fails it under SHLPT_VK_REQUIRE=1, with reason.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if _, err := envflag.Bool(RequireEnv); err != nil {
		t.Fatalf("%s, and %v", reason, err)
	}
	if Required() {
		t.Fatalf("%s (%s=1 is set, so this is a failure, not a skip)", reason, RequireEnv)
	}
	t.Skip(reason)
}

// dir returns the folder named by env, or calls Missing.
func dir(t testing.TB, env, what string) string {
	t.Helper()
	d := os.Getenv(env)
	if d == "" {
		Missing(t, env+" is not set; it must name "+what)
		return ""
	}
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		Missing(t, env+"="+d+" is not a folder; it must name "+what)
		return ""
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Data returns the task-data root named by SHLPT_DATA.
func Data(t testing.TB) string {
	t.Helper()
	return dir(t, DataEnv, "the task-data root (for example ../shared/data)")
}

// Tokenizer returns the tokenizer folder named by SHLPT_TOKENIZER.
func Tokenizer(t testing.TB) string {
	t.Helper()
	return dir(t, TokenizerEnv, "the folder with the T5 tokenizer.json and spiece.model")
}
