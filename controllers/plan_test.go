package controllers

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	ac, _ := planEnv(d, c, want)
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

// holds adds a managedFields entry of manager owning the named env entries
// of the discovery container, as the API server records Helm's writes.
func holds(d *appsv1.Deployment, manager string, op metav1.ManagedFieldsOperationType, names ...string) {
	env := map[string]any{}
	for _, n := range names {
		env[itemKey(n)] = map[string]any{".": map[string]any{}, "f:name": map[string]any{}, "f:value": map[string]any{}}
	}
	set := map[string]any{"f:spec": map[string]any{"f:template": map[string]any{"f:spec": map[string]any{"f:containers": map[string]any{
		itemKey("discovery"): map[string]any{"f:env": env, "f:image": map[string]any{}}}}}}}
	raw, _ := json.Marshal(set)
	d.ManagedFields = append(d.ManagedFields, metav1.ManagedFieldsEntry{Manager: manager, Operation: op, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(raw))})
}

func TestPlanEnvLeavesEntriesOtherManagersHold(t *testing.T) {
	helm := []corev1.EnvVar{{Name: "REVISION", Value: "default"}, {Name: "PILOT_TRACE_SAMPLING", Value: "1"}, {Name: "CLUSTER_ID", Value: "Kubernetes"}}
	want := []corev1.EnvVar{{Name: "PILOT_TRACE_SAMPLING", Value: "10"}, {Name: "CLUSTER_ID", Value: "Kubernetes"}, {Name: "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", Value: "5m"}}
	d, c := istiod(helm, nil)
	holds(d, "helm", metav1.ManagedFieldsOperationApply, "REVISION", "PILOT_TRACE_SAMPLING", "CLUSTER_ID")

	ac, held := planEnv(d, c, want)
	if ac == nil || len(ac.Spec.Template.Spec.Containers[0].Env) != 1 || *ac.Spec.Template.Spec.Containers[0].Env[0].Name != "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL" {
		t.Fatalf("the operator must apply only the entry nobody else holds: %+v", ac)
	}
	if ac.Annotations[ManagedEnvAnnotation] != `["PILOT_JWT_PUB_KEY_REFRESH_INTERVAL"]` || ac.Annotations[ReplacedEnvAnnotation] != "" {
		t.Errorf("records %v", ac.Annotations)
	}
	// CLUSTER_ID holds the wanted value already: nothing to report.
	if len(held) != 1 || held[0] != (heldEnv{Name: "PILOT_TRACE_SAMPLING", Manager: "helm (Apply)", Live: "1", Want: "10"}) {
		t.Fatalf("held %+v", held)
	}
	msg := heldMessage(held)
	for _, part := range []string{`PILOT_TRACE_SAMPLING is applied by helm (Apply) with value "1", not "10"`, `traceSampling: ""`, "not null"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}

	// Helm 3 (Update) holds it the same way: the operation does not matter for env.
	d, c = istiod(helm, nil)
	holds(d, "helm", metav1.ManagedFieldsOperationUpdate, "PILOT_TRACE_SAMPLING")
	if _, held := planEnv(d, c, want[:1]); len(held) != 1 || held[0].Manager != "helm (Update)" {
		t.Errorf("held %+v", held)
	}
	// The operator's own entry is not held.
	d, c = istiod(helm, nil)
	holds(d, FieldManager, metav1.ManagedFieldsOperationApply, "PILOT_TRACE_SAMPLING")
	if ac, held := planEnv(d, c, want[:1]); len(held) != 0 || ac == nil {
		t.Errorf("own entry: held %+v, apply %v", held, ac)
	}
}

func TestHeldEnvRemedies(t *testing.T) {
	for h, want := range map[heldEnv]string{
		{Name: "PILOT_CERT_PROVIDER", Want: "custom"}: `set the chart value global.pilotCertProvider: "custom"`,
		{Name: "CLUSTER_ID", Want: "east"}:            `set the chart value global.multiCluster.clusterName: "east"`,
		{Name: "MY_FLAG", Want: "true"}:               `remove env.MY_FLAG from the chart values`,
	} {
		if got := h.remedy(); !strings.Contains(got, want) {
			t.Errorf("%s: %q lacks %q", h.Name, got, want)
		}
	}
}

// An entry an earlier operator took over keeps its record while the spec
// sets it, and gets its recorded value back when the spec stops.
func TestPlanEnvRestoresEntriesTakenOverBefore(t *testing.T) {
	legacy := envAnnotations([]string{"PILOT_TRACE_SAMPLING"}, map[string]corev1.EnvVar{"PILOT_TRACE_SAMPLING": {Name: "PILOT_TRACE_SAMPLING", Value: "1"}})
	d, c := istiod([]corev1.EnvVar{{Name: "PILOT_TRACE_SAMPLING", Value: "10"}}, legacy)
	holds(d, FieldManager, metav1.ManagedFieldsOperationApply, "PILOT_TRACE_SAMPLING")
	if ac, _ := planEnv(d, c, []corev1.EnvVar{{Name: "PILOT_TRACE_SAMPLING", Value: "10"}}); ac != nil {
		t.Fatalf("converged, yet %v", ac)
	}
	env, ann := appliedEnv(t, d, c, nil)
	if len(env) != 1 || env["PILOT_TRACE_SAMPLING"] != "1" || !strings.Contains(ann[ReplacedEnvAnnotation], "PILOT_TRACE_SAMPLING") {
		t.Fatalf("applied %v, records %v", env, ann)
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
			ConfigMapOwnership:    meshv1alpha1.ConfigMapOwn,
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
		Data:       p.configMapApply.Data,
	}
	d.Annotations = p.deploymentApply.Annotations
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "5"})
	// Labels the operator owns show up in managedFields; build that entry as the API server would.
	ns := &obs.namespaces[1]
	ns.Labels = map[string]string{render.LabelDataplaneMode: render.DataplaneModeAmbient}
	ns.Annotations = map[string]string{OwnerAnnotation: "istio-system/m"}
	ns.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", FieldsType: "FieldsV1",
		FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:annotations":{"f:mesh.meshsettings.io/owner":{}},"f:labels":{"f:istio.io/dataplane-mode":{}}}}`),
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
	nss := map[string]string{"kubernetes.io/metadata.name": "istio-system"}
	apps := []meshv1alpha1.LabelSelector{{MatchLabels: map[string]string{"istio-discovery": "enabled"}}}
	if w := selectorWarning(apps, "istio-system", nss); !strings.Contains(w, "istio-system") {
		t.Fatalf("selectors missing istiod's namespace gave %q", w)
	}
	withSystem := append(slices.Clone(apps), meshv1alpha1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "istio-system"}})
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
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(raw)}
	}
	apply, update := metav1.ManagedFieldsOperationApply, metav1.ManagedFieldsOperationUpdate
	labels := map[string]string{render.LabelRevision: "canary", render.LabelInjection: render.InjectionEnabled, "team": "a", "f:odd": "x"}
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

// The memo holds the label keys of each field set, never a namespace's
// values: a namespace whose labels change is read afresh, and namespaces
// sharing a field set cost one parse.
func TestOwnedMemoRemembersFieldSetsNotNamespaces(t *testing.T) {
	set := `{"f:metadata":{"f:labels":{"f:istio.io/rev":{}}}}`
	ns := func(name, label string) metav1.PartialObjectMetadata {
		return metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name: name, Labels: map[string]string{render.LabelRevision: label},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply,
				FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(set)}},
		}}
	}
	var m ownedMemo
	a := ns("a", "stable")
	if got, _ := m.labels(&a); got[render.LabelRevision] != "stable" {
		t.Fatalf("first read: %v", got)
	}
	a = ns("a", "canary") // a newer version of the same namespace
	if got, _ := m.labels(&a); got[render.LabelRevision] != "canary" {
		t.Fatalf("a changed namespace was served from the memo: %v", got)
	}
	for i := range 1000 {
		n := ns("n-"+strconv.Itoa(i), "x")
		if got, _ := m.labels(&n); got[render.LabelRevision] != "x" {
			t.Fatalf("%s: %v", n.Name, got)
		}
	}
	if len(m.keys) != 1 {
		t.Fatalf("1,001 namespaces of one field set: the memo holds %d entries", len(m.keys))
	}
	for i := range 2 * maxOwnedMemo {
		n := ns("m-"+strconv.Itoa(i), "y")
		n.ManagedFields[0].FieldsV1 = metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{"f:istio.io/rev":{},"f:k` + strconv.Itoa(i) + `":{}}}}`)
		_, _ = m.labels(&n)
	}
	if len(m.keys) > maxOwnedMemo {
		t.Fatalf("the memo grew to %d entries", len(m.keys))
	}
	bad := ns("bad", "z")
	bad.ManagedFields[0].FieldsV1 = metav1.NewFieldsV1(`{"f:metadata":`)
	if _, err := m.labels(&bad); err == nil || !strings.Contains(err.Error(), "namespace bad") {
		t.Fatalf("a damaged field set: %v", err)
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

// A ConfigMap the operator created with Own keeps its meshNetworks key when
// the MeshSettings switches to Merge: server-side apply deletes a field its
// only owner stops applying.
func TestPlanConfigMapKeepsMeshNetworksAfterOwn(t *testing.T) {
	ms := &meshv1alpha1.MeshSettings{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "istio-system"},
		Spec: meshv1alpha1.MeshSettingsSpec{
			ConfigMapOwnership:    meshv1alpha1.ConfigMapMerge,
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundAllowAny},
		},
	}
	own := metav1.ManagedFieldsEntry{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1",
		FieldsV1: metav1.NewFieldsV1(`{"f:data":{"f:mesh":{},"f:meshNetworks":{}}}`)}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system", UID: "c1", ManagedFields: []metav1.ManagedFieldsEntry{own}},
		Data:       map[string]string{"mesh": "trustDomain: cluster.local\n", "meshNetworks": "networks: {}"},
	}
	p, err := computePlan(ms, &observed{configMap: cm, existing: map[string]bool{"istio-system/m": true}})
	if err != nil {
		t.Fatal(err)
	}
	if p.configMapApply == nil || p.configMapApply.Data["meshNetworks"] != "networks: {}" {
		t.Fatalf("apply %+v: meshNetworks must stay in the operator's apply", p.configMapApply)
	}
	// Not the operator's: Merge writes the mesh key only.
	cm.ManagedFields[0].FieldsV1 = metav1.NewFieldsV1(`{"f:data":{"f:mesh":{}}}`)
	p, err = computePlan(ms, &observed{configMap: cm, existing: map[string]bool{"istio-system/m": true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.configMapApply.Data["meshNetworks"]; ok || len(p.configMapApply.Data) != 1 {
		t.Errorf("Merge applies %v, want the mesh key only", p.configMapApply.Data)
	}
}
