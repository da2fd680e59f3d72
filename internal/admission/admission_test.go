package admission

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"sigs.k8s.io/yaml"
)

const crdSource = "../../config/crd/bases/mesh.meshsettings.io_meshsettings.yaml"

// The embedded CRD is generated: `make manifests` copies it from config/.
func TestEmbeddedCRDIsGenerated(t *testing.T) {
	generated, err := os.ReadFile(crdSource)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(generated, crdYAML) {
		t.Fatalf("internal/admission/mesh.meshsettings.io_meshsettings.yaml differs from %s: run `make manifests`", crdSource)
	}
}

func validate(t *testing.T, manifest string) []string {
	t.Helper()
	v, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	obj, err := Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range v.ValidateCreate(context.Background(), obj) {
		out = append(out, e.Error())
	}
	return out
}

const head = "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: mesh\n  namespace: istio-system\n"

func TestValidateCreate(t *testing.T) {
	cases := []struct {
		name, manifest string
		want           []string // each error, in order, by prefix; none: valid
		sorted         bool     // compare the errors sorted
	}{
		{name: "empty spec", manifest: head + "spec: {}\n"},
		{name: "integer port from YAML is an integer", manifest: head + "spec:\n  tracing:\n    providers:\n    - name: z\n      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}\n"},
		{name: "port 0 (render used to accept it)", manifest: head + "spec:\n  tracing:\n    providers:\n    - name: z\n      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 0}\n",
			want: []string{"spec.tracing.providers[0].zipkin.port: Invalid value: 0: spec.tracing.providers[0].zipkin.port in body should be greater than or equal to 1"}},
		{name: "a fractional port is not an integer", manifest: head + "spec:\n  tracing:\n    providers:\n    - name: z\n      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 94.5}\n",
			want: []string{`spec.tracing.providers[0].zipkin.port: Invalid value: "float64": spec.tracing.providers[0].zipkin.port in body must be of type int32`, "<nil>: Invalid value", "<nil>: Invalid value: null: " + RulesNotCheckedMessage}},
		{name: "unknown field, strict as kubectl", manifest: head + "spec:\n  outboundTrafficPolicy: {mode: ALLOW_ANY, extra: 1}\n  bogus: true\n",
			want: []string{`spec.bogus: Unsupported value: null: strict decoding error: unknown field "spec.bogus"`, `spec.outboundTrafficPolicy.extra: Unsupported value`}},
		{name: "CEL rule with messageExpression", manifest: head + "spec:\n  tracing: {samplingPercentage: \"101\"}\n",
			want: []string{`spec.tracing.samplingPercentage: Invalid value: "101": samplingPercentage must be a decimal from 0 to 100, got 101`}},
		// kube-openapi walks properties in map order, in the API server too:
		// errors of the schema come in no fixed order (sorted here).
		{name: "every error, not the first", sorted: true, manifest: head + "spec:\n  revision: Bad_Rev\n  namespaces:\n  - dataplane: Ambient\n    names: [BookInfo]\n",
			want: []string{`spec.namespaces[0].names[0]: Invalid value: "BookInfo"`, `spec.revision: Invalid value: "Bad_Rev"`}},
		{name: "metadata name", manifest: strings.Replace(head, "name: mesh", "name: Mesh_1", 1) + "spec: {}\n",
			want: []string{`metadata.name: Invalid value: "Mesh_1"`}},
		{name: "kind", manifest: strings.Replace(head, "kind: MeshSettings", "kind: Other", 1) + "spec: {}\n",
			want: []string{`kind: Invalid value: "Other": must be MeshSettings`}},
		{name: "status is ignored on create", manifest: head + "spec: {}\nstatus: {observedGeneration: nope}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := validate(t, c.manifest)
			if c.sorted {
				slices.Sort(got)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d errors %q, want %d %q", len(got), got, len(c.want), c.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestNewRefusesBadCRD(t *testing.T) {
	if _, err := New([]byte("kind: CustomResourceDefinition\nspec:\n  versions:\n  - name: v1\n    storage: true\n")); err == nil || !strings.Contains(err.Error(), "no schema") {
		t.Fatalf("want a no-schema error, got %v", err)
	}
	if _, err := New([]byte("not: [valid")); err == nil {
		t.Fatal("want a parse error")
	}
}

func BenchmarkValidateCreate(b *testing.B) {
	v, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile("../../config/samples/mesh_v1alpha1_meshsettings_full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	obj, err := Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if errs := v.ValidateCreate(ctx, obj); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// The API server would install the embedded CRD: structural, every CEL rule
// compiles, and within the estimated cost limits (unbounded lists such as a
// LabelSelector's matchExpressions make rules over them expensive).
func TestCRDPassesAPIServerValidation(t *testing.T) {
	var v1crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crdYAML, &v1crd); err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &crd, nil); err != nil {
		t.Fatal(err)
	}
	crd.Status.StoredVersions = []string{"v1alpha1"}
	if errs := crdvalidation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
		for _, e := range errs {
			t.Error(e)
		}
	}
}

// The schema and the CEL programs are built once per process.
func TestDefaultIsBuiltOnce(t *testing.T) {
	a, errA := Default()
	b, errB := Default()
	if errA != nil || errB != nil || a != b || a.cel != b.cel {
		t.Fatalf("Default() built twice or failed: %p %p %v %v", a, b, errA, errB)
	}
}
