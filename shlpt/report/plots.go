package report

import (
	"bytes"
	"fmt"
	"image/color"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Figure is one PNG of the report.
type Figure struct {
	Kind  string // matrix, bars, alpha, transfer, curves, activations
	Path  string // relative to the report folder
	Title string
}

// PlotsDir is the report's folder of figures.
const PlotsDir = "plots"

// Plots draws every figure the report has data for into dir/plots.
func (r *Report) Plots(dir string) ([]Figure, error) {
	var figs []Figure
	add := func(kind, name, title string, draw func(path string) error) error {
		rel := filepath.Join(PlotsDir, name)
		if err := draw(filepath.Join(dir, rel)); err != nil {
			return fmt.Errorf("plot %s: %w", rel, err)
		}
		figs = append(figs, Figure{Kind: kind, Path: rel, Title: title})
		return nil
	}
	for _, g := range r.Groups {
		if m, rows, n := meanMatrix(g); n > 0 {
			seeds := fmt.Sprintf("mean of %d seeds", n)
			if n == 1 {
				seeds = "1 seed"
			}
			title := fmt.Sprintf("Test scores, %s %s (%s)", g.ID, g.ShortLabel(), seeds)
			if err := add("matrix", "matrix-"+g.ID+".png", title, func(p string) error {
				return heatmap(p, title, m, rows, g.Tasks, "task scored", "after training", sequential(0, 100), "%.1f")
			}); err != nil {
				return figs, err
			}
		}
	}
	for _, t := range r.Tables {
		if t.Name != "Table 2" && t.Name != "Table 3" {
			continue
		}
		name := "bars-" + strings.ToLower(strings.ReplaceAll(t.Name, " ", "")) + ".png"
		title := t.Name + ": average test score per method and order"
		if err := add("bars", name, title, func(p string) error { return bars(p, title, t) }); err != nil {
			return figs, err
		}
	}
	for _, g := range r.Groups {
		run := firstWithEpochs(g)
		if run == nil {
			continue
		}
		if hasAlpha(run.Epochs) {
			title := fmt.Sprintf("ᾱ of earlier tasks while training, %s (seed %d)", g.ID, run.Seed())
			if err := add("alpha", "alpha-"+g.ID+".png", title, func(p string) error { return alphaPlot(p, title, run, g.ShortLabel()) }); err != nil {
				return figs, err
			}
		}
		title := fmt.Sprintf("Training curves, %s (seed %d)", g.ID, run.Seed())
		if err := add("curves", "curves-"+g.ID+".png", title, func(p string) error { return curves(p, title, run, g.ShortLabel()) }); err != nil {
			return figs, err
		}
	}
	for _, g := range r.Groups {
		a, run := groupActivations(g)
		if a == nil {
			continue
		}
		title := fmt.Sprintf("Activation similarity between prompts, last layer, %s (seed %d)", g.ID, run.Seed())
		panels := []activationPanel{{a: a, name: fmt.Sprintf("%s %s (seed %d)", g.ID, g.ShortLabel(), run.Seed())}}
		if pair := ascPair(g, r.Groups); pair != nil {
			if b, br := groupActivations(pair); b != nil {
				panels = append(panels, activationPanel{a: b, name: fmt.Sprintf("%s %s (seed %d)", pair.ID, pair.ShortLabel(), br.Seed())})
			}
		}
		if err := add("activations", "activations-"+g.ID+".png", title, func(p string) error { return activationPlot(p, title, panels) }); err != nil {
			return figs, err
		}
	}
	for i, tr := range Transfers(r.Groups) {
		title := "Transfer: target score minus per-task score (" + tr.Algorithm + ")"
		m := make([][]float64, len(tr.Sources))
		for a := range m {
			m[a] = make([]float64, len(tr.Target))
			for b := range m[a] {
				m[a][b] = math.NaN()
				if v := tr.Delta[a][b]; v.Valid() {
					m[a][b] = v.Mean
				}
			}
		}
		if err := add("transfer", fmt.Sprintf("transfer-%d.png", i+1), title, func(p string) error {
			return heatmap(p, title, m, tr.Sources, tr.Target, "target task", "source task", diverging(m), "%+.1f")
		}); err != nil {
			return figs, err
		}
	}
	return figs, nil
}

// meanMatrix is the mean test matrix over a group's complete runs
// (NaN where a run has no score), with row names.
func meanMatrix(g *Group) ([][]float64, []string, int) {
	runs := g.Complete()
	if len(runs) == 0 {
		return nil, nil, 0
	}
	T := len(g.Tasks)
	m := make([][]float64, T)
	var rows []string
	for t := range m {
		m[t] = make([]float64, T)
		for i := range m[t] {
			sum, n := 0.0, 0
			for _, r := range runs {
				if v := r.Results.Matrix.Test[t][i]; v != nil {
					sum += *v
					n++
				}
			}
			m[t][i] = math.NaN()
			if n > 0 {
				m[t][i] = sum / float64(n)
			}
		}
		rows = append(rows, g.Tasks[t])
	}
	if runs[0].Results.Multitask {
		return m[T-1:], []string{"multitask"}, len(runs)
	}
	return m, rows, len(runs)
}

// grid is a matrix as a heat map's grid, row 0 at the top.
type grid [][]float64

func (g grid) Dims() (c, r int)   { return len(g[0]), len(g) }
func (g grid) Z(c, r int) float64 { return g[len(g)-1-r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }
func (g grid) rowY(i int) float64 { return float64(len(g) - 1 - i) }
func (g grid) colX(i int) float64 { return float64(i) }

// sequential maps [lo, hi] from near white to a mid blue, light enough
// that black values stay readable.
func sequential(lo, hi float64) colorRange {
	from, to := color.NRGBA{0xf7, 0xfb, 0xff, 0xff}, color.NRGBA{0x4a, 0x98, 0xc9, 0xff}
	var cs []color.Color
	for i := 0; i < 256; i++ {
		f := float64(i) / 255
		mix := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + f*(float64(b)-float64(a)))) }
		cs = append(cs, color.NRGBA{mix(from.R, to.R), mix(from.G, to.G), mix(from.B, to.B), 0xff})
	}
	return colorRange{colors: cs, lo: lo, hi: hi}
}

// colorRange is a palette over [lo, hi].
type colorRange struct {
	colors []color.Color
	lo, hi float64
}

func (c colorRange) Colors() []color.Color { return c.colors }

// diverging is blue-white-red centred on 0, symmetric over the largest
// magnitude of m.
func diverging(m [][]float64) colorRange {
	M := 1e-9
	for _, row := range m {
		for _, v := range row {
			if !math.IsNaN(v) {
				M = max(M, math.Abs(v))
			}
		}
	}
	cm := moreland.SmoothBlueRed()
	cm.SetMin(-M)
	cm.SetMax(M)
	return colorRange{colors: cm.Palette(256).Colors(), lo: -M, hi: M}
}

// heatmap draws m (rows × cols; NaN for no value) with its values in the
// cells.
func heatmap(path, title string, m [][]float64, rows, cols []string, xlab, ylab string, cm colorRange, format string) error {
	p := newPlot(title, xlab, ylab)
	g := grid(m)
	h := plotter.NewHeatMap(g, cm)
	h.Min, h.Max = cm.lo, cm.hi
	h.NaN = missingColor
	h.Underflow, h.Overflow = h.Palette.Colors()[0], h.Palette.Colors()[255]
	p.Add(h)
	var xys plotter.XYs
	var labels []string
	for i, row := range m {
		for j, v := range row {
			if !math.IsNaN(v) {
				xys = append(xys, plotter.XY{X: g.colX(j), Y: g.rowY(i)})
				labels = append(labels, fmt.Sprintf(format, v))
			}
		}
	}
	if len(xys) > 0 {
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i] = cellLabelStyle()
		}
		p.Add(l)
	}
	p.X.Tick.Marker = indexTicks(cols, g.colX)
	p.Y.Tick.Marker = indexTicks(rows, g.rowY)
	p.X.Min, p.X.Max = -0.5, float64(len(cols))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(rows))-0.5
	if len(cols) > 4 {
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	w := max(5.5, 1.8+0.62*float64(len(cols)))
	hgt := max(4.0, 1.8+0.42*float64(len(rows)))
	return savePNG(p, w, hgt, path)
}

// savePNG writes a plot as a PNG atomically, with a margin on the right
// and at the top so that nothing touches the image's edge.
func savePNG(p *plot.Plot, w, h float64, path string) error {
	img := vgimg.New(vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, vg.Points(4), -vg.Points(12), vg.Points(4), -vg.Points(6)))
	return writePNG(img, path)
}

// writePNG encodes a drawn canvas as a PNG and writes it atomically.
func writePNG(img *vgimg.Canvas, path string) error {
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	if err := mkdirFor(path); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// barValues are a bar series' heights and error bars.
type barValues struct {
	plotter.XYs
	plotter.YErrors
}

// bars draws a table's rows as bar series over its columns, with the
// standard deviation as error bars and the paper's values as markers.
func bars(path, title string, t *Table) error {
	p := newPlot(title, "", "average test score (%)")
	n := len(t.Rows)
	slot := 0.8 / float64(n)
	w := max(6.5, 1.5+0.35*float64(len(t.Cols)*n))
	areaPerCol := (w - 1.2) / float64(len(t.Cols))
	var paperOK, paperOther plotter.XYs
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, row := range t.Rows {
		off := (float64(i) - float64(n-1)/2) * slot
		var heights plotter.Values
		var ev barValues
		for j, c := range row.Cells {
			h := 0.0
			if c != nil && c.Ours.Valid() {
				h = c.Ours.Mean
				ev.XYs = append(ev.XYs, plotter.XY{X: float64(j) + off, Y: h})
				ev.YErrors = append(ev.YErrors, struct{ Low, High float64 }{c.Ours.Std, c.Ours.Std})
				lo, hi = math.Min(lo, h-c.Ours.Std), math.Max(hi, h+c.Ours.Std)
			}
			heights = append(heights, h)
			if c != nil && c.Paper != nil {
				xy := plotter.XY{X: float64(j) + off, Y: c.Paper.Value}
				if c.Comparable {
					paperOK = append(paperOK, xy)
				} else {
					paperOther = append(paperOther, xy)
				}
				lo, hi = math.Min(lo, c.Paper.Value), math.Max(hi, c.Paper.Value)
			}
		}
		b, err := plotter.NewBarChart(heights, vg.Length(slot*areaPerCol*0.92)*vg.Inch)
		if err != nil {
			return err
		}
		b.XMin = off
		b.Color = seriesColor(i)
		b.LineStyle.Width = 0
		p.Add(b)
		p.Legend.Add(row.Label, b)
		if len(ev.XYs) > 0 {
			e, err := plotter.NewYErrorBars(ev)
			if err != nil {
				return err
			}
			e.LineStyle.Width = vg.Points(1.2)
			p.Add(e)
		}
	}
	for _, s := range []struct {
		xys   plotter.XYs
		label string
		c     color.Color
	}{{paperOK, "paper (same setting)", paperColor}, {paperOther, "paper (other setting)", color.Gray{0x99}}} {
		if len(s.xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.xys)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: s.c, Radius: vg.Points(6), Shape: draw.RingGlyph{}}
		p.Add(sc)
		p.Legend.Add(s.label, sc)
	}
	var names []string
	for _, c := range t.Cols {
		// "Standard CL Order 1" in two lines under its bars.
		c = strings.Replace(c, "Large Number of Tasks", "Long", 1)
		c = strings.Replace(c, "Order ", "Order\u00a0", 1)
		if i := strings.LastIndex(c, " "); i > 0 {
			c = c[:i] + "\n" + c[i+1:]
		}
		names = append(names, c)
	}
	p.NominalX(names...)
	if !math.IsInf(lo, 0) {
		// Bars start at the axis; leave room above for the legend.
		p.Y.Min = 0
		p.Y.Max = hi * (1.2 + 0.07*float64(n))
	}
	p.Legend.Left = true
	return savePNG(p, w, 5, path)
}

func firstWithEpochs(g *Group) *Run {
	for _, r := range g.Runs {
		if len(r.Epochs) > 0 {
			return r
		}
	}
	return nil
}

func hasAlpha(ls []rundir.EpochLine) bool {
	for _, l := range ls {
		if len(l.Alpha) > 0 {
			return true
		}
	}
	return false
}

// taskSpans are the x ranges of each task's epochs (by cumulative step)
// for boundary lines and names.
type taskSpan struct {
	name     string
	from, to float64
}

func spans(ls []rundir.EpochLine, x func(k int) float64) []taskSpan {
	var out []taskSpan
	for k, l := range ls {
		if len(out) == 0 || out[len(out)-1].name != l.Task {
			from := 0.0
			if k > 0 {
				from = x(k - 1)
			}
			out = append(out, taskSpan{name: l.Task, from: from})
		}
		out[len(out)-1].to = x(k)
	}
	return out
}

// addSpans draws a dashed line where each task begins and names the
// tasks on the x axis, under the middle of their spans.
func addSpans(p *plot.Plot, sp []taskSpan, top float64) error {
	var ticks plot.ConstantTicks
	for i, s := range sp {
		if i > 0 {
			l, err := plotter.NewLine(plotter.XYs{{X: s.from, Y: p.Y.Min}, {X: s.from, Y: top}})
			if err != nil {
				return err
			}
			l.LineStyle = draw.LineStyle{Color: color.Gray{0xaa}, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(3), vg.Points(3)}}
			p.Add(l)
		}
		ticks = append(ticks, plot.Tick{Value: (s.from + s.to) / 2, Label: s.name})
	}
	p.X.Tick.Marker = ticks
	if len(sp) > 5 {
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	return nil
}

// legendRoom widens the x range by frac so that a legend at the top
// right sits beside the data, not on it.
func legendRoom(p *plot.Plot, from, to, frac float64) {
	p.X.Min, p.X.Max = from, to+(to-from)*frac
	p.Legend.Top, p.Legend.Left = true, false
}

// cumulativeSteps is the run's step count at the end of each epoch.
func cumulativeSteps(ls []rundir.EpochLine) []float64 {
	out := make([]float64, len(ls))
	s := 0.0
	for k, l := range ls {
		s += float64(l.Steps)
		out[k] = s
	}
	return out
}

// alphaPlot draws ᾱ of each earlier task over the run's training steps
// (Figure 3): one line per earlier task, broken between tasks.
func alphaPlot(path, title string, run *Run, label string) error {
	ls := run.Epochs
	steps := cumulativeSteps(ls)
	p := newPlot(title, "training step", "ᾱ (mixture weight)")
	p.Y.Min, p.Y.Max = 0, 1.0
	names := run.Info.Settings.Tasks
	legend := map[int]bool{}
	for j := 0; j < len(names); j++ {
		var seg plotter.XYs
		flush := func() error {
			if len(seg) == 0 {
				return nil
			}
			l, s, err := plotter.NewLinePoints(seg)
			if err != nil {
				return err
			}
			l.LineStyle = lineStyle(j)
			// The last task is nobody's earlier task.
			l.LineStyle.Width = bandWidth(j, len(names)-1)
			s.GlyphStyle = draw.GlyphStyle{Color: seriesColor(j), Radius: max(vg.Points(2), l.LineStyle.Width*0.75), Shape: draw.CircleGlyph{}}
			p.Add(l, s)
			if !legend[j] {
				p.Legend.Add(names[j], l)
				legend[j] = true
			}
			seg = nil
			return nil
		}
		for k, l := range ls {
			if k > 0 && ls[k-1].Task != l.Task {
				if err := flush(); err != nil {
					return err
				}
			}
			if j < len(l.Alpha) {
				seg = append(seg, plotter.XY{X: steps[k], Y: l.Alpha[j]})
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	p.Y.Max = 1.05
	sp := spans(ls, func(k int) float64 { return steps[k] })
	if err := addSpans(p, sp, 1.05); err != nil {
		return err
	}
	p.X.Label.Text = "training step, by task"
	legendRoom(p, 0, steps[len(steps)-1], 0.18)
	p.Title.Text = title + "\n" + label
	return savePNG(p, max(7.5, 3+0.45*float64(len(sp))), 5.5, path)
}

// curves draws the loss and its parts (top) and the validation score
// (bottom) per epoch over the run, with task boundaries.
func curves(path, title string, run *Run, label string) error {
	ls := run.Epochs
	x := func(k int) float64 { return float64(k + 1) }
	loss := newPlot(title+"\n"+label, "", "training loss")
	var partNames []string
	for _, l := range ls {
		for _, k := range slices.Sorted(maps.Keys(l.Parts)) {
			if !slices.Contains(partNames, k) {
				partNames = append(partNames, k)
			}
		}
	}
	series := append([]string{"loss"}, partNames...)
	top := 0.0
	for i, name := range series {
		var xys plotter.XYs
		for k, l := range ls {
			v, ok := l.Parts[name]
			if name == "loss" {
				v, ok = l.Loss, true
			}
			if ok {
				xys = append(xys, plotter.XY{X: x(k), Y: v})
				top = math.Max(top, v)
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.LineStyle = lineStyle(i)
		l.LineStyle.Width = bandWidth(i, len(series))
		loss.Add(l)
		loss.Legend.Add(name, l)
	}
	loss.Y.Min = 0
	loss.Y.Max = top * 1.1
	sp := spans(ls, x)
	for i := range sp {
		sp[i].from += 0.5
		sp[i].to += 0.5
		if i == 0 {
			sp[i].from = 0.5
		}
	}
	if err := addSpans(loss, sp, top*1.1); err != nil {
		return err
	}
	valid := newPlot("", "epochs, by task", "validation score (%)")
	var xys plotter.XYs
	for k, l := range ls {
		if l.Valid != nil {
			xys = append(xys, plotter.XY{X: x(k), Y: *l.Valid})
		}
	}
	if len(xys) > 0 {
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		l.LineStyle = lineStyle(0)
		s.GlyphStyle = draw.GlyphStyle{Color: seriesColor(0), Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
		valid.Add(l, s)
		valid.Legend.Add("validation score", l)
	}
	valid.Y.Min, valid.Y.Max = 0, 100
	if err := addSpans(valid, sp, 100); err != nil {
		return err
	}
	loss.X.Tick.Label.Font.Size = 0 // the tasks are named under the lower plot
	for _, pl := range []*plot.Plot{loss, valid} {
		legendRoom(pl, 0.5, float64(len(ls))+0.5, 0.2)
	}
	w := max(8, 3+0.06*float64(len(ls)))
	return saveStacked(path, w, 7.5, loss, valid)
}

// saveStacked writes plots one above the other as one PNG.
func saveStacked(path string, w, h float64, plots ...*plot.Plot) error {
	img := vgimg.New(vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(rows, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	return writePNG(img, path)
}

// groupActivations is activations.json of the group's first run that has
// one.
func groupActivations(g *Group) (*rundir.Activations, *Run) {
	for _, r := range g.Runs {
		if a, err := rundir.ReadActivations(r.Dir); err == nil {
			return a, r
		}
	}
	return nil, nil
}

// ascPair is the group that differs from g only in SHLPT's -ASC ablation,
// when g is the one with ASC.
func ascPair(g *Group, groups []*Group) *Group {
	if g.Method != "shlpt" || strings.Contains(g.Variant, "-ASC") {
		return nil
	}
	want := strings.Replace(g.Key, `"no_asc":false`, `"no_asc":true`, 1)
	for _, o := range groups {
		if o.Key == want && o != g {
			return o
		}
	}
	return nil
}

type activationPanel struct {
	a    *rundir.Activations
	name string
}

// activationPlot draws each panel's similarity matrix side by side (with
// ASC on the left, without on the right when both exist).
func activationPlot(path, _ string, panels []activationPanel) error {
	var plots []*plot.Plot
	for _, pn := range panels {
		p := newPlot("Activation similarity, last layer\n"+pn.name, "prompt of task", "prompt of task")
		g := grid(pn.a.Similarity)
		cr := sequential(0, 1)
		h := plotter.NewHeatMap(g, cr)
		h.Min, h.Max = 0, 1
		h.NaN = missingColor
		p.Add(h)
		var xys plotter.XYs
		var labels []string
		for a, row := range pn.a.Similarity {
			for b, v := range row {
				xys = append(xys, plotter.XY{X: g.colX(b), Y: g.rowY(a)})
				labels = append(labels, fmt.Sprintf("%.2f", v))
			}
		}
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return err
		}
		for k := range l.TextStyle {
			l.TextStyle[k] = cellLabelStyle()
		}
		p.Add(l)
		p.X.Tick.Marker = indexTicks(pn.a.Tasks, g.colX)
		p.Y.Tick.Marker = indexTicks(pn.a.Tasks, g.rowY)
		p.X.Min, p.X.Max = -0.5, float64(len(pn.a.Tasks))-0.5
		p.Y.Min, p.Y.Max = -0.5, float64(len(pn.a.Tasks))-0.5
		if len(pn.a.Tasks) > 4 {
			p.X.Tick.Label.Rotation = math.Pi / 4
			p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
		}
		plots = append(plots, p)
	}
	n := float64(len(panels[0].a.Tasks))
	side := max(5.0, 1.8+0.55*n)
	img := vgimg.New(vg.Length(side*float64(len(plots)))*vg.Inch, vg.Length(side)*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(16), PadTop: vg.Points(6), PadRight: vg.Points(12), PadLeft: vg.Points(4), PadBottom: vg.Points(4)}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	return writePNG(img, path)
}
