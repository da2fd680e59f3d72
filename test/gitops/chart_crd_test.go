package gitops

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The Helm chart installs the CRD from crds/, a copy of the generated one:
// after `make manifests`, copy config/crd/bases/*.yaml into
// charts/meshsettings-operator/crds/.
func TestChartCRDsAreTheGeneratedCRDs(t *testing.T) {
	generated, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(generated) == 0 {
		t.Fatalf("no generated CRD: %v", err)
	}
	chartDir := filepath.Join("..", "..", "charts", "meshsettings-operator", "crds")
	copies, err := filepath.Glob(filepath.Join(chartDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != len(generated) {
		t.Errorf("chart has %d CRD files, config/crd/bases %d", len(copies), len(generated))
	}
	for _, g := range generated {
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, filepath.Base(g)))
		if err != nil {
			t.Errorf("chart lacks %s: %v", filepath.Base(g), err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: cp config/crd/bases/*.yaml charts/meshsettings-operator/crds/", filepath.Join(chartDir, filepath.Base(g)), g)
		}
	}
}
