package render

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func TestOwnershipDefaultsToMerge(t *testing.T) {
	for in, want := range map[v1alpha1.ConfigMapOwnership]v1alpha1.ConfigMapOwnership{
		"": v1alpha1.ConfigMapMerge, "Merge": v1alpha1.ConfigMapMerge, "Own": v1alpha1.ConfigMapOwn,
	} {
		if got := Ownership(&v1alpha1.MeshSettingsSpec{ConfigMapOwnership: in}); got != want {
			t.Errorf("Ownership(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChartBaseline(t *testing.T) {
	for _, tc := range []struct{ ns, rev, address string }{
		{"istio-system", "", "istiod.istio-system.svc:15012"},
		{"mesh", "canary", "istiod-canary.mesh.svc:15012"},
	} {
		b := ChartBaseline(tc.ns, tc.rev)
		doc := parse(t, b.Mesh)
		want := map[string]any{
			"trustDomain":           "cluster.local",
			"rootNamespace":         tc.ns,
			"enablePrometheusMerge": true,
			"defaultProviders":      map[string]any{"metrics": []any{"prometheus"}},
			"defaultConfig":         map[string]any{"discoveryAddress": tc.address},
		}
		if !reflect.DeepEqual(doc, want) {
			t.Errorf("ChartBaseline(%q, %q) mesh = %v\nwant %v", tc.ns, tc.rev, doc, want)
		}
		// What the operator writes from it is the same document, byte for byte
		// (sorted keys, as Helm's toYaml): an Own ConfigMap left on deletion
		// reads exactly as the chart would have rendered it.
		if res, err := ReleaseMesh(b.Mesh, MeshState{}); err != nil || res.Document != b.Mesh {
			t.Errorf("re-marshalled baseline differs: %q, %v", res.Document, err)
		}
		if err := judgeBaseline(b.Mesh); err != nil {
			t.Errorf("istiod would reject the baseline: %v", err)
		}
		if b.MeshNetworks != "networks: {}" {
			t.Errorf("meshNetworks %q", b.MeshNetworks)
		}
	}
}

func judgeBaseline(doc string) error {
	_, err := MergeMesh(&v1alpha1.MeshSettingsSpec{}, doc, MeshState{})
	return err
}

// stateOf passes a result through the ConfigMap annotations, digests included.
func stateOf(t *testing.T, res MeshResult) MeshState {
	t.Helper()
	s := encodeState(t, res)
	w, err := DecodeWritten(EncodeWritten(res.Written))
	if err != nil {
		t.Fatal(err)
	}
	s.Written = w
	return s
}

// helmRewrites replaces the document as a Helm upgrade does: Helm writes its
// whole rendered document, which holds none of the operator's keys.
func helmDoc(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	doc := parse(t, helmMesh(t))
	edit(doc)
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func drainSpec(d time.Duration) *v1alpha1.MeshSettingsSpec {
	return &v1alpha1.MeshSettingsSpec{
		Drain:                 &v1alpha1.Drain{DrainDuration: dur(d)},
		OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly},
	}
}

func dc(doc map[string]any) map[string]any { return doc["defaultConfig"].(map[string]any) }

// The scenario: Helm had drainDuration 30s; the MeshSettings sets 45s;
// Helm's upgrade changes its value to 40s. Deletion must restore 40s, the
// value Helm holds now, not 30s.
func TestMergeMeshRecordsAnotherManagersCurrentValue(t *testing.T) {
	v1 := helmDoc(t, func(d map[string]any) { dc(d)["drainDuration"] = "30s" })
	first, err := MergeMesh(drainSpec(45*time.Second), v1, MeshState{})
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Replaced["defaultConfig/drainDuration"]; got != "30s" {
		t.Fatalf("record at takeover %v, want 30s", got)
	}
	if len(first.Rewritten) != 0 {
		t.Errorf("takeover reports rewritten paths %v", first.Rewritten)
	}
	state := stateOf(t, first)

	// A pass with nothing changed is a no-op.
	same, err := MergeMesh(drainSpec(45*time.Second), first.Document, state)
	if err != nil || same.Document != first.Document || len(same.Rewritten) != 0 || !reflect.DeepEqual(same.Replaced, first.Replaced) {
		t.Fatalf("unchanged pass: %v %v %v", err, same.Rewritten, same.Replaced)
	}

	// Helm's upgrade: its whole document, drainDuration 40s, no outboundTrafficPolicy.
	v2 := helmDoc(t, func(d map[string]any) { dc(d)["drainDuration"] = "40s" })
	after, err := MergeMesh(drainSpec(45*time.Second), v2, state)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.Rewritten, []Path{"defaultConfig/drainDuration", "outboundTrafficPolicy"}; !slices.Equal(got, want) {
		t.Errorf("rewritten %v, want %v", got, want)
	}
	if got := after.Replaced["defaultConfig/drainDuration"]; got != "40s" {
		t.Errorf("record after Helm's write %v, want Helm's current 40s", got)
	}
	if _, ok := after.Replaced["outboundTrafficPolicy"]; ok {
		t.Errorf("Helm's document has no outboundTrafficPolicy, yet a record stays: %v", after.Replaced)
	}
	doc := parse(t, after.Document)
	if dc(doc)["drainDuration"] != "45s" || doc["outboundTrafficPolicy"].(map[string]any)["mode"] != "REGISTRY_ONLY" {
		t.Errorf("the spec is not merged back once: %s", after.Document)
	}

	// The next pass over its own write sees no other manager.
	again, err := MergeMesh(drainSpec(45*time.Second), after.Document, stateOf(t, after))
	if err != nil || again.Document != after.Document || len(again.Rewritten) != 0 {
		t.Errorf("second pass after Helm's write: %v rewritten %v", err, again.Rewritten)
	}

	// Deletion leaves Helm's current document.
	gone, err := ReleaseMesh(again.Document, stateOf(t, again))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffFlat(flatten(parse(t, gone.Document)), flatten(parse(t, v2))) {
		t.Error(d)
	}
}

// A manager that edits another key leaves the operator's values in place:
// they are not mistaken for that manager's own.
func TestMergeMeshKeepsRecordWhenOthersEditElsewhere(t *testing.T) {
	v1 := helmDoc(t, func(d map[string]any) { dc(d)["drainDuration"] = "30s" })
	first, err := MergeMesh(drainSpec(45*time.Second), v1, MeshState{})
	if err != nil {
		t.Fatal(err)
	}
	edited := parse(t, first.Document)
	edited["trustDomain"] = "edited.example.com"
	out, _ := yaml.Marshal(edited)
	res, err := MergeMesh(drainSpec(45*time.Second), string(out), stateOf(t, first))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rewritten) != 0 || res.Replaced["defaultConfig/drainDuration"] != "30s" {
		t.Errorf("rewritten %v, replaced %v", res.Rewritten, res.Replaced)
	}
	if res.Document != string(out) {
		t.Errorf("an edit of another key causes a write:\n%s", res.Document)
	}
}

// Records of an operator without digests keep the takeover behaviour.
func TestMergeMeshWithoutDigestsKeepsRecords(t *testing.T) {
	v1 := helmDoc(t, func(d map[string]any) { dc(d)["drainDuration"] = "30s" })
	first, err := MergeMesh(drainSpec(45*time.Second), v1, MeshState{})
	if err != nil {
		t.Fatal(err)
	}
	v2 := helmDoc(t, func(d map[string]any) { dc(d)["drainDuration"] = "40s" })
	res, err := MergeMesh(drainSpec(45*time.Second), v2, encodeState(t, first))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rewritten) != 0 || res.Replaced["defaultConfig/drainDuration"] != "30s" {
		t.Errorf("rewritten %v, replaced %v", res.Rewritten, res.Replaced)
	}
}

// Every value type of the document digests the same after a YAML round trip.
func TestDigestSurvivesTheDocument(t *testing.T) {
	first, err := MergeMesh(fullSpec(), helmMesh(t), MeshState{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Written) != len(first.Managed) {
		t.Fatalf("%d digests for %d managed paths", len(first.Written), len(first.Managed))
	}
	res, err := MergeMesh(fullSpec(), first.Document, stateOf(t, first))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rewritten) != 0 {
		t.Errorf("the operator's own values read back as another manager's: %v", res.Rewritten)
	}
}

func TestWrittenAnnotation(t *testing.T) {
	if EncodeWritten(nil) != "" {
		t.Error("EncodeWritten(nil) is not empty")
	}
	in := map[Path]string{"trustDomain": "0123456789abcdef"}
	out, err := DecodeWritten(EncodeWritten(in))
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip %v, %v", out, err)
	}
	if _, err := DecodeWritten("[1]"); err == nil || !strings.Contains(err.Error(), WrittenValuesAnnotation) {
		t.Errorf("a damaged annotation: %v", err)
	}
}

// With Own, Desire reports the baseline deletion leaves, and recreates a
// deleted ConfigMap from a recorded baseline rather than the chart defaults.
func TestDesireOwnBaseline(t *testing.T) {
	ms := &v1alpha1.MeshSettings{}
	ms.Namespace = "istio-system"
	ms.Spec = *drainSpec(45 * time.Second)
	ms.Spec.ConfigMapOwnership = v1alpha1.ConfigMapOwn
	found := "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  drainDuration: 30s\n  meshId: mesh-1\n"

	d, err := Desire(ms, Current{MeshDocument: found})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parse(t, d.Baseline), parse(t, found)) {
		t.Errorf("baseline after takeover:\n%s\nwant the document found:\n%s", d.Baseline, found)
	}
	again, err := Desire(ms, Current{NoConfigMap: true, Baseline: d.Baseline})
	if err != nil {
		t.Fatal(err)
	}
	if again.Mesh.Document != d.Mesh.Document || again.Baseline != d.Baseline {
		t.Errorf("recreated from the recorded baseline:\n%s\nwant\n%s", again.Mesh.Document, d.Mesh.Document)
	}
	fresh, err := Desire(ms, Current{NoConfigMap: true})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Baseline != ChartBaseline("istio-system", "").Mesh {
		t.Errorf("without a record the baseline is the chart's: %s", fresh.Baseline)
	}
	ms.Spec.ConfigMapOwnership = ""
	if merge, err := Desire(ms, Current{MeshDocument: found}); err != nil || merge.Baseline != "" || merge.MeshNetworks != "" {
		t.Errorf("Merge reports a baseline %q / meshNetworks %q (%v)", merge.Baseline, merge.MeshNetworks, err)
	}
}
