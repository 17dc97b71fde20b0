package t5

import (
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// Other configurations against reference cases made by
// tools/t5ref/make_case.py (an independent float64 implementation with HF
// semantics; see each folder's README.md): every expected tensor within
// 1e-4 of its largest magnitude (1e-3 for gradients), greedy ids exactly.
func TestReferenceCaseVariants(t *testing.T) {
	for _, tc := range []struct{ dir, what string }{
		// gated-gelu (gelu_new), untied head, num_heads·d_kv = 48 ≠ d_model = 40,
		// 3 encoder and 2 decoder blocks.
		{"t5-tiny-gated", "gated-gelu, untied"},
		// relu, tied, float16 weights without the tied copies
		// encoder/decoder.embed_tokens.weight.
		{"t5-tiny-fp16", "float16, tied, no tied copies"},
		// relu, untied head, num_heads·d_kv = 24 ≠ 32, 2 encoder and 1
		// decoder block, 20 buckets, maximum distance 48, layer_norm_epsilon
		// 0.01.
		{"t5-tiny-relu-untied", "relu, untied, non-default buckets and epsilon"},
		// gated relu (relu(h·wi_0) ⊙ h·wi_1), tied head.
		{"t5-tiny-gated-relu", "gated-relu, tied"},
		// gelu_new without gating, untied head without the tied copies, 1
		// encoder and 2 decoder blocks.
		{"t5-tiny-gelu-new", "gelu_new, not gated, untied"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join("../testdata", tc.dir)
			e := ag.New(gputest.Device(t))
			m, err := Load(e, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				m.Release()
				if err := e.Err(); err != nil {
					t.Errorf("engine: %v", err)
				}
			}()
			res, err := CheckCase(m, filepath.Join(dir, "case.safetensors"))
			if err != nil {
				t.Fatalf("%s (%s): %v", tc.dir, tc.what, err)
			}
			if len(res) < 10 {
				t.Errorf("only %d tensors compared", len(res))
			}
			for _, r := range res {
				t.Log(r)
				if !r.OK {
					t.Errorf("%s (%s): %s", tc.dir, tc.what, r)
				}
			}
		})
	}
}

// HF's exact "gelu" (erf) has no kernel: building a model with it is an
// error naming the activation, whether from a checkpoint or random weights.
func TestUnsupportedActivation(t *testing.T) {
	dir := filepath.Join("../testdata", "t5-tiny-gelu-new")
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FeedForwardProj, cfg.DenseActFn = "gelu", "gelu"
	e := ag.New(gputest.Device(t))
	if m, err := NewRandom(e, cfg, 1); err == nil || !strings.Contains(err.Error(), `activation "gelu" is not supported`) {
		if m != nil {
			m.Release()
		}
		t.Errorf("NewRandom: err = %v", err)
	}
	src, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if m, err := FromCheckpoint(e, cfg, src); err == nil || !strings.Contains(err.Error(), `activation "gelu" is not supported`) {
		if m != nil {
			m.Release()
		}
		t.Errorf("FromCheckpoint: err = %v", err)
	}
}
