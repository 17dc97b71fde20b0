package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// bench t5 and bench shlpt with 16-bit weights: the steps run, the JSON
// names the storage, and the weights take less memory than in f32.
func TestBenchWeights(t *testing.T) {
	cfg := "../../testdata/t5-tiny-relu/config.json"
	small := []string{"--config", cfg, "--prompt", "3", "--input", "9", "--target", "3", "--batch", "3", "--runs", "1", "--json"}
	weightBytes := map[string]int64{}
	for _, w := range []string{"f32", "bf16", "f16"} {
		code, out, errs := runCLI(append(append([]string{"bench", "t5"}, small...), "--profile=false", "--weights", w)...)
		if strings.Contains(errs, "no Vulkan device") {
			testenv.Missing(t, errs)
		}
		if code != 0 {
			t.Fatalf("bench t5 --weights %s: exit %d\n%s%s", w, code, out, errs)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		steps := 0
		for sc.Scan() {
			var r struct {
				Weights     string  `json:"weights"`
				Step        string  `json:"step"`
				MsPerStep   float64 `json:"ms_per_step"`
				WeightBytes int64   `json:"weight_bytes"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Weights != w || !(r.MsPerStep > 0) {
				t.Fatalf("bench t5 --weights %s: %q (%v)", w, sc.Text(), err)
			}
			weightBytes[w] = r.WeightBytes
			steps++
		}
		if steps != 2 {
			t.Fatalf("bench t5 --weights %s: %d steps\n%s", w, steps, out)
		}
	}
	if !(weightBytes["bf16"] < weightBytes["f32"]*3/4) || weightBytes["f16"] != weightBytes["bf16"] {
		t.Errorf("weight memory: %v", weightBytes)
	}
	code, out, errs := runCLI(append(append([]string{"bench", "shlpt"}, small...), "--weights", "bf16")...)
	var r struct {
		Weights string
		Ratio   float64
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Weights != "bf16" || !(r.Ratio > 0) {
		t.Fatalf("bench shlpt --weights bf16: exit %d: %s %s", code, out, errs)
	}
	for _, sub := range []string{"t5", "shlpt"} {
		code, _, errs := runCLI("bench", sub, "--weights", "f64")
		if code != 1 || !strings.Contains(errs, `--weights "f64": accepted values are f32, bf16 and f16`) {
			t.Errorf("bench %s --weights f64: exit %d, %q", sub, code, errs)
		}
	}
}
