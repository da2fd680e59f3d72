package controllers

import (
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Unit tests of the pure planning step; the envtest suite covers the writes.

func istiod(env []corev1.EnvVar, annotations map[string]string) (*appsv1.Deployment, *corev1.Container) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", UID: "u1", Annotations: annotations},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "discovery", Image: "docker.io/istio/pilot:1.28.1", Env: env,
		}}}}},
	}
	return d, &d.Spec.Template.Spec.Containers[0]
}

func appliedEnv(t *testing.T, d *appsv1.Deployment, c *corev1.Container, want []corev1.EnvVar) (map[string]string, map[string]string) {
	t.Helper()
	ac := planEnv(d, c, want)
	if ac == nil {
		return nil, nil
	}
	env := map[string]string{}
	if ac.Spec != nil {
		for _, e := range ac.Spec.Template.Spec.Containers[0].Env {
			env[*e.Name] = *e.Value
		}
	}
	return env, ac.Annotations
}

func TestPlanEnvRecordsAndRestoresReplacedEntries(t *testing.T) {
	helm := []corev1.EnvVar{{Name: "REVISION", Value: "default"}, {Name: "PILOT_TRACE_SAMPLING", Value: "1"}}

	// First write: Helm's PILOT_TRACE_SAMPLING is taken over and recorded.
	d, c := istiod(helm, nil)
	env, ann := appliedEnv(t, d, c, []corev1.EnvVar{{Name: "PILOT_TRACE_SAMPLING", Value: "10"}, {Name: "CLUSTER_ID", Value: "east"}})
	if env["PILOT_TRACE_SAMPLING"] != "10" || env["CLUSTER_ID"] != "east" || len(env) != 2 {
		t.Fatalf("applied env %v", env)
	}
	if _, ownsHelms := env["REVISION"]; ownsHelms {
		t.Fatal("the operator must not own Helm's other entries")
	}
	var replaced map[string]corev1.EnvVar
	if err := json.Unmarshal([]byte(ann[ReplacedEnvAnnotation]), &replaced); err != nil || replaced["PILOT_TRACE_SAMPLING"].Value != "1" || len(replaced) != 1 {
		t.Fatalf("replaced-env %q (%v)", ann[ReplacedEnvAnnotation], err)
	}
	if ann[ManagedEnvAnnotation] != `["PILOT_TRACE_SAMPLING","CLUSTER_ID"]` {
		t.Fatalf("managed-env %q", ann[ManagedEnvAnnotation])
	}

	// Converged: nothing to write.
	live := []corev1.EnvVar{helm[0], {Name: "CLUSTER_ID", Value: "east"}, {Name: "PILOT_TRACE_SAMPLING", Value: "10"}}
	d, c = istiod(live, ann)
	if ac := planEnv(d, c, []corev1.EnvVar{{Name: "PILOT_TRACE_SAMPLING", Value: "10"}, {Name: "CLUSTER_ID", Value: "east"}}); ac != nil {
		t.Fatalf("a converged Deployment gets an apply: %v", ac)
	}

	// The spec stops setting both: CLUSTER_ID goes, Helm's value comes back and stays recorded.
	env, ann = appliedEnv(t, d, c, nil)
	if len(env) != 1 || env["PILOT_TRACE_SAMPLING"] != "1" {
		t.Fatalf("after unsetting, applied env %v; want only the restored PILOT_TRACE_SAMPLING=1", env)
	}
	if _, ok := ann[ManagedEnvAnnotation]; ok {
		t.Fatalf("nothing is managed any more, yet %v", ann)
	}
	if !strings.Contains(ann[ReplacedEnvAnnotation], "PILOT_TRACE_SAMPLING") {
		t.Fatalf("the restored entry must stay recorded: %v", ann)
	}
}

func TestPlanEnvDriftIsRepaired(t *testing.T) {
	want := []corev1.EnvVar{{Name: "CLUSTER_ID", Value: "east"}}
	ann := envAnnotations([]string{"CLUSTER_ID"}, nil)
	d, c := istiod(nil, ann) // someone removed the entry
	if env, _ := appliedEnv(t, d, c, want); env["CLUSTER_ID"] != "east" {
		t.Fatalf("a removed entry is not re-applied: %v", env)
	}
	d, c = istiod([]corev1.EnvVar{{Name: "CLUSTER_ID", Value: "west"}}, ann) // someone changed it
	if env, _ := appliedEnv(t, d, c, want); env["CLUSTER_ID"] != "east" {
		t.Fatalf("a changed entry is not re-applied: %v", env)
	}
}

func TestComputePlanSendsNothingWhenConverged(t *testing.T) {
	ms := &meshv1alpha1.MeshSettings{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "istio-system", Generation: 1},
		Spec: meshv1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundAllowAny},
			Tracing:               &meshv1alpha1.Tracing{SamplingPercentage: "5"},
			Namespaces:            []meshv1alpha1.NamespaceRule{{Names: []string{"app"}, Dataplane: meshv1alpha1.DataplaneAmbient}},
		},
	}
	d, _ := istiod([]corev1.EnvVar{{Name: "REVISION", Value: "default"}}, nil)
	obs := &observed{
		deployment: d,
		namespaces: []metav1.PartialObjectMetadata{
			{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", UID: "n0"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "app", UID: "n1"}},
		},
		existing: map[string]bool{"istio-system/m": true},
	}
	p, err := computePlan(ms, obs)
	if err != nil {
		t.Fatal(err)
	}
	if p.configMapApply == nil || p.deploymentApply == nil || len(p.namespaceApplies) != 1 {
		t.Fatalf("first plan: cm %v, deployment %v, namespaces %d", p.configMapApply != nil, p.deploymentApply != nil, len(p.namespaceApplies))
	}
	if p.selected != 1 || p.labeled != 1 || p.istiodTag != "1.28.1" {
		t.Fatalf("selected %d labeled %d tag %q", p.selected, p.labeled, p.istiodTag)
	}

	// Feed the plan's result back as the observed state: the next plan is empty.
	obs.configMap = &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system", Annotations: p.configMapApply.Annotations},
		Data:       map[string]string{render.MeshKey: p.meshDocument},
	}
	d.Annotations = p.deploymentApply.Annotations
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "5"})
	// Labels the operator owns show up in managedFields; build that entry as the API server would.
	ns := &obs.namespaces[1]
	ns.Labels = map[string]string{"istio.io/dataplane-mode": "ambient"}
	ns.Annotations = map[string]string{OwnerAnnotation: "istio-system/m"}
	ns.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", FieldsType: "FieldsV1",
		FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:mesh.meshsettings.io/owner":{}},"f:labels":{"f:istio.io/dataplane-mode":{}}}}`)},
	}}
	p, err = computePlan(ms, obs)
	if err != nil {
		t.Fatal(err)
	}
	if p.configMapApply != nil || p.deploymentApply != nil || len(p.namespaceApplies) != 0 {
		t.Fatalf("converged plan still writes: cm %v, deployment %v, namespaces %d", p.configMapApply != nil, p.deploymentApply != nil, len(p.namespaceApplies))
	}
}

func TestSelectorWarning(t *testing.T) {
	nss := []metav1.PartialObjectMetadata{{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: map[string]string{"kubernetes.io/metadata.name": "istio-system"}}}}
	apps := []metav1.LabelSelector{{MatchLabels: map[string]string{"istio-discovery": "enabled"}}}
	if w := selectorWarning(apps, "istio-system", nss); !strings.Contains(w, "istio-system") {
		t.Fatalf("selectors missing istiod's namespace gave %q", w)
	}
	withSystem := append(apps, metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "istio-system"}})
	if w := selectorWarning(withSystem, "istio-system", nss); w != "" {
		t.Fatalf("ORed selectors selecting istio-system still warn: %q", w)
	}
	if w := selectorWarning(nil, "istio-system", nss); w != "" {
		t.Fatalf("no selectors (all namespaces) warn: %q", w)
	}
}

// ownedLabels reads the operator's managedFields entry by hand for speed; it
// must agree with client-go's ExtractNamespace, the reference.
func TestOwnedLabelsAgreesWithExtractNamespace(t *testing.T) {
	entry := func(manager string, op metav1.ManagedFieldsOperationType, sub, raw string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, Subresource: sub, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(raw)}}
	}
	apply, update := metav1.ManagedFieldsOperationApply, metav1.ManagedFieldsOperationUpdate
	labels := map[string]string{"istio.io/rev": "canary", "istio-injection": "enabled", "team": "a", "f:odd": "x"}
	cases := map[string][]metav1.ManagedFieldsEntry{
		"never written":        nil,
		"someone else's apply": {entry("kubectl", apply, "", `{"f:metadata":{"f:labels":{"f:team":{}}}}`)},
		"own apply with labels and the owner annotation": {
			entry("kubectl", apply, "", `{"f:metadata":{"f:labels":{"f:team":{}}}}`),
			entry(FieldManager, apply, "", `{"f:metadata":{"f:annotations":{"f:mesh.meshsettings.io/owner":{}},"f:labels":{"f:istio.io/rev":{},"f:istio-injection":{},".":{}}}}`),
		},
		"own apply of a label that is gone": {entry(FieldManager, apply, "", `{"f:metadata":{"f:labels":{"f:istio.io/dataplane-mode":{}}}}`)},
		"a key that itself starts with f:":  {entry(FieldManager, apply, "", `{"f:metadata":{"f:labels":{"f:f:odd":{}}}}`)},
		"own update, not apply":             {entry(FieldManager, update, "", `{"f:metadata":{"f:labels":{"f:team":{}}}}`)},
		"own apply of a subresource":        {entry(FieldManager, apply, "status", `{"f:metadata":{"f:labels":{"f:team":{}}}}`)},
		"own apply without labels":          {entry(FieldManager, apply, "", `{"f:metadata":{"f:annotations":{"f:x":{}}}}`)},
	}
	for name, fields := range cases {
		ns := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels, ManagedFields: fields}}
		got, err := ownedLabels(ns)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ref, err := corev1ac.ExtractNamespace(&corev1.Namespace{ObjectMeta: ns.ObjectMeta}, FieldManager)
		if err != nil {
			t.Fatalf("%s: ExtractNamespace: %v", name, err)
		}
		if len(got) != len(ref.Labels) || !maps.Equal(got, ref.Labels) {
			t.Errorf("%s: ownedLabels %v, ExtractNamespace %v", name, got, ref.Labels)
		}
	}
}

func TestOwnedMemoRereadsChangedNamespacesAndForgetsDeletedOnes(t *testing.T) {
	ns := func(uid, rv, label string) metav1.PartialObjectMetadata {
		return metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name: "n-" + uid, UID: types.UID(uid), ResourceVersion: rv, Labels: map[string]string{"istio.io/rev": label},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:istio.io/rev":{}}}}`)}}},
		}}
	}
	var m ownedMemo
	a := ns("a", "1", "stable")
	if got, _ := m.labels(&a); got["istio.io/rev"] != "stable" {
		t.Fatalf("first read: %v", got)
	}
	a = ns("a", "2", "canary") // a newer version of the same namespace
	if got, _ := m.labels(&a); got["istio.io/rev"] != "canary" {
		t.Fatalf("a changed namespace was served from the memo: %v", got)
	}
	live := []metav1.PartialObjectMetadata{a}
	for i := range 200 {
		n := ns(strconv.Itoa(i), "1", "x")
		_, _ = m.labels(&n)
	}
	m.prune(live)
	if len(m.entries) != 1 {
		t.Fatalf("after pruning to 1 live namespace the memo holds %d", len(m.entries))
	}
	if got, _ := m.labels(&a); got["istio.io/rev"] != "canary" {
		t.Fatalf("the live namespace was lost: %v", got)
	}
}

func TestOrderLikeLive(t *testing.T) {
	live := []corev1.EnvVar{{Name: "REVISION"}, {Name: "PILOT_TRACE_SAMPLING"}, {Name: "PILOT_ENABLE_ANALYSIS"}, {Name: "CLUSTER_ID"}}
	env := []corev1.EnvVar{{Name: "PILOT_ENABLE_STATUS"}, {Name: "CLUSTER_ID"}, {Name: "DEFAULT_WORKLOAD_CERT_TTL"}, {Name: "PILOT_TRACE_SAMPLING"}}
	orderLikeLive(env, live)
	want := []string{"PILOT_TRACE_SAMPLING", "CLUSTER_ID", "DEFAULT_WORKLOAD_CERT_TTL", "PILOT_ENABLE_STATUS"}
	for i, e := range env {
		if e.Name != want[i] {
			t.Fatalf("order %v, want live entries in live order, then new ones by name: %v", env, want)
		}
	}
}
