package run

import (
	"encoding/csv"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// The CSV logs follow Avalanche's CSVLogger (training_results.csv and
// eval_results.csv) where its columns apply: metrics.csv has a row per
// epoch, eval.csv a row per task scored after each stage. Scores are the
// primary metric in percent, in the columns Avalanche calls accuracy.
var (
	metricsCSVHeader = []string{"training_exp", "task", "epoch", "steps", "global_step", "training_loss",
		"ce", "hsc", "asc", "key", "ortho", "replay", "ewc", "other_parts",
		"val_accuracy", "best_val_accuracy", "alpha", "tokens_per_s", "train_seconds", "eval_seconds", "peak_device_bytes"}
	evalCSVHeader = []string{"training_exp", "training_task", "eval_exp", "eval_task", "metric",
		"val_accuracy", "eval_accuracy", "forgetting"}
	// csvParts are the loss terms with a column of their own; any other
	// goes into other_parts as name=value pairs.
	csvParts = []string{"ce", "hsc", "asc", "key", "ortho", "replay", "ewc"}
)

type csvLog struct {
	metrics, eval *logFile
}

func openCSVLog(dir string, open func(rel string) (*logFile, error)) (Logger, error) {
	m, err := open(rundir.MetricsCSVFile)
	if err != nil {
		return nil, err
	}
	e, err := open(rundir.EvalCSVFile)
	if err != nil {
		m.close()
		return nil, err
	}
	return &csvLog{metrics: m, eval: e}, nil
}

func writeRow(f *logFile, header, row []string) error {
	w := csv.NewWriter(f)
	if f.empty {
		w.Write(header)
		f.empty = false
	}
	w.Write(row)
	w.Flush()
	return w.Error()
}

func csvFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func csvOpt(v *float64) string {
	if v == nil {
		return ""
	}
	return csvFloat(*v)
}

func (c *csvLog) Step(StepLog) error { return nil }

func (c *csvLog) Epoch(e EpochLog) error {
	l := e.Line
	row := []string{strconv.Itoa(l.TaskIndex), l.Task, strconv.Itoa(l.Epoch), strconv.Itoa(l.Steps), strconv.Itoa(e.GlobalStep), csvFloat(l.Loss)}
	for _, p := range csvParts {
		if v, ok := l.Parts[p]; ok {
			row = append(row, csvFloat(v))
		} else {
			row = append(row, "")
		}
	}
	var other []string
	for k, v := range l.Parts {
		if !slices.Contains(csvParts, k) {
			other = append(other, k+"="+csvFloat(v))
		}
	}
	sort.Strings(other)
	alpha := make([]string, len(l.Alpha))
	for i, a := range l.Alpha {
		alpha[i] = csvFloat(a)
	}
	row = append(row, strings.Join(other, ";"), csvOpt(l.Valid), csvOpt(l.Best), strings.Join(alpha, " "),
		csvFloat(l.TokensPerS), csvFloat(l.TrainSeconds), csvFloat(l.EvalSeconds), strconv.FormatInt(l.PeakBytes, 10))
	return writeRow(c.metrics, metricsCSVHeader, row)
}

func (c *csvLog) Stage(s StageLog) error {
	r := s.Results
	for _, i := range s.Scored {
		row := []string{strconv.Itoa(s.Row), stageTask(r, s.Row), strconv.Itoa(i), r.Tasks[i], r.Metric[i],
			csvOpt(r.Matrix.Valid[s.Row][i]), csvOpt(r.Matrix.Test[s.Row][i]), csvOpt(forgettingAt(r.Matrix.Test, s.Row, i))}
		if err := writeRow(c.eval, evalCSVHeader, row); err != nil {
			return err
		}
	}
	return nil
}

func (c *csvLog) Sync() (map[string]int64, error) {
	out := map[string]int64{}
	var errs []error
	for _, f := range []*logFile{c.metrics, c.eval} {
		n, err := f.sync()
		out[f.rel] = n
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func (c *csvLog) Close() error { return errors.Join(c.metrics.close(), c.eval.close()) }

// stageTask names the task a results row was trained on ("multitask" for
// a multitask run's one row).
func stageTask(r *rundir.Results, row int) string {
	if r.Multitask {
		return "multitask"
	}
	return r.Tasks[row]
}

// forgettingAt is task i's drop from its best score before stage t to its
// score at t (nil for the stage's own task or a missing score).
func forgettingAt(m [][]*float64, t, i int) *float64 {
	if i >= t || m[t][i] == nil {
		return nil
	}
	var best *float64
	for l := i; l < t; l++ {
		if v := m[l][i]; v != nil && (best == nil || *v > *best) {
			best = v
		}
	}
	if best == nil {
		return nil
	}
	f := *best - *m[t][i]
	return &f
}
