package rundir

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The summary numbers of results.json and FWT against another run's
// per-task scores, by hand: R = [[50], [40, 70], [40, 60, 90]], per-task
// scores [55, 65, 80].
func TestResultsSummary(t *testing.T) {
	r := NewResults("shlpt", []string{"a", "b", "c"})
	vals := [][]float64{{50}, {40, 70}, {40, 60, 90}}
	for i, row := range vals {
		for j, v := range row {
			r.Matrix.Test[i][j], r.Matrix.Valid[i][j] = pct(v), pct(v)
		}
	}
	r.StagesDone = 3
	base := NewResults("per-task", []string{"c", "a", "b"})
	for i, v := range []float64{80, 55, 65} {
		base.Matrix.Test[i][i] = pct(v)
	}
	path := filepath.Join(t.TempDir(), "results.json")
	b, _ := json.Marshal(base)
	os.WriteFile(path, b, 0o644)
	scores, err := ReadBaseline(path, r.Tasks)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.FinishStage(scores); err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	// Average 190/3; BWT ((40-50) + (60-70))/2 = -10; FWT ((70-65) + (90-80))/2 = 7.5.
	if !r.Complete || !near(r.Average["test"], 190.0/3) || !near(r.BWT["test"], -10) || !near(r.FWT["test"], 7.5) {
		t.Errorf("average %v, BWT %v, FWT %v", r.Average, r.BWT, r.FWT)
	}
	// Forgetting: a drops from 50 to 40, b from 70 to 60: 10 each.
	if f := r.Forgetting["test"]; !near(f.Mean, 10) || len(f.PerTask) != 2 || !near(f.PerTask["a"], 10) || !near(f.PerTask["b"], 10) {
		t.Errorf("forgetting %+v", r.Forgetting)
	}
	if _, err := ReadBaseline(path, []string{"a", "d"}); err == nil {
		t.Error("a baseline without task d was accepted")
	}
}

func pct(v float64) *float64 { return &v }

// The paper's metrics are primary by default; a sequence with MultiRC
// keeps the official metric's matrices and summary as the alternate.
func TestAlternateMetrics(t *testing.T) {
	c, err := DefaultConfig("")
	if err != nil || c.PrimaryMetrics != PaperMetrics || MetricOptions(c.PrimaryMetrics).Official {
		t.Fatalf("default primary metrics %q (%v), want %q", c.PrimaryMetrics, err, PaperMetrics)
	}
	r := NewResults("shlpt", []string{"cb", "multirc"})
	r.SetMetrics(PaperMetrics, []string{"accuracy", "micro_f1"}, []string{"accuracy", "f1a"})
	if r.Alternate == nil || r.Alternate.PrimaryMetrics != OfficialMetrics || r.Alternate.Metric[1] != "f1a" {
		t.Fatalf("alternate %+v", r.Alternate)
	}
	vals := [][]float64{{50}, {40, 70}}
	alt := [][]float64{{50}, {40, 30}}
	for i, row := range vals {
		for j, v := range row {
			r.Matrix.Test[i][j], r.Matrix.Valid[i][j] = pct(v), pct(v)
			r.Alternate.Matrix.Test[i][j], r.Alternate.Matrix.Valid[i][j] = pct(alt[i][j]), pct(alt[i][j])
		}
	}
	r.StagesDone = 2
	if err := r.FinishStage(nil); err != nil {
		t.Fatal(err)
	}
	if r.Average["test"] != 55 || r.Alternate.Average["test"] != 35 || r.Alternate.BWT["test"] != -10 {
		t.Errorf("averages %v and %v, alternate BWT %v", r.Average, r.Alternate.Average, r.Alternate.BWT)
	}
	same := NewResults("shlpt", []string{"cb"})
	same.SetMetrics(OfficialMetrics, []string{"accuracy"}, []string{"accuracy"})
	if same.Alternate != nil {
		t.Errorf("alternate kept for classification tasks only: %+v", same.Alternate)
	}
}
