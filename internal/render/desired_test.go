package render

import (
	"errors"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func registryOnly() *v1alpha1.MeshSettings {
	return &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{
		OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly},
	}}
}

func TestDesireRefusesWhatNoConfigMapHolds(t *testing.T) {
	ms := registryOnly()
	ms.Spec.MeshConfig = map[string]apiextensionsv1.JSON{"ingressClass": {Raw: []byte(`"` + strings.Repeat("x", MaxConfigMapData) + `"`)}}
	_, err := Desire(ms, Current{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.meshConfig" || !strings.Contains(fe.Msg, "1 MiB") {
		t.Fatalf("want a FieldError on spec.meshConfig naming 1 MiB, got %v", err)
	}
	ms.Spec.MeshConfig = map[string]apiextensionsv1.JSON{"ingressClass": {Raw: []byte(`"` + strings.Repeat("x", MaxConfigMapData-64) + `"`)}}
	if _, err := Desire(ms, Current{}); err != nil {
		t.Fatalf("a document under the limit: %v", err)
	}
}

// Helm renders `mesh: |-`: what the operator writes and what it gives back
// on release keep the document's own ending, so Helm's bytes come back.
func TestMergeAndReleaseKeepHelmsBytes(t *testing.T) {
	helm := "rootNamespace: istio-system\ntrustDomain: cluster.local"
	d, err := Desire(registryOnly(), Current{MeshDocument: helm})
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(d.Mesh.Document, "\n") {
		t.Errorf("a final newline was added to a document without one: %q", d.Mesh.Document)
	}
	back, err := ReleaseMesh(d.Mesh.Document, MeshState{Managed: d.Mesh.Managed, Replaced: d.Mesh.Replaced})
	if err != nil {
		t.Fatal(err)
	}
	if back.Document != helm {
		t.Errorf("released %q, want Helm's %q", back.Document, helm)
	}
	if d, _ := Desire(registryOnly(), Current{MeshDocument: helm + "\n"}); !strings.HasSuffix(d.Mesh.Document, "\n") {
		t.Errorf("the final newline of a document with one was dropped")
	}
}

// With the record lost, the operator's own values are not values it replaced
// (deletion would put them back, with no owner); other values still are.
func TestDesireWithRecordLost(t *testing.T) {
	ms := registryOnly()
	ms.Spec.MeshConfig = map[string]apiextensionsv1.JSON{"trustDomain": {Raw: []byte(`"example.org"`)}}
	doc := "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\ntrustDomain: cluster.local\n"
	d, err := Desire(ms, Current{MeshDocument: doc, RecordLost: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Mesh.Replaced["outboundTrafficPolicy"]; ok {
		t.Errorf("its own value is recorded as replaced: %v", d.Mesh.Replaced)
	}
	if d.Mesh.Replaced["trustDomain"] != "cluster.local" {
		t.Errorf("another manager's value is not recorded: %v", d.Mesh.Replaced)
	}
	d, _ = Desire(ms, Current{MeshDocument: doc})
	if _, ok := d.Mesh.Replaced["outboundTrafficPolicy"]; !ok {
		t.Errorf("without a lost record an equal value found at takeover is recorded: %v", d.Mesh.Replaced)
	}
}

func TestReadRecordDamaged(t *testing.T) {
	st, err := ReadRecord("ConfigMap istio-system/istio", map[string]string{ManagedKeysAnnotation: "outboundTrafficPolicy"})
	var re *RecordError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "ConfigMap istio-system/istio") || len(st.Managed) != 0 {
		t.Fatalf("damaged record: state %v, err %v", st, err)
	}
	st, err = ReadRecord("x", map[string]string{ManagedKeysAnnotation: `["outboundTrafficPolicy"]`})
	if err != nil || len(st.Managed) != 1 {
		t.Fatalf("good record: state %v, err %v", st, err)
	}
}
