package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

func TestT5CheckCommand(t *testing.T) {
	var out, errb bytes.Buffer
	code := dispatch([]string{"t5check", "--model", "../../testdata/t5-tiny-relu", "--case", "../../testdata/t5-tiny-relu/case.safetensors"}, &out, &errb)
	if strings.Contains(errb.String(), "no Vulkan device") {
		testenv.Missing(t, errb.String())
	}
	if code != 0 || !strings.Contains(out.String(), "within tolerance") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := dispatch([]string{"t5check", "--model", "../../testdata/t5-tiny-relu", "--case", "missing.safetensors"}, &out, &errb); code == 0 {
		t.Errorf("missing case file: exit 0")
	}
}
