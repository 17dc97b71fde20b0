package t5

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// HFJSON returns the configuration as an HF config.json
// (T5ForConditionalGeneration), which LoadConfig and HF's loaders read.
func (c *Config) HFJSON() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := map[string]any{
		"architectures":                   []string{"T5ForConditionalGeneration"},
		"model_type":                      "t5",
		"is_encoder_decoder":              true,
		"d_model":                         c.DModel,
		"d_kv":                            c.DKV,
		"d_ff":                            c.DFF,
		"num_layers":                      c.NumLayers,
		"num_decoder_layers":              c.NumDecoderLayers,
		"num_heads":                       c.NumHeads,
		"vocab_size":                      c.VocabSize,
		"relative_attention_num_buckets":  c.RelativeAttentionNumBuckets,
		"relative_attention_max_distance": c.RelativeAttentionMaxDistance,
		"layer_norm_epsilon":              c.LayerNormEpsilon,
		"dropout_rate":                    c.DropoutRate,
		"feed_forward_proj":               c.FeedForwardProj,
		"dense_act_fn":                    c.DenseActFn,
		"is_gated_act":                    c.IsGatedAct,
		"tie_word_embeddings":             c.TieWordEmbeddings,
		"decoder_start_token_id":          c.DecoderStartTokenID,
		"eos_token_id":                    c.EOSTokenID,
		"pad_token_id":                    c.PadTokenID,
		"initializer_factor":              1.0,
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// InitWeights returns freshly initialized weights for cfg, as HF's
// T5PreTrainedModel._init_weights draws them (initializer_factor 1): the
// embeddings N(0, 1); q N(0, (d_model·d_kv)^-½), k and v N(0, d_model^-½),
// o N(0, (heads·d_kv)^-½); the relative-position tables N(0, d_model^-½);
// wi N(0, d_model^-½), wo N(0, d_ff^-½); norms 1. The result maps HF names
// to values, without the optional tied copies.
func InitWeights(cfg Config, seed uint64) (map[string][]float32, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x1417))
	d, dkv, inner, dff := float64(cfg.DModel), float64(cfg.DKV), float64(cfg.InnerDim()), float64(cfg.DFF)
	out := map[string][]float32{}
	for _, w := range cfg.Weights() {
		if w.Optional {
			continue
		}
		n := 1
		for _, s := range w.Shape {
			n *= s
		}
		v := make([]float32, n)
		std := 0.0
		leaf := w.Name[strings.LastIndex(w.Name[:len(w.Name)-len(".weight")], ".")+1 : len(w.Name)-len(".weight")]
		switch {
		case len(w.Shape) == 1:
			for i := range v {
				v[i] = 1
			}
		case w.Name == "shared.weight" || w.Name == "lm_head.weight":
			std = 1
		case leaf == "q":
			std = 1 / math.Sqrt(d*dkv)
		case leaf == "k" || leaf == "v" || leaf == "relative_attention_bias" || strings.HasPrefix(leaf, "wi"):
			std = 1 / math.Sqrt(d)
		case leaf == "o":
			std = 1 / math.Sqrt(inner)
		case leaf == "wo":
			std = 1 / math.Sqrt(dff)
		default:
			return nil, fmt.Errorf("t5: no initialization for weight %s", w.Name)
		}
		if std > 0 {
			for i := range v {
				v[i] = float32(std * rng.NormFloat64())
			}
		}
		out[w.Name] = v
	}
	return out, nil
}

// WriteModel writes an HF model folder: config.json and model.safetensors
// holding weights (HF names; every weight cfg needs, tied copies left out),
// each file atomically. tokenizerDir, when not empty, is a folder whose
// tokenizer files (tokenizer.json, spiece.model, tokenizer_config.json,
// special_tokens_map.json, as far as it has them) are copied along.
func WriteModel(dir string, cfg Config, weights map[string][]float32, tokenizerDir string) error {
	cj, err := cfg.HFJSON()
	if err != nil {
		return err
	}
	var ts []safetensors.Tensor
	for _, w := range cfg.Weights() {
		v, ok := weights[w.Name]
		if !ok {
			if w.Optional {
				continue
			}
			return fmt.Errorf("t5: writing %s: weight %s is missing", dir, w.Name)
		}
		n := 1
		for _, s := range w.Shape {
			n *= s
		}
		if len(v) != n {
			return fmt.Errorf("t5: writing %s: weight %s has %d values, shape %v needs %d", dir, w.Name, len(v), w.Shape, n)
		}
		ts = append(ts, safetensors.FromFloat32(w.Name, w.Shape, v))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".model.safetensors.writing")
	if err := safetensors.Write(tmp, ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "model.safetensors")); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ConfigFileName), cj); err != nil {
		return err
	}
	if tokenizerDir == "" {
		return nil
	}
	copied := 0
	for _, name := range []string{"tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := limitio.ReadFile(filepath.Join(tokenizerDir, name), 64<<20, "a tokenizer file")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), b); err != nil {
			return err
		}
		copied++
	}
	if copied == 0 {
		return fmt.Errorf("t5: %s holds no tokenizer files", tokenizerDir)
	}
	return nil
}
