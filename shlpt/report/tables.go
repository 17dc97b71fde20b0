package report

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Table is one of the paper's tables filled with our groups.
type Table struct {
	Name  string // "Table 2", "Forgetting"
	Title string
	Cols  []string
	Rows  []Row
}

// Row is a labelled row of cells (nil: nothing there).
type Row struct {
	Label string
	Cells []*Cell
}

// benchCols are a benchmark's order columns and their titles.
func benchCols(benchmark string) (orders []int, titles []string) {
	b, err := rundir.LookupBenchmark(benchmark)
	if err != nil {
		return nil, nil
	}
	for o := range b.Orders {
		orders = append(orders, o)
	}
	sort.Ints(orders)
	for _, o := range orders {
		if benchmark == "nt" {
			titles = append(titles, fmt.Sprintf("Seq%d", o))
		} else {
			titles = append(titles, fmt.Sprintf("Order %d", o))
		}
	}
	return orders, titles
}

var benchTitle = map[string]string{"std": "Standard CL", "long": "Large Number of Tasks", "nt": "Negative Transfer"}

// rowsOf collects groups by row label among those that keep(g).
func rowsOf(groups []*Group, keep func(*Group) bool) (labels []string, byLabel map[string][]*Group) {
	byLabel = map[string][]*Group{}
	for _, g := range groups {
		if !keep(g) {
			continue
		}
		l := g.Label()
		if byLabel[l] == nil {
			labels = append(labels, l)
		}
		byLabel[l] = append(byLabel[l], g)
	}
	sort.Strings(labels)
	return labels, byLabel
}

// ordersTable is a table of methods (rows) by the orders of benchmarks and
// each benchmark's average (columns), of one metric.
func ordersTable(name, title string, groups []*Group, paper *Paper, benchmarks []string, metric string, m runMetric, keep func(*Group) bool) *Table {
	t := &Table{Name: name, Title: title}
	type col struct {
		bench string
		order int // 0: the average over the orders
	}
	var cols []col
	for _, b := range benchmarks {
		used := false
		for _, g := range groups {
			used = used || (g.Benchmark == b && keep(g))
		}
		if !used {
			continue
		}
		orders, titles := benchCols(b)
		for i, o := range orders {
			cols = append(cols, col{b, o})
			t.Cols = append(t.Cols, benchTitle[b]+" "+titles[i])
		}
		cols = append(cols, col{b, 0})
		t.Cols = append(t.Cols, benchTitle[b]+" Avg")
	}
	labels, byLabel := rowsOf(groups, func(g *Group) bool { return slices.Contains(benchmarks, g.Benchmark) && keep(g) })
	for _, l := range labels {
		row := Row{Label: l}
		any := false
		for _, c := range cols {
			var gs []*Group
			var missing []string
			if c.order != 0 {
				for _, g := range byLabel[l] {
					if g.Benchmark == c.bench && g.Order == c.order {
						gs = append(gs, g)
					}
				}
			} else {
				orders, titles := benchCols(c.bench)
				for i, o := range orders {
					found := false
					for _, g := range byLabel[l] {
						if g.Benchmark == c.bench && g.Order == o {
							gs = append(gs, g)
							found = true
						}
					}
					if !found {
						missing = append(missing, titles[i])
					}
				}
			}
			if len(gs) == 0 {
				row.Cells = append(row.Cells, nil)
				continue
			}
			key := &PaperKey{Benchmark: c.bench, Order: c.order, Method: gs[0].Method, Variant: gs[0].Variant, Metric: metric}
			cell := newCell(gs, m, paper, key)
			if len(missing) > 0 && cell.Ours != nil {
				cell.Ours.Incomplete = append(cell.Ours.Incomplete, strings.Join(missing, ", ")+" missing")
				cell.Comparable = false
				cell.Why = strings.TrimPrefix(cell.Why+", incomplete", ", ")
			}
			any = any || cell.Ours != nil
			row.Cells = append(row.Cells, cell)
		}
		if any {
			t.Rows = append(t.Rows, row)
		}
	}
	if len(t.Rows) == 0 {
		return nil
	}
	return t
}

// seqColumns is one column per (benchmark, order) the groups cover.
func seqColumns(groups []*Group) (keys []string, titles map[string]string) {
	titles = map[string]string{}
	for _, g := range groups {
		k := fmt.Sprintf("%s/%02d", g.Benchmark, g.Order)
		if _, ok := titles[k]; ok {
			continue
		}
		keys = append(keys, k)
		if g.Benchmark == "" {
			titles[k] = strings.Join(g.Tasks, "→")
		} else {
			_, ts := benchCols(g.Benchmark)
			orders, _ := benchCols(g.Benchmark)
			title := fmt.Sprintf("%s %d", benchTitle[g.Benchmark], g.Order)
			for i, o := range orders {
				if o == g.Order {
					title = benchTitle[g.Benchmark] + " " + ts[i]
				}
			}
			titles[k] = title
		}
	}
	sort.Strings(keys)
	return keys, titles
}

// ablationTable is Table 4: SHLPT's variants (and per-task prompt tuning)
// on every sequence where a variant was run.
func ablationTable(groups []*Group, paper *Paper) *Table {
	seqs := map[string]bool{}
	for _, g := range groups {
		if g.Method == "shlpt" && g.Variant != "" && g.Benchmark != "" {
			seqs[fmt.Sprintf("%s/%02d", g.Benchmark, g.Order)] = true
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	var in []*Group
	for _, g := range groups {
		if (g.Method == "shlpt" || g.Method == "per-task") && seqs[fmt.Sprintf("%s/%02d", g.Benchmark, g.Order)] {
			in = append(in, g)
		}
	}
	keys, titles := seqColumns(in)
	t := &Table{Name: "Table 4", Title: "Ablations: average test score"}
	for _, k := range keys {
		t.Cols = append(t.Cols, titles[k])
	}
	labels, byLabel := rowsOf(in, func(*Group) bool { return true })
	for _, l := range labels {
		row := Row{Label: l}
		for _, k := range keys {
			var cell *Cell
			for _, g := range byLabel[l] {
				if fmt.Sprintf("%s/%02d", g.Benchmark, g.Order) == k {
					cell = newCell([]*Group{g}, metricAverage, paper,
						&PaperKey{Benchmark: g.Benchmark, Order: g.Order, Method: g.Method, Variant: g.Variant, Metric: "average"})
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// pairGroups are the two-task runs of an explicit task list (the transfer
// studies: a source task, then a target task).
func pairGroups(groups []*Group) []*Group {
	var out []*Group
	for _, g := range groups {
		if g.Benchmark == "" && len(g.Tasks) == 2 && !boolSetting(g.Settings, "multitask") {
			out = append(out, g)
		}
	}
	return out
}

func boolSetting(s map[string]any, k string) bool {
	v, _ := s[k].(bool)
	return v
}

// pairsTable is Table 5: the target task's score after each transfer
// algorithm, per (source, target) pair.
func pairsTable(groups []*Group) *Table {
	pairs := pairGroups(groups)
	if len(pairs) == 0 {
		return nil
	}
	t := &Table{Name: "Table 5", Title: "Transfer algorithms on task pairs: the target's test score"}
	var algos, rows []string
	for _, g := range pairs {
		if !slices.Contains(algos, g.Label()) {
			algos = append(algos, g.Label())
		}
		p := g.Tasks[0] + " → " + g.Tasks[1]
		if !slices.Contains(rows, p) {
			rows = append(rows, p)
		}
	}
	sort.Strings(algos)
	sort.Strings(rows)
	t.Cols = algos
	for _, p := range rows {
		row := Row{Label: p}
		for _, a := range algos {
			var cell *Cell
			for _, g := range pairs {
				if g.Label() == a && g.Tasks[0]+" → "+g.Tasks[1] == p {
					cell = newCell([]*Group{g}, metricDiagonal(1), nil, nil)
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// baseKey is a group's settings without what distinguishes a transfer
// algorithm or a sequence: groups with the same baseKey share their
// per-task baselines.
func baseKey(g *Group) string {
	s := map[string]any{}
	blocks := map[string]bool{}
	for _, m := range rundir.Methods() {
		blocks[methodKey(m)] = true
	}
	for k, v := range g.Settings {
		if notGrouped[k] || blocks[k] || k == "method" || k == "tasks" || k == "benchmark" || k == "order" || k == "prompt_len" {
			continue
		}
		s[k] = v
	}
	return jsonString(s) + g.Model.Name
}

// Transfer is a transfer matrix (Table 10, Figure 1): the target's score
// after learning the source first, minus the target's per-task score.
type Transfer struct {
	Algorithm       string
	Sources, Target []string
	// Delta[i][j] is source i → target j; Baseline[j] the per-task score.
	Delta    [][]*Value
	Baseline []*Value
}

// Transfers builds a transfer matrix for every algorithm of the pair runs
// that has per-task baselines with the same settings.
func Transfers(groups []*Group) []*Transfer {
	pairs := pairGroups(groups)
	// Per-task baselines: every per-task group's diagonal, by task.
	baseline := map[string]map[string][]*Group{} // baseKey → task → groups
	for _, g := range groups {
		if g.Method != "per-task" || boolSetting(g.Settings, "multitask") {
			continue
		}
		bk := baseKey(g)
		if baseline[bk] == nil {
			baseline[bk] = map[string][]*Group{}
		}
		for i, task := range g.Tasks {
			_ = i
			baseline[bk][task] = append(baseline[bk][task], g)
		}
	}
	baseValue := func(bk, task string) *Value {
		var xs []*Value
		for _, g := range baseline[bk][task] {
			i := indexOf(g.Tasks, task)
			if v := summarize([]*Group{g}, metricDiagonal(i)); v != nil {
				xs = append(xs, v)
			}
		}
		if len(xs) == 0 {
			return nil
		}
		return xs[0]
	}
	byAlgo := map[string][]*Group{}
	var algos []string
	for _, g := range pairs {
		if g.Method == "per-task" {
			continue
		}
		if byAlgo[g.Label()] == nil {
			algos = append(algos, g.Label())
		}
		byAlgo[g.Label()] = append(byAlgo[g.Label()], g)
	}
	sort.Strings(algos)
	var out []*Transfer
	for _, a := range algos {
		tr := &Transfer{Algorithm: a}
		for _, g := range byAlgo[a] {
			if !slices.Contains(tr.Sources, g.Tasks[0]) {
				tr.Sources = append(tr.Sources, g.Tasks[0])
			}
			if !slices.Contains(tr.Target, g.Tasks[1]) {
				tr.Target = append(tr.Target, g.Tasks[1])
			}
		}
		sort.Strings(tr.Sources)
		sort.Strings(tr.Target)
		tr.Delta = make([][]*Value, len(tr.Sources))
		bk := baseKey(byAlgo[a][0])
		for j, task := range tr.Target {
			tr.Baseline = append(tr.Baseline, baseValue(bk, task))
			_ = j
		}
		some := false
		for i, src := range tr.Sources {
			tr.Delta[i] = make([]*Value, len(tr.Target))
			for j, tgt := range tr.Target {
				for _, g := range byAlgo[a] {
					if g.Tasks[0] != src || g.Tasks[1] != tgt || tr.Baseline[j] == nil || baseKey(g) != bk {
						continue
					}
					v := summarize([]*Group{g}, metricDiagonal(1))
					if v == nil {
						continue
					}
					v.Mean -= tr.Baseline[j].Mean
					v.Incomplete = append(v.Incomplete, tr.Baseline[j].Incomplete...)
					tr.Delta[i][j] = v
					some = true
				}
			}
		}
		if some {
			out = append(out, tr)
		}
	}
	return out
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

// transferTable is Table 10 for one algorithm.
func transferTable(tr *Transfer) *Table {
	t := &Table{Name: "Table 10", Title: "Transfer (" + tr.Algorithm + "): target score minus its per-task score; source × target", Cols: tr.Target}
	for i, s := range tr.Sources {
		row := Row{Label: s}
		for j := range tr.Target {
			var c *Cell
			if v := tr.Delta[i][j]; v != nil {
				c = &Cell{Ours: v, Why: strings.Join(v.Incomplete, ", ")}
			}
			row.Cells = append(row.Cells, c)
		}
		t.Rows = append(t.Rows, row)
	}
	base := Row{Label: "per-task (score)"}
	for _, v := range tr.Baseline {
		var c *Cell
		if v != nil {
			c = &Cell{Ours: v}
		}
		base.Cells = append(base.Cells, c)
	}
	t.Rows = append(t.Rows, base)
	return t
}

// deltaTable is Table 11: SHLPT's average score by its threshold δ, where
// groups differ in δ alone.
func deltaTable(groups []*Group) *Table {
	var in []*Group
	deltas := map[float64]bool{}
	for _, g := range groups {
		if g.Method == "shlpt" && g.Variant == "" && g.Benchmark != "" {
			in = append(in, g)
			deltas[delta(g)] = true
		}
	}
	if len(deltas) < 2 {
		return nil
	}
	keys, titles := seqColumns(in)
	t := &Table{Name: "Table 11", Title: "SHLPT by the threshold δ: average test score"}
	for _, k := range keys {
		t.Cols = append(t.Cols, titles[k])
	}
	var ds []float64
	for d := range deltas {
		ds = append(ds, d)
	}
	sort.Float64s(ds)
	for _, d := range ds {
		row := Row{Label: "δ = " + strconv.FormatFloat(d, 'g', -1, 64)}
		for _, k := range keys {
			var gs []*Group
			for _, g := range in {
				if delta(g) == d && fmt.Sprintf("%s/%02d", g.Benchmark, g.Order) == k {
					gs = append(gs, g)
				}
			}
			var cell *Cell
			if len(gs) > 0 {
				cell = newCell(gs, metricAverage, nil, nil)
			}
			row.Cells = append(row.Cells, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func delta(g *Group) float64 {
	b, _ := g.Settings["shlpt"].(map[string]any)
	d, _ := b["delta"].(float64)
	return d
}

// transferMetricsTable is Table 15: BWT and FWT averaged over each
// benchmark's runs.
func transferMetricsTable(groups []*Group, paper *Paper) *Table {
	t := &Table{Name: "Table 15", Title: "Backward and forward transfer (test, averaged over orders)"}
	var benches []string
	for _, b := range []string{"std", "long", "nt"} {
		for _, g := range groups {
			if g.Benchmark == b && !slices.Contains(benches, b) {
				benches = append(benches, b)
			}
		}
	}
	for _, b := range benches {
		t.Cols = append(t.Cols, benchTitle[b]+" BWT", benchTitle[b]+" FWT")
	}
	labels, byLabel := rowsOf(groups, func(g *Group) bool { return g.Benchmark != "" && g.Variant == "" })
	for _, l := range labels {
		row := Row{Label: l}
		any := false
		for _, b := range benches {
			var gs []*Group
			for _, g := range byLabel[l] {
				if g.Benchmark == b {
					gs = append(gs, g)
				}
			}
			for _, mm := range []struct {
				name string
				m    runMetric
			}{{"bwt", metricBWT}, {"fwt", metricFWT}} {
				if len(gs) == 0 {
					row.Cells = append(row.Cells, nil)
					continue
				}
				c := newCell(gs, mm.m, paper, &PaperKey{Benchmark: b, Method: gs[0].Method, Metric: mm.name})
				if c.Ours == nil {
					c = nil
				} else {
					any = true
				}
				row.Cells = append(row.Cells, c)
			}
		}
		if any {
			t.Rows = append(t.Rows, row)
		}
	}
	if len(t.Rows) == 0 {
		return nil
	}
	return t
}

// Tables builds every table the groups have something for, in the paper's
// order.
func Tables(groups []*Group, paper *Paper) []*Table {
	plain := func(g *Group) bool { return g.Variant == "" }
	var out []*Table
	add := func(t *Table) {
		if t != nil {
			out = append(out, t)
		}
	}
	add(ordersTable("Table 2", "Standard CL and Large Number of Tasks: average test score", groups, paper, []string{"std", "long"}, "average", metricAverage, plain))
	add(ordersTable("Table 3", "Negative Transfer benchmark: average test score", groups, paper, []string{"nt"}, "average", metricAverage, plain))
	add(ablationTable(groups, paper))
	add(pairsTable(groups))
	for _, tr := range Transfers(groups) {
		add(transferTable(tr))
	}
	add(deltaTable(groups))
	add(transferMetricsTable(groups, paper))
	add(summaryTable(groups))
	add(ordersTable("Forgetting", "best earlier test score minus final, averaged over tasks", groups, paper,
		[]string{"std", "long", "nt"}, "forgetting", metricForget, func(*Group) bool { return true }))
	return out
}

// summaryTable lists every group with its sequence: average, BWT, FWT and
// forgetting of the test scores (custom sequences appear nowhere else).
func summaryTable(groups []*Group) *Table {
	t := &Table{Name: "Runs", Title: "every group: test average, BWT, FWT and forgetting", Cols: []string{"sequence", "average", "BWT", "FWT", "forgetting"}}
	for _, g := range sortedGroups(groups) {
		seq := strings.Join(g.Tasks, "→")
		if g.Benchmark != "" {
			seq = fmt.Sprintf("%s order %d", g.Benchmark, g.Order)
		}
		row := Row{Label: g.ID + " " + g.Label(), Cells: []*Cell{{Text: seq}}}
		for _, m := range []runMetric{metricAverage, metricBWT, metricFWT, metricForget} {
			c := newCell([]*Group{g}, m, nil, nil)
			if c.Ours == nil {
				c = nil
			}
			row.Cells = append(row.Cells, c)
		}
		t.Rows = append(t.Rows, row)
	}
	if len(t.Rows) == 0 {
		return nil
	}
	return t
}
