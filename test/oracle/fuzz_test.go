package oracle

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// FuzzRenderOracle builds a valid MeshSettings spec from the fuzz input,
// renders it alone and into Helm's document, and checks that Istio accepts
// every document, that a re-render changes nothing and that removing the
// spec gives back what was there. The seed corpus is in
// testdata/fuzz/FuzzRenderOracle; `make test-oracle` fuzzes for 20s.
func FuzzRenderOracle(f *testing.F) {
	helm := helmMesh(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		spec := genSpec(data)
		roundTrip(t, spec, "")
		roundTrip(t, spec, helm)

		env := render.Env(spec, "")
		if !slices.IsSortedFunc(env.Env, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatalf("env not sorted: %v", env.Env)
		}
		if len(slices.CompactFunc(slices.Clone(env.Env), func(a, b corev1.EnvVar) bool { return a.Name == b.Name })) != len(env.Env) {
			t.Fatalf("env has a name twice: %v", env.Env)
		}
	})
}
