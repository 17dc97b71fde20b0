package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
)

// Report is what the report command writes.
type Report struct {
	Paper    *Paper
	Runs     []*Run
	Groups   []*Group
	Tables   []*Table
	Problems []string // one line each, naming the directory
	Figures  []Figure // drawn by Plots, linked from report.md
	// FWTMeasured counts the runs whose FWT the report measured against a
	// per-task run (FillFWT).
	FWTMeasured int
}

// Build reads the runs named by args (run directories, plan directories,
// globs) and builds the tables. What cannot be read is a problem; the
// report of the rest is still built.
func Build(args []string) (*Report, error) {
	paper, err := Published()
	if err != nil {
		return nil, err
	}
	r := &Report{Paper: paper}
	dirs, problems := Expand(args)
	runs, p2 := Load(dirs)
	r.Runs = runs
	r.FWTMeasured = FillFWT(runs)
	groups, p3 := GroupRuns(runs, paper)
	r.Groups = groups
	r.Problems = append(append(problems, p2...), p3...)
	r.Tables = Tables(groups, paper)
	return r, nil
}

// Files of the report folder.
const (
	MarkdownFile = "report.md"
	CSVFile      = "report.csv"
	TeXFile      = "report.tex"
)

// Write writes report.md, report.csv and report.tex into dir, each
// atomically.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{MarkdownFile, r.Markdown()}, {CSVFile, r.CSV()}, {TeXFile, r.TeX()}} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

func signed(x float64) string {
	if x >= 0 {
		return "+" + num(x)
	}
	return "−" + num(math.Abs(x))
}

// mdCell is "ours ± std (n) · paper P · Δ D", with † for incomplete and ‡
// for flags; a paper value that does not compare is named as such.
func mdCell(c *Cell) string {
	if c != nil && c.Text != "" {
		return c.Text
	}
	if c != nil && c.Ours != nil && !c.Ours.Valid() {
		return "— † (" + strings.Join(c.Ours.Incomplete, "; ") + ")"
	}
	if c == nil || !c.Ours.Valid() {
		if c != nil && c.Paper != nil {
			return "— · paper " + num(c.Paper.Value)
		}
		return ""
	}
	s := c.Ours.text()
	if len(c.Ours.Incomplete) > 0 {
		s += " †"
	}
	if len(c.Flags) > 0 {
		s += " ‡"
	}
	if c.Paper != nil {
		if d, ok := c.Diff(); ok {
			s += " · paper " + num(c.Paper.Value) + " · Δ " + signed(d)
		} else {
			s += " · (paper " + num(c.Paper.Value) + ", not compared: " + c.Why + ")"
		}
	}
	return s
}

// Markdown is report.md.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Report\n\n%d runs in %d groups. Each cell is our mean ± sample standard deviation over seeds (n runs), "+
		"then the paper's published value and our difference where the setting is the paper's "+
		"(t5-large v1.0, the paper's sequence, settings and seeds 42, 142, 242). "+
		"† marks an incomplete group (a seed missing, running or failed): its mean is over the seeds that finished. "+
		"‡ marks runs scored by a primary metric other than the paper's.\n\n", len(r.Runs), len(r.Groups))
	if r.FWTMeasured > 0 {
		fmt.Fprintf(&b, "FWT of %d runs that were trained without per-task scores is measured here, against the per-task run "+
			"of the same seed, sequence, model and data whose shared settings agree.\n\n", r.FWTMeasured)
	}
	if len(r.Problems) > 0 {
		b.WriteString("## Not included\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
		b.WriteString("\n")
	}
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "## %s: %s\n\n| |", t.Name, t.Title)
		for _, c := range t.Cols {
			fmt.Fprintf(&b, " %s |", c)
		}
		b.WriteString("\n|---|")
		for range t.Cols {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		var notes []string
		for _, row := range t.Rows {
			fmt.Fprintf(&b, "| %s |", mdEscape(row.Label))
			for _, c := range row.Cells {
				fmt.Fprintf(&b, " %s |", mdEscape(mdCell(c)))
				if c != nil && c.Ours != nil {
					for _, n := range append(append([]string(nil), c.Ours.Incomplete...), c.Flags...) {
						n = row.Label + ": " + n
						if !slices.Contains(notes, n) {
							notes = append(notes, n)
						}
					}
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", mdEscape(n))
		}
		if len(notes) > 0 {
			b.WriteString("\n")
		}
	}
	if len(r.Figures) > 0 {
		b.WriteString("## Figures\n\n")
		for _, f := range r.Figures {
			fmt.Fprintf(&b, "### %s\n\n![%s](%s)\n\n", mdEscape(f.Title), f.Kind, filepath.ToSlash(f.Path))
		}
	}
	b.WriteString("## Groups\n\n| group | method | benchmark | order | seeds | state | differs from the paper |\n|---|---|---|---|---|---|---|\n")
	for _, g := range r.Groups {
		state := "complete"
		if len(g.Incomplete) > 0 {
			state = "incomplete: " + strings.Join(g.Incomplete, "; ")
		}
		differs := strings.Join(g.Differs, ", ")
		if differs == "" {
			differs = "nothing"
		}
		bench, order := g.Benchmark, ""
		if bench == "" {
			bench = "custom: " + strings.Join(g.Tasks, "→")
		} else {
			order = strconv.Itoa(g.Order)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", g.ID, mdEscape(g.ShortLabel()), mdEscape(bench), order,
			seedList(g.Seeds()), mdEscape(state), mdEscape(differs))
	}
	fmt.Fprintf(&b, "\n## The paper's numbers\n\n%s %d published cells are known (shlpt/report/paper.json, with their sources). "+
		"Not available: ", r.Paper.Title, len(r.Paper.Cells))
	var miss []string
	for _, m := range r.Paper.Missing {
		miss = append(miss, "Table "+m.Table+" ("+m.What+")")
	}
	b.WriteString(strings.Join(miss, "; ") + ".\n")
	return b.Bytes()
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func seedList(s []uint64) string {
	var out []string
	for _, x := range s {
		out = append(out, fmt.Sprint(x))
	}
	return strings.Join(out, ",")
}

// flatten turns nested settings into dotted keys.
func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		if s, ok := v.(string); ok {
			out[key] = s
		} else {
			out[key] = jsonString(v)
		}
	}
}

// csvRow is one group × task × metric.
type csvRow struct {
	g      *Group
	task   string
	metric string
	v      *Value
	paper  *PaperCell
}

// CSV is report.csv: one row per group × task × metric ("" task for the
// whole sequence), every setting as a column.
func (r *Report) CSV() []byte {
	settings := map[string]map[string]string{}
	keys := map[string]bool{}
	for _, g := range r.Groups {
		m := map[string]string{}
		flatten("", g.Settings, m)
		delete(m, "seed")
		m["model_name"] = g.Model.Name
		settings[g.ID] = m
		for k := range m {
			keys[k] = true
		}
	}
	cols := slices.Sorted(maps.Keys(keys))
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(append([]string{"group", "label", "task", "metric", "mean", "std", "n", "seeds", "incomplete", "differs", "flags",
		"paper_value", "paper_table", "compared", "difference"}, cols...))
	for _, g := range r.Groups {
		var rows []csvRow
		for _, m := range []struct {
			name string
			f    runMetric
		}{{"average", metricAverage}, {"bwt", metricBWT}, {"fwt", metricFWT}, {"forgetting", metricForget}} {
			rows = append(rows, csvRow{g: g, metric: m.name, v: summarize([]*Group{g}, m.f),
				paper: r.Paper.Lookup(PaperKey{Benchmark: g.Benchmark, Order: g.Order, Method: g.Method, Variant: g.Variant, Metric: m.name})})
		}
		for i, task := range g.Tasks {
			rows = append(rows,
				csvRow{g: g, task: task, metric: "final_test", v: summarize([]*Group{g}, metricFinal(i))},
				csvRow{g: g, task: task, metric: "learned_test", v: summarize([]*Group{g}, metricDiagonal(i))},
				csvRow{g: g, task: task, metric: "forgetting", v: summarize([]*Group{g}, metricTaskForgetting(task))})
		}
		for _, row := range rows {
			if !row.v.Valid() {
				continue
			}
			rec := []string{g.ID, g.Label(), row.task, row.metric, strconv.FormatFloat(row.v.Mean, 'g', -1, 64),
				strconv.FormatFloat(row.v.Std, 'g', -1, 64), strconv.Itoa(row.v.N), seedList(row.v.Seeds),
				strings.Join(row.v.Incomplete, "; "), strings.Join(g.Differs, "; "), strings.Join(g.Flags, "; ")}
			if row.paper != nil {
				compared := g.Comparable()
				diff := ""
				if compared {
					diff = strconv.FormatFloat(row.v.Mean-row.paper.Value, 'g', -1, 64)
				}
				rec = append(rec, strconv.FormatFloat(row.paper.Value, 'g', -1, 64), row.paper.Table, strconv.FormatBool(compared), diff)
			} else {
				rec = append(rec, "", "", "", "")
			}
			for _, c := range cols {
				rec = append(rec, settings[g.ID][c])
			}
			w.Write(rec)
		}
	}
	w.Flush()
	return b.Bytes()
}

var texEscaper = strings.NewReplacer(`\`, `\textbackslash{}`, "&", `\&`, "%", `\%`, "$", `\$`, "#", `\#`, "_", `\_`,
	"{", `\{`, "}", `\}`, "~", `\textasciitilde{}`, "^", `\textasciicircum{}`, "→", `$\to$`, "δ", `$\delta$`, "−", "-", "×", `$\times$`)

func texCell(c *Cell) string {
	if c != nil && c.Text != "" {
		return texEscaper.Replace(c.Text)
	}
	if c == nil || !c.Ours.Valid() {
		if c != nil && c.Paper != nil {
			return `-- / \textcolor{gray}{` + num(c.Paper.Value) + `}`
		}
		return ""
	}
	s := fmt.Sprintf(`%s$\pm$%s`, num(c.Ours.Mean), num(c.Ours.Std))
	if len(c.Ours.Incomplete) > 0 {
		s += `$^\dagger$`
	}
	if len(c.Flags) > 0 {
		s += `$^\ddagger$`
	}
	if c.Paper != nil {
		if d, ok := c.Diff(); ok {
			s += fmt.Sprintf(` / %s (%s)`, num(c.Paper.Value), strings.ReplaceAll(signed(d), "−", "$-$"))
		} else {
			s += ` / \textcolor{gray}{` + num(c.Paper.Value) + `}`
		}
	}
	return s
}

// TeX is report.tex: one booktabs table per report table (needs the
// booktabs and xcolor packages).
func (r *Report) TeX() []byte {
	var b bytes.Buffer
	b.WriteString("% Generated by shlpt-vk report. Needs \\usepackage{booktabs} and \\usepackage{xcolor}.\n" +
		"% Cells: ours mean $\\pm$ std / the paper's value (difference); the paper's value in grey where the setting is not the paper's.\n" +
		"% $^\\dagger$: incomplete group; $^\\ddagger$: primary metric unlike the paper's.\n\n")
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "\\begin{table}[t]\n\\centering\n\\small\n\\caption{%s: %s}\n\\begin{tabular}{l%s}\n\\toprule\n",
			texEscaper.Replace(t.Name), texEscaper.Replace(t.Title), strings.Repeat("c", len(t.Cols)))
		b.WriteString(" ")
		for _, c := range t.Cols {
			fmt.Fprintf(&b, " & %s", texEscaper.Replace(c))
		}
		b.WriteString(" \\\\\n\\midrule\n")
		for _, row := range t.Rows {
			b.WriteString(texEscaper.Replace(row.Label))
			for _, c := range row.Cells {
				fmt.Fprintf(&b, " & %s", texCell(c))
			}
			b.WriteString(" \\\\\n")
		}
		b.WriteString("\\bottomrule\n\\end{tabular}\n\\end{table}\n\n")
	}
	return b.Bytes()
}

// sortedGroups returns the groups sorted by label (for plots).
func sortedGroups(gs []*Group) []*Group {
	out := append([]*Group(nil), gs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Label() < out[j].Label() })
	return out
}

func mkdirFor(path string) error { return os.MkdirAll(filepath.Dir(path), 0o755) }
