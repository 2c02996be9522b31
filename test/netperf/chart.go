package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// drawChart draws grouped bars — one group per metric, one bar per reported case — with
// min–max whiskers, and saves it as PNG. With logY the bars start at 1 on a log axis, so
// a slow case does not flatten the others.
func drawChart(path, title, unit string, cases []*CaseResult, metricNames []string, logY bool) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	base := 0.0
	if logY {
		base = 1
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text = unit + " (log scale)"
	}
	p.Y.Min = base
	labels := make([]string, len(metricNames))
	for i, n := range metricNames {
		labels[i] = metricByName(n).Label
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(metricNames))-0.5
	p.Legend.Top = true

	var ok []*CaseResult
	for _, c := range cases {
		if c.Status == statusOK {
			ok = append(ok, c)
		}
	}
	if len(ok) == 0 {
		p.Title.Text += " — no case reported"
	}
	const groupWidth = 0.8
	w := groupWidth / float64(max(len(ok), 1))
	ymax := 0.0
	for j, c := range ok {
		b := &rangeBars{width: w, base: base, color: plotutil.Color(j)}
		for i, n := range metricNames {
			s, has := c.Summary[n]
			if !has {
				continue
			}
			x := float64(i) - groupWidth/2 + (float64(j)+0.5)*w
			b.bars = append(b.bars, rangeBar{x: x, v: s.Median, lo: s.Min, hi: s.Max})
		}
		p.Add(b)
		p.Legend.Add(c.Name, b)
		_, _, _, top := b.DataRange()
		ymax = max(ymax, top)
	}
	switch {
	case logY && ymax > base:
		p.Y.Max = ymax * 4 // room for the legend above the whiskers
	case logY:
		p.Y.Max = 10
	case ymax > 0:
		p.Y.Max = ymax * 1.3
	}
	if err := p.Save(16*vg.Centimeter, 9*vg.Centimeter, path); err != nil {
		return fmt.Errorf("save chart %s: %w", path, err)
	}
	return nil
}

type rangeBar struct{ x, v, lo, hi float64 }

// rangeBars draws bars centred on data x positions (so bars of several cases interleave
// exactly) with a whisker from lo to hi.
type rangeBars struct {
	bars  []rangeBar
	width float64
	base  float64 // where bars start: 0, or 1 on a log axis
	color color.Color
}

func (r *rangeBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	whisker := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	for _, b := range r.bars {
		x0, x1 := trX(b.x-r.width/2), trX(b.x+r.width/2)
		y0, y1 := trY(r.base), trY(max(b.v, r.base))
		c.FillPolygon(r.color, c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
		xm := trX(b.x)
		tick := (x1 - x0) / 4
		lo, hi := trY(max(b.lo, r.base)), trY(max(b.hi, r.base))
		c.StrokeLines(whisker, c.ClipLinesXY(
			[]vg.Point{{X: xm, Y: lo}, {X: xm, Y: hi}},
			[]vg.Point{{X: xm - tick, Y: lo}, {X: xm + tick, Y: lo}},
			[]vg.Point{{X: xm - tick, Y: hi}, {X: xm + tick, Y: hi}},
		)...)
	}
}

func (r *rangeBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = 0, 0
	for i, b := range r.bars {
		if i == 0 || b.x-r.width/2 < xmin {
			xmin = b.x - r.width/2
		}
		if i == 0 || b.x+r.width/2 > xmax {
			xmax = b.x + r.width/2
		}
		ymax = max(ymax, b.hi, b.v)
	}
	return xmin, xmax, r.base, max(ymax, r.base)
}

func (r *rangeBars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(r.color, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	})
}
