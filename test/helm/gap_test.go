package helm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
)

// gapMeter polls a real istiod's /debug/mesh every 50 ms and measures how
// long its effective config lacked a leaf of the declared document.
type gapMeter struct {
	mu       sync.Mutex
	samples  int
	lacking  int
	errors   int
	longest  time.Duration
	total    time.Duration
	first    string // the first lack seen
	gapStart time.Time
	stop     context.CancelFunc
	done     chan struct{}
}

func measureGaps(ctx context.Context, i *istiod.Istiod, declared string) *gapMeter {
	ctx, cancel := context.WithCancel(ctx)
	g := &gapMeter{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		defer GinkgoRecover()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			eff, err := i.EffectiveMesh(ctx)
			var missing []string
			if err == nil {
				missing, err = istiod.MissingLeaves(declared, eff)
			}
			g.observe(time.Now(), missing, err, ctx.Err() != nil)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return g
}

func (g *gapMeter) observe(now time.Time, missing []string, err error, stopping bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if stopping {
		return
	}
	g.samples++
	if err != nil {
		// istiod not answering counts as lacking: it serves nothing then.
		g.errors++
		missing = []string{"no answer: " + err.Error()}
	}
	switch {
	case len(missing) > 0:
		g.lacking++
		if g.first == "" {
			g.first = now.Format("15:04:05.000") + " " + strings.Join(missing, "; ")
		}
		if g.gapStart.IsZero() {
			g.gapStart = now
		}
	case !g.gapStart.IsZero():
		g.closeGap(now)
	}
}

func (g *gapMeter) closeGap(now time.Time) {
	d := now.Sub(g.gapStart)
	g.total += d
	if d > g.longest {
		g.longest = d
	}
	g.gapStart = time.Time{}
}

// end stops the polling; an open gap counts until now.
func (g *gapMeter) end() *gapMeter {
	g.stop()
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.gapStart.IsZero() {
		g.closeGap(time.Now())
	}
	return g
}

func (g *gapMeter) String() string {
	first := g.first
	if first == "" {
		first = "none"
	}
	return fmt.Sprintf("%d samples at 50 ms, %d lacking a declared setting (%d unanswered), longest gap %v, total %v; first lack: %s",
		g.samples, g.lacking, g.errors, g.longest, g.total, first)
}

var _ = Describe("the gap meter", func() {
	It("counts a lack as a gap until the next complete sample, and no answer as a lack", func() {
		g := &gapMeter{}
		t0 := time.Now()
		g.observe(t0, nil, nil, false)
		g.observe(t0.Add(50*time.Millisecond), []string{"outboundTrafficPolicy.mode: absent"}, nil, false)
		g.observe(t0.Add(100*time.Millisecond), nil, fmt.Errorf("connection refused"), false)
		g.observe(t0.Add(150*time.Millisecond), nil, nil, false)
		g.observe(t0.Add(200*time.Millisecond), []string{"x"}, nil, false)
		g.observe(t0.Add(250*time.Millisecond), nil, nil, false)
		Expect(g.samples).To(Equal(6))
		Expect(g.lacking).To(Equal(3))
		Expect(g.errors).To(Equal(1))
		Expect(g.longest).To(Equal(100 * time.Millisecond))
		Expect(g.total).To(Equal(150 * time.Millisecond))
		Expect(g.first).To(ContainSubstring("outboundTrafficPolicy.mode: absent"))
	})
})
