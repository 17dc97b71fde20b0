package main

import (
	"bytes"
	"encoding/json"
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

// bench shlpt measures both steps on a tiny configuration.
func TestBenchSHLPT(t *testing.T) {
	var out, errb bytes.Buffer
	code := dispatch([]string{"bench", "shlpt", "--config", "../../testdata/t5-tiny-relu/config.json", "--prompt", "3",
		"--input", "9", "--target", "3", "--batch", "3", "--runs", "1", "--json"}, &out, &errb)
	if strings.Contains(errb.String(), "no Vulkan device") {
		testenv.Missing(t, errb.String())
	}
	var r struct {
		Ratio float64
		Plain struct {
			MsPerStep float64 `json:"ms_per_step"`
		}
		SHLPT struct {
			MsPerStep float64 `json:"ms_per_step"`
		}
	}
	if code != 0 || json.Unmarshal(out.Bytes(), &r) != nil || !(r.Ratio > 0) || !(r.SHLPT.MsPerStep > 0) || !(r.Plain.MsPerStep > 0) {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
}
