package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// mustWellFormed decodes every token of an XML document and returns the
// element names seen.
func mustWellFormed(tb testing.TB, doc []byte) map[string]int {
	tb.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = true
	seen := map[string]int{}
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (e.Name.Local != "svg" || e.Name.Space != "http://www.w3.org/2000/svg") {
				tb.Fatalf("root element is %v, want svg in the SVG namespace", e.Name)
			}
			depth++
			seen[e.Name.Local]++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		tb.Fatalf("unbalanced elements")
	}
	return seen
}

func TestSVGWellFormed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		panels []panel
	}{
		{"latency and rate", []panel{
			{title: "Delivery latency <p99> & max", xLabel: "seconds", yLabel: `ms "wall"`, lines: []line{
				{"p50", "#1f77b4", []float64{0, 1, 2, 3}, []float64{1.5, 2, 1.7, 2.2}},
				{"p99 & <max>", "#d62728", []float64{0, 1, 2, 3}, []float64{10, 40, 12, 900}},
			}, marks: []mark{{1, "cut <all>"}, {2.5, "sending ends"}, {99, "off the chart"}}},
			{title: "Deliveries per second", xLabel: "s", yLabel: "n", lines: []line{{"n", "green", []float64{0, 1}, []float64{100000, 120000}}}},
		}},
		{"no data", []panel{{title: "empty", lines: []line{{name: "none"}}}}},
		{"one point, zeros and NaN", []panel{{title: "flat", lines: []line{{"z", "black", []float64{5}, []float64{0}}, {"nan", "red", []float64{5, 6}, []float64{math.NaN(), 1}}}}}},
		{"no panels", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeSVG(&buf, `mapsim-bench "fanout" <sqlite> & co`, tc.panels); err != nil {
				t.Fatal(err)
			}
			seen := mustWellFormed(t, buf.Bytes())
			lines := 0
			for _, p := range tc.panels {
				for _, l := range p.lines {
					if len(l.xs) > 0 {
						lines++
					}
				}
			}
			if seen["polyline"] != lines {
				t.Errorf("%d polylines for %d series", seen["polyline"], lines)
			}
			if strings.Contains(buf.String(), "NaN") {
				t.Errorf("NaN in the drawing: %s", buf.String())
			}
		})
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct{ lo, hi float64 }{{0, 1}, {0, 47.3}, {0, 123456}, {3, 3}, {0.001, 0.004}, {10, 70}} {
		ticks := niceTicks(tc.lo, tc.hi, 5)
		if len(ticks) < 2 || ticks[0] > tc.lo || ticks[len(ticks)-1] < tc.hi || len(ticks) > 22 {
			t.Errorf("[%g, %g]: ticks %v do not cover the range", tc.lo, tc.hi, ticks)
		}
	}
}
