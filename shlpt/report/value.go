package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
)

// Value is one number summarized over seeds.
type Value struct {
	metrics.Summary
	Seeds []uint64
	// Incomplete says why seeds are missing (empty: every seed the group
	// should have is in). An incomplete value is shown marked.
	Incomplete []string
}

// Valid says whether there is a number at all.
func (v *Value) Valid() bool { return v != nil && v.N > 0 }

// A runMetric reads one number of a complete run (ok false: the run has
// none).
type runMetric func(r *Run) (float64, bool)

// summarize summarizes a metric over the complete runs of groups (one
// group, or a row's groups over a benchmark's orders).
func summarize(groups []*Group, m runMetric) *Value {
	v := &Value{}
	var xs []float64
	finished := 0
	for _, g := range groups {
		for _, inc := range g.Incomplete {
			if !slices.Contains(v.Incomplete, inc) {
				v.Incomplete = append(v.Incomplete, inc)
			}
		}
		finished += len(g.Complete())
		for _, r := range g.Complete() {
			if x, ok := m(r); ok {
				xs = append(xs, x)
				v.Seeds = append(v.Seeds, r.Seed())
			}
		}
	}
	if len(xs) == 0 {
		if finished == 0 && len(v.Incomplete) > 0 {
			return v // nothing finished yet: shown as such
		}
		return nil
	}
	if len(xs) < finished {
		v.Incomplete = append(v.Incomplete, fmt.Sprintf("%d of %d finished runs have no value here", finished-len(xs), finished))
	}
	s, err := metrics.Summarize(xs)
	if err != nil {
		return nil
	}
	v.Summary = s
	sort.Slice(v.Seeds, func(i, j int) bool { return v.Seeds[i] < v.Seeds[j] })
	return v
}

// The run metrics of the tables (test scores, percent).
var (
	metricAverage = func(r *Run) (float64, bool) { v, ok := r.Results.Average["test"]; return v, ok }
	metricBWT     = func(r *Run) (float64, bool) { v, ok := r.Results.BWT["test"]; return v, ok }
	metricFWT     = func(r *Run) (float64, bool) { v, ok := r.Results.FWT["test"]; return v, ok }
	metricForget  = func(r *Run) (float64, bool) { f, ok := r.Results.Forgetting["test"]; return f.Mean, ok }
)

// metricFinal is task i's test score after the last stage.
func metricFinal(i int) runMetric {
	return func(r *Run) (float64, bool) {
		row := r.FinalTest()
		if i >= len(row) || row[i] == nil {
			return 0, false
		}
		return *row[i], true
	}
}

// metricDiagonal is task i's test score right after it was learned.
func metricDiagonal(i int) runMetric {
	return func(r *Run) (float64, bool) {
		m := r.Results.Matrix.Test
		if i >= len(m) || m[i][i] == nil {
			return 0, false
		}
		return *m[i][i], true
	}
}

// metricTaskForgetting is task i's forgetting.
func metricTaskForgetting(task string) runMetric {
	return func(r *Run) (float64, bool) {
		f, ok := r.Results.Forgetting["test"]
		if !ok {
			return 0, false
		}
		v, ok := f.PerTask[task]
		return v, ok
	}
}

// Cell is one cell of a table: our value and the paper's.
type Cell struct {
	Ours  *Value
	Paper *PaperCell
	// Comparable says the setting is the paper's; otherwise Why says what
	// differs.
	Comparable bool
	Why        string
	// Flags are marks the reader must see (primary metrics unlike the
	// paper's).
	Flags []string
	// Text is a cell of words instead of a number.
	Text string
}

// Diff is ours minus the paper's, when both exist and compare.
func (c *Cell) Diff() (float64, bool) {
	if c == nil || !c.Ours.Valid() || c.Paper == nil || !c.Comparable {
		return 0, false
	}
	return c.Ours.Mean - c.Paper.Value, true
}

// newCell summarizes groups for a cell and looks up the paper's value.
func newCell(groups []*Group, m runMetric, paper *Paper, key *PaperKey, extra ...string) *Cell {
	c := &Cell{Ours: summarize(groups, m)}
	if key != nil && paper != nil {
		c.Paper = paper.Lookup(*key)
	}
	var why []string
	why = append(why, extra...)
	for _, g := range groups {
		for _, d := range g.Differs {
			if !slices.Contains(why, d) {
				why = append(why, d)
			}
		}
		for _, f := range g.Flags {
			if !slices.Contains(c.Flags, f) {
				c.Flags = append(c.Flags, f)
			}
		}
	}
	c.Comparable = len(why) == 0 && (c.Ours == nil || len(c.Ours.Incomplete) == 0)
	if c.Ours != nil && len(c.Ours.Incomplete) > 0 {
		why = append(why, "incomplete")
	}
	c.Why = strings.Join(why, ", ")
	return c
}

// ours is "mean ± std (n=N)".
func (v *Value) text() string {
	if !v.Valid() {
		return "—"
	}
	return fmt.Sprintf("%.2f ± %.2f (n=%d)", v.Mean, v.Std, v.N)
}
