package t5

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

const fixtureFP16 = "../testdata/t5-tiny-fp16"

// loadWith loads dir with the weights stored as dt.
func loadWith(t *testing.T, dir string, dt ag.DType) *Model {
	t.Helper()
	e := ag.New(gputest.Device(t))
	m, err := LoadWith(e, dir, LoadOptions{Weights: dt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Release()
		if err := e.Err(); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return m
}

// The float16 checkpoint kept in float16 on the device matches its
// reference case (computed from exactly these float16 values) within the
// same tolerances as in fp32: every output, the prompt's gradient through
// the 16-bit projections, the gradients of the fp32 norms and relative
// position tables, greedy ids. The gradients of the 16-bit weights are
// skipped (they are frozen).
func TestReferenceCaseF16Weights(t *testing.T) {
	m := loadWith(t, fixtureFP16, ag.F16)
	for _, w := range m.Parameters() {
		want := ag.F32
		if len(w.Shape()) == 2 && !isRelBias(w.Name()) {
			want = ag.F16
		}
		if w.DType() != want {
			t.Errorf("%s is %v, want %v", w.Name(), w.DType(), want)
		}
	}
	if m.WeightType() != ag.F16 || m.Shared.Buffer().Size() < int64(2*m.Shared.Len()) || m.Shared.Buffer().Size() >= int64(4*m.Shared.Len()) {
		t.Errorf("shared.weight: %v in %d bytes", m.Shared, m.Shared.Buffer().Size())
	}
	res, err := CheckCase(m, filepath.Join(fixtureFP16, "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	compared, skipped := map[string]bool{}, map[string]bool{}
	for _, r := range res {
		t.Log(r)
		if !r.OK {
			t.Errorf("%s", r)
		}
		if r.Skipped != "" {
			skipped[r.Name] = true
		} else {
			compared[r.Name] = true
		}
	}
	for _, name := range []string{"expected.logits", "expected.loss", "expected.encoder_last_hidden_state", "expected.grad.prompt",
		"expected.grad.decoder.final_layer_norm.weight", "expected.grad.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
		"expected.greedy_ids"} {
		if !compared[name] {
			t.Errorf("%s not compared", name)
		}
	}
	for _, name := range []string{"expected.grad.shared.weight", "expected.grad.decoder.block.1.layer.2.DenseReluDense.wo.weight"} {
		if !skipped[name] {
			t.Errorf("%s not skipped", name)
		}
	}
	for _, w := range m.Parameters() {
		if w.RequiresGrad() || w.Grad() != nil {
			t.Errorf("%s left trainable or with a gradient", w.Name())
		}
	}
}

// bfloat16 keeps 8 significant bits instead of float16's 11: the outputs
// differ from the float16 reference by more than its 1e-4 tolerance, but
// stay close (within 5% of each tensor's scale), and CheckCase reports
// every error.
func TestCaseBF16Weights(t *testing.T) {
	m := loadWith(t, fixtureFP16, ag.BF16)
	res, err := CheckCase(m, filepath.Join(fixtureFP16, "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range res {
		t.Log(r)
		if r.Skipped != "" || r.Tol == 0 {
			continue
		}
		if !r.OK {
			failed++
		}
		if !(r.MaxErr <= 0.05*r.Scale) {
			t.Errorf("%s: error %.3g of a scale %.3g", r.Name, r.MaxErr, r.Scale)
		}
	}
	if failed == 0 {
		t.Errorf("bf16 weights matched the float16 reference within 1e-4: the weights were not rounded to bf16")
	}
}

// Full-weight training needs fp32 weights: SetTrainable(true) on a 16-bit
// model is an error that changes nothing; freezing is fine. Load still
// gives fp32 weights.
func TestSetTrainable16(t *testing.T) {
	m := loadWith(t, fixtureFP16, ag.BF16)
	if err := m.SetTrainable(true); err == nil || !strings.Contains(err.Error(), "bf16") || !strings.Contains(err.Error(), "f32 weights") {
		t.Errorf("SetTrainable(true): %v", err)
	}
	for _, w := range m.Parameters() {
		if w.RequiresGrad() {
			t.Fatalf("%s made trainable", w.Name())
		}
	}
	if err := m.SetTrainable(false); err != nil {
		t.Errorf("SetTrainable(false): %v", err)
	}
	if err := m.Engine().Err(); err != nil {
		t.Errorf("engine: %v", err)
	}
	f := loadFixture(t)
	if f.WeightType() != ag.F32 || f.Shared.DType() != ag.F32 {
		t.Errorf("Load: %v", f.Shared)
	}
	if err := f.SetTrainable(true); err != nil {
		t.Errorf("SetTrainable(true) in f32: %v", err)
	}
	if err := f.SetTrainable(false); err != nil {
		t.Fatal(err)
	}
}

// Bad storage types and values float16 cannot hold are errors naming them;
// random weights can be stored in 16 bits too.
func TestLoadOptionsErrors(t *testing.T) {
	for _, s := range []string{"f32", "bf16", "f16"} {
		if dt, err := ParseWeights(s); err != nil || dt.String() != s {
			t.Errorf("ParseWeights(%q) = %v, %v", s, dt, err)
		}
	}
	if _, err := ParseWeights("fp16"); err == nil || !strings.Contains(err.Error(), "f32, bf16 and f16") {
		t.Errorf("ParseWeights(fp16): %v", err)
	}
	e := ag.New(gputest.Device(t))
	if _, err := LoadWith(e, fixture, LoadOptions{Weights: ag.I32}); err == nil || !strings.Contains(err.Error(), "i32") {
		t.Errorf("i32 weights: %v", err)
	}
	g := tinyGated()
	src := checkpointFor(t, g, nil, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i, x := range ts {
			if x.Name == "decoder.block.0.layer.1.EncDecAttention.v.weight" {
				v := make([]float32, 16*12)
				v[7] = 1e5
				ts[i] = safetensors.FromFloat32(x.Name, x.Shape, v)
			}
		}
		return ts
	})
	if m, err := FromCheckpointWith(e, g, src, LoadOptions{Weights: ag.F16}); err == nil ||
		!strings.Contains(err.Error(), "decoder.block.0.layer.1.EncDecAttention.v.weight") || !strings.Contains(err.Error(), "float16's range") {
		if m != nil {
			m.Release()
		}
		t.Errorf("float16 overflow: %v", err)
	}
	if m, err := FromCheckpointWith(e, g, src, LoadOptions{Weights: ag.BF16}); err != nil {
		t.Errorf("bf16 holds 1e5: %v", err)
	} else {
		v, err := m.Parameter("decoder.block.0.layer.1.EncDecAttention.v.weight").Float32s()
		if err != nil || math.Abs(float64(v[7])-1e5) > 1e5/256 {
			t.Errorf("read back %v, %v", v[7], err)
		}
		m.Release()
	}
	r32, err := NewRandom(e, g, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r32.Release()
	r16, err := NewRandomWith(e, g, 3, LoadOptions{Weights: ag.BF16})
	if err != nil {
		t.Fatal(err)
	}
	defer r16.Release()
	a, _ := r32.Shared.Float32s()
	b, err := r16.Shared.Float32s()
	if err != nil || r16.Shared.DType() != ag.BF16 {
		t.Fatalf("%v: %v", r16.Shared, err)
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > math.Abs(float64(a[i]))/256 {
			t.Fatalf("element %d: %v in bf16, %v in f32", i, b[i], a[i])
		}
	}
	if err := e.Err(); err != nil {
		t.Errorf("engine: %v", err)
	}
}
