package t5

import (
	"testing"

	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// FuzzParseConfig checks that no config.json makes ParseConfig panic, and
// that what it accepts is valid and describes weights of positive sizes.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 100, "feed_forward_proj": "relu"}`))
	f.Add([]byte(`{"model_type": "t5", "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "num_decoder_layers": 1}`))
	f.Add([]byte(`{"feed_forward_proj": "gated-relu", "dense_act_fn": "relu", "is_gated_act": true, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 5}`))
	f.Add([]byte(`{"d_model": null, "layer_norm_epsilon": 1e-300, "dropout_rate": 0.5, "eos_token_id": 99, "pad_token_id": 0, "decoder_start_token_id": 3}`))
	f.Add([]byte(`[1]`))
	f.Add([]byte(`{"num_heads": 16777216, "d_kv": 16777216}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.json", data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a configuration that Validate refuses: %v", err)
		}
		if c.NumLayers+c.NumDecoderLayers > 16 {
			return // Weights lists every block; keep each execution fast
		}
		for _, w := range c.Weights() {
			for _, d := range w.Shape {
				if d <= 0 {
					t.Fatalf("%s has shape %v", w.Name, w.Shape)
				}
			}
		}
	})
}

// FuzzCaseFile checks that no case file makes its reader panic: every
// tensor read as floats and as integers, the batch checked against a
// vocabulary, expected.greedy_ids checked, and every float tensor compared
// with itself.
func FuzzCaseFile(f *testing.F) {
	enc := func(ts ...safetensors.Tensor) []byte { return encodeCase(f, ts) }
	ids := func(name string, shape ...int) safetensors.Tensor {
		v := make([]int64, numel(shape))
		for i := range v {
			v[i] = int64(i % 7)
		}
		return safetensors.FromInt64(name, shape, v)
	}
	f.Add(uint16(100), enc(
		ids("input_ids", 2, 3), safetensors.FromInt64("attention_mask", []int{2, 3}, []int64{1, 1, 1, 1, 1, 0}),
		ids("labels", 2, 2), ids("decoder_input_ids", 2, 2),
		safetensors.FromFloat32("prompt", []int{1, 4}, []float32{1, 2, 3, 4}),
		safetensors.FromFloat32("expected.loss", []int{1}, []float32{2.5}),
		ids("expected.greedy_ids", 2, 3)))
	f.Add(uint16(5), enc(ids("input_ids", 1, 1), ids("attention_mask", 1, 1), ids("labels", 1, 1), ids("decoder_input_ids", 1, 1)))
	f.Add(uint16(0), enc(safetensors.FromFloat32("expected.logits", []int{2, 0, 3}, nil), ids("expected.greedy_ids", 4)))
	f.Add(uint16(1), []byte{})
	f.Fuzz(func(t *testing.T, vocab uint16, data []byte) {
		c, err := ParseCase("fuzz.safetensors", data)
		if err != nil {
			return
		}
		defer c.Close()
		for _, name := range c.Names() {
			if v, shape, err := c.Floats(name); err == nil {
				if numel(shape) != len(v) {
					t.Fatalf("%s: %d values for shape %v", name, len(v), shape)
				}
				if r, err := c.CompareShape(name, v, shape, false); err != nil || !r.OK && r.MaxErr == 0 {
					t.Fatalf("%s compared with itself: %v, %v", name, r, err)
				}
				c.CompareShape(name, v, append(append([]int(nil), shape...), 1), true)
			}
			if v, shape, err := c.Ints(name); err == nil && numel(shape) != len(v) {
				t.Fatalf("%s: %d values for shape %v", name, len(v), shape)
			}
		}
		h, err := c.hostBatch(int(vocab))
		if err != nil {
			return
		}
		rows := h.idShape[0]
		if len(h.ids) != rows*h.idShape[1] || len(h.mask) != len(h.ids) || len(h.labels) != rows*h.labelShape[1] || len(h.dec) != len(h.labels) {
			t.Fatalf("batch sizes do not fit its shapes %v, %v", h.idShape, h.labelShape)
		}
		if want, shape, ok, err := c.greedyIDs(rows); err == nil && ok && len(want) != shape[0]*shape[1] {
			t.Fatalf("greedy ids: %d for shape %v", len(want), shape)
		}
	})
}
