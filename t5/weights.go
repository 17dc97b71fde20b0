package t5

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/kernels"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// Attention is one attention sublayer's projections (HF layout: [out, in]).
type Attention struct {
	Q, K, V *autograd.Tensor // (inner, d_model), inner = heads·d_kv
	O       *autograd.Tensor // (d_model, inner)
}

// FeedForward is one feed-forward sublayer: Wi (relu, v1.0) or Wi0 and Wi1
// (gated, v1.1), then Wo.
type FeedForward struct {
	Wi, Wi0, Wi1 *autograd.Tensor // (d_ff, d_model)
	Wo           *autograd.Tensor // (d_model, d_ff)
}

// Block is one encoder or decoder block.
type Block struct {
	SelfNorm  *autograd.Tensor // (d_model,)
	Self      Attention
	CrossNorm *autograd.Tensor // decoder only
	Cross     *Attention       // decoder only
	FFNorm    *autograd.Tensor
	FF        FeedForward
}

// Stack is the encoder or the decoder.
type Stack struct {
	Blocks    []Block
	FinalNorm *autograd.Tensor // (d_model,)
	// RelBias is block 0's relative_attention_bias.weight, (buckets, heads),
	// shared by all blocks of the stack.
	RelBias *autograd.Tensor
	decoder bool
}

// Model is a T5ForConditionalGeneration on the device.
type Model struct {
	Config  Config
	Shared  *autograd.Tensor // (vocab, d_model), the input embedding
	LMHead  *autograd.Tensor // (vocab, d_model); Shared itself when tied
	Encoder Stack
	Decoder Stack

	act    kernels.Activation // of the feed-forward blocks
	opts   LoadOptions
	e      *autograd.Engine
	params []*autograd.Tensor // every distinct weight, in checkpoint order
	names  map[string]*autograd.Tensor

	// Dropout: training turns it on; seed is the device-side step counter.
	training bool
	seed     *autograd.Tensor
	site     uint32
}

// LoadOptions choose how a model's weights are stored on the device.
type LoadOptions struct {
	// Weights is the storage type of the 2-D weights: the attention and
	// feed-forward projections and the shared embedding (with the LM head,
	// tied or not). autograd.F32, the zero value, stores them in fp32, as
	// every other tensor; autograd.BF16 or autograd.F16 keep them in 16 bits
	// (half the memory and bandwidth), rounded to nearest, ties to even,
	// from wider checkpoint values. The kernels that read them widen them to
	// fp32 and accumulate in fp32. A model with 16-bit weights is frozen
	// (SetTrainable(true) is an error): prompt tuning and evaluation only.
	// The RMS norms and the relative position tables stay fp32.
	Weights autograd.DType
}

// ParseWeights reads the storage type of --weights: f32, bf16 or f16.
func ParseWeights(s string) (autograd.DType, error) {
	switch s {
	case "f32":
		return autograd.F32, nil
	case "bf16":
		return autograd.BF16, nil
	case "f16":
		return autograd.F16, nil
	}
	return autograd.F32, fmt.Errorf("weights %q: accepted values are f32, bf16 and f16", s)
}

func (o LoadOptions) check() error {
	switch o.Weights {
	case autograd.F32, autograd.BF16, autograd.F16:
		return nil
	}
	return fmt.Errorf("t5: weights of type %v: accepted are f32, bf16 and f16", o.Weights)
}

// Load reads an HF model folder (config.json and model.safetensors, or a
// sharded checkpoint with model.safetensors.index.json) onto the engine's
// device. Tensors in F32, F16 or BF16 are converted to fp32 (LoadWith can
// keep the 2-D weights in 16 bits). The weights are frozen; see
// SetTrainable. Every problem with the checkpoint is reported with the file
// and tensor it concerns.
func Load(e *autograd.Engine, dir string) (*Model, error) {
	return LoadWith(e, dir, LoadOptions{})
}

// LoadWith is Load with the storage of the weights chosen by o.
func LoadWith(e *autograd.Engine, dir string, o LoadOptions) (*Model, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	return FromCheckpointWith(e, cfg, ck, o)
}

// FromCheckpoint uploads the tensors of src for cfg, in fp32.
func FromCheckpoint(e *autograd.Engine, cfg Config, src TensorSource) (*Model, error) {
	return FromCheckpointWith(e, cfg, src, LoadOptions{})
}

// FromCheckpointWith uploads the tensors of src for cfg, stored as o says.
func FromCheckpointWith(e *autograd.Engine, cfg Config, src TensorSource, o LoadOptions) (*Model, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.CheckWeights(src); err != nil {
		return nil, err
	}
	m, err := newModel(e, cfg, o)
	if err != nil {
		return nil, err
	}
	// One host buffer, sized for the largest tensor, is reused for every
	// conversion: the mapped file is read once and nothing is held twice.
	maxN := 0
	for _, w := range cfg.Weights() {
		if n := numel(w.Shape); n > maxN {
			maxN = n
		}
	}
	host := make([]float32, maxN)
	err = m.build(func(name string, shape []int) (*autograd.Tensor, error) {
		t, ok := src.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q is missing", src.Path(), name)
		}
		buf := host[:numel(shape)]
		if err := t.ReadFloat32(buf); err != nil {
			return nil, err
		}
		if i, bad := firstNonFinite(buf); bad {
			return nil, fmt.Errorf("%s: tensor %q holds %v at index %d: the checkpoint is damaged or diverged", fileOf(src, t), name, buf[i], i)
		}
		return m.upload(name, buf, shape)
	})
	if err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

// NewRandom builds a model with random fp32 weights (for benchmarks and
// tests): linear layers ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norms 1,
// relative attention biases ~ N(0, 0.1).
func NewRandom(e *autograd.Engine, cfg Config, seed uint64) (*Model, error) {
	return NewRandomWith(e, cfg, seed, LoadOptions{})
}

// NewRandomWith is NewRandom with the storage of the weights chosen by o
// (the same random values, rounded).
func NewRandomWith(e *autograd.Engine, cfg Config, seed uint64, o LoadOptions) (*Model, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x75))
	m, err := newModel(e, cfg, o)
	if err != nil {
		return nil, err
	}
	err = m.build(func(name string, shape []int) (*autograd.Tensor, error) {
		v := make([]float32, numel(shape))
		switch {
		case len(shape) == 1:
			for i := range v {
				v[i] = 1
			}
		case name == "shared.weight" || name == "lm_head.weight":
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
		case isRelBias(name):
			for i := range v {
				v[i] = float32(0.1 * rng.NormFloat64())
			}
		default:
			s := 1 / math.Sqrt(float64(shape[1]))
			for i := range v {
				v[i] = float32(s * rng.NormFloat64())
			}
		}
		return m.upload(name, v, shape)
	})
	if err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

// ffnActivations maps the activations a configuration may name
// (Config.DenseActFn) to the kernels that compute them. HF's "gelu" (exact,
// with erf) has no kernel.
var ffnActivations = map[string]kernels.Activation{"relu": kernels.ReLU, "gelu_new": kernels.GELUNew}

func newModel(e *autograd.Engine, cfg Config, o LoadOptions) (*Model, error) {
	act, ok := ffnActivations[cfg.DenseActFn]
	if !ok {
		return nil, fmt.Errorf("%s: activation %q is not supported (relu and gelu_new are)", cfg.Source, cfg.DenseActFn)
	}
	if err := checkFits(e.Device(), cfg, o); err != nil {
		return nil, err
	}
	return &Model{Config: cfg, act: act, opts: o, e: e, names: map[string]*autograd.Tensor{}}, nil
}

// isRelBias reports a relative position table (kept in fp32).
func isRelBias(name string) bool { return strings.HasSuffix(name, "relative_attention_bias.weight") }

// storage is the type a weight is stored as: o.Weights for the 2-D
// projections and embeddings, fp32 for norms and relative position tables.
func (o LoadOptions) storage(name string, shape []int) autograd.DType {
	if len(shape) == 2 && !isRelBias(name) {
		return o.Weights
	}
	return autograd.F32
}

// checkFits refuses a configuration whose weights cannot be held by the
// device, before host buffers or device memory are allocated for them (a
// vocabulary of millions times a d_model of millions would otherwise end
// the process in the host's allocator).
func checkFits(d *gpu.Device, cfg Config, o LoadOptions) error {
	largest, heap := d.AllocLimits()
	var total int64
	for _, w := range cfg.Weights() {
		if w.Optional {
			continue // a tied copy of shared.weight, not held twice
		}
		n := int64(o.storage(w.Name, w.Shape).Size())
		for _, x := range w.Shape {
			n *= int64(x) // Validate bounds every size by 2^24: no overflow for 2-D weights
		}
		if largest > 0 && n > largest {
			return fmt.Errorf("%s: weight %s %v (%s) does not fit in one allocation on %s (at most %s)",
				cfg.Source, w.Name, w.Shape, gpu.FormatBytes(n), d, gpu.FormatBytes(largest))
		}
		if total += n; heap > 0 && total > heap {
			return fmt.Errorf("%s: the weights (more than %s) do not fit in the memory of %s (%s)",
				cfg.Source, gpu.FormatBytes(total), d, gpu.FormatBytes(heap))
		}
	}
	return nil
}

func (m *Model) upload(name string, v []float32, shape []int) (*autograd.Tensor, error) {
	t := m.e.Empty(m.opts.storage(name, shape), shape...).SetName(name)
	if err := m.e.Err(); err != nil {
		return nil, fmt.Errorf("uploading %s: %w", name, err)
	}
	if err := t.WriteFloat32(v); err != nil {
		t.Release()
		return nil, fmt.Errorf("uploading %s: %w", name, err)
	}
	m.params = append(m.params, t)
	m.names[name] = t
	return t, nil
}

// build creates every weight with get(name, shape) and wires the model.
func (m *Model) build(get func(name string, shape []int) (*autograd.Tensor, error)) error {
	c := &m.Config
	d, inner := c.DModel, c.InnerDim()
	var err error
	w := func(name string, shape ...int) *autograd.Tensor {
		if err != nil {
			return nil
		}
		var t *autograd.Tensor
		t, err = get(name, shape)
		return t
	}
	m.Shared = w("shared.weight", c.VocabSize, d)
	attention := func(prefix string) Attention {
		return Attention{
			Q: w(prefix+".q.weight", inner, d), K: w(prefix+".k.weight", inner, d),
			V: w(prefix+".v.weight", inner, d), O: w(prefix+".o.weight", d, inner),
		}
	}
	ffn := func(prefix string) FeedForward {
		f := FeedForward{}
		if c.IsGatedAct {
			f.Wi0 = w(prefix+".wi_0.weight", c.DFF, d)
			f.Wi1 = w(prefix+".wi_1.weight", c.DFF, d)
		} else {
			f.Wi = w(prefix+".wi.weight", c.DFF, d)
		}
		f.Wo = w(prefix+".wo.weight", d, c.DFF)
		return f
	}
	m.Encoder.Blocks = make([]Block, c.NumLayers)
	for i := range m.Encoder.Blocks {
		p := "encoder.block." + strconv.Itoa(i) + ".layer."
		b := &m.Encoder.Blocks[i]
		b.Self = attention(p + "0.SelfAttention")
		if i == 0 {
			m.Encoder.RelBias = w(p+"0.SelfAttention.relative_attention_bias.weight", c.RelativeAttentionNumBuckets, c.NumHeads)
		}
		b.SelfNorm = w(p+"0.layer_norm.weight", d)
		b.FF = ffn(p + "1.DenseReluDense")
		b.FFNorm = w(p+"1.layer_norm.weight", d)
	}
	m.Encoder.FinalNorm = w("encoder.final_layer_norm.weight", d)
	m.Decoder.decoder = true
	m.Decoder.Blocks = make([]Block, c.NumDecoderLayers)
	for i := range m.Decoder.Blocks {
		p := "decoder.block." + strconv.Itoa(i) + ".layer."
		b := &m.Decoder.Blocks[i]
		b.Self = attention(p + "0.SelfAttention")
		if i == 0 {
			m.Decoder.RelBias = w(p+"0.SelfAttention.relative_attention_bias.weight", c.RelativeAttentionNumBuckets, c.NumHeads)
		}
		b.SelfNorm = w(p+"0.layer_norm.weight", d)
		cross := attention(p + "1.EncDecAttention")
		b.Cross = &cross
		b.CrossNorm = w(p+"1.layer_norm.weight", d)
		b.FF = ffn(p + "2.DenseReluDense")
		b.FFNorm = w(p+"2.layer_norm.weight", d)
	}
	m.Decoder.FinalNorm = w("decoder.final_layer_norm.weight", d)
	if c.TieWordEmbeddings {
		m.LMHead = m.Shared
	} else {
		m.LMHead = w("lm_head.weight", c.VocabSize, d)
	}
	if err != nil {
		return err
	}
	m.seed = m.e.FromInt32([]int32{int32(0)}, 1)
	return m.e.Err()
}

// Parameters returns every distinct weight (the tied LM head once).
func (m *Model) Parameters() []*autograd.Tensor { return append([]*autograd.Tensor(nil), m.params...) }

// Parameter returns the weight with an HF name, or nil.
func (m *Model) Parameter(name string) *autograd.Tensor {
	if name == "lm_head.weight" && m.Config.TieWordEmbeddings {
		return m.Shared
	}
	if name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight" {
		return m.Shared
	}
	return m.names[name]
}

// SetTrainable marks every weight as trainable (full fine-tuning) or frozen
// (prompt tuning: no weight gradients are computed at all). Full-weight
// training needs fp32 weights: on a model whose weights are stored in 16
// bits (LoadOptions.Weights) SetTrainable(true) is an error and changes
// nothing.
func (m *Model) SetTrainable(on bool) error {
	if on && m.opts.Weights != autograd.F32 {
		return fmt.Errorf("t5: full-weight training needs f32 weights, but this model stores its projections and embedding as %v (load it with f32 weights)", m.opts.Weights)
	}
	for _, p := range m.params {
		p.SetRequiresGrad(on)
	}
	return nil
}

// WeightType is the storage type of the model's 2-D weights (see
// LoadOptions).
func (m *Model) WeightType() autograd.DType { return m.opts.Weights }

// SetTraining turns dropout on (training) or off (evaluation).
func (m *Model) SetTraining(on bool) { m.training = on }

// Training reports whether dropout is on.
func (m *Model) Training() bool { return m.training }

// SetDropoutSeed sets the dropout stream; each training forward pass
// advances it on the device.
func (m *Model) SetDropoutSeed(seed uint32) error {
	return m.seed.WriteInt32([]int32{int32(seed)})
}

// DropoutSeed reads the dropout stream's current value (waits for recorded
// work), so that a checkpoint can restore it with SetDropoutSeed.
func (m *Model) DropoutSeed() (uint32, error) {
	v, err := m.seed.Int32s()
	if err != nil {
		return 0, err
	}
	return uint32(v[0]), nil
}

// Engine is the autograd engine the model lives on.
func (m *Model) Engine() *autograd.Engine { return m.e }

// Release frees the weights.
func (m *Model) Release() {
	for _, p := range m.params {
		p.Release()
	}
	m.params = nil
	if m.seed != nil {
		m.seed.Release()
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// firstNonFinite returns the index of the first NaN or infinite value.
func firstNonFinite(v []float32) (int, bool) {
	for i, x := range v {
		if x != x || math.IsInf(float64(x), 0) {
			return i, true
		}
	}
	return 0, false
}
