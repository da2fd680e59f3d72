package render

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Defaults documented in the API, applied here and never in the CRD (so the
// stored object is exactly what the user applied).
const (
	// DefaultTerminationDrainDuration is drain.termination.duration when unset.
	DefaultTerminationDrainDuration = 5 * time.Second
	// DefaultIstiodContainer is target.istiodContainerName when unset.
	DefaultIstiodContainer = "discovery"
	// DefaultRetryAttempts is retryPolicy.attempts when unset (Istio's default).
	DefaultRetryAttempts = 2
	// DefaultRevisionLabel is the istio.io/rev value of the default revision.
	DefaultRevisionLabel = "default"
	// MeshKey is the ConfigMap data key istiod reads.
	MeshKey = "mesh"
)

// Targets names the objects a MeshSettings writes, in its own namespace.
type Targets struct {
	ConfigMap        string
	IstiodDeployment string
	IstiodContainer  string
}

// TargetsFor applies the revision-based names and the overrides of spec.target.
func TargetsFor(spec *v1alpha1.MeshSettingsSpec) Targets {
	t := Targets{ConfigMap: "istio", IstiodDeployment: "istiod", IstiodContainer: DefaultIstiodContainer}
	if spec.Revision != "" {
		t.ConfigMap += "-" + spec.Revision
		t.IstiodDeployment += "-" + spec.Revision
	}
	if o := spec.Target; o != nil {
		if o.ConfigMapName != "" {
			t.ConfigMap = o.ConfigMapName
		}
		if o.IstiodDeploymentName != "" {
			t.IstiodDeployment = o.IstiodDeploymentName
		}
		if o.IstiodContainerName != "" {
			t.IstiodContainer = o.IstiodContainerName
		}
	}
	return t
}

// ManagedKeysAnnotation records, on the mesh ConfigMap, the mesh paths the
// operator wrote, so a later render removes exactly what the spec stopped setting.
const ManagedKeysAnnotation = "mesh.meshsettings.io/managed-keys"

// EncodeManaged is the annotation value for paths: a JSON list.
func EncodeManaged(paths []Path) string {
	b, _ := json.Marshal(paths)
	return string(b)
}

// DecodeManaged reads the annotation value; an empty value is no paths.
func DecodeManaged(v string) ([]Path, error) {
	if v == "" {
		return nil, nil
	}
	var paths []Path
	if err := json.Unmarshal([]byte(v), &paths); err != nil {
		return nil, fmt.Errorf("annotation %s is not a JSON list of paths: %w", ManagedKeysAnnotation, err)
	}
	return paths, nil
}

// ReplacedValuesAnnotation records, on the mesh ConfigMap, the values that
// managed paths had before the operator took them over (see MeshResult.Replaced).
const ReplacedValuesAnnotation = "mesh.meshsettings.io/replaced-values"

// EncodeReplaced is the annotation value for replaced values, "" when none.
func EncodeReplaced(replaced map[Path]any) string {
	if len(replaced) == 0 {
		return ""
	}
	b, _ := json.Marshal(replaced) // map keys are sorted: deterministic
	return string(b)
}

// DecodeReplaced reads the annotation value.
func DecodeReplaced(v string) (map[Path]any, error) {
	if v == "" {
		return nil, nil
	}
	var m map[Path]any
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("annotation %s is not a JSON object: %w", ReplacedValuesAnnotation, err)
	}
	return m, nil
}
