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

// t5check --weights f16 keeps the float16 checkpoint in float16 on the
// device and matches its reference case within the same tolerance, skipping
// the gradients of the frozen 16-bit weights; bf16 runs and reports its
// errors, beyond the float16 reference's tolerance; a bad value names the
// flag before a device is opened.
func TestT5CheckWeights(t *testing.T) {
	model := "../../testdata/t5-tiny-fp16"
	args := []string{"t5check", "--model", model, "--case", model + "/case.safetensors"}
	code, out, errs := runCLI(append(args, "--weights", "f16")...)
	if strings.Contains(errs, "no Vulkan device") {
		testenv.Missing(t, errs)
	}
	if code != 0 || !strings.Contains(out, "within tolerance") || !strings.Contains(out, "5 gradients of frozen f16 weights skipped") ||
		!strings.Contains(out, "expected.grad.shared.weight") || !strings.Contains(out, "skipped: the weight is stored as f16") {
		t.Fatalf("f16: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCLI(append(args, "--weights", "bf16")...)
	if code != 1 || !strings.Contains(out, "expected.logits") || !strings.Contains(out, "FAIL") ||
		!strings.Contains(errs, "tensors beyond tolerance (weights stored as bf16)") || strings.Contains(errs, "panic") {
		t.Fatalf("bf16: exit %d\n%s\n%s", code, out, errs)
	}
	for _, cmd := range []string{"t5check", "shlptcheck"} {
		code, _, errs = runCLI(cmd, "--model", model, "--case", "x.safetensors", "--weights", "fp16")
		if code != 1 || !strings.Contains(errs, `--weights "fp16": accepted values are f32, bf16 and f16`) {
			t.Errorf("%s --weights fp16: exit %d, %q", cmd, code, errs)
		}
	}
}
