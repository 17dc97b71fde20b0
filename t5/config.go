package t5

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// Config is a T5 architecture, with the fields and defaults of HuggingFace's
// T5Config.
type Config struct {
	DModel           int // hidden size
	DKV              int // size of one attention head
	DFF              int // inner size of the feed-forward block
	NumLayers        int // encoder blocks
	NumDecoderLayers int // decoder blocks
	NumHeads         int
	VocabSize        int // rows of the embedding (T5: 32128)

	RelativeAttentionNumBuckets  int
	RelativeAttentionMaxDistance int
	LayerNormEpsilon             float64
	DropoutRate                  float64

	// FeedForwardProj is "relu" (T5 v1.0), "gated-gelu" (v1.1, flan), or
	// another "[gated-]ACT" spelling. DenseActFn and IsGatedAct are derived
	// from it as HF does: "gated-gelu" means gelu_new (the tanh
	// approximation) with a gated feed-forward (wi_0, wi_1); "gelu" means the
	// exact erf GELU, not gated.
	FeedForwardProj string
	DenseActFn      string // "relu", "gelu" or "gelu_new"
	IsGatedAct      bool

	// TieWordEmbeddings: the LM head is the shared embedding and the decoder
	// output is scaled by DModel^-0.5 before it; otherwise lm_head.weight is
	// separate and nothing is scaled.
	TieWordEmbeddings bool

	DecoderStartTokenID int
	EOSTokenID          int
	PadTokenID          int

	// Source names where the configuration came from (a config.json path or
	// a named configuration), for messages.
	Source string
}

// NotV10 lists how the architecture differs from the original T5 (v1.0)
// checkpoints (t5-small … t5-11b): a gated or non-ReLU feed-forward (v1.1,
// LM-adapted and FLAN-T5 use gated-gelu) and an LM head of its own (v1.1
// unties it). Empty for a v1.0 architecture.
func (c *Config) NotV10() []string {
	var out []string
	if c.IsGatedAct || c.DenseActFn != "relu" {
		out = append(out, fmt.Sprintf("feed-forward %q instead of relu", c.FeedForwardProj))
	}
	if !c.TieWordEmbeddings {
		out = append(out, "an LM head of its own instead of the tied embedding")
	}
	return out
}

// InnerDim returns NumHeads·DKV, the width of the attention projections; it
// need not equal DModel.
func (c *Config) InnerDim() int { return c.NumHeads * c.DKV }

// ConfigFileName is the configuration file of an HF model folder.
const ConfigFileName = "config.json"

// MaxConfigSize bounds a config.json (HF's T5 configs are about 1 KB).
const MaxConfigSize = 1 << 20

// LoadConfig reads an HF T5 config.json; path is the file or the folder
// holding it. A file that is not a regular file, or is larger than
// MaxConfigSize, is an error naming it. The result is validated.
func LoadConfig(path string) (Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ConfigFileName)
	}
	data, err := limitio.ReadFile(path, MaxConfigSize, "a "+ConfigFileName)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(path, data)
}

// ParseConfig parses the JSON of an HF T5 config; source names it in
// messages. Fields that are absent or null take HF's defaults
// (num_decoder_layers defaults to num_layers). The result is validated.
func ParseConfig(source string, data []byte) (Config, error) {
	var raw struct {
		ModelType        *string  `json:"model_type"`
		DModel           *int     `json:"d_model"`
		DKV              *int     `json:"d_kv"`
		DFF              *int     `json:"d_ff"`
		NumLayers        *int     `json:"num_layers"`
		NumDecoderLayers *int     `json:"num_decoder_layers"`
		NumHeads         *int     `json:"num_heads"`
		VocabSize        *int     `json:"vocab_size"`
		Buckets          *int     `json:"relative_attention_num_buckets"`
		MaxDistance      *int     `json:"relative_attention_max_distance"`
		LayerNormEps     *float64 `json:"layer_norm_epsilon"`
		DropoutRate      *float64 `json:"dropout_rate"`
		FeedForwardProj  *string  `json:"feed_forward_proj"`
		DenseActFn       *string  `json:"dense_act_fn"`
		IsGatedAct       *bool    `json:"is_gated_act"`
		Tie              *bool    `json:"tie_word_embeddings"`
		DecoderStart     *int     `json:"decoder_start_token_id"`
		EOS              *int     `json:"eos_token_id"`
		Pad              *int     `json:"pad_token_id"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return Config{}, fmt.Errorf("%s: JSON %s where an object is expected", source, te.Value)
			}
			return Config{}, fmt.Errorf("%s: %s: JSON %s where %s is expected", source, te.Field, te.Value, te.Type)
		}
		return Config{}, fmt.Errorf("%s: %v", source, err)
	}
	if raw.ModelType != nil && *raw.ModelType != "t5" && *raw.ModelType != "mt5" {
		return Config{}, fmt.Errorf("%s: model_type %q is not t5", source, *raw.ModelType)
	}
	// HF T5Config defaults.
	c := Config{
		DModel: 512, DKV: 64, DFF: 2048, NumLayers: 6, NumHeads: 8, VocabSize: 32128,
		RelativeAttentionNumBuckets: 32, RelativeAttentionMaxDistance: 128,
		LayerNormEpsilon: 1e-6, DropoutRate: 0.1, FeedForwardProj: "relu",
		TieWordEmbeddings: true, DecoderStartTokenID: 0, EOSTokenID: 1, PadTokenID: 0,
		Source: source,
	}
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setInt(&c.DModel, raw.DModel)
	setInt(&c.DKV, raw.DKV)
	setInt(&c.DFF, raw.DFF)
	setInt(&c.NumLayers, raw.NumLayers)
	c.NumDecoderLayers = c.NumLayers
	setInt(&c.NumDecoderLayers, raw.NumDecoderLayers)
	setInt(&c.NumHeads, raw.NumHeads)
	setInt(&c.VocabSize, raw.VocabSize)
	setInt(&c.RelativeAttentionNumBuckets, raw.Buckets)
	setInt(&c.RelativeAttentionMaxDistance, raw.MaxDistance)
	setInt(&c.DecoderStartTokenID, raw.DecoderStart)
	setInt(&c.EOSTokenID, raw.EOS)
	setInt(&c.PadTokenID, raw.Pad)
	if raw.LayerNormEps != nil {
		c.LayerNormEpsilon = *raw.LayerNormEps
	}
	if raw.DropoutRate != nil {
		c.DropoutRate = *raw.DropoutRate
	}
	if raw.Tie != nil {
		c.TieWordEmbeddings = *raw.Tie
	}
	if raw.FeedForwardProj != nil {
		c.FeedForwardProj = *raw.FeedForwardProj
	}
	act, gated, err := parseFeedForwardProj(c.FeedForwardProj)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %v", source, err)
	}
	c.DenseActFn, c.IsGatedAct = act, gated
	// HF lets explicit dense_act_fn / is_gated_act override the derived
	// values; a file where they disagree is contradictory, so refuse it.
	if raw.DenseActFn != nil && *raw.DenseActFn != act {
		return Config{}, fmt.Errorf("%s: dense_act_fn %q contradicts feed_forward_proj %q, which means %q", source, *raw.DenseActFn, c.FeedForwardProj, act)
	}
	if raw.IsGatedAct != nil && *raw.IsGatedAct != gated {
		return Config{}, fmt.Errorf("%s: is_gated_act %v contradicts feed_forward_proj %q", source, *raw.IsGatedAct, c.FeedForwardProj)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Activations of the feed-forward block that the model implements, by HF's
// ACT2FN names.
var supportedActs = map[string]bool{"relu": true, "gelu": true, "gelu_new": true}

// parseFeedForwardProj derives HF's dense_act_fn and is_gated_act.
func parseFeedForwardProj(ffp string) (act string, gated bool, err error) {
	parts := strings.Split(ffp, "-")
	act = parts[len(parts)-1]
	gated = parts[0] == "gated"
	if len(parts) > 1 && !gated || len(parts) > 2 || act == "" {
		return "", false, fmt.Errorf("feed_forward_proj %q is not of the form \"ACT\" or \"gated-ACT\"", ffp)
	}
	if ffp == "gated-gelu" {
		act = "gelu_new" // HF's backward-compatibility rule
	}
	if !supportedActs[act] {
		return "", false, fmt.Errorf("feed_forward_proj %q: activation %q is not supported (relu, gelu, gelu_new)", ffp, act)
	}
	return act, gated, nil
}

// Limits beyond which a configuration is taken for a mistake; they also keep
// products of sizes far from integer overflow.
const (
	maxDim    = 1 << 24
	maxLayers = 1 << 12
)

// Validate reports every nonsensical field, each naming the field and the
// source.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s %s", c.Source, field, fmt.Sprintf(format, args...)))
	}
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{
		{"d_model", c.DModel, maxDim},
		{"d_kv", c.DKV, maxDim},
		{"d_ff", c.DFF, maxDim},
		{"num_heads", c.NumHeads, maxDim},
		{"vocab_size", c.VocabSize, maxDim},
		{"num_layers", c.NumLayers, maxLayers},
		{"num_decoder_layers", c.NumDecoderLayers, maxLayers},
	} {
		if f.v <= 0 {
			bad(f.name, "must be positive, got %d", f.v)
		} else if f.v > f.max {
			bad(f.name, "is %d, implausibly large (limit %d)", f.v, f.max)
		}
	}
	if c.NumHeads > 0 && c.DKV > 0 && c.NumHeads*c.DKV > maxDim {
		bad("num_heads*d_kv", "is %d, implausibly large (limit %d)", c.NumHeads*c.DKV, maxDim)
	}
	// T5 buckets relative positions: half the buckets per direction in the
	// encoder, half of those exact, the rest logarithmic up to max_distance.
	// That needs at least one exact bucket per direction and a max_distance
	// beyond the exact range of the causal decoder (num_buckets/2).
	nb, md := c.RelativeAttentionNumBuckets, c.RelativeAttentionMaxDistance
	if nb < 4 || nb > maxDim {
		bad("relative_attention_num_buckets", "must be between 4 and %d, got %d", maxDim, nb)
	}
	if md <= nb/2 || md > maxDim {
		bad("relative_attention_max_distance", "must exceed relative_attention_num_buckets/2 = %d (and be at most %d), got %d", nb/2, maxDim, md)
	}
	if !(c.LayerNormEpsilon > 0) || math.IsInf(c.LayerNormEpsilon, 0) || c.LayerNormEpsilon >= 1 {
		bad("layer_norm_epsilon", "must be in (0, 1), got %g", c.LayerNormEpsilon)
	}
	if !(c.DropoutRate >= 0 && c.DropoutRate < 1) {
		bad("dropout_rate", "must be in [0, 1), got %g", c.DropoutRate)
	}
	if !supportedActs[c.DenseActFn] {
		bad("dense_act_fn", "%q is not supported (relu, gelu, gelu_new)", c.DenseActFn)
	}
	if c.FeedForwardProj != "" {
		if act, gated, err := parseFeedForwardProj(c.FeedForwardProj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", c.Source, err))
		} else if act != c.DenseActFn || gated != c.IsGatedAct {
			bad("feed_forward_proj", "%q means %s (gated %v), not %s (gated %v)", c.FeedForwardProj, act, gated, c.DenseActFn, c.IsGatedAct)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"decoder_start_token_id", c.DecoderStartTokenID},
		{"eos_token_id", c.EOSTokenID},
		{"pad_token_id", c.PadTokenID},
	} {
		if f.v < 0 || c.VocabSize > 0 && f.v >= c.VocabSize {
			bad(f.name, "%d is not an id below vocab_size %d", f.v, c.VocabSize)
		}
	}
	return errors.Join(errs...)
}

// namedConfigs are the published T5 checkpoints, by architecture: v1.0
// (relu, tied) and v1.1 / LM-adapted / flan (gated-gelu, untied).
var namedConfigs = map[string]struct {
	dModel, dFF, dKV, heads, layers int
	v11                             bool
}{
	"t5-small":      {512, 2048, 64, 8, 6, false},
	"t5-base":       {768, 3072, 64, 12, 12, false},
	"t5-large":      {1024, 4096, 64, 16, 24, false},
	"t5-v1_1-small": {512, 1024, 64, 6, 8, true},
	"t5-v1_1-base":  {768, 2048, 64, 12, 12, true},
	"t5-v1_1-large": {1024, 2816, 64, 16, 24, true},
}

// namedAliases maps hub names to the architectures above.
var namedAliases = map[string]string{
	"google-t5/t5-small":       "t5-small",
	"google-t5/t5-base":        "t5-base",
	"google-t5/t5-large":       "t5-large",
	"google/t5-v1_1-small":     "t5-v1_1-small",
	"google/t5-v1_1-base":      "t5-v1_1-base",
	"google/t5-v1_1-large":     "t5-v1_1-large",
	"google/t5-small-lm-adapt": "t5-v1_1-small",
	"google/t5-base-lm-adapt":  "t5-v1_1-base",
	"google/t5-large-lm-adapt": "t5-v1_1-large",
	"google/flan-t5-small":     "t5-v1_1-small",
	"google/flan-t5-base":      "t5-v1_1-base",
	"google/flan-t5-large":     "t5-v1_1-large",
}

// NamedConfigs returns the names NamedConfig accepts, sorted.
func NamedConfigs() []string {
	var names []string
	for n := range namedConfigs {
		names = append(names, n)
	}
	for n := range namedAliases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NamedConfig returns the architecture of a published T5 checkpoint:
// t5-small, t5-base, t5-large (v1.0: relu, tied embeddings) or
// t5-v1_1-small, -base, -large (gated-gelu, untied), also under their hub
// names (google-t5/t5-base, google/t5-v1_1-large, google/t5-large-lm-adapt,
// google/flan-t5-large, ...). All use vocab_size 32128.
func NamedConfig(name string) (Config, error) {
	key := name
	if a, ok := namedAliases[name]; ok {
		key = a
	}
	n, ok := namedConfigs[key]
	if !ok {
		return Config{}, fmt.Errorf("unknown T5 configuration %q; known: %s", name, strings.Join(NamedConfigs(), ", "))
	}
	c := Config{
		DModel: n.dModel, DKV: n.dKV, DFF: n.dFF, NumLayers: n.layers, NumDecoderLayers: n.layers,
		NumHeads: n.heads, VocabSize: 32128,
		RelativeAttentionNumBuckets: 32, RelativeAttentionMaxDistance: 128,
		LayerNormEpsilon: 1e-6, DropoutRate: 0.1,
		FeedForwardProj: "relu", DenseActFn: "relu", TieWordEmbeddings: true,
		DecoderStartTokenID: 0, EOSTokenID: 1, PadTokenID: 0,
		Source: "named configuration " + name,
	}
	if n.v11 {
		c.FeedForwardProj, c.DenseActFn, c.IsGatedAct, c.TieWordEmbeddings = "gated-gelu", "gelu_new", true, false
	}
	return c, c.Validate()
}

// WeightSpec is one tensor an HF T5 checkpoint holds for a configuration.
type WeightSpec struct {
	Name  string
	Shape []int
	// Optional marks tied copies of shared.weight, which checkpoints may
	// or may not hold: encoder.embed_tokens.weight,
	// decoder.embed_tokens.weight, and lm_head.weight when the embeddings
	// are tied.
	Optional bool
}

// Weights lists the tensors of an HF T5ForConditionalGeneration checkpoint
// for c, with HF's names and shapes ([out, in] for linear layers).
func (c *Config) Weights() []WeightSpec {
	d, inner, v := c.DModel, c.InnerDim(), c.VocabSize
	ws := []WeightSpec{
		{Name: "shared.weight", Shape: []int{v, d}},
		{Name: "encoder.embed_tokens.weight", Shape: []int{v, d}, Optional: true},
		{Name: "decoder.embed_tokens.weight", Shape: []int{v, d}, Optional: true},
	}
	add := func(name string, shape ...int) { ws = append(ws, WeightSpec{Name: name, Shape: shape}) }
	attention := func(prefix string, bias bool) {
		for _, p := range []string{"q", "k", "v"} {
			add(prefix+"."+p+".weight", inner, d)
		}
		add(prefix+".o.weight", d, inner)
		if bias {
			add(prefix+".relative_attention_bias.weight", c.RelativeAttentionNumBuckets, c.NumHeads)
		}
	}
	ffn := func(prefix string) {
		if c.IsGatedAct {
			add(prefix+".wi_0.weight", c.DFF, d)
			add(prefix+".wi_1.weight", c.DFF, d)
		} else {
			add(prefix+".wi.weight", c.DFF, d)
		}
		add(prefix+".wo.weight", d, c.DFF)
	}
	for i := 0; i < c.NumLayers; i++ {
		b := "encoder.block." + strconv.Itoa(i) + ".layer."
		attention(b+"0.SelfAttention", i == 0)
		add(b+"0.layer_norm.weight", d)
		ffn(b + "1.DenseReluDense")
		add(b+"1.layer_norm.weight", d)
	}
	add("encoder.final_layer_norm.weight", d)
	for i := 0; i < c.NumDecoderLayers; i++ {
		b := "decoder.block." + strconv.Itoa(i) + ".layer."
		attention(b+"0.SelfAttention", i == 0)
		add(b+"0.layer_norm.weight", d)
		attention(b+"1.EncDecAttention", false)
		add(b+"1.layer_norm.weight", d)
		ffn(b + "2.DenseReluDense")
		add(b+"2.layer_norm.weight", d)
	}
	add("decoder.final_layer_norm.weight", d)
	ws = append(ws, WeightSpec{Name: "lm_head.weight", Shape: []int{v, d}, Optional: c.TieWordEmbeddings})
	return ws
}

// ignoredWeights are tensors that some published checkpoints hold but the
// model does not use; HF ignores them on load too.
var ignoredWeights = map[string]bool{
	"decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight": true,
}

// TensorSource is a set of named tensors: a safetensors.File or
// safetensors.Checkpoint.
type TensorSource interface {
	Path() string
	Names() []string
	Tensor(name string) (*safetensors.Tensor, bool)
}

// CheckWeights compares the tensors of a checkpoint with c and reports every
// problem, each naming the file and the tensor: a missing tensor, a wrong
// shape, a non-floating dtype, or a tensor that c has no place for (such as
// wi_0 in a checkpoint for a relu configuration, or a block beyond
// num_layers). It returns nil when the checkpoint fits, and otherwise a
// *WeightsMismatch.
func (c *Config) CheckWeights(src TensorSource) error {
	var errs []error
	expected := map[string]bool{}
	for _, w := range c.Weights() {
		expected[w.Name] = true
		t, ok := src.Tensor(w.Name)
		if !ok {
			if !w.Optional {
				errs = append(errs, fmt.Errorf("%s: tensor %q is missing (%s)", src.Path(), w.Name, c.Source))
			}
			continue
		}
		if !sameShape(t.Shape, w.Shape) {
			errs = append(errs, fmt.Errorf("%s: tensor %q has shape %v, %s needs %v", fileOf(src, t), w.Name, t.Shape, c.Source, w.Shape))
		}
		if !t.DType.IsFloat() {
			errs = append(errs, fmt.Errorf("%s: tensor %q has dtype %s, not a floating type", fileOf(src, t), w.Name, t.DType))
		}
	}
	for _, name := range src.Names() {
		if !expected[name] && !ignoredWeights[name] {
			t, _ := src.Tensor(name)
			errs = append(errs, fmt.Errorf("%s: tensor %q is not part of the model described by %s", fileOf(src, t), name, c.Source))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &WeightsMismatch{Problems: errs}
}

// WeightsMismatch is every problem CheckWeights found; its message is the
// first problem and the count of the others, on one line.
type WeightsMismatch struct {
	Problems []error
}

func (w *WeightsMismatch) Error() string {
	if len(w.Problems) == 1 {
		return w.Problems[0].Error()
	}
	return fmt.Sprintf("%v (and %d more problems with the checkpoint's tensors)", w.Problems[0], len(w.Problems)-1)
}

// Unwrap returns every problem.
func (w *WeightsMismatch) Unwrap() []error { return w.Problems }

// fileOf names the file holding t, falling back to the source's path.
func fileOf(src TensorSource, t *safetensors.Tensor) string {
	if t != nil && t.File() != "" {
		return t.File()
	}
	return src.Path()
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
