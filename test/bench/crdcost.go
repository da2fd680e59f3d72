package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/test/utils"
)

// crdCost measures what makes a MeshSettings write dearer than the floor:
// the same merge patch of the benchmark spec against the shipped CRD, a copy
// without its CEL rules, and a copy without a schema, next to a ConfigMap
// patch, interleaved in one control plane (`go run ./test/bench -crd-cost`).
func crdCost(ctx context.Context, root string, patches int) error {
	raw, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "mesh.meshsettings.io_meshsettings.yaml"))
	if err != nil {
		return err
	}
	variant := func(group string, edit func(crd map[string]any)) (*apiextensionsv1.CustomResourceDefinition, error) {
		m := map[string]any{}
		if err := yaml.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		m["spec"].(map[string]any)["group"] = group
		m["metadata"] = map[string]any{"name": "meshsettings." + group}
		if edit != nil {
			edit(m)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		return crd, json.Unmarshal(b, crd)
	}
	groups := []struct {
		label, group string
		edit         func(crd map[string]any)
	}{
		{"MeshSettings, the shipped CRD", meshv1alpha1Group, nil},
		{"the same CRD without its CEL rules", "nocel.bench.meshsettings.io", func(m map[string]any) { dropCEL(m) }},
		{"a CRD with no schema (x-kubernetes-preserve-unknown-fields)", "noschema.bench.meshsettings.io", func(m map[string]any) {
			v := m["spec"].(map[string]any)["versions"].([]any)[0].(map[string]any)
			open := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
			v["schema"] = map[string]any{"openAPIV3Schema": map[string]any{"type": "object",
				"properties": map[string]any{"spec": open, "status": open}}}
		}},
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, g := range groups {
		crd, err := variant(g.group, g.edit)
		if err != nil {
			return err
		}
		crds = append(crds, crd)
	}

	// Only the variants: not the shipped CRD of config/crd/bases.
	cp, err := utils.StartControlPlane(root, func(e *envtest.Environment) {
		e.CRDDirectoryPaths, e.ErrorIfCRDPathMissing, e.CRDs = nil, false, crds
	})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	c, err := client.New(cp.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: istioNS}}); err != nil {
		return err
	}
	objs := []client.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "floor", Namespace: istioNS}, Data: map[string]string{"k": "v"}}}
	labels := []string{"ConfigMap"}
	for _, g := range groups {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(g.group + "/v1alpha1")
		u.SetKind(kindMeshSettings)
		u.SetName("bench")
		u.SetNamespace(istioNS)
		spec, err := runtimeSpec(stateAt(0))
		if err != nil {
			return err
		}
		u.Object["spec"] = spec
		objs = append(objs, u)
		labels = append(labels, g.label)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %s: %w", o.GetName(), err)
		}
	}
	const warmup = 20
	times := make([][]time.Duration, len(objs))
	for i := range patches + warmup {
		msPatch, err := changePatch(stateAt(i + 1))
		if err != nil {
			return err
		}
		for k, o := range objs {
			patch := msPatch
			if k == 0 {
				patch = fmt.Appendf(nil, `{"data":{"k":"v%d"}}`, i)
			}
			t0 := time.Now()
			if err := c.Patch(ctx, o, client.RawPatch(types.MergePatchType, patch), client.FieldOwner("bench-user")); err != nil {
				return fmt.Errorf("patching %s: %w", labels[k], err)
			}
			if i >= warmup {
				times[k] = append(times[k], time.Since(t0))
			}
		}
	}
	fmt.Printf("merge patch round trip, p50 of %d each, interleaved:\n", patches)
	base := percentile(times[0], 0.50)
	for k := range objs {
		m := percentile(times[k], 0.50)
		fmt.Printf("  %-62s %8s  %.2fx\n", labels[k], ms(m), float64(m)/float64(base))
	}
	return nil
}

const meshv1alpha1Group = "mesh.meshsettings.io"

func dropCEL(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "x-kubernetes-validations")
		for _, x := range t {
			dropCEL(x)
		}
	case []any:
		for _, x := range t {
			dropCEL(x)
		}
	}
}

// runtimeSpec is the benchmark MeshSettings spec as unstructured content.
func runtimeSpec(s state) (map[string]any, error) {
	b, err := json.Marshal(meshSettings("bench", s).Spec)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	return out, json.Unmarshal(b, &out)
}
