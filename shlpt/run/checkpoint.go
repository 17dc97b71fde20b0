package run

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// checkpointFormat is the version of the checkpoint layout. Format 2
// added the checksums and the output files; format 3 names the trainable
// state by the methods' parameter names (and config.json holds only the
// method's own settings).
const checkpointFormat = 3

// checkpoint is where a run stands: everything that, with the run's
// configuration, determines the rest of it. One safetensors file holds the
// tensors (the method's state between tasks, the current trainable state,
// the best state of early stopping, the optimizer), a copy of every output
// file written so far (results.json, metrics.jsonl up to this point, the
// method's stored prompts and other artifacts) and, in its metadata, this
// struct as JSON with the SHA-256 of every tensor and of the JSON itself.
// It is replaced atomically after every epoch and every task, and when a
// signal stops the run.
type checkpoint struct {
	Format     int    `json:"format"`
	ConfigHash string `json:"config_hash"`
	// Task is the task in progress or next to begin; Started says whether
	// it has begun (epochs below are then its position).
	Task    int  `json:"task"`
	Started bool `json:"started"`
	// Epoch and Step are the next step to run; at Step > 0 the dropout
	// stream continues from DropoutSeed.
	Epoch       int      `json:"epoch"`
	Step        int      `json:"step"`
	DropoutSeed uint32   `json:"dropout_seed"`
	Partial     epochAcc `json:"partial"` // sums of the epoch in progress
	// Early stopping.
	Best      *float64 `json:"best"`
	BestEpoch int      `json:"best_epoch"`
	Bad       int      `json:"bad"`
	Stopped   bool     `json:"stopped"`
	// StageSteps counts the stage's training steps so far (for MaxSteps).
	StageSteps int `json:"stage_steps"`
	// MetricsLen is the length of metrics.jsonl that belongs to this
	// point; a resumed run cuts the file back to it.
	MetricsLen int64 `json:"metrics_len"`
	// Logs are the lengths of the sinks' files (metrics.csv, eval.csv,
	// the TensorBoard events) that belong to this point.
	Logs         map[string]int64 `json:"logs,omitempty"`
	Results      *rundir.Results  `json:"results"`
	TaskSeconds  float64          `json:"task_seconds"`
	HasOptimizer bool             `json:"has_optimizer"`
	// Checksums are the SHA-256 (hex) of every tensor's bytes, by name.
	Checksums map[string]string `json:"checksums"`

	// Tensors, not in the JSON.
	method, current, best []method.HostTensor
	opt                   *ag.AdamWState
	// files are the output files the checkpoint vouches for, by path
	// relative to the run directory.
	files map[string][]byte
}

// epochAcc sums one epoch's training steps.
type epochAcc struct {
	Steps   int                `json:"steps"`
	Loss    float64            `json:"loss"`
	Parts   map[string]float64 `json:"parts"`
	Tokens  float64            `json:"tokens"`
	Seconds float64            `json:"seconds"`
}

// Tensor name prefixes in the checkpoint file.
const (
	ckMethod  = "method/"
	ckCurrent = "current/"
	ckBest    = "best/"
	ckOpt     = "optimizer/"
	ckFile    = "file/"
)

// Metadata keys of the checkpoint file.
const (
	metaState       = "state"
	metaStateSHA256 = "state_sha256"
)

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// encode returns the checkpoint as a safetensors file.
func (c *checkpoint) encode() ([]byte, error) {
	c.Format = checkpointFormat
	var ts []safetensors.Tensor
	for _, group := range []struct {
		prefix string
		ts     []method.HostTensor
	}{{ckMethod, c.method}, {ckCurrent, c.current}, {ckBest, c.best}} {
		for _, t := range group.ts {
			ts = append(ts, safetensors.FromFloat32(group.prefix+t.Name, t.Shape, t.Data))
		}
	}
	if c.opt != nil {
		ts = append(ts, safetensors.FromFloat32(ckOpt+"hyper", []int{len(c.opt.Hyper)}, c.opt.Hyper))
		for i := range c.opt.M {
			ts = append(ts,
				safetensors.FromFloat32(fmt.Sprintf("%sm/%d", ckOpt, i), []int{len(c.opt.M[i])}, c.opt.M[i]),
				safetensors.FromFloat32(fmt.Sprintf("%sv/%d", ckOpt, i), []int{len(c.opt.V[i])}, c.opt.V[i]))
		}
	}
	for rel, b := range c.files {
		ts = append(ts, safetensors.Tensor{Name: ckFile + rel, DType: safetensors.U8, Shape: []int{len(b)}, Data: b})
	}
	c.Checksums = make(map[string]string, len(ts))
	for _, t := range ts {
		c.Checksums[t.Name] = sha256Hex(t.Data)
	}
	state, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	meta := map[string]string{metaState: string(state), metaStateSHA256: sha256Hex(state)}
	if err := safetensors.Encode(&buf, ts, meta); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// earlierFormat is the error for a checkpoint of an earlier format.
func earlierFormat(name string, format int) error {
	return fmt.Errorf("%s: checkpoint format %d is from an older shlpt-vk, which this one does not resume (it reads format %d): start the run again in a new directory", name, format, checkpointFormat)
}

// decodeCheckpoint parses a checkpoint file's bytes and verifies every
// checksum. It checks the structure; the runner checks the values against
// the run.
func decodeCheckpoint(name string, data []byte) (*checkpoint, error) {
	f, err := safetensors.Parse(name, data)
	if err != nil {
		return nil, err
	}
	state, ok := f.Metadata()[metaState]
	if !ok {
		return nil, fmt.Errorf("%s: not a shlpt-vk checkpoint (no state in the metadata)", name)
	}
	if sum, ok := f.Metadata()[metaStateSHA256]; !ok || sum != sha256Hex([]byte(state)) {
		var v struct{ Format int }
		if json.Unmarshal([]byte(state), &v) == nil && v.Format == 1 {
			return nil, earlierFormat(name, v.Format)
		}
		return nil, fmt.Errorf("%s: the checkpoint's state is damaged: its SHA-256 does not match the one recorded when it was written", name)
	}
	c := &checkpoint{}
	dec := json.NewDecoder(strings.NewReader(state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: state: %v", name, err)
	}
	if c.Format < checkpointFormat {
		return nil, earlierFormat(name, c.Format)
	}
	if c.Format != checkpointFormat {
		return nil, fmt.Errorf("%s: checkpoint format %d, this shlpt-vk reads %d", name, c.Format, checkpointFormat)
	}
	if c.Results == nil {
		return nil, fmt.Errorf("%s: state has no results", name)
	}
	if len(c.Checksums) != len(f.Names()) {
		return nil, fmt.Errorf("%s: the checkpoint holds %d tensors but records checksums of %d", name, len(f.Names()), len(c.Checksums))
	}
	opt := &ag.AdamWState{}
	ms, vs := map[int][]float32{}, map[int][]float32{}
	for _, n := range f.Names() {
		t, _ := f.Tensor(n)
		if sum, ok := c.Checksums[n]; !ok || sum != sha256Hex(t.Data) {
			return nil, fmt.Errorf("%s: tensor %s is damaged: its SHA-256 does not match the one recorded when it was written", name, n)
		}
		if rel, ok := strings.CutPrefix(n, ckFile); ok {
			if t.DType != safetensors.U8 || len(t.Shape) != 1 || !validRel(rel) {
				return nil, fmt.Errorf("%s: bad output file entry %q", name, n)
			}
			if c.files == nil {
				c.files = map[string][]byte{}
			}
			c.files[rel] = append([]byte(nil), t.Data...)
			continue
		}
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		ht := method.HostTensor{Shape: append([]int(nil), t.Shape...), Data: v}
		switch {
		case strings.HasPrefix(n, ckMethod):
			ht.Name = strings.TrimPrefix(n, ckMethod)
			c.method = append(c.method, ht)
		case strings.HasPrefix(n, ckCurrent):
			ht.Name = strings.TrimPrefix(n, ckCurrent)
			c.current = append(c.current, ht)
		case strings.HasPrefix(n, ckBest):
			ht.Name = strings.TrimPrefix(n, ckBest)
			c.best = append(c.best, ht)
		case n == ckOpt+"hyper":
			opt.Hyper = v
		case strings.HasPrefix(n, ckOpt+"m/"), strings.HasPrefix(n, ckOpt+"v/"):
			i, err := strconv.Atoi(n[len(ckOpt)+2:])
			if err != nil || i < 0 || i > 1<<20 {
				return nil, fmt.Errorf("%s: bad optimizer tensor name %q", name, n)
			}
			if n[len(ckOpt)] == 'm' {
				ms[i] = v
			} else {
				vs[i] = v
			}
		default:
			return nil, fmt.Errorf("%s: unexpected tensor %q", name, n)
		}
	}
	if c.HasOptimizer {
		if opt.Hyper == nil || len(ms) != len(vs) {
			return nil, fmt.Errorf("%s: incomplete optimizer state", name)
		}
		for i := 0; i < len(ms); i++ {
			m, ok1 := ms[i]
			v, ok2 := vs[i]
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s: optimizer moments of parameter %d are missing", name, i)
			}
			opt.M, opt.V = append(opt.M, m), append(opt.V, v)
		}
		c.opt = opt
	}
	if int64(len(c.files[rundir.MetricsFile])) != c.MetricsLen {
		return nil, fmt.Errorf("%s: the copy of %s holds %d bytes, not the %d recorded", name, rundir.MetricsFile, len(c.files[rundir.MetricsFile]), c.MetricsLen)
	}
	return c, nil
}

// validRel reports whether rel is a clean relative path inside the run
// directory (no "..", not absolute), as output files are named.
func validRel(rel string) bool {
	return rel != "" && filepath.IsLocal(filepath.FromSlash(rel)) && path.Clean(rel) == rel
}

// checkAgainst checks a decoded checkpoint's position against the run.
func (c *checkpoint) checkAgainst(path, configHash string, cfg *rundir.Config, stages int, stepsPerStage func(stage int) int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	T := len(cfg.Tasks)
	rows := c.Task // rows of the results a finished stage fills
	if cfg.Multitask {
		rows = c.Task * T
	}
	switch {
	case c.ConfigHash != configHash:
		return bad("the checkpoint belongs to another configuration than %s", rundir.ConfigFile)
	case c.Task < 0 || c.Task > stages || (c.Task == stages && c.Started):
		return bad("task %d is outside the sequence of %d", c.Task, stages)
	case c.Epoch < 0 || c.Epoch > cfg.Epochs || c.Step < 0:
		return bad("epoch %d step %d is outside the %d epochs", c.Epoch, c.Step, cfg.Epochs)
	case c.Started && c.Step >= stepsPerStage(c.Task):
		return bad("step %d is past the epoch's %d steps", c.Step, stepsPerStage(c.Task))
	case c.MetricsLen < 0:
		return bad("negative metrics length")
	case c.Results.StagesDone != rows || len(c.Results.Tasks) != T ||
		len(c.Results.Matrix.Valid) != T || len(c.Results.Matrix.Test) != T || len(c.Results.PerTask) != c.Task:
		return bad("the results do not match task %d of %d", c.Task, T)
	}
	for t := 0; t < T; t++ {
		if len(c.Results.Matrix.Valid[t]) != T || len(c.Results.Matrix.Test[t]) != T {
			return bad("results matrix row %d is not %d wide", t, T)
		}
	}
	return nil
}

// saveCheckpoint writes the checkpoint atomically into the run directory.
func saveCheckpoint(dir string, c *checkpoint) error {
	b, err := c.encode()
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, rundir.CheckpointFile), b)
}

// loadCheckpoint reads the run directory's checkpoint, or nil when the run
// stopped before its first one.
func loadCheckpoint(dir string) (*checkpoint, error) {
	path := filepath.Join(dir, rundir.CheckpointFile)
	b, err := limitio.ReadFile(path, 16<<30, "a checkpoint")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeCheckpoint(path, b)
}

// checkFinite returns an error naming the first tensor of the checkpoint
// that holds a NaN or an infinity: such a state is never saved.
func (c *checkpoint) checkFinite() error {
	for _, group := range []struct {
		prefix string
		ts     []method.HostTensor
	}{{ckMethod, c.method}, {ckCurrent, c.current}, {ckBest, c.best}} {
		for _, t := range group.ts {
			if i, bad := firstNonFinite(t.Data); bad {
				return fmt.Errorf("%s%s holds %v at index %d", group.prefix, t.Name, t.Data[i], i)
			}
		}
	}
	if c.opt != nil {
		for i := range c.opt.M {
			for _, v := range [][]float32{c.opt.M[i], c.opt.V[i]} {
				if k, bad := firstNonFinite(v); bad {
					return fmt.Errorf("the optimizer's moments of parameter %d hold %v at index %d", i, v[k], k)
				}
			}
		}
	}
	return nil
}
