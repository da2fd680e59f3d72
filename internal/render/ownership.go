package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Ownership returns the declared ownership of the mesh ConfigMap; empty is Merge.
func Ownership(spec *v1alpha1.MeshSettingsSpec) v1alpha1.ConfigMapOwnership {
	if spec.ConfigMapOwnership == v1alpha1.ConfigMapOwn {
		return v1alpha1.ConfigMapOwn
	}
	return v1alpha1.ConfigMapMerge
}

// DefaultNamespace is istiod's namespace when a MeshSettings names none (render).
const DefaultNamespace = "istio-system"

// MeshNetworksKey is the second data key of the chart's mesh ConfigMap.
const MeshNetworksKey = "meshNetworks"

// Baseline is what Istio's istio-discovery chart renders into the mesh
// ConfigMap of a revision with its default values (configMap=true,
// global.istioNamespace = the namespace): the document an Own ConfigMap
// starts from when none exists, and the one it keeps when the MeshSettings
// goes. test/helm proves it equal to the real chart's rendering.
type Baseline struct {
	Mesh         string
	MeshNetworks string
}

// ChartBaseline returns the chart's default mesh ConfigMap data for
// revision ("" is the default revision) installed in namespace. It mirrors
// manifests/charts/istio-control/istio-discovery/templates/configmap.yaml:
// the "mesh" template (trustDomain, rootNamespace, defaultProviders.metrics
// for the default telemetry values, defaultConfig.discoveryAddress of the
// revision's istiod Service) merged with the default meshConfig value
// (enablePrometheusMerge), and an empty meshNetworks.
func ChartBaseline(namespace, revision string) Baseline {
	istiod := "istiod"
	if revision != "" {
		istiod += "-" + revision
	}
	// Keys in sorted order, as Helm's toYaml writes them.
	mesh := fmt.Sprintf(`defaultConfig:
  discoveryAddress: %s.%s.svc:15012
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
rootNamespace: %s
trustDomain: cluster.local
`, istiod, namespace, namespace)
	return Baseline{Mesh: mesh, MeshNetworks: "networks: {}"}
}

// WrittenValuesAnnotation records, on the mesh ConfigMap, a digest of the
// value the operator last wrote at each managed path. A live value that no
// longer matches was written by another manager (Helm's upgrade): it
// becomes the value restored on deletion, and the operator merges once more.
const WrittenValuesAnnotation = "mesh.meshsettings.io/written-values"

// EncodeWritten is the annotation value for digests, "" when none.
func EncodeWritten(written map[Path]string) string {
	if len(written) == 0 {
		return ""
	}
	b, _ := json.Marshal(written)
	return string(b)
}

// DecodeWritten reads the annotation value.
func DecodeWritten(v string) (map[Path]string, error) {
	if v == "" {
		return nil, nil
	}
	var m map[Path]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("annotation %s is not a JSON object of digests: %w", WrittenValuesAnnotation, err)
	}
	return m, nil
}

// digest identifies a value of the document: JSON with sorted keys, so the
// same value read back from YAML digests the same.
func digest(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// refreshRecords updates the replaced-value records from the live document:
// at a managed path whose live value is not what the operator last wrote,
// another manager has written since; its value (or its removal of the key)
// is now what deletion restores. Paths without a digest (records of an
// older operator) keep their record. It returns the records and the paths
// found rewritten.
func refreshRecords(doc map[string]any, prev MeshState) (map[Path]any, []Path) {
	if len(prev.Written) == 0 {
		return prev.Replaced, nil
	}
	replaced := make(map[Path]any, len(prev.Replaced))
	for p, v := range prev.Replaced {
		replaced[p] = v
	}
	var rewritten []Path
	for _, p := range prev.Managed {
		want, ok := prev.Written[p]
		if !ok {
			continue
		}
		live, present := get(doc, p.segments())
		if present && digest(live) == want {
			continue
		}
		rewritten = append(rewritten, p)
		if present {
			replaced[p] = live
		} else {
			delete(replaced, p)
		}
	}
	return replaced, rewritten
}

// MeshAnnotations are the record annotations the ConfigMap carries for res.
func MeshAnnotations(res MeshResult) map[string]string {
	a := map[string]string{ManagedKeysAnnotation: EncodeManaged(res.Managed)}
	if r := EncodeReplaced(res.Replaced); r != "" {
		a[ReplacedValuesAnnotation] = r
	}
	if w := EncodeWritten(res.Written); w != "" {
		a[WrittenValuesAnnotation] = w
	}
	return a
}

// RecordAnnotations are the annotation keys of MeshAnnotations.
var RecordAnnotations = []string{ManagedKeysAnnotation, ReplacedValuesAnnotation, WrittenValuesAnnotation}
