package meshcheck

import (
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// BenchmarkCompose judges the mesh document of Istio's Helm chart, as the
// controller does on every reconcile that renders it.
func BenchmarkCompose(b *testing.B) {
	raw, err := os.ReadFile("../render/testdata/helm-istio-1.28.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compose(cm.Data["mesh"]); err != nil {
			b.Fatal(err)
		}
	}
}
