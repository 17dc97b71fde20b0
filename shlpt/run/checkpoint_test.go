package run

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// sampleCheckpoint is a checkpoint of a task in progress with every kind
// of tensor.
func sampleCheckpoint() *checkpoint {
	best := 50.0
	res := rundir.NewResults("shlpt", []string{"cb", "copa"})
	v := 40.0
	res.Matrix.Valid[0][0], res.Matrix.Test[0][0] = &v, &v
	res.StagesDone = 1
	res.PerTask = []rundir.TaskResult{{Task: "cb"}}
	return &checkpoint{
		ConfigHash: "abc", Task: 1, Started: true, Epoch: 1, Step: 1, DropoutSeed: 7,
		Partial: epochAcc{Steps: 1, Loss: 2, Parts: map[string]float64{"ce": 2}}, Best: &best, BestEpoch: 0,
		Results: res, HasOptimizer: true,
		method:  []method.HostTensor{{Name: "pool.0", Shape: []int{2, 3}, Data: make([]float32, 6)}},
		current: []method.HostTensor{{Name: "prompt", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}},
		best:    []method.HostTensor{{Name: "prompt", Shape: []int{2, 3}, Data: make([]float32, 6)}},
		opt:     &ag.AdamWState{Hyper: make([]float32, 10), M: [][]float32{{1, 2}}, V: [][]float32{{3, 4}}},
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	c := sampleCheckpoint()
	b, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeCheckpoint("ck", b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Task != 1 || d.Step != 1 || d.DropoutSeed != 7 || *d.Best != 50 || d.Partial.Parts["ce"] != 2 ||
		len(d.current) != 1 || d.current[0].Data[5] != 6 || d.opt == nil || d.opt.V[0][1] != 4 || d.method[0].Name != "pool.0" {
		t.Errorf("decoded %+v", d)
	}
	again, _ := d.encode()
	if !bytes.Equal(again, b) {
		t.Error("re-encoding a decoded checkpoint changes it")
	}
}

// Corrupt checkpoints are errors, never panics.
func FuzzDecodeCheckpoint(f *testing.F) {
	good, err := sampleCheckpoint().encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(bytes.Replace(good, []byte(`"task":1`), []byte(`"task":-9`), 1))
	f.Add(bytes.Replace(good, []byte(`\"format\":3`), []byte(`\"format\":\"x\"`), 1))
	f.Add([]byte{})
	cfg := rundir.Config{Tasks: []string{"cb", "copa"}, Epochs: 3}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCheckpoint("ck", data)
		if err != nil {
			return
		}
		_ = c.checkAgainst("ck", "abc", &cfg, 2, func(int) int { return 2 })
	})
}

// A resumed run with a damaged checkpoint stops with an error naming it.
func TestResumeCorruptCheckpoint(t *testing.T) {
	ref := reference(t)
	e := newEngine(t)
	cfg := testConfig(t)
	good, err := os.ReadFile(filepath.Join(ref, rundir.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"truncated":     good[:len(good)-100],
		"bad state":     bytes.Replace(good, []byte(`\"format\":3`), []byte(`\"format\":4`), 1),
		"renamed pool":  bytes.Replace(good, []byte(`method/pool.0`), []byte(`method/pool.9`), 1),
		"other config":  bytes.Replace(good, []byte(`\"config_hash\":\"`), []byte(`\"config_hash\":\"0`), 1),
		"not a tensors": []byte("hello"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := os.CopyFS(dir, os.DirFS(ref)); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(data, good) {
				t.Fatal("the corruption changed nothing")
			}
			if err := os.WriteFile(filepath.Join(dir, rundir.CheckpointFile), data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e, Resume: true})
			if err == nil || !strings.Contains(err.Error(), rundir.CheckpointFile) && !strings.Contains(err.Error(), "checkpoint") {
				t.Errorf("error %v, want one naming the checkpoint", err)
			}
		})
	}
}
