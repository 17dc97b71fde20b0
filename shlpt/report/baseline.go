package report

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"

	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// perTask is the method FWT is measured against (the paper's FWT: a
// task's score right after it is learned minus per-task prompt tuning's
// on the same task).
const perTask = "per-task"

// FillFWT measures FWT for the complete runs whose results.json has none
// (they ran without --per-task-scores, as every run of a sweep does:
// its runs go in parallel) against a complete per-task run among runs
// with the same seed, sequence, model and data whose other settings agree
// (see sameShared). It sets Results.FWT["test"] and Results.Baseline and
// returns how many runs it measured.
func FillFWT(runs []*Run) int {
	n := 0
	for _, r := range runs {
		if r.State != StateComplete || r.Results.Multitask || r.Info.Settings.Method == perTask || len(r.Results.Tasks) < 2 {
			continue
		}
		if _, ok := r.Results.FWT["test"]; ok {
			continue
		}
		for _, b := range runs {
			if b.State != StateComplete || b.Info.Settings.Method != perTask || b.Seed() != r.Seed() ||
				b.Info.ModelSHA256 != r.Info.ModelSHA256 || !reflect.DeepEqual(b.Info.DataSHA256, r.Info.DataSHA256) || !sameShared(r, b) {
				continue
			}
			fwt, ok := fwtAgainst(r, b)
			if !ok {
				continue
			}
			if r.Results.FWT == nil {
				r.Results.FWT = map[string]float64{}
			}
			r.Results.FWT["test"] = fwt
			r.Results.Baseline = filepath.Join(b.Dir, rundir.ResultsFile)
			r.FWTFromReport = true
			n++
			break
		}
	}
	return n
}

// fwtAgainst is r's FWT on the test sets against the diagonal of the
// per-task run b (false when a score is missing).
func fwtAgainst(r, b *Run) (float64, bool) {
	rt, bt := r.Results.Matrix.Test, b.Results.Matrix.Test
	T := len(r.Results.Tasks)
	if len(rt) != T || len(bt) != T {
		return 0, false
	}
	mat := make(metrics.Matrix, T)
	base := make([]float64, T)
	for t := 0; t < T; t++ {
		if bt[t][t] == nil {
			return 0, false
		}
		base[t] = *bt[t][t]
		mat[t] = make([]float64, t+1)
		for i := 0; i <= t; i++ {
			if rt[t][i] == nil {
				return 0, false
			}
			mat[t][i] = *rt[t][i]
		}
	}
	fwt, err := metrics.FWT(mat, base)
	return fwt, err == nil
}

// sameShared says whether two runs of different methods agree on every
// setting they share: the method and the methods' own settings blocks
// aside, each setting is equal in both, or each run has its own method's
// default there (finetuning's learning rate is not prompt tuning's, and a
// paper-style baseline uses each method's own).
func sameShared(a, b *Run) bool {
	da, errA := defaultsOf(a)
	db, errB := defaultsOf(b)
	if errA != nil || errB != nil {
		return false
	}
	blocks := map[string]bool{"method": true}
	for _, m := range rundir.Methods() {
		blocks[methodKey(m)] = true
	}
	keys := map[string]bool{}
	for k := range a.Settings {
		keys[k] = true
	}
	for k := range b.Settings {
		keys[k] = true
	}
	for k := range keys {
		if notGrouped[k] || blocks[k] {
			continue
		}
		va, vb := a.Settings[k], b.Settings[k]
		if reflect.DeepEqual(va, vb) {
			continue
		}
		if reflect.DeepEqual(va, da[k]) && reflect.DeepEqual(vb, db[k]) {
			continue
		}
		return false
	}
	return true
}

// defaultsOf is the default settings of a run's benchmark and method as
// generic JSON.
func defaultsOf(r *Run) (map[string]any, error) {
	def, err := rundir.DefaultConfigFor(r.Info.Settings.Benchmark, r.Info.Settings.Method)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", r.Dir, err)
	}
	var out map[string]any
	b, err := json.Marshal(def)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	return out, err
}
