package t5

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
)

// A model folder written from InitWeights loads back with the same
// configuration and weights, and its weights have HF's scales.
func TestWriteModelRoundTrip(t *testing.T) {
	cfg, err := LoadConfig("../testdata/t5-tiny-relu")
	if err != nil {
		t.Fatal(err)
	}
	w, err := InitWeights(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	std := func(v []float32) float64 {
		s := 0.0
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		return math.Sqrt(s / float64(len(v)))
	}
	for name, want := range map[string]float64{
		"shared.weight": 1,
		"encoder.block.0.layer.0.SelfAttention.q.weight":   1 / math.Sqrt(float64(cfg.DModel*cfg.DKV)),
		"encoder.block.0.layer.0.SelfAttention.k.weight":   1 / math.Sqrt(float64(cfg.DModel)),
		"decoder.block.1.layer.2.DenseReluDense.wo.weight": 1 / math.Sqrt(float64(cfg.DFF)),
		"decoder.block.0.layer.1.EncDecAttention.o.weight": 1 / math.Sqrt(float64(cfg.InnerDim())),
	} {
		if got := std(w[name]); math.Abs(got-want) > 0.15*want {
			t.Errorf("%s: std %.4f, want %.4f", name, got, want)
		}
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := WriteModel(dir, cfg, w, "../testdata/no-such-tokenizer"); err == nil {
		t.Error("a missing tokenizer folder was accepted")
	}
	if err := WriteModel(dir, cfg, w, ""); err != nil {
		t.Fatal(err)
	}
	back, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	back.Source, cfg.Source = "", ""
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("config read back %+v, wrote %+v", back, cfg)
	}
	e := ag.New(gputest.Device(t))
	m, err := Load(e, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	got, err := m.Parameter("encoder.block.0.layer.0.SelfAttention.q.weight").Float32s()
	if err != nil || !reflect.DeepEqual(got, w["encoder.block.0.layer.0.SelfAttention.q.weight"]) {
		t.Errorf("q read back differs (%v)", err)
	}
	delete(w, "encoder.final_layer_norm.weight")
	if err := WriteModel(t.TempDir(), cfg, w, ""); err == nil {
		t.Error("a missing weight was accepted")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the model folder, want config.json and model.safetensors", len(entries))
	}
}
