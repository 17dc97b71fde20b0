package t5

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// encodeCase returns the bytes of a case file holding ts.
func encodeCase(t testing.TB, ts []safetensors.Tensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := safetensors.Encode(&b, ts, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCompareShape: an expected tensor with the right number of values but
// another shape than the engine's is an error naming the tensor and both
// shapes; Compare, which sees only the values, still accepts it.
func TestCompareShape(t *testing.T) {
	vals := []float32{1, 2, 3, 4, 5, 6}
	c, err := ParseCase("mem.safetensors", encodeCase(t, []safetensors.Tensor{
		safetensors.FromFloat32("expected.x", []int{2, 3}, vals),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.CompareShape("expected.x", vals, []int{2, 3}, false); err != nil || !r.OK {
		t.Errorf("same shape: %v, %v", r, err)
	}
	_, err = c.CompareShape("expected.x", vals, []int{3, 2}, false)
	if err == nil || !strings.Contains(err.Error(), "mem.safetensors: expected.x has shape [2 3], the engine gave [3 2]") {
		t.Errorf("transposed shape: %v", err)
	}
	if _, err := c.CompareShape("expected.x", vals, []int{6}, false); err == nil {
		t.Error("flat shape: no error")
	}
	if _, err := c.CompareShape("expected.x", vals[:4], []int{2, 3}, false); err == nil {
		t.Error("too few values for the shape: no error")
	}
	if _, err := c.CompareShape("expected.y", vals, []int{2, 3}, false); err == nil || !strings.Contains(err.Error(), `"expected.y" is missing`) {
		t.Errorf("missing tensor: %v", err)
	}
	if r, err := c.Compare("expected.x", vals, false); err != nil || !r.OK {
		t.Errorf("Compare: %v, %v", r, err)
	}
}

// fixtureCaseTensors returns every tensor of the tiny fixture's case file.
func fixtureCaseTensors(t *testing.T) []safetensors.Tensor {
	t.Helper()
	c, err := OpenCase(filepath.Join(fixture, "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ts []safetensors.Tensor
	for _, name := range c.Names() {
		x, _ := c.Tensor(name)
		ts = append(ts, safetensors.Tensor{Name: name, DType: x.DType, Shape: append([]int(nil), x.Shape...), Data: append([]byte(nil), x.Data...)})
	}
	return ts
}

// writeEditedCase writes the fixture's case file after edit.
func writeEditedCase(t *testing.T, edit func(ts []safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "case.safetensors")
	if err := safetensors.Write(p, edit(fixtureCaseTensors(t)), nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCaseHostBatch checks the batch of a case without a device: shapes,
// ids, labels and the mask.
func TestCaseHostBatch(t *testing.T) {
	cfg, err := LoadConfig(fixture)
	if err != nil {
		t.Fatal(err)
	}
	set := func(name string, shape []int, v []int64) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == name {
					if v == nil {
						v = make([]int64, numel(shape))
					}
					ts[i] = safetensors.FromInt64(name, shape, v)
				}
			}
			return ts
		}
	}
	ids, shape := func() ([]int64, []int) {
		c, err := OpenCase(filepath.Join(fixture, "case.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		v, s, err := c.Ints("attention_mask")
		if err != nil {
			t.Fatal(err)
		}
		return v, s
	}()
	mask2 := append([]int64(nil), ids...)
	mask2[3] = 2
	cases := []struct {
		name string
		edit func([]safetensors.Tensor) []safetensors.Tensor
		want string
	}{
		{"mask of 2", set("attention_mask", shape, mask2), "attention_mask holds 2"},
		{"id beyond vocab", set("decoder_input_ids", []int{3, 4}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100}), "decoder_input_ids: token id 100 outside the vocabulary of 100"},
		{"zero rows", func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts = set("input_ids", []int{0, 70}, nil)(ts)
			ts = set("attention_mask", []int{0, 70}, nil)(ts)
			ts = set("labels", []int{0, 4}, nil)(ts)
			return set("decoder_input_ids", []int{0, 4}, nil)(ts)
		}, "at least one row"},
		{"labels rows", set("labels", []int{4, 3}, nil), "shapes do not fit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cf, err := OpenCase(writeEditedCase(t, c.edit))
			if err != nil {
				t.Fatal(err)
			}
			defer cf.Close()
			_, err = cf.hostBatch(cfg.VocabSize)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "case.safetensors") {
				t.Errorf("err = %v; want one naming the file and containing %q", err, c.want)
			}
		})
	}
}

// TestCheckCaseShapes: CheckCase refuses an expected tensor whose values
// fit but whose shape does not, and a malformed expected.greedy_ids, with
// errors instead of a pass or a panic.
func TestCheckCaseShapes(t *testing.T) {
	m := loadFixture(t)
	reshape := func(name string, shape ...int) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == name {
					ts[i].Shape = shape
				}
			}
			return ts
		}
	}
	cases := []struct {
		name string
		edit func([]safetensors.Tensor) []safetensors.Tensor
		want string
	}{
		{"logits batch and time swapped", reshape("expected.logits", 4, 3, 100), "expected.logits has shape [4 3 100], the engine gave [3 4 100]"},
		{"prompt gradient transposed", reshape("expected.grad.prompt", 32, 5), "expected.grad.prompt has shape [32 5], the engine gave [5 32]"},
		{"weight gradient flattened", reshape("expected.grad.shared.weight", 3200), "expected.grad.shared.weight has shape [3200]"},
		{"decoder hidden with a time axis", reshape("expected.decoder_last_hidden_first", 3, 1, 32), "expected.decoder_last_hidden_first has shape [3 1 32], the engine gave [3 32]"},
		{"greedy ids flat", reshape("expected.greedy_ids", 21), "expected.greedy_ids has shape [21]"},
		{"greedy ids of other rows", reshape("expected.greedy_ids", 7, 3), "expected.greedy_ids has shape [7 3], expected (3, steps+1)"},
		{"empty prompt", func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == "prompt" {
					ts[i] = safetensors.FromFloat32("prompt", []int{0, 32}, nil)
				}
			}
			return ts
		}, "prompt [0 32] must be (Lp, 32)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := CheckCase(m, writeEditedCase(t, c.edit))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v; want one containing %q", err, c.want)
			}
			// The model is left frozen and without gradients for the next.
			for _, w := range m.Parameters() {
				if w.Grad() != nil || w.RequiresGrad() {
					t.Fatalf("after the error, weight %s has a gradient or is trainable", w.Name())
				}
			}
		})
	}
}
