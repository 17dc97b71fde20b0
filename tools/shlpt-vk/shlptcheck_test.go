package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// shlptcheck reproduces both visible SHLPT step cases (the paper's
// semantics and the reference code's quirks) and fails on bad input.
func TestSHLPTCheckCases(t *testing.T) {
	for _, c := range []string{"shlpt-step", "shlpt-step-quirks"} {
		t.Run(c, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := dispatch([]string{"shlptcheck", "--model", "../../testdata/t5-tiny-relu", "--case", "../../testdata/t5-tiny-relu/" + c + ".safetensors"}, &out, &errb)
			if strings.Contains(errb.String(), "no Vulkan device") {
				testenv.Missing(t, errb.String())
			}
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
			}
			for _, name := range []string{"expected.alpha ", "expected.negatives", "expected.loss_hsc", "expected.loss_asc", "expected.grad.estimator.down.weight", "expected.stored_prompt", "all 18 tensors"} {
				if !strings.Contains(out.String(), name) {
					t.Errorf("output lacks %q:\n%s", name, out.String())
				}
			}
		})
	}
	var out, errb bytes.Buffer
	// The plain T5 case has no SHLPT settings.
	if code := dispatch([]string{"shlptcheck", "--model", "../../testdata/t5-tiny-relu", "--case", "../../testdata/t5-tiny-relu/case.safetensors"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "metadata") {
		t.Errorf("a case without SHLPT settings: exit %d, %q", code, errb.String())
	}
	if code := dispatch([]string{"shlptcheck", "--model", "../../testdata/t5-tiny-relu"}, &out, &errb); code != 2 {
		t.Errorf("missing --case: exit %d", code)
	}
}
