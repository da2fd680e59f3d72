package controllers

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Who else writes the targets is read from managedFields. The cache keeps,
// of other managers' entries, only what these functions read (see
// keepWriteOwners), so they work on cached and on full objects alike.

// fieldSet is a decoded managedFields FieldsV1.
type fieldSet = map[string]any

func decodeFields(f *metav1.FieldsV1) fieldSet {
	if f == nil {
		return nil
	}
	var set fieldSet
	if json.Unmarshal(f.GetRawBytes(), &set) != nil {
		return nil
	}
	return set
}

func child(set fieldSet, keys ...string) fieldSet {
	for _, k := range keys {
		next, _ := set[k].(map[string]any)
		if next == nil {
			return nil
		}
		set = next
	}
	return set
}

func itemKey(name string) string {
	b, _ := json.Marshal(map[string]string{"name": name})
	return "k:" + string(b)
}

// meshApplyOwner returns the manager, other than the operator, that owns the
// ConfigMap's mesh key with operation Apply (server-side apply: Helm 4's
// default, Argo CD with ServerSideApply=true), or "". Such a manager applies
// without forcing: if the operator took the key, that manager's next apply
// would fail on the conflict. A manager with operation Update (Helm 3,
// kubectl edit) takes the key back on its next write without a conflict.
// The operation decides, not the name.
func meshApplyOwner(cm *corev1.ConfigMap) string {
	for _, f := range cm.ManagedFields {
		if f.Manager == FieldManager || f.Operation != metav1.ManagedFieldsOperationApply || f.Subresource != "" {
			continue
		}
		if _, ok := child(decodeFields(f.FieldsV1), "f:data")["f:"+render.MeshKey]; ok {
			return f.Manager
		}
	}
	return ""
}

// ownsDataKey tells whether the operator's field manager applied data.key.
func ownsDataKey(cm *corev1.ConfigMap, key string) bool {
	for _, f := range cm.ManagedFields {
		if f.Manager == FieldManager && f.Subresource == "" {
			if _, ok := child(decodeFields(f.FieldsV1), "f:data")["f:"+key]; ok {
				return true
			}
		}
	}
	return false
}

// envHolders maps each env entry of the container that another manager
// owns to that manager (with its operation): Helm renders
// PILOT_TRACE_SAMPLING, PILOT_CERT_PROVIDER, CLUSTER_ID and every `env`
// value of the chart.
func envHolders(d *appsv1.Deployment, container string) map[string]string {
	out := map[string]string{}
	for _, f := range d.ManagedFields {
		if f.Manager == FieldManager || f.Subresource != "" {
			continue
		}
		env := child(decodeFields(f.FieldsV1), "f:spec", "f:template", "f:spec", "f:containers", itemKey(container), "f:env")
		for k := range env {
			if name, ok := strings.CutPrefix(k, "k:"); ok {
				var key struct{ Name string }
				if json.Unmarshal([]byte(name), &key) == nil && key.Name != "" {
					if _, seen := out[key.Name]; !seen {
						out[key.Name] = fmt.Sprintf("%s (%s)", f.Manager, f.Operation)
					}
				}
			}
		}
	}
	return out
}

// heldEnv is an env entry the spec sets that another manager holds: the
// operator leaves it and reports the chart value to set instead.
type heldEnv struct {
	Name, Manager, Live, Want string
}

// chartValues names the istio-discovery chart value that renders each env
// entry Helm always writes; any other entry comes from the chart's `env`.
var chartValues = map[string]string{
	"PILOT_TRACE_SAMPLING": "traceSampling",
	"PILOT_CERT_PROVIDER":  "global.pilotCertProvider",
	"CLUSTER_ID":           "global.multiCluster.clusterName",
}

// remedy tells the user how the entry can reach the wanted value.
func (h heldEnv) remedy() string {
	if h.Name == "PILOT_TRACE_SAMPLING" {
		return fmt.Sprintf(`set the chart value traceSampling: "" (not null: Helm renders 1 again on --reuse-values) so this MeshSettings owns it, `+
			`or set traceSampling: %s and drop spec.tracing.samplingPercentage`, h.Want)
	}
	if v, ok := chartValues[h.Name]; ok {
		return fmt.Sprintf("the chart always renders it: set the chart value %s: %q and drop it from the MeshSettings", v, h.Want)
	}
	return fmt.Sprintf("remove env.%s from the chart values so this MeshSettings owns it, "+
		"or set env.%s: %q there and drop it from the MeshSettings", h.Name, h.Name, h.Want)
}

func heldMessage(held []heldEnv) string {
	parts := make([]string, len(held))
	for i, h := range held {
		parts[i] = fmt.Sprintf("%s is applied by %s with value %q, not %q: %s", h.Name, h.Manager, h.Live, h.Want, h.remedy())
	}
	return "istiod env entries held by another manager, left as they are: " + strings.Join(parts, "; ")
}

// splitHeld separates the wanted entries another manager holds from those
// the operator may apply.
func splitHeld(d *appsv1.Deployment, container *corev1.Container, want []corev1.EnvVar) (free []corev1.EnvVar, held []heldEnv) {
	holders := envHolders(d, container.Name)
	for _, w := range want {
		manager, isHeld := holders[w.Name]
		if !isHeld {
			free = append(free, w)
			continue
		}
		h := heldEnv{Name: w.Name, Manager: manager, Want: envText(w)}
		if i := slices.IndexFunc(container.Env, func(e corev1.EnvVar) bool { return e.Name == w.Name }); i >= 0 {
			if equality.Semantic.DeepEqual(container.Env[i], w) {
				continue // holds the wanted value already: nothing to write, nothing to report
			}
			h.Live = envText(container.Env[i])
		}
		held = append(held, h)
	}
	return free, held
}

// envText is an entry's value for a message; a valueFrom reads "(valueFrom)".
func envText(e corev1.EnvVar) string {
	if e.ValueFrom != nil {
		return "(valueFrom)"
	}
	return e.Value
}

// keepWriteOwners is the cache transform of ConfigMaps and Deployments: the
// operator's own managedFields entries whole, and of other managers' only
// what tells who holds the mesh key and istiod's env entries. The rest of
// their field sets (most of a Deployment) is not kept in memory.
func keepWriteOwners(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil // tombstones pass through
	}
	fields := o.GetManagedFields()
	kept := fields[:0:0]
	for _, f := range fields {
		if f.Manager == FieldManager {
			kept = append(kept, f)
			continue
		}
		set := decodeFields(f.FieldsV1)
		var trimmed fieldSet
		switch obj.(type) {
		case *corev1.ConfigMap:
			if _, ok := child(set, "f:data")["f:"+render.MeshKey]; ok {
				trimmed = fieldSet{"f:data": fieldSet{"f:" + render.MeshKey: fieldSet{}}}
			}
		case *appsv1.Deployment:
			containers := fieldSet{}
			for k := range child(set, "f:spec", "f:template", "f:spec", "f:containers") {
				env := child(set, "f:spec", "f:template", "f:spec", "f:containers", k, "f:env")
				entries := fieldSet{}
				for e := range env {
					if strings.HasPrefix(e, "k:") {
						entries[e] = fieldSet{}
					}
				}
				if len(entries) > 0 {
					containers[k] = fieldSet{"f:env": entries}
				}
			}
			if len(containers) > 0 {
				trimmed = fieldSet{"f:spec": fieldSet{"f:template": fieldSet{"f:spec": fieldSet{"f:containers": containers}}}}
			}
		}
		if trimmed == nil {
			continue
		}
		raw, err := json.Marshal(trimmed)
		if err != nil {
			continue
		}
		f.FieldsV1 = metav1.NewFieldsV1(string(raw))
		kept = append(kept, f)
	}
	if len(kept) != len(fields) || len(fields) > 0 {
		o.SetManagedFields(kept)
	}
	return obj, nil
}
