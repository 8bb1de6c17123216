package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"time"
)

// line is one series of a chart.
type line struct {
	name   string
	color  string
	xs, ys []float64
}

// panel is one chart: lines over shared axes.
type panel struct {
	title, xLabel, yLabel string
	lines                 []line
	marks                 []mark
}

// mark is a dashed vertical line at an x value, such as the end of the
// warm-up.
type mark struct {
	x     float64
	label string
}

// Chart geometry, in SVG units.
const (
	svgWidth     = 900
	panelHeight  = 300
	marginLeft   = 70
	marginRight  = 150
	marginTop    = 50
	marginBottom = 50
)

// writeSVG draws panels one above the other, each with axes, ticks, labels
// and a legend. It uses only what every browser renders.
func writeSVG(w io.Writer, title string, panels []panel) error {
	bw := bufio.NewWriter(w)
	height := 40 + len(panels)*panelHeight
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", marginLeft, html.EscapeString(title))
	for i, p := range panels {
		drawPanel(bw, p, 40+i*panelHeight)
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

func drawPanel(w *bufio.Writer, p panel, top int) {
	x0, x1 := float64(marginLeft), float64(svgWidth-marginRight)
	y0, y1 := float64(top+panelHeight-marginBottom), float64(top+marginTop)
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range p.lines {
		for i := range l.xs {
			xmin, xmax = math.Min(xmin, l.xs[i]), math.Max(xmax, l.xs[i])
			if !math.IsNaN(l.ys[i]) && !math.IsInf(l.ys[i], 0) {
				ymax = math.Max(ymax, l.ys[i])
			}
		}
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="14">%s</text>`+"\n", marginLeft, top+marginTop-16, html.EscapeString(p.title))
	if math.IsInf(xmin, 1) {
		fmt.Fprintf(w, `<text x="%g" y="%g" fill="#888">no data</text>`+"\n", (x0+x1)/2-25, (y0+y1)/2)
		return
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	yTicks := niceTicks(0, ymax, 5)
	ytop := yTicks[len(yTicks)-1]
	xTicks := niceTicks(xmin, xmax, 8)
	sx := func(v float64) float64 { return x0 + (v-xmin)/(xmax-xmin)*(x1-x0) }
	sy := func(v float64) float64 { return y0 - v/ytop*(y0-y1) }

	// Grid, ticks and axis labels.
	for _, t := range yTicks {
		y := sy(t)
		fmt.Fprintf(w, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#e4e4e4"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(w, `<text x="%g" y="%g" text-anchor="end">%s</text>`+"\n", x0-6, y+4, tickLabel(t))
	}
	for _, t := range xTicks {
		if t < xmin || t > xmax {
			continue
		}
		x := sx(t)
		fmt.Fprintf(w, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`+"\n", x, y0, x, y0+5)
		fmt.Fprintf(w, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", x, y0+18, tickLabel(t))
	}
	fmt.Fprintf(w, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`+"\n", x0, y0, x1, y0)
	fmt.Fprintf(w, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`+"\n", x0, y0, x0, y1)
	fmt.Fprintf(w, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, y0+38, html.EscapeString(p.xLabel))
	fmt.Fprintf(w, `<text x="%d" y="%g" text-anchor="middle" transform="rotate(-90 %d %g)">%s</text>`+"\n", 18, (y0+y1)/2, 18, (y0+y1)/2, html.EscapeString(p.yLabel))

	for _, m := range p.marks {
		if m.x < xmin || m.x > xmax {
			continue
		}
		x := sx(m.x)
		fmt.Fprintf(w, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#777" stroke-dasharray="4 3"/>`+"\n", x, y0, x, y1)
		fmt.Fprintf(w, `<text x="%g" y="%g" fill="#555" font-size="10">%s</text>`+"\n", x+3, y1+10, html.EscapeString(m.label))
	}

	// Lines and legend.
	for i, l := range p.lines {
		if len(l.xs) == 0 {
			continue
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, html.EscapeString(l.color))
		first := true
		for j := range l.xs {
			if math.IsNaN(l.ys[j]) || math.IsInf(l.ys[j], 0) || math.IsNaN(l.xs[j]) {
				continue
			}
			if !first {
				w.WriteByte(' ')
			}
			first = false
			w.WriteString(strconv.FormatFloat(round1(sx(l.xs[j])), 'f', -1, 64))
			w.WriteByte(',')
			w.WriteString(strconv.FormatFloat(round1(sy(math.Min(l.ys[j], ytop))), 'f', -1, 64))
		}
		fmt.Fprintln(w, `"/>`)
		ly := y1 + float64(i)*18
		fmt.Fprintf(w, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="3"/>`+"\n", x1+12, ly, x1+32, ly, html.EscapeString(l.color))
		fmt.Fprintf(w, `<text x="%g" y="%g">%s</text>`+"\n", x1+38, ly+4, html.EscapeString(l.name))
	}
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	start := math.Floor(lo/step) * step
	for t := start; len(out) < 4*n+2; t += step {
		out = append(out, math.Round(t/step)*step)
		if t >= hi {
			break
		}
	}
	return out
}

func tickLabel(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// resultPanels chooses what to plot for a scenario.
func (b *bench) resultPanels(res *result, smp []procSample) []panel {
	var out []panel
	var marks []mark
	if s := b.stats.series; s != nil && b.stats.measureTo.Load() != 1<<63-1 {
		from := float64(b.stats.measureFrom.Load()-s.start) / 1e9
		to := float64(b.stats.measureTo.Load()-s.start) / 1e9
		switch {
		case res.Reconnect != nil:
			marks = append(marks, mark{from, "all connections cut"})
		case from > 0:
			marks = append(marks, mark{from, "measured from"})
		}
		marks = append(marks, mark{to, "sending ends"})
	}
	if b.stats.series != nil {
		secs, p50, p99, mx, n := b.stats.series.points()
		if len(secs) > 0 {
			out = append(out,
				panel{title: "Delivery latency per second (send → receive)", xLabel: "seconds since sending began", yLabel: "ms",
					lines: []line{{"p50", "#1f77b4", secs, p50}, {"p99", "#d62728", secs, p99}, {"max", "#aaaaaa", secs, mx}}, marks: marks},
				panel{title: "Deliveries per second", xLabel: "seconds since sending began", yLabel: "deliveries/s",
					lines: []line{{"deliveries", "#2ca02c", secs, n}}, marks: marks})
		}
	}
	if b.stats.ackSeries != nil {
		secs, p50, p99, mx, n := b.stats.ackSeries.points()
		if len(secs) > 0 && (res.Scenario == "commits" || res.Scenario == "history") {
			out = append(out,
				panel{title: "Ack latency per second (send → ack: committed)", xLabel: "seconds since sending began", yLabel: "ms",
					lines: []line{{"p50", "#1f77b4", secs, p50}, {"p99", "#d62728", secs, p99}, {"max", "#aaaaaa", secs, mx}}, marks: marks},
				panel{title: "Commits per second", xLabel: "seconds since sending began", yLabel: "acks/s",
					lines: []line{{"commits", "#2ca02c", secs, n}}, marks: marks})
		}
	}
	if len(smp) > 1 {
		var xs, rss, cpu []float64
		var prev procSample
		for i, s := range smp {
			if i > 0 && s.at.Sub(prev.at) < 500*time.Millisecond {
				continue // an extra sample right after the last: no CPU rate to speak of
			}
			xs = append(xs, s.at.Sub(smp[0].at).Seconds())
			rss = append(rss, float64(s.rssKiB)/1024)
			if i > 0 {
				cpu = append(cpu, cpuPercent(prev, s))
			} else {
				cpu = append(cpu, math.NaN()) // no rate before the second sample
			}
			prev = s
		}
		out = append(out, panel{title: "Server resident memory and CPU", xLabel: "seconds", yLabel: "MiB / % of a core",
			lines: []line{{"RSS MiB", "#9467bd", xs, rss}, {"CPU %", "#ff7f0e", xs, cpu}}})
	}
	return out
}
