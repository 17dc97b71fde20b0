package t5

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// writeShardedFixture writes the tiny fixture as a sharded checkpoint:
// config.json, decoder.final_layer_norm.weight alone in the second shard,
// everything else in the first, and an index whose weight_map lists every
// tensor except those in omit.
func writeShardedFixture(t *testing.T, omit ...string) (dir, index string) {
	t.Helper()
	src, err := safetensors.Open(filepath.Join(fixture, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir = t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(fixture, ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	const last = "decoder.final_layer_norm.weight"
	shards := [2]string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	var parts [2][]safetensors.Tensor
	weightMap := map[string]string{}
	for _, name := range src.Names() {
		x, _ := src.Tensor(name)
		i := 0
		if name == last {
			i = 1
		}
		parts[i] = append(parts[i], safetensors.Tensor{Name: name, DType: x.DType, Shape: x.Shape, Data: append([]byte(nil), x.Data...)})
		weightMap[name] = shards[i]
	}
	for i, p := range parts {
		if err := safetensors.Write(filepath.Join(dir, shards[i]), p, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range omit {
		delete(weightMap, name)
	}
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
	if err != nil {
		t.Fatal(err)
	}
	index = filepath.Join(dir, safetensors.IndexFileName)
	if err := os.WriteFile(index, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, index
}

// TestLoadShardedWeightMap: a sharded checkpoint loads when its index is
// complete, and a weight_map that leaves out a tensor the model needs is an
// error naming the tensor and the index, whether the tensor's shard is
// otherwise listed or not.
func TestLoadShardedWeightMap(t *testing.T) {
	e := ag.New(gputest.Device(t))
	dir, _ := writeShardedFixture(t)
	m, err := Load(e, dir)
	if err != nil {
		t.Fatalf("complete index: %v", err)
	}
	m.Release()
	for _, omit := range []string{"encoder.final_layer_norm.weight", "decoder.final_layer_norm.weight"} {
		dir, index := writeShardedFixture(t, omit)
		m, err := Load(e, dir)
		if err == nil {
			m.Release()
			t.Errorf("weight_map without %s: no error", omit)
			continue
		}
		if !strings.Contains(err.Error(), index) || !strings.Contains(err.Error(), `tensor "`+omit+`"`) {
			t.Errorf("weight_map without %s: error %q does not name the index and the tensor", omit, err)
		}
	}
	if err := e.Err(); err != nil {
		t.Error(err)
	}
}
