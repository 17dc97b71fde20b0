package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// report with nothing readable still writes its files and exits 1; without
// --out it is a usage error.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"report", filepath.Join(dir, "none*"), "--out", out}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, stdout %q", code, stdout.String())
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil || !strings.Contains(string(md), "none*: the pattern matches nothing") {
		t.Errorf("report.md: %s (%v)", md, err)
	}
	if code := dispatch([]string{"report", dir}, &stdout, &stderr); code != 2 {
		t.Errorf("without --out: exit %d", code)
	}
}
