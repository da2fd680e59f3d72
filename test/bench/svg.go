package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// curvePoint is one latency run of the growing population.
type curvePoint struct {
	namespaces       int
	p50, p99, causal time.Duration
	changes          int
	rss              int64 // the operator's peak RSS so far
}

// chartCaption names the run the chart comes from.
func (b *bench) chartCaption() string {
	return fmt.Sprintf("make bench, %s, %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadavg())
}

// writeSVG draws convergence latency (p50, p99) and the causal floor against
// the namespace count, on a logarithmic namespace axis: a hand-written SVG,
// so the bench needs no plotting library.
func writeSVG(path string, pts []curvePoint, caption string) error {
	if len(pts) == 0 {
		return fmt.Errorf("no points")
	}
	const (
		w, h                     = 720, 420
		left, right, top, bottom = 70, 170, 40, 70
	)
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	minN, maxN := float64(pts[0].namespaces), float64(pts[0].namespaces)
	maxMs := 0.0
	for _, p := range pts {
		minN, maxN = math.Min(minN, float64(p.namespaces)), math.Max(maxN, float64(p.namespaces))
		maxMs = math.Max(maxMs, msf(p.p99))
	}
	if maxN <= minN {
		maxN = minN * 10
	}
	lo, hi := math.Log10(minN)-0.1, math.Log10(maxN)+0.1
	yMax := niceCeil(maxMs * 1.1)
	x := func(n int) float64 { return float64(left) + (math.Log10(float64(n))-lo)/(hi-lo)*pw }
	y := func(v float64) float64 { return float64(top) + ph - v/yMax*ph }

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&s, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&s, `<text x="%d" y="22" font-size="15" font-weight="bold">Change -&gt; all targets converged, by namespace count</text>`+"\n", left)
	// Grid and y labels.
	for i := 0; i <= 5; i++ {
		v := yMax * float64(i) / 5
		fmt.Fprintf(&s, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, float64(left)+pw, y(v), y(v))
		fmt.Fprintf(&s, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, trimFloat(v))
	}
	fmt.Fprintf(&s, `<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">milliseconds</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)
	// x labels at the measured counts.
	for _, p := range pts {
		fmt.Fprintf(&s, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#eee"/>`+"\n", x(p.namespaces), x(p.namespaces), top, float64(top)+ph)
		fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(p.namespaces), float64(top)+ph+18, thousands(p.namespaces))
	}
	fmt.Fprintf(&s, `<text x="%.1f" y="%.1f" text-anchor="middle">namespaces (logarithmic)</text>`+"\n", float64(left)+pw/2, float64(top)+ph+38)
	fmt.Fprintf(&s, `<line x1="%d" x2="%d" y1="%d" y2="%.1f" stroke="black"/>`+"\n", left, left, top, float64(top)+ph)
	fmt.Fprintf(&s, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, float64(left)+pw, float64(top)+ph, float64(top)+ph)
	series := []struct {
		name, color, dash string
		v                 func(curvePoint) time.Duration
	}{
		{"p99", "#d62728", "", func(p curvePoint) time.Duration { return p.p99 }},
		{"p50", "#1f77b4", "", func(p curvePoint) time.Duration { return p.p50 }},
		{"causal floor (p50)", "#555", "5,4", func(p curvePoint) time.Duration { return p.causal }},
	}
	for i, se := range series {
		var pts2 []string
		for _, p := range pts {
			pts2 = append(pts2, fmt.Sprintf("%.1f,%.1f", x(p.namespaces), y(msf(se.v(p)))))
		}
		dash := ""
		if se.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, se.dash)
		}
		fmt.Fprintf(&s, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", se.color, dash, strings.Join(pts2, " "))
		for _, p := range pts {
			fmt.Fprintf(&s, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s at %d namespaces: %.1f ms</title></circle>`+"\n",
				x(p.namespaces), y(msf(se.v(p))), se.color, se.name, p.namespaces, msf(se.v(p)))
		}
		ly := top + 20 + i*20
		lx := w - right + 15
		fmt.Fprintf(&s, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, lx+24, ly, ly, se.color, dash)
		fmt.Fprintf(&s, `<text x="%d" y="%d">%s</text>`+"\n", lx+30, ly+4, html.EscapeString(se.name))
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d" font-size="10" fill="#555">%s</text>`+"\n", left, h-10, html.EscapeString(caption))
	s.WriteString("</svg>\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s.String()), 0o644)
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
}

func thousands(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	if n >= 1000 {
		return fmt.Sprintf("%.1fk", float64(n)/1000)
	}
	return fmt.Sprint(n)
}
