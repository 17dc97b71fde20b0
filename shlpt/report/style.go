package report

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The look of every figure, in one place: sizes at 100% zoom, fonts,
// colours of the series and of missing cells.
var (
	titleSize = vg.Points(15)
	labelSize = vg.Points(13)
	tickSize  = vg.Points(11)
	cellSize  = vg.Points(10) // values printed in heat-map cells
	// seriesColors are distinguishable and print well in grey.
	seriesColors = []color.Color{
		color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
		color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
		color.RGBA{0xe3, 0x77, 0xc2, 0xff}, color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, color.RGBA{0xbc, 0xbd, 0x22, 0xff},
		color.RGBA{0x17, 0xbe, 0xcf, 0xff},
	}
	missingColor = color.White
	paperColor   = color.Black
)

// seriesColor is the colour of the i-th series.
func seriesColor(i int) color.Color { return seriesColors[i%len(seriesColors)] }

// newPlot is a plot with the common style, its title and axis labels.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = titleSize
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text, p.Y.Label.Text = x, y
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = labelSize
		a.Tick.Label.Font.Size = tickSize
	}
	p.Legend.TextStyle.Font.Size = tickSize
	p.Legend.Top = true
	p.Legend.ThumbnailWidth = vg.Points(18)
	return p
}

// lineStyle is series i's line.
func lineStyle(i int) draw.LineStyle {
	return draw.LineStyle{Color: seriesColor(i), Width: vg.Points(1.8), Dashes: dashes(i / len(seriesColors))}
}

// bandWidth is the line width of series i of n that may coincide (ᾱ of
// tasks with equal weights, a loss that is all cross-entropy): series
// drawn earlier are wider, so that equal series show as a band of
// colours instead of one line hiding the others.
func bandWidth(i, n int) vg.Length {
	w := vg.Points(1.5)
	if n > 1 && i < n-1 {
		w += vg.Points(3 * float64(n-1-i) / float64(n-1))
	}
	return w
}

func dashes(k int) []vg.Length {
	switch k % 3 {
	case 1:
		return []vg.Length{vg.Points(6), vg.Points(3)}
	case 2:
		return []vg.Length{vg.Points(2), vg.Points(2)}
	}
	return nil
}

// cellLabelStyle is the text printed in heat-map cells.
func cellLabelStyle() draw.TextStyle {
	s := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, cellSize), Handler: plot.DefaultTextHandler}
	s.XAlign, s.YAlign = draw.XCenter, draw.YCenter
	return s
}

// indexTicks labels positions 0..n-1 with names.
func indexTicks(names []string, pos func(i int) float64) plot.ConstantTicks {
	var t plot.ConstantTicks
	for i, n := range names {
		t = append(t, plot.Tick{Value: pos(i), Label: n})
	}
	return t
}
