package run

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Activations runs every stored prompt of a finished run over the first
// perTask test inputs of each task (0: all), without dropout, and writes
// activations.json: the mean cosine similarity between the last decoder
// layer's feed-forward activation (first decoder position, as ASC uses)
// under each pair of prompts (Figure 4 of the paper).
func Activations(dir string, e *ag.Engine, perTask int) (*rundir.Activations, error) {
	info, err := rundir.ReadInfo(dir)
	if err != nil {
		return nil, err
	}
	cfg := info.Settings
	res, err := rundir.ReadResults(dir)
	if err != nil {
		return nil, err
	}
	if !res.Complete {
		return nil, fmt.Errorf("%s: the run is not complete", dir)
	}
	_, data, modelSHA256, err := readInputs(&cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if modelSHA256 != info.ModelSHA256 {
		return nil, fmt.Errorf("the model files in %s changed since run %s was trained", cfg.Model, dir)
	}
	m, err := loadModel(e, &cfg, data)
	if err != nil {
		return nil, err
	}
	defer m.Release()
	m.SetTraining(false)
	T := len(cfg.Tasks)
	prompts := make([]*ag.Tensor, T)
	defer func() {
		for _, p := range prompts {
			p.Release()
		}
	}()
	for i, name := range cfg.Tasks {
		path := rundir.PromptFile(dir, name)
		p, err := rundir.ReadPrompt(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no stored prompt for task %s (method %s): %w", dir, name, cfg.Method, err)
		}
		if err != nil {
			return nil, err
		}
		if p.D != m.Config.DModel {
			return nil, fmt.Errorf("%s: prompt is [%d %d], not (length, %d)", path, p.Lp, p.D, m.Config.DModel)
		}
		prompts[i] = e.FromFloat32(p.Data, p.Lp, p.D)
	}
	F := m.Config.DFF
	sum := make([][]float64, T)
	for a := range sum {
		sum[a] = make([]float64, T)
	}
	n := 0
	for _, td := range data {
		exs := td.test
		if perTask > 0 && len(exs) > perTask {
			exs = exs[:perTask]
		}
		for lo := 0; lo < len(exs); lo += cfg.EvalBatchSize {
			rows := exs[lo:min(lo+cfg.EvalBatchSize, len(exs))]
			inputs := make([][]int, len(rows))
			padTo := 1
			for r, ex := range rows {
				inputs[r] = ex.Input
				padTo = max(padTo, len(ex.Input))
			}
			acts, err := promptActivations(m, prompts, inputs, padTo)
			if err != nil {
				return nil, fmt.Errorf("%s: task %s: %w", dir, td.task.Name, err)
			}
			for r := range rows {
				for a := 0; a < T; a++ {
					for b := a; b < T; b++ {
						c := cosine(acts[a][r*F:(r+1)*F], acts[b][r*F:(r+1)*F])
						sum[a][b] += c
						if a != b {
							sum[b][a] += c
						}
					}
				}
			}
			n += len(rows)
		}
	}
	for a := range sum {
		for b := range sum[a] {
			sum[a][b] /= float64(n)
		}
	}
	out := &rundir.Activations{Tasks: cfg.Tasks, InputsPerTask: perTask, Similarity: sum}
	b, err := marshalJSON(out)
	if err != nil {
		return nil, err
	}
	return out, atomicfile.WriteFile(filepath.Join(dir, rundir.ActivationsFile), b)
}

// promptActivations runs one batch with each prompt and returns the
// first-position feed-forward activations ((B, d_ff) each).
func promptActivations(m *t5.Model, prompts []*ag.Tensor, inputs [][]int, padTo int) ([][]float32, error) {
	e := m.Engine()
	defer e.NoGrad()()
	b, err := m.NewBatch(inputs, nil, padTo, 1)
	if err != nil {
		return nil, err
	}
	defer releaseBatch(b)
	out := make([][]float32, len(prompts))
	for a, p := range prompts {
		o := m.Forward(b, t5.Options{Prompt: p, FFNActFirst: true})
		if o.FFNActFirst == nil {
			o.Release()
			if err := e.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("forward pass returned no activation")
		}
		out[a], err = o.FFNActFirst.Float32s()
		o.Release()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cosine is the cosine similarity of x and y (0 when either is zero).
func cosine(x, y []float32) float64 {
	var xy, xx, yy float64
	for i := range x {
		xy += float64(x[i]) * float64(y[i])
		xx += float64(x[i]) * float64(x[i])
		yy += float64(y[i]) * float64(y[i])
	}
	if xx == 0 || yy == 0 {
		return 0
	}
	return xy / math.Sqrt(xx*yy)
}
