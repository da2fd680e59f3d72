package rendercmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRenderFolder1000 is `render -f DIR` over a folder of 1,000
// MeshSettings, the samples over and over under distinct names, ten per
// sub-folder: reading, admission (schema and CEL), the controller's checks
// and the output. `make bench` reports it against its target (3 s).
func BenchmarkRenderFolder1000(b *testing.B) {
	samples, err := filepath.Glob(filepath.Join(samplesDir, "mesh_v1alpha1_*.yaml"))
	if err != nil || len(samples) == 0 {
		b.Fatalf("no samples in %s: %v", samplesDir, err)
	}
	var raws []string
	for _, s := range samples {
		raw, err := os.ReadFile(s)
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, string(raw))
	}
	dir := b.TempDir()
	for i := range 1000 {
		sub := filepath.Join(dir, fmt.Sprintf("team-%02d", i/10))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		raw := raws[i%len(raws)]
		// The samples name themselves "meshsettings-<sample>": make each unique.
		raw = strings.Replace(raw, "name: meshsettings-", fmt.Sprintf("name: ms-%04d-", i), 1)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("mesh-%04d.yaml", i)), []byte(raw), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// CPU seconds too: on a machine shared with other work, wall time
	// says more about the neighbours than about render.
	cpu := func() float64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	start := cpu()
	for b.Loop() {
		var errOut strings.Builder
		if code := Run([]string{"-f", dir, "--istiod-version", "1.28.1"}, io.Discard, &errOut); code != ExitValid {
			b.Fatalf("exit %d: %s", code, errOut.String())
		}
	}
	b.ReportMetric((cpu()-start)/float64(b.N), "cpu-s/op")
}
