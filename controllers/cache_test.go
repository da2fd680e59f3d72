package controllers

import (
	"encoding/json"
	"maps"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

func TestTrimNamespaceKeepsWhatThePlanReads(t *testing.T) {
	own := metav1.ManagedFieldsEntry{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply}
	for name, c := range map[string]struct{ in, want map[string]string }{
		"owner and kubectl's copy": {
			in:   map[string]string{OwnerAnnotation: "istio-system/mesh", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
			want: map[string]string{OwnerAnnotation: "istio-system/mesh"},
		},
		"only others":  {in: map[string]string{"owner": "team-a@example.com"}, want: nil},
		"only owner":   {in: map[string]string{OwnerAnnotation: "istio-system/mesh"}, want: map[string]string{OwnerAnnotation: "istio-system/mesh"}},
		"none at all":  {in: nil, want: nil},
		"empty values": {in: map[string]string{OwnerAnnotation: ""}, want: map[string]string{OwnerAnnotation: ""}},
	} {
		labels := map[string]string{"team": "a", render.LabelRevision: "canary"}
		ns := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name: "n", Labels: maps.Clone(labels), Annotations: c.in,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}, own},
		}}
		out, err := trimNamespace(ns)
		if err != nil {
			t.Fatal(err)
		}
		got := out.(*metav1.PartialObjectMetadata)
		if !maps.Equal(got.Annotations, c.want) {
			t.Errorf("%s: annotations %v, want %v", name, got.Annotations, c.want)
		}
		if !maps.Equal(got.Labels, labels) {
			t.Errorf("%s: labels changed to %v", name, got.Labels)
		}
		if len(got.ManagedFields) != 1 || got.ManagedFields[0].Manager != FieldManager {
			t.Errorf("%s: managedFields %v, want only the operator's", name, got.ManagedFields)
		}
	}
}

// Tens of thousands of cached namespaces repeat the same label keys and
// values and the operator's field set: the cache keeps one copy of each.
func TestCompactNamespaceSharesWhatNamespacesRepeat(t *testing.T) {
	decode := func(name string) *metav1.PartialObjectMetadata {
		raw := `{"metadata":{"name":"` + name + `","resourceVersion":"7","labels":{"team":"payments","kubernetes.io/metadata.name":"` + name + `"},` +
			`"annotations":{"` + OwnerAnnotation + `":"istio-system/mesh","owner":"x@example.com"},` +
			`"managedFields":[{"manager":"` + FieldManager + `","operation":"Apply","apiVersion":"v1","time":"2026-12-03T12:00:00Z","fieldsType":"FieldsV1",` +
			`"fieldsV1":{"f:metadata":{"f:labels":{"f:istio.io/rev":{}}}}},{"manager":"kubectl","operation":"Update"}]}}`
		o := &metav1.PartialObjectMetadata{}
		if err := json.Unmarshal([]byte(raw), o); err != nil {
			t.Fatal(err)
		}
		out, err := trimNamespace(o)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*metav1.PartialObjectMetadata)
	}
	a, b := decode("a"), decode("b")
	for _, n := range []*metav1.PartialObjectMetadata{a, b} {
		if !maps.Equal(n.Labels, map[string]string{"team": "payments", "kubernetes.io/metadata.name": n.Name}) ||
			!maps.Equal(n.Annotations, map[string]string{OwnerAnnotation: "istio-system/mesh"}) || n.ResourceVersion != "7" {
			t.Fatalf("%s: content changed: %+v", n.Name, n.ObjectMeta)
		}
		if len(n.ManagedFields) != 1 || n.ManagedFields[0].Time != nil {
			t.Fatalf("%s: managedFields %+v", n.Name, n.ManagedFields)
		}
		if owned, _ := ownedLabels(n); len(owned) != 0 {
			t.Fatalf("%s: owns %v (no istio.io/rev label is live)", n.Name, owned)
		}
		if unsafe.StringData(n.Labels["kubernetes.io/metadata.name"]) != unsafe.StringData(n.Name) {
			t.Errorf("%s: the name label's value is a copy of the name", n.Name)
		}
	}
	same := func(what, x, y string) {
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s is copied per namespace", what)
		}
	}
	same("a label value", a.Labels["team"], b.Labels["team"])
	for ka := range a.Labels {
		for kb := range b.Labels {
			if ka == kb {
				same("label key "+ka, ka, kb)
			}
		}
	}
	same("the owner", a.Annotations[OwnerAnnotation], b.Annotations[OwnerAnnotation])
	if a.ManagedFields[0].FieldsV1 != b.ManagedFields[0].FieldsV1 {
		t.Error("the operator's field set is copied per namespace")
	}
}

// A namespace the operator never wrote keeps no managedFields at all: an
// empty slice still pointing into the decoded entries would keep every
// manager's entries of every namespace alive (13 MB at 50k namespaces).
func TestTrimDropsOtherManagersEntriesForGood(t *testing.T) {
	ns := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "n",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{}}`)}, {Manager: "helm"}}}}
	out, err := trimNamespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	if mf := out.(*metav1.PartialObjectMetadata).ManagedFields; unsafe.SliceData(mf) != nil {
		t.Fatalf("managedFields %v (cap %d) still reference the decoded entries", mf, cap(mf))
	}
}
