package run

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// taskData is one task of the sequence: its sampled examples as text (for
// the metrics) and as token ids.
type taskData struct {
	task               *tasks.Task
	files              tasks.Files
	data               *tasks.Data
	train, valid, test []method.Example
	// inputLen is the longest training input, the padded length of the
	// task's training batches (all of them, so recorded steps replay).
	inputLen int
	// truncated counts inputs cut to the maximum input length.
	truncated int
}

// loadTasks samples and tokenizes every task of the sequence.
func loadTasks(cfg *rundir.Config, tok tasks.Tokenizer) ([]*taskData, error) {
	var out []*taskData
	for _, name := range cfg.Tasks {
		t, files, err := tasks.Resolve(cfg.Data, name)
		if err != nil {
			return nil, err
		}
		tc := tasks.Config{KTrain: cfg.KTrain, KVal: cfg.KVal, KTest: cfg.KTest,
			Read: tasks.ReadOptions{MultiRCAccumulate: cfg.MultiRCAccumulate}}
		d, err := tasks.Load(t, files, cfg.Seed, tc)
		if err != nil {
			return nil, err
		}
		td := &taskData{task: t, files: files, data: d}
		for _, split := range []struct {
			name string
			src  []tasks.Example
			dst  *[]method.Example
		}{{"train", d.Train, &td.train}, {"valid", d.Valid, &td.valid}, {"test", d.Test, &td.test}} {
			if len(split.src) == 0 {
				return nil, fmt.Errorf("task %s: no %s examples were drawn", t.Name, split.name)
			}
			for _, ex := range split.src {
				enc, err := tasks.EncodeLen(tok, ex, cfg.MaxInputLen, t.TargetLen)
				if err != nil {
					return nil, fmt.Errorf("task %s: %w", t.Name, err)
				}
				if enc.Truncated {
					td.truncated++
				}
				*split.dst = append(*split.dst, method.Example{Input: enc.Input, Target: trimTarget(enc.Target)})
			}
		}
		for _, ex := range td.train {
			td.inputLen = max(td.inputLen, len(ex.Input))
		}
		if cfg.PadToMax() {
			td.inputLen = cfg.MaxInputLen
		}
		out = append(out, td)
	}
	return out, nil
}

// trimTarget drops the padding after </s> from an encoded target: the
// runner pads labels with -100, which the loss ignores.
func trimTarget(ids []int) []int {
	for i, id := range ids {
		if id == tasks.EOS {
			return ids[:i+1]
		}
	}
	return ids
}

// readInputs loads the tokenizer of cfg (the model folder's when none is
// named), fingerprints the model folder's files and samples and tokenizes
// the tasks: what a run, an eval-only pass and the activations pass read
// before they load the model.
func readInputs(cfg *rundir.Config) (tok *tokenizer.Tokenizer, data []*taskData, modelSHA256 string, err error) {
	tokDir := cfg.Tokenizer
	if tokDir == "" {
		tokDir = cfg.Model
	}
	if tok, err = tokenizer.Load(tokDir); err != nil {
		return nil, nil, "", fmt.Errorf("tokenizer: %w", err)
	}
	mf, err := modelFiles(cfg.Model)
	if err != nil {
		return nil, nil, "", err
	}
	if modelSHA256, err = fingerprint(cfg.Model, mf); err != nil {
		return nil, nil, "", err
	}
	if data, err = loadTasks(cfg, tok); err != nil {
		return nil, nil, "", err
	}
	return tok, data, modelSHA256, nil
}

// loadModel loads the frozen model of cfg on e in its weight storage and
// refuses one whose embedding cannot hold the ids the data uses.
func loadModel(e *ag.Engine, cfg *rundir.Config, data []*taskData) (*t5.Model, error) {
	w, err := t5.ParseWeights(cfg.Weights)
	if err != nil {
		return nil, err
	}
	m, err := t5.LoadWith(e, cfg.Model, t5.LoadOptions{Weights: w})
	if err != nil {
		return nil, err
	}
	if err := checkVocab(data, m.Config.VocabSize, cfg.Model); err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

// checkVocab refuses a model whose embedding cannot hold the ids the data
// uses.
func checkVocab(data []*taskData, vocab int, model string) error {
	for _, td := range data {
		for _, split := range [][]method.Example{td.train, td.valid, td.test} {
			for _, ex := range split {
				for _, ids := range [][]int{ex.Input, ex.Target} {
					for _, id := range ids {
						if id >= vocab {
							return fmt.Errorf("model %s has a vocabulary of %d ids, but the tokenizer gives id %d (task %s): use the model's own tokenizer",
								model, vocab, id, td.task.Name)
						}
					}
				}
			}
		}
	}
	return nil
}

// fingerprint returns the SHA-256 of the files, in name order, with their
// names: what a resumed run checks to be sure its inputs did not change.
func fingerprint(root string, paths []string) (string, error) {
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	h := sha256.New()
	for _, p := range sorted {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			rel = p
		}
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		f, _, err := limitio.Open(p) // a regular file: never a device or a pipe
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// modelFiles lists the files that define a model folder's weights and
// configuration.
func modelFiles(dir string) ([]string, error) {
	var out []string
	for _, pattern := range []string{"config.json", "*.safetensors", "model.safetensors.index.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("model folder %s has no config.json or safetensors files", dir)
	}
	return out, nil
}

// dataFiles lists the files a task reads (with its definition, for a
// custom task).
func dataFiles(td *taskData) []string {
	f := td.files
	var out []string
	if td.task.Format == tasks.LFPT5Text && f.Train != "" {
		if def := filepath.Join(filepath.Dir(f.Train), tasks.TaskFile); fileExists(def) {
			out = append(out, def)
		}
	}
	for _, p := range []string{f.Train, f.Valid, f.Test, f.TrainRows, f.TestRows} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
