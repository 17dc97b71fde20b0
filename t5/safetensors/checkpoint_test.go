package safetensors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// writeShards writes two shards and an index mapping names to shard files.
func writeShards(t *testing.T, dir string, weightMap string) {
	t.Helper()
	if err := Write(filepath.Join(dir, "model-00001-of-00002.safetensors"), []Tensor{
		FromFloat32("a", []int{2}, []float32{1, 2}),
		FromFloat32("b", []int{1}, []float32{3}),
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{
		FromFloat32("c", []int{3}, []float32{4, 5, 6}),
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(weightMap), 0o644); err != nil {
		t.Fatal(err)
	}
}

const goodIndex = `{"metadata": {"total_size": 24}, "weight_map": {
  "a": "model-00001-of-00002.safetensors",
  "b": "model-00001-of-00002.safetensors",
  "c": "model-00002-of-00002.safetensors"}}`

func TestShardedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir, goodIndex)
	for _, path := range []string{dir, filepath.Join(dir, IndexFileName)} {
		c, err := OpenCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Names(), ","); got != "a,b,c" {
			t.Errorf("names %s", got)
		}
		if len(c.Files()) != 2 {
			t.Errorf("files %v", c.Files())
		}
		ct, err := c.Get("c")
		if err != nil {
			t.Fatal(err)
		}
		v, err := ct.Float32()
		if err != nil || v[2] != 6 {
			t.Errorf("c = %v, %v", v, err)
		}
		if filepath.Base(ct.File()) != "model-00002-of-00002.safetensors" {
			t.Errorf("c is in %s", ct.File())
		}
		if _, err := c.Get("zz"); err == nil || !strings.Contains(err.Error(), `"zz"`) {
			t.Errorf("Get(zz): %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSingleFileCheckpoint(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, SingleFileName), []Tensor{FromFloat32("x", nil, []float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	// model.safetensors wins over an index in the same folder.
	os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map": {"y": "other.safetensors"}}`), 0o644)
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.Tensor("x"); !ok {
		t.Errorf("names %v", c.Names())
	}
}

func TestCheckpointErrors(t *testing.T) {
	cases := []struct {
		name  string
		index string
		want  []string
	}{
		{"missing tensor", `{"weight_map": {"a": "model-00001-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"}}`,
			[]string{IndexFileName, `tensor "d"`, "no such tensor"}},
		{"wrong shard", `{"weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}`,
			[]string{`tensor "a"`, "found in"}},
		{"escaping path", `{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}`,
			[]string{`tensor "a"`, "not a file name"}},
		{"missing shard", `{"weight_map": {"a": "model-00003-of-00002.safetensors"}}`,
			[]string{"model-00003-of-00002.safetensors"}},
		{"tensor left out of the weight map", `{"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}`,
			[]string{IndexFileName, `tensor "b" is in shard model-00001-of-00002.safetensors but not in the weight_map`}},
		{"no weight map", `{"metadata": {}}`, []string{"no weight_map"}},
		{"bad json", `{"weight_map": [`, []string{IndexFileName}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeShards(t, dir, c.index)
			ck, err := OpenCheckpoint(dir)
			if err == nil {
				ck.Close()
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	t.Run("duplicate across shards", func(t *testing.T) {
		dir := t.TempDir()
		writeShards(t, dir, goodIndex)
		if err := Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{
			FromFloat32("c", []int{3}, []float32{4, 5, 6}), FromFloat32("a", []int{2}, []float32{1, 2}),
		}, nil); err != nil {
			t.Fatal(err)
		}
		_, err := OpenCheckpoint(dir)
		if err == nil || !strings.Contains(err.Error(), `tensor "a" is in both`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("empty folder", func(t *testing.T) {
		dir := t.TempDir()
		_, err := OpenCheckpoint(dir)
		if err == nil || !strings.Contains(err.Error(), "neither") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestCheckpointNotRegular: an index or a safetensors file that is a link to
// /dev/zero is refused with an error naming it, before anything is read.
func TestCheckpointNotRegular(t *testing.T) {
	for _, name := range []string{IndexFileName, SingleFileName} {
		dir := t.TempDir()
		link := filepath.Join(dir, name)
		if err := os.Symlink("/dev/zero", link); err != nil {
			testenv.Missing(t, "cannot link to /dev/zero: "+err.Error())
		}
		for _, p := range []string{dir, link} {
			_, err := OpenCheckpoint(p)
			if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("OpenCheckpoint(%s) with %s a link to /dev/zero: %v", p, name, err)
			}
		}
	}
}
