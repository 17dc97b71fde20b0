package t5

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

var fixtureDir = filepath.Join("..", "testdata", "t5-tiny-relu")

func TestConfigFixture(t *testing.T) {
	c, err := LoadConfig(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DModel: 32, DKV: 8, DFF: 64, NumLayers: 2, NumDecoderLayers: 2, NumHeads: 4, VocabSize: 100,
		RelativeAttentionNumBuckets: 32, RelativeAttentionMaxDistance: 128,
		LayerNormEpsilon: 1e-6, DropoutRate: 0,
		FeedForwardProj: "relu", DenseActFn: "relu", IsGatedAct: false, TieWordEmbeddings: true,
		DecoderStartTokenID: 0, EOSTokenID: 1, PadTokenID: 0,
		Source: filepath.Join(fixtureDir, ConfigFileName),
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	f, err := safetensors.Open(filepath.Join(fixtureDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.CheckWeights(f); err != nil {
		t.Errorf("fixture checkpoint does not fit its config:\n%v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("min.json", []byte(`{"num_layers": 3, "num_decoder_layers": null, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.NumDecoderLayers != 3 || c.DModel != 512 || c.DKV != 64 || c.VocabSize != 32128 ||
		c.RelativeAttentionNumBuckets != 32 || c.RelativeAttentionMaxDistance != 128 || c.LayerNormEpsilon != 1e-6 ||
		c.DenseActFn != "gelu_new" || !c.IsGatedAct || c.TieWordEmbeddings || c.EOSTokenID != 1 {
		t.Errorf("defaults: %+v", c)
	}
	c, err = ParseConfig("d.json", []byte(`{"num_layers": 3, "num_decoder_layers": 1}`))
	if err != nil || c.NumDecoderLayers != 1 {
		t.Errorf("num_decoder_layers given: %d, %v", c.NumDecoderLayers, err)
	}
}

// TestConfigActivations follows HF's T5Config rules for feed_forward_proj.
func TestConfigActivations(t *testing.T) {
	for _, c := range []struct {
		ffp   string
		act   string
		gated bool
	}{
		{"relu", "relu", false},
		{"gated-gelu", "gelu_new", true},
		{"gelu", "gelu", false},
		{"gated-relu", "relu", true},
		{"gelu_new", "gelu_new", false},
		{"gated-gelu_new", "gelu_new", true},
	} {
		cfg, err := ParseConfig("c.json", []byte(`{"feed_forward_proj": "`+c.ffp+`"}`))
		if err != nil {
			t.Errorf("%s: %v", c.ffp, err)
			continue
		}
		if cfg.DenseActFn != c.act || cfg.IsGatedAct != c.gated {
			t.Errorf("%s: act %q gated %v, want %q %v", c.ffp, cfg.DenseActFn, cfg.IsGatedAct, c.act, c.gated)
		}
	}
	// The fields HF writes back must agree.
	if _, err := ParseConfig("c.json", []byte(`{"feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": true}`)); err != nil {
		t.Error(err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		json string
		want []string
	}{
		{`{"d_model": 0}`, []string{"d_model", "positive"}},
		{`{"d_kv": -1, "d_ff": 0, "num_heads": 0}`, []string{"d_kv", "d_ff", "num_heads"}},
		{`{"num_layers": 0}`, []string{"num_layers", "num_decoder_layers"}},
		{`{"vocab_size": 0}`, []string{"vocab_size"}},
		{`{"d_model": 99999999999}`, []string{"d_model", "implausibly large"}},
		{`{"d_model": "512"}`, []string{"d_model", "string"}},
		{`{"d_model": 512.5}`, []string{"d_model"}},
		{`{"relative_attention_num_buckets": 2}`, []string{"relative_attention_num_buckets"}},
		{`{"relative_attention_max_distance": 16}`, []string{"relative_attention_max_distance"}},
		{`{"layer_norm_epsilon": 0}`, []string{"layer_norm_epsilon"}},
		{`{"dropout_rate": 1}`, []string{"dropout_rate"}},
		{`{"feed_forward_proj": "swiglu-x"}`, []string{"feed_forward_proj", "gated-ACT"}},
		{`{"feed_forward_proj": "gated-gelu-x"}`, []string{"feed_forward_proj"}},
		{`{"feed_forward_proj": "silu"}`, []string{"silu", "not supported"}},
		{`{"feed_forward_proj": "gated-"}`, []string{"feed_forward_proj"}},
		{`{"feed_forward_proj": "relu", "dense_act_fn": "gelu_new"}`, []string{"dense_act_fn", "contradicts"}},
		{`{"feed_forward_proj": "relu", "is_gated_act": true}`, []string{"is_gated_act", "contradicts"}},
		{`{"eos_token_id": 40000}`, []string{"eos_token_id", "vocab_size"}},
		{`{"pad_token_id": -1}`, []string{"pad_token_id"}},
		{`{"model_type": "bert"}`, []string{"model_type"}},
		{`{"d_model": 512`, []string{"unexpected end"}},
		{`[1]`, []string{"bad.json", "array where an object is expected"}},
	}
	for _, c := range cases {
		_, err := ParseConfig("bad.json", []byte(c.json))
		if err == nil {
			t.Errorf("%s: no error", c.json)
			continue
		}
		if !strings.HasPrefix(err.Error(), "bad.json: ") {
			t.Errorf("%s: error %q does not start with the file name", c.json, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.json, err, w)
			}
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("LoadConfig of a missing file succeeded")
	}
}

func TestNamedConfig(t *testing.T) {
	for _, c := range []struct {
		name                            string
		dModel, dFF, dKV, heads, layers int
		gated, tied                     bool
	}{
		{"t5-small", 512, 2048, 64, 8, 6, false, true},
		{"t5-base", 768, 3072, 64, 12, 12, false, true},
		{"t5-large", 1024, 4096, 64, 16, 24, false, true},
		{"google-t5/t5-large", 1024, 4096, 64, 16, 24, false, true},
		{"t5-v1_1-small", 512, 1024, 64, 6, 8, true, false},
		{"t5-v1_1-large", 1024, 2816, 64, 16, 24, true, false},
		{"google/t5-large-lm-adapt", 1024, 2816, 64, 16, 24, true, false},
	} {
		cfg, err := NamedConfig(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DModel != c.dModel || cfg.DFF != c.dFF || cfg.DKV != c.dKV || cfg.NumHeads != c.heads ||
			cfg.NumLayers != c.layers || cfg.NumDecoderLayers != c.layers || cfg.IsGatedAct != c.gated ||
			cfg.TieWordEmbeddings != c.tied || cfg.VocabSize != 32128 {
			t.Errorf("%s: %+v", c.name, cfg)
		}
		if c.gated && cfg.DenseActFn != "gelu_new" || !c.gated && cfg.DenseActFn != "relu" {
			t.Errorf("%s: activation %s", c.name, cfg.DenseActFn)
		}
	}
	if _, err := NamedConfig("t5-huge"); err == nil || !strings.Contains(err.Error(), "t5-large") {
		t.Errorf("unknown name: %v", err)
	}
	small, _ := NamedConfig("t5-small")
	if n := len(small.Weights()); n != 3+(6*8+1)+1+(6*13+1)+1+1 {
		t.Errorf("t5-small has %d weight specs", n)
	}
}

// checkpointFor builds an in-memory checkpoint with zero tensors for every
// spec of c, leaving out the names in skip.
func checkpointFor(t *testing.T, c Config, skip map[string]bool, edit func([]safetensors.Tensor) []safetensors.Tensor) *safetensors.File {
	t.Helper()
	var ts []safetensors.Tensor
	for _, w := range c.Weights() {
		if skip[w.Name] {
			continue
		}
		n := 1
		for _, d := range w.Shape {
			n *= d
		}
		ts = append(ts, safetensors.FromFloat32(w.Name, w.Shape, make([]float32, n)))
	}
	if edit != nil {
		ts = edit(ts)
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse("mem.safetensors", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tinyGated is a gated-gelu, untied configuration with num_heads·d_kv ≠
// d_model and fewer decoder than encoder layers.
func tinyGated() Config {
	c, err := ParseConfig("gated.json", []byte(`{"d_model": 16, "d_kv": 6, "d_ff": 24, "num_heads": 2,
		"num_layers": 2, "num_decoder_layers": 1, "vocab_size": 50,
		"feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}`))
	if err != nil {
		panic(err)
	}
	return c
}

func TestConfigCheckWeights(t *testing.T) {
	g := tinyGated()
	if err := g.CheckWeights(checkpointFor(t, g, nil, nil)); err != nil {
		t.Errorf("complete gated checkpoint: %v", err)
	}
	// Tied copies and HF's ignored key may be absent or present.
	relu, _ := LoadConfig(fixtureDir)
	optional := map[string]bool{"encoder.embed_tokens.weight": true, "decoder.embed_tokens.weight": true, "lm_head.weight": true}
	if err := relu.CheckWeights(checkpointFor(t, relu, optional, nil)); err != nil {
		t.Errorf("tied checkpoint without copies: %v", err)
	}
	withIgnored := checkpointFor(t, relu, nil, func(ts []safetensors.Tensor) []safetensors.Tensor {
		return append(ts, safetensors.FromFloat32("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight", []int{32, 4}, make([]float32, 128)))
	})
	if err := relu.CheckWeights(withIgnored); err != nil {
		t.Errorf("checkpoint with the ignored cross-attention bias: %v", err)
	}

	cases := []struct {
		name string
		cfg  Config
		file *safetensors.File
		want []string
	}{
		{"untied needs lm_head", g, checkpointFor(t, g, map[string]bool{"lm_head.weight": true}, nil),
			[]string{`mem.safetensors: tensor "lm_head.weight" is missing (gated.json)`}},
		{"missing tensors", g, checkpointFor(t, g, map[string]bool{"shared.weight": true, "decoder.final_layer_norm.weight": true}, nil),
			[]string{`tensor "shared.weight" is missing`, `tensor "decoder.final_layer_norm.weight" is missing`}},
		{"wrong shape", g, checkpointFor(t, g, nil, func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == "encoder.block.1.layer.0.SelfAttention.q.weight" {
					ts[i] = safetensors.FromFloat32(ts[i].Name, []int{16, 16}, make([]float32, 256))
				}
			}
			return ts
		}), []string{`mem.safetensors: tensor "encoder.block.1.layer.0.SelfAttention.q.weight" has shape [16 16], gated.json needs [12 16]`}},
		{"integer dtype", g, checkpointFor(t, g, nil, func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == "encoder.final_layer_norm.weight" {
					ts[i] = safetensors.FromInt64(ts[i].Name, []int{16}, make([]int64, 16))
				}
			}
			return ts
		}), []string{`tensor "encoder.final_layer_norm.weight" has dtype I64`}},
		{"relu weights for a gated config", g, checkpointFor(t, relu, nil, nil),
			[]string{`"shared.weight" has shape [100 32], gated.json needs [50 16]`, `"encoder.block.0.layer.1.DenseReluDense.wi_0.weight" is missing`, `"encoder.block.0.layer.1.DenseReluDense.wi.weight" is not part of the model`}},
		{"extra block", g, checkpointFor(t, g, nil, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.FromFloat32("decoder.block.1.layer.0.layer_norm.weight", []int{16}, make([]float32, 16)))
		}), []string{`"decoder.block.1.layer.0.layer_norm.weight" is not part of the model described by gated.json`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.CheckWeights(c.file)
			if err == nil {
				t.Fatal("no error")
			}
			// One line: the first problem and how many more there are.
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.want[0]) {
				t.Errorf("message %q is not one line naming %q", err, c.want[0])
			}
			var mm *WeightsMismatch
			if !errors.As(err, &mm) {
				t.Fatalf("error %T is not a *WeightsMismatch", err)
			}
			if len(mm.Problems) > 1 && !strings.Contains(err.Error(), fmt.Sprintf("and %d more", len(mm.Problems)-1)) {
				t.Errorf("message %q does not count the other %d problems", err, len(mm.Problems)-1)
			}
			all := errors.Join(mm.Problems...).Error()
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems do not contain %q:\n%v", w, all)
				}
			}
			for _, e := range mm.Problems {
				if !strings.Contains(e.Error(), "mem.safetensors") || !strings.Contains(e.Error(), "tensor \"") {
					t.Errorf("problem %q does not name the file and the tensor", e)
				}
			}
		})
	}
}

func TestConfigValidateNamesSource(t *testing.T) {
	c, _ := NamedConfig("t5-small")
	c.DModel = 0
	c.DenseActFn = "swish"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "named configuration t5-small: d_model") || !strings.Contains(err.Error(), "dense_act_fn") {
		t.Errorf("err = %v", err)
	}
}

// TestLoadConfigBounded: a config.json that is a link to /dev/zero, or one
// larger than MaxConfigSize, is an error naming the file, not a read that
// grows until memory runs out.
func TestLoadConfigBounded(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, ConfigFileName)
	if err := os.Symlink("/dev/zero", link); err != nil {
		testenv.Missing(t, "cannot link to /dev/zero: "+err.Error())
	}
	for _, p := range []string{dir, link} {
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("LoadConfig(%s) of a link to /dev/zero: %v", p, err)
		}
	}
	big := filepath.Join(t.TempDir(), ConfigFileName)
	if err := os.WriteFile(big, append([]byte(`{"d_model": 512}`), bytes.Repeat([]byte(" "), MaxConfigSize)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "larger than the 1 MiB allowed for a config.json") {
		t.Errorf("large config.json: %v", err)
	}
}

// NotV10 names what sets a configuration apart from the original T5
// v1.0 checkpoints: nothing for t5-large and the ReLU fixtures.
func TestConfigNotV10(t *testing.T) {
	for _, c := range []struct {
		dir  string
		want int
	}{{"t5-tiny-relu", 0}, {"t5-tiny-gated", 2}, {"t5-tiny-relu-untied", 1}, {"t5-tiny-gated-relu", 1}, {"t5-tiny-gelu-new", 2}} {
		cfg, err := LoadConfig(filepath.Join("..", "testdata", c.dir))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.NotV10(); len(got) != c.want {
			t.Errorf("%s: %q, want %d differences", c.dir, got, c.want)
		}
	}
	large, err := NamedConfig("t5-large")
	if err != nil || len(large.NotV10()) != 0 {
		t.Errorf("t5-large: %v (%v)", large.NotV10(), err)
	}
}
