// Package rundir is the schema of a run directory: the files the lifelong
// runner (shlpt/run) writes and everything above it (sweeps, reports,
// export, serving) reads — the resolved configuration (config.json), one
// line per epoch (metrics.jsonl), the results matrices (results.json), the
// stored prompts and the checkpoint. It holds the types of those files and
// the functions that read them, so that no reader reaches into the runner.
package rundir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/internal/jsonfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// Files and folders of a run directory.
const (
	ConfigFile  = "config.json"
	MetricsFile = "metrics.jsonl"
	ResultsFile = "results.json"
	// MetricsCSVFile has one row per epoch and EvalCSVFile one per task
	// scored after each stage, in the columns of Avalanche's CSV logger;
	// TBDir holds TensorBoard event files.
	MetricsCSVFile = "metrics.csv"
	EvalCSVFile    = "eval.csv"
	TBDir          = "tb"
	// ActivationsFile is written by the report's activations pass.
	ActivationsFile = "activations.json"
	CheckpointFile  = "checkpoint.safetensors"
	// PromptsDir holds prompts/<task>.safetensors: the prompt each task is
	// tested with, for the methods that store one.
	PromptsDir = "prompts"
	// ScratchDir holds large temporary files of the run in progress.
	ScratchDir = "scratch"
	// LockFile is locked while a process writes the run.
	LockFile = ".lock"
	// EvalDir holds eval-only passes: eval/<name>.json (the schema of
	// results.json) and eval/<name>.predictions.jsonl.
	EvalDir = "eval"
)

// EvalFile and PredictionsFile are the paths of the eval-only pass name.
func EvalFile(dir, name string) string { return filepath.Join(dir, EvalDir, name+".json") }

func PredictionsFile(dir, name string) string {
	return filepath.Join(dir, EvalDir, name+".predictions.jsonl")
}

// Info is config.json: the run's settings and what they were applied to.
type Info struct {
	Settings Config `json:"settings"`
	// ModelSHA256 and DataSHA256 fingerprint the model folder's files and
	// each task's data files; a resumed run refuses changed inputs.
	ModelSHA256 string            `json:"model_sha256"`
	DataSHA256  map[string]string `json:"data_sha256"`
	Device      string            `json:"device"`
	Driver      string            `json:"driver"`
	Version     string            `json:"version"`
	Created     string            `json:"created"`
}

// ReadInfo reads a run directory's config.json.
func ReadInfo(dir string) (*Info, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := limitio.ReadFile(path, 1<<20, "a run's config.json")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a run directory (no %s)", dir, ConfigFile)
		}
		return nil, err
	}
	return DecodeInfo(path, b)
}

// DecodeInfo parses the bytes of a config.json (path names it in errors).
func DecodeInfo(path string, b []byte) (*Info, error) {
	var info Info
	if err := jsonfile.Decode(b, &info); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &info, nil
}

// ReadResults reads a run directory's results.json.
func ReadResults(dir string) (*Results, error) {
	return readResults(filepath.Join(dir, ResultsFile))
}

// ReadEval reads the eval-only pass name of a run directory.
func ReadEval(dir, name string) (*Results, error) {
	return readResults(EvalFile(dir, name))
}

func readResults(path string) (*Results, error) {
	var r Results
	if err := jsonfile.Read(path, 64<<20, "a results.json", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DecodeResults parses the bytes of a results.json.
func DecodeResults(path string, b []byte) (*Results, error) {
	var r Results
	if err := jsonfile.Decode(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &r, nil
}

// EpochLine is one line of metrics.jsonl: an epoch of one task.
type EpochLine struct {
	Task      string             `json:"task"`
	TaskIndex int                `json:"task_index"`
	Epoch     int                `json:"epoch"` // 0-based
	Steps     int                `json:"steps"`
	Loss      float64            `json:"loss"`  // mean training loss
	Parts     map[string]float64 `json:"parts"` // mean of each loss term
	// Valid is the validation score (primary metric, percent) when the
	// epoch was validated; Best the best so far.
	Valid *float64 `json:"valid"`
	Best  *float64 `json:"best"`
	// Alpha is the method's mixture weight of each earlier task's stored
	// prompt (SHLPT's ᾱ) at the end of the epoch, for methods that weigh
	// earlier tasks (method.Similarities).
	Alpha        []float64 `json:"alpha,omitempty"`
	TokensPerS   float64   `json:"tokens_per_s"` // training tokens (prompt + input + target) per second
	TrainSeconds float64   `json:"train_seconds"`
	EvalSeconds  float64   `json:"eval_seconds"`
	PeakBytes    int64     `json:"peak_device_bytes"`
}

// ReadMetrics reads a run directory's metrics.jsonl; an error names the
// line that does not parse.
func ReadMetrics(dir string) ([]EpochLine, error) {
	path := filepath.Join(dir, MetricsFile)
	b, err := limitio.ReadFile(path, 1<<30, "a metrics.jsonl")
	if err != nil {
		return nil, err
	}
	return DecodeMetrics(path, b)
}

// DecodeMetrics parses the bytes of a metrics.jsonl, one line an epoch.
func DecodeMetrics(path string, b []byte) ([]EpochLine, error) {
	var out []EpochLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l EpochLine
		if err := jsonfile.Decode(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

// Activations is activations.json: how alike the stored prompts make the
// model's activation state at the last decoder layer (the feed-forward
// activation of the first decoder position, where ASC acts).
type Activations struct {
	Tasks []string `json:"tasks"`
	// InputsPerTask is how many test inputs of each task were run.
	InputsPerTask int `json:"inputs_per_task"`
	// Similarity[a][b] is the mean over the inputs of every task of the
	// cosine similarity between the activations with prompt a and with
	// prompt b.
	Similarity [][]float64 `json:"similarity"`
}

// ReadActivations reads a run directory's activations.json.
func ReadActivations(dir string) (*Activations, error) {
	path := filepath.Join(dir, ActivationsFile)
	var a Activations
	if err := jsonfile.Read(path, 16<<20, "an activations.json", &a); err != nil {
		return nil, err
	}
	if len(a.Similarity) != len(a.Tasks) {
		return nil, fmt.Errorf("%s: %d rows of similarity for %d tasks", path, len(a.Similarity), len(a.Tasks))
	}
	for i, row := range a.Similarity {
		if len(row) != len(a.Tasks) {
			return nil, fmt.Errorf("%s: similarity row %d has %d entries for %d tasks", path, i, len(row), len(a.Tasks))
		}
	}
	return &a, nil
}
