package rundir

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"

	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
)

// Results is results.json: the lifelong score matrices and what is
// derived from them. Scores are percentages of the primary metric.
type Results struct {
	Method string   `json:"method"`
	Tasks  []string `json:"tasks"`
	// PrimaryMetrics is the run's choice of primary metrics ("paper" or
	// "official", Config.PrimaryMetrics); Metric names each task's.
	PrimaryMetrics string   `json:"primary_metrics"`
	Metric         []string `json:"metric"`
	// Complete is false while tasks remain; StagesDone counts finished
	// tasks (rows of the matrices).
	Complete   bool `json:"complete"`
	StagesDone int  `json:"stages_done"`
	// Multitask marks a run that trained every task at once: only the last
	// row of the matrices is filled.
	Multitask bool `json:"multitask,omitempty"`
	// Matrix holds R[t][i], the score on task i after training through
	// task t, for the valid and test sets; null above the diagonal and for
	// stages not run yet.
	Matrix Matrix `json:"matrix"`
	// Average, BWT and FWT over the finished stages (the last row); FWT
	// only with per-task scores to compare with.
	Average map[string]float64 `json:"average,omitempty"`
	BWT     map[string]float64 `json:"bwt,omitempty"`
	FWT     map[string]float64 `json:"fwt,omitempty"`
	// Forgetting per split: each earlier task's best score before the
	// last finished stage minus its score after it, and their mean.
	Forgetting map[string]Forgetting `json:"forgetting,omitempty"`
	PerTask    []TaskResult          `json:"per_task"`
	Timing     Timing                `json:"timing"`
	Baseline   string                `json:"fwt_baseline,omitempty"` // where FWT's per-task scores come from
	// Alternate holds the matrices, Average and BWT under the other
	// primary-metrics choice, when a task's metric differs between the two
	// (MultiRC, SQuAD); nil otherwise.
	Alternate *Alternate `json:"alternate,omitempty"`
	// Eval says what an eval-only pass scored (eval/<name>.json): only the
	// last row of the matrices, for its split, is filled. Nil in
	// results.json.
	Eval *EvalSpec `json:"eval,omitempty"`

	// AlreadyComplete is set (never stored) when a run was asked to start
	// or resume in a directory where it had finished: nothing was changed.
	AlreadyComplete bool `json:"-"`
}

// Alternate is what Results would hold with the other choice of primary
// metrics (secondary metrics: every cell is the score of the task's
// Metric on the same predictions).
type Alternate struct {
	PrimaryMetrics string             `json:"primary_metrics"`
	Metric         []string           `json:"metric"`
	Matrix         Matrix             `json:"matrix"`
	Average        map[string]float64 `json:"average,omitempty"`
	BWT            map[string]float64 `json:"bwt,omitempty"`
}

// Matrix holds R[t][i] for the valid and test sets.
type Matrix struct {
	Valid [][]*float64 `json:"valid"`
	Test  [][]*float64 `json:"test"`
}

// newMatrix returns a T×T matrix of nulls for each split.
func newMatrix(T int) Matrix {
	m := Matrix{Valid: make([][]*float64, T), Test: make([][]*float64, T)}
	for t := 0; t < T; t++ {
		m.Valid[t] = make([]*float64, T)
		m.Test[t] = make([]*float64, T)
	}
	return m
}

// EvalSpec describes an eval-only pass over a run's learned state.
type EvalSpec struct {
	Name              string  `json:"name"`
	Split             string  `json:"split"` // valid or test
	Decode            string  `json:"decode"`
	NumBeams          int     `json:"num_beams"`
	RepetitionPenalty float64 `json:"repetition_penalty"`
	Data              string  `json:"data"` // the data root the examples were drawn from
	// Prompts is a folder of imported prompts the tasks it holds were
	// scored with instead of the run's ("" for none).
	Prompts string `json:"prompts,omitempty"`
	Device  string `json:"device"`
	Version string `json:"version"`
	Created string `json:"created"`
}

// Prediction is one line of eval/<name>.predictions.jsonl: what the model
// answered for one example.
type Prediction struct {
	Task  string `json:"task"`
	Index int    `json:"index"` // the example's position in the sampled split
	// Input is the model's input text (the task's template applied).
	Input      string `json:"input"`
	Target     string `json:"target"`
	Prediction string `json:"prediction"`
	// Scores are, with rank decoding, log p(label | input) for each of the
	// task's label words, in their order.
	Scores []float64 `json:"scores,omitempty"`
}

// TaskResult is what the run records about one task.
type TaskResult struct {
	Task          string   `json:"task"`
	Index         int      `json:"index"`
	TrainExamples int      `json:"train_examples"`
	ValidExamples int      `json:"valid_examples"`
	TestExamples  int      `json:"test_examples"`
	Truncated     int      `json:"truncated_inputs"`
	EpochsRun     int      `json:"epochs_run"`
	StoppedEarly  bool     `json:"stopped_early"`
	BestEpoch     int      `json:"best_epoch"` // 0-based; -1 without validation
	BestValid     *float64 `json:"best_valid"`
	// Scores are every metric, in percent, on the task's valid and test
	// sets right after the task (stage = the task's own index).
	Scores  map[string]map[string]float64 `json:"scores"`
	Method  map[string]any                `json:"method,omitempty"`
	Seconds float64                       `json:"seconds"`
}

// Forgetting is one split's forgetting (metrics.Forgetting): Mean over
// the tasks before the last finished one, PerTask by task name.
type Forgetting struct {
	Mean    float64            `json:"mean"`
	PerTask map[string]float64 `json:"per_task"`
}

// Timing is wall-clock time in seconds.
type Timing struct {
	TrainSeconds float64 `json:"train_seconds"`
	EvalSeconds  float64 `json:"eval_seconds"`
	TotalSeconds float64 `json:"total_seconds"`
}

// NewResults returns empty results for a sequence.
func NewResults(methodName string, names []string) *Results {
	return &Results{Method: methodName, Tasks: names, Metric: make([]string, len(names)), Matrix: newMatrix(len(names))}
}

// SetMetrics records the tasks' primary metrics under the primary-metrics
// choice primary, and alternate under the other one; the alternate
// matrices are kept only when the two lists differ.
func (r *Results) SetMetrics(primary string, metric, alternate []string) {
	r.PrimaryMetrics, r.Metric, r.Alternate = primary, append([]string(nil), metric...), nil
	if !slices.Equal(metric, alternate) {
		r.Alternate = &Alternate{PrimaryMetrics: OtherMetrics(primary), Metric: append([]string(nil), alternate...),
			Matrix: newMatrix(len(r.Tasks))}
	}
}

// FinishStage derives the summary numbers from the finished rows.
func (r *Results) FinishStage(baseline []float64) error {
	r.Complete = r.StagesDone == len(r.Tasks)
	sum, err := summarize(r.Matrix, r.Tasks, r.StagesDone, r.Multitask, baseline)
	if err != nil {
		return err
	}
	r.Average, r.BWT, r.FWT, r.Forgetting = sum.average, sum.bwt, sum.fwt, sum.forgetting
	if a := r.Alternate; a != nil {
		alt, err := summarize(a.Matrix, r.Tasks, r.StagesDone, r.Multitask, nil)
		if err != nil {
			return fmt.Errorf("alternate metrics: %w", err)
		}
		a.Average, a.BWT = alt.average, alt.bwt
	}
	return nil
}

// summary is what FinishStage derives from a matrix.
type summary struct {
	average, bwt, fwt map[string]float64
	forgetting        map[string]Forgetting
}

// summarize derives Average, BWT, forgetting and (with per-task scores)
// FWT from the first n rows of a matrix of the tasks, or with multitask
// the average of its row n−1.
func summarize(m Matrix, tasks []string, n int, multitask bool, baseline []float64) (summary, error) {
	out := summary{average: map[string]float64{}}
	if multitask {
		for _, split := range []struct {
			name string
			row  []*float64
		}{{"valid", m.Valid[n-1]}, {"test", m.Test[n-1]}} {
			s := 0.0
			for i, v := range split.row {
				if v == nil {
					return out, fmt.Errorf("results: no %s score for task %d", split.name, i)
				}
				s += *v
			}
			out.average[split.name] = s / float64(len(split.row))
		}
		return out, nil
	}
	for _, split := range []struct {
		name string
		m    [][]*float64
	}{{"valid", m.Valid}, {"test", m.Test}} {
		mat := make(metrics.Matrix, n)
		for t := 0; t < n; t++ {
			mat[t] = make([]float64, t+1)
			for i := 0; i <= t; i++ {
				if split.m[t][i] == nil {
					return out, fmt.Errorf("results: stage %d has no %s score for task %d", t, split.name, i)
				}
				mat[t][i] = *split.m[t][i]
			}
		}
		avg, err := metrics.Average(mat)
		if err != nil {
			return out, err
		}
		out.average[split.name] = avg
		if n < 2 {
			continue
		}
		bwt, err := metrics.BWT(mat)
		if err != nil {
			return out, err
		}
		if out.bwt == nil {
			out.bwt = map[string]float64{}
		}
		out.bwt[split.name] = bwt
		per, err := metrics.ForgettingPerTask(mat)
		if err != nil {
			return out, err
		}
		f := Forgetting{PerTask: map[string]float64{}}
		for i, v := range per {
			f.PerTask[tasks[i]] = v
		}
		if f.Mean, err = metrics.Forgetting(mat); err != nil {
			return out, err
		}
		if out.forgetting == nil {
			out.forgetting = map[string]Forgetting{}
		}
		out.forgetting[split.name] = f
		if baseline != nil && split.name == "test" {
			fwt, err := metrics.FWT(mat, baseline[:n])
			if err != nil {
				return out, err
			}
			out.fwt = map[string]float64{"test": fwt}
		}
	}
	return out, nil
}

// ReadBaseline reads the per-task test scores of the tasks from another
// run's results.json (its diagonal: each task's score right after it).
func ReadBaseline(path string, tasks []string) ([]float64, error) {
	b, err := limitio.ReadFile(path, 64<<20, "a results.json")
	if err != nil {
		return nil, err
	}
	var other Results
	if err := json.Unmarshal(b, &other); err != nil {
		return nil, fmt.Errorf("per-task scores %s: %v", path, err)
	}
	diag := map[string]float64{}
	for i, name := range other.Tasks {
		if i < len(other.Matrix.Test) && i < len(other.Matrix.Test[i]) && other.Matrix.Test[i][i] != nil {
			diag[name] = *other.Matrix.Test[i][i]
		}
	}
	out := make([]float64, len(tasks))
	for i, name := range tasks {
		v, ok := diag[name]
		if !ok {
			return nil, fmt.Errorf("per-task scores %s have no test score for task %s", path, name)
		}
		out[i] = v
	}
	return out, nil
}
