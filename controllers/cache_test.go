package controllers

import (
	"maps"
	"testing"

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
