package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// Names of the files of an HF model folder.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// Checkpoint is the set of tensors of a model: one safetensors file, or the
// shards listed by a model.safetensors.index.json.
type Checkpoint struct {
	path   string
	files  []*File
	byName map[string]*Tensor
	names  []string
}

// OpenCheckpoint opens the tensors at path: a safetensors file, an index
// file (*.index.json), or a folder holding model.safetensors or else
// model.safetensors.index.json. The caller must Close it.
func OpenCheckpoint(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if filepath.Ext(path) == ".json" {
			return openIndex(path)
		}
		return openFiles(path, []string{path})
	}
	single := filepath.Join(path, SingleFileName)
	if _, err := os.Stat(single); err == nil {
		return openFiles(single, []string{single})
	}
	index := filepath.Join(path, IndexFileName)
	if _, err := os.Stat(index); err == nil {
		return openIndex(index)
	}
	return nil, fmt.Errorf("%s: neither %s nor %s found", path, SingleFileName, IndexFileName)
}

// MaxIndexSize bounds an index file (T5-large's is about 40 KB).
const MaxIndexSize = 32 << 20

// openIndex opens the shards listed in an index file and checks that its
// weight_map and the shards agree: every tensor of the weight_map is in the
// shard it names, and every tensor of a shard is in the weight_map.
func openIndex(path string) (*Checkpoint, error) {
	raw, err := limitio.ReadFile(path, MaxIndexSize, "an index file")
	if err != nil {
		return nil, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: no weight_map, or an empty one", path)
	}
	dir := filepath.Dir(path)
	var shards []string
	seen := map[string]bool{}
	for name, file := range index.WeightMap {
		if file == "" || file == "." || file == ".." || filepath.Base(file) != file {
			return nil, fmt.Errorf("%s: tensor %q: shard %q is not a file name in the index's folder", path, name, file)
		}
		if !seen[file] {
			seen[file] = true
			shards = append(shards, filepath.Join(dir, file))
		}
	}
	sort.Strings(shards)
	c, err := openFiles(path, shards)
	if err != nil {
		return nil, err
	}
	var errs []error
	for name, file := range index.WeightMap {
		t, ok := c.byName[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: tensor %q: listed in shard %s, which has no such tensor", path, name, file))
		} else if filepath.Base(t.file) != file {
			errs = append(errs, fmt.Errorf("%s: tensor %q: listed in shard %s but found in %s", path, name, file, t.file))
		}
	}
	// A tensor the weight_map leaves out would be loaded or not depending
	// on whether its shard holds a listed tensor too: refuse both.
	for _, name := range c.names {
		if _, ok := index.WeightMap[name]; !ok {
			errs = append(errs, fmt.Errorf("%s: tensor %q is in shard %s but not in the weight_map", path, name, filepath.Base(c.byName[name].file)))
		}
	}
	if len(errs) > 0 {
		c.Close()
		sortErrors(errs)
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// openFiles opens files as one checkpoint; a tensor name in two files is an
// error.
func openFiles(path string, files []string) (*Checkpoint, error) {
	c := &Checkpoint{path: path, byName: map[string]*Tensor{}}
	for _, fn := range files {
		f, err := Open(fn)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.files = append(c.files, f)
		for _, name := range f.names {
			if prev, dup := c.byName[name]; dup {
				c.Close()
				return nil, fmt.Errorf("%s: tensor %q is in both %s and %s", path, name, prev.file, fn)
			}
			c.byName[name] = f.tensors[name]
			c.names = append(c.names, name)
		}
	}
	sort.Strings(c.names)
	return c, nil
}

func sortErrors(errs []error) {
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

// Path returns the file, index or folder the checkpoint was opened from.
func (c *Checkpoint) Path() string { return c.path }

// Files returns the paths of the safetensors files, in order.
func (c *Checkpoint) Files() []string {
	out := make([]string, len(c.files))
	for i, f := range c.files {
		out[i] = f.path
	}
	return out
}

// Names returns all tensor names in sorted order.
func (c *Checkpoint) Names() []string { return c.names }

// Tensor returns the tensor called name.
func (c *Checkpoint) Tensor(name string) (*Tensor, bool) {
	t, ok := c.byName[name]
	return t, ok
}

// Get returns the tensor called name, or an error naming the checkpoint and
// the tensor.
func (c *Checkpoint) Get(name string) (*Tensor, error) {
	if t, ok := c.byName[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%s: no tensor %q", c.path, name)
}

// Close closes every file; tensor data must not be used afterwards.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	c.files = nil
	return errors.Join(errs...)
}
