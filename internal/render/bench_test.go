package render

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

const fullSample = "../../config/samples/mesh_v1alpha1_meshsettings_full.yaml"

// BenchmarkRenderFullSample renders everything the full sample writes: the
// mesh document (alone, into Helm's document, and the steady-state
// re-render of a reconcile that changes nothing), istiod's env and the
// namespace labels.
func BenchmarkRenderFullSample(b *testing.B) {
	raw, err := os.ReadFile(fullSample)
	if err != nil {
		b.Fatal(err)
	}
	var ms v1alpha1.MeshSettings
	if err := yaml.UnmarshalStrict(raw, &ms); err != nil {
		b.Fatal(err)
	}
	spec := &ms.Spec
	helm := helmMesh(b)
	first, err := MergeMesh(spec, helm, MeshState{})
	if err != nil {
		b.Fatal(err)
	}
	steady := MeshState{Managed: first.Managed, Replaced: first.Replaced}

	all := func(b *testing.B, current string, prev MeshState) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := MergeMesh(spec, current, prev); err != nil {
				b.Fatal(err)
			}
			if env := Env(spec, "1.28.1"); len(env.Env) == 0 {
				b.Fatal("no env")
			}
			for i := range spec.Namespaces {
				if len(RuleLabels(&spec.Namespaces[i], spec.Revision)) == 0 {
					b.Fatal("no labels")
				}
			}
		}
	}
	b.Run("empty", func(b *testing.B) { all(b, "", MeshState{}) })
	b.Run("into-helm", func(b *testing.B) { all(b, helm, MeshState{}) })
	b.Run("steady-state", func(b *testing.B) { all(b, first.Document, steady) })
}
