package helmchart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var chartDir = filepath.Join("..", "..", "charts", "meshsettings-operator")

const releaseName = "mso"

// render runs what `helm template --include-crds` runs: an install in
// client-only dry-run mode, for the envtest server's Kubernetes version.
func render(t *testing.T, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	sv, err := kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	kv, err := common.ParseKubeVersion(sv.GitVersion)
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(action.NewConfiguration())
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName = releaseName
	inst.Namespace = namespace
	inst.IncludeCRDs = true
	inst.Replace = true
	inst.KubeVersion = kv
	rel, err := inst.Run(chrt, values)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		t.Fatalf("release is a %T", rel)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(r.Manifest), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("rendered manifest does not parse: %v\n%s", err, r.Manifest)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs, nil
}

func mustRender(t *testing.T, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render(t, namespace, values)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, nameSuffix string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && strings.HasSuffix(o.GetName(), nameSuffix) {
			out = append(out, o)
		}
	}
	return out
}

func into[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	ds := find(objs, "Deployment", "")
	if len(ds) != 1 {
		t.Fatalf("%d Deployments rendered, want 1", len(ds))
	}
	return into[appsv1.Deployment](t, ds[0])
}

func TestDefaultsRenderTheOperator(t *testing.T) {
	objs := mustRender(t, "meshsettings-system", nil)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		// Only the control-plane Role and its binding live in istiod's namespace.
		wantNS := "meshsettings-system"
		if strings.HasSuffix(o.GetName(), "-manager") && (o.GetKind() == "Role" || o.GetKind() == "RoleBinding") {
			wantNS = "istio-system"
		}
		if ns := o.GetNamespace(); ns != "" && ns != wantNS {
			t.Errorf("%s %s is in namespace %s, want %s", o.GetKind(), o.GetName(), ns, wantNS)
		}
	}
	want := map[string]int{
		"CustomResourceDefinition": 1, "ServiceAccount": 1, "ClusterRole": 3, "ClusterRoleBinding": 2,
		"Role": 2, "RoleBinding": 2, "Service": 1, "Deployment": 1, "PodDisruptionBudget": 1,
		"ValidatingAdmissionPolicy": 2, "ValidatingAdmissionPolicyBinding": 2,
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("rendered kinds %v, want %v", kinds, want)
	}

	d := deployment(t, objs)
	// The Go runtime's memory settings: GOGC fixed, GOMEMLIMIT following the container's memory limit.
	wantEnv := []corev1.EnvVar{
		{Name: "GOGC", Value: "50"},
		{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "manager", Resource: "limits.memory"}}},
	}
	if env := d.Spec.Template.Spec.Containers[0].Env; !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("env %+v, want %+v", env, wantEnv)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2 (a standby for the owner of the mesh ConfigMap)", *d.Spec.Replicas)
	}
	chartYAML := struct {
		AppVersion string `json:"appVersion"`
	}{}
	raw, _ := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err := yaml.Unmarshal(raw, &chartYAML); err != nil || chartYAML.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %q %v", chartYAML.AppVersion, err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/meshsettings/meshsettings-operator:"+chartYAML.AppVersion || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %s (%s), want the appVersion tag, IfNotPresent", c.Image, c.ImagePullPolicy)
	}
	wantArgs := []string{"--leader-elect=true", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443", "--control-plane-namespace=istio-system"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %q, want %q", c.Args, wantArgs)
	}

	// Restricted pod security.
	psc := d.Spec.Template.Spec.SecurityContext
	if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	sc := c.SecurityContext
	if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v: want readOnlyRootFilesystem, no privilege escalation, drop ALL", sc)
	}
	for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.IntValue() != 8081 {
			t.Errorf("probe %s: %+v", name, p)
		}
	}
	if c.Resources.Limits.Memory().String() != "128Mi" || c.Resources.Requests.Cpu().String() != "10m" {
		t.Errorf("resources %v", c.Resources)
	}

	// The pod runs as the ServiceAccount the bindings name.
	sa := find(objs, "ServiceAccount", "")[0].GetName()
	if d.Spec.Template.Spec.ServiceAccountName != sa {
		t.Errorf("pod ServiceAccount %s, chart's %s", d.Spec.Template.Spec.ServiceAccountName, sa)
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range find(objs, kind, "") {
			rb := into[rbacv1.ClusterRoleBinding](t, b)
			if len(rb.Subjects) != 1 || rb.Subjects[0].Name != sa || rb.Subjects[0].Namespace != "meshsettings-system" {
				t.Errorf("%s %s binds %+v, not ServiceAccount %s", kind, b.GetName(), rb.Subjects, sa)
			}
			if len(find(objs, rb.RoleRef.Kind, rb.RoleRef.Name)) != 1 {
				t.Errorf("%s %s refers to %s %s, which the chart does not render", kind, b.GetName(), rb.RoleRef.Kind, rb.RoleRef.Name)
			}
		}
	}

	// The metrics Service selects the pod and targets the metrics port.
	svc := into[corev1.Service](t, find(objs, "Service", "")[0])
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the pod (labels %v)", k, v, d.Spec.Template.Labels)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service ports %+v", svc.Spec.Ports)
	}
}

// The chart grants exactly what the controller's rbac markers generate into
// config/rbac/role.yaml: the ClusterRole's rules (namespaces) and the
// control-plane Role's rules, in watchNamespace; with no watchNamespace the
// ClusterRole carries both.
func TestRBACIsTheGeneratedRole(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var clusterRules, roleRules []rbacv1.PolicyRule
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		r := &rbacv1.Role{}
		if err := yaml.Unmarshal([]byte(doc), r); err != nil {
			t.Fatal(err)
		}
		switch r.Kind {
		case "ClusterRole":
			clusterRules = r.Rules
		case "Role":
			if r.Namespace != "istio-system" {
				t.Fatalf("generated Role in %q, want istio-system", r.Namespace)
			}
			roleRules = r.Rules
		}
	}
	if clusterRules == nil || roleRules == nil {
		t.Fatalf("config/rbac/role.yaml must hold a ClusterRole and a Role")
	}
	same := func(what string, got, want []rbacv1.PolicyRule) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			g, _ := yaml.Marshal(got)
			w, _ := yaml.Marshal(want)
			t.Errorf("%s rules differ from config/rbac/role.yaml (make manifests, then copy its rules):\n--- chart\n%s--- generated\n%s", what, g, w)
		}
	}

	objs := mustRender(t, "meshsettings-system", nil)
	cr := find(objs, "ClusterRole", "-manager")
	roles := find(objs, "Role", "-manager")
	if len(cr) != 1 || len(roles) != 1 {
		t.Fatalf("%d manager ClusterRoles and %d Roles, want 1 and 1", len(cr), len(roles))
	}
	same("templates/clusterrole.yaml", into[rbacv1.ClusterRole](t, cr[0]).Rules, clusterRules)
	role := into[rbacv1.Role](t, roles[0])
	if role.Namespace != "istio-system" {
		t.Errorf("Role in %q, want the default watchNamespace istio-system", role.Namespace)
	}
	same("templates/role.yaml", role.Rules, roleRules)
	if len(find(objs, "RoleBinding", "-manager")) != 1 {
		t.Errorf("no RoleBinding for the control-plane Role")
	}

	all := mustRender(t, "meshsettings-system", map[string]any{"watchNamespace": ""})
	if len(find(all, "Role", "-manager")) != 0 {
		t.Errorf("a Role without watchNamespace")
	}
	same("templates/clusterrole.yaml (all namespaces)", into[rbacv1.ClusterRole](t, find(all, "ClusterRole", "-manager")[0]).Rules,
		append(slices.Clone(clusterRules), roleRules...))
}

func TestValuesChangeTheDeployment(t *testing.T) {
	objs := mustRender(t, "ops", map[string]any{
		"image":          map[string]any{"repository": "registry.example/mso", "tag": "v9.9.9", "pullPolicy": "Always"},
		"replicas":       2,
		"watchNamespace": "",
		"resources":      map[string]any{"limits": map[string]any{"memory": "256Mi"}},
		"podSecurityContext": map[string]any{
			"runAsNonRoot": true, "fsGroup": 2000, "seccompProfile": map[string]any{"type": "RuntimeDefault"},
		},
	})
	d := deployment(t, objs)
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example/mso:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s %s", c.Image, c.ImagePullPolicy)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *d.Spec.Replicas)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--control-plane-namespace") {
			t.Errorf("watchNamespace empty still renders %s", a)
		}
	}
	// Helm merges maps: a value overrides one key and keeps the others.
	if c.Resources.Limits.Memory().String() != "256Mi" || c.Resources.Requests.Cpu().String() != "10m" {
		t.Errorf("resources %v, want limits.memory 256Mi over the defaults", c.Resources)
	}
	if ptr.Deref(d.Spec.Template.Spec.SecurityContext.FSGroup, 0) != 2000 {
		t.Errorf("podSecurityContext not used: %+v", d.Spec.Template.Spec.SecurityContext)
	}

	objs = mustRender(t, "ops", map[string]any{"replicas": 1, "leaderElection": map[string]any{"enabled": false}, "watchNamespace": "mesh-cp"})
	c = deployment(t, objs).Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--leader-elect=false") || !slices.Contains(c.Args, "--control-plane-namespace=mesh-cp") {
		t.Errorf("args %q", c.Args)
	}
	if n := len(find(objs, "Role", "leader-election")) + len(find(objs, "RoleBinding", "leader-election")); n != 0 {
		t.Errorf("leader election off still renders %d Role/RoleBinding", n)
	}
	if r := find(objs, "Role", "-manager"); len(r) != 1 || r[0].GetNamespace() != "mesh-cp" {
		t.Errorf("the control-plane Role must follow watchNamespace mesh-cp")
	}

	if _, err := render(t, "ops", map[string]any{"replicas": 3, "leaderElection": map[string]any{"enabled": false}}); err == nil ||
		!strings.Contains(err.Error(), "leaderElection") {
		t.Errorf("3 replicas without leader election rendered (%v); they would all write", err)
	}
}

// The flags the chart passes are flags the operator has.
func TestOperatorAcceptsTheRenderedArgs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the operator: %v\n%s", err, out)
	}
	for _, values := range []map[string]any{nil, {"replicas": 1, "leaderElection": map[string]any{"enabled": false}, "watchNamespace": ""}} {
		args := deployment(t, mustRender(t, "ops", values)).Spec.Template.Spec.Containers[0].Args
		// -h after the rendered flags: each is parsed first; an unknown one fails.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, append(slices.Clone(args), "-h")...).CombinedOutput()
		cancel()
		if err != nil || bytes.Contains(out, []byte("provided but not defined")) {
			t.Errorf("operator rejects %q: %v\n%s", args, err, out)
		}
	}
}

// Everything the chart renders is accepted by a real API server: server-side
// apply, dry-run, strict field validation; the Deployment meets the
// restricted Pod Security Standard of a namespace that enforces it.
func TestRenderedManifestsApplyServerSide(t *testing.T) {
	ctx := context.Background()
	ns := "mso-" + rand.String(5)
	restricted := map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: restricted}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// istiod's namespace, where the chart puts the control-plane Role.
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	warnings.take()

	for _, values := range []map[string]any{nil, {"leaderElection": map[string]any{"enabled": false}, "watchNamespace": "", "replicas": 1,
		"rolloutRestart": map[string]any{"enabled": true}}} {
		objs := mustRender(t, ns, values)
		for _, o := range objs {
			got, err := applyDryRun(ctx, o)
			if err != nil {
				t.Errorf("server-side dry-run apply of %s %s: %v", o.GetKind(), o.GetName(), err)
				continue
			}
			if got.GetName() != o.GetName() || got.GetUID() == "" {
				t.Errorf("dry-run of %s %s returned %s (uid %q)", o.GetKind(), o.GetName(), got.GetName(), got.GetUID())
			}
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("the API server warned about the chart's objects: %q", w)
		}
	}
	// Dry-run means nothing was stored.
	if _, err := kube.AppsV1().Deployments(ns).Get(ctx, releaseName+"-meshsettings-operator", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run stored the Deployment: %v", err)
	}

	// The check above can fail: a pod template below "restricted" is warned about.
	objs := mustRender(t, ns, map[string]any{"securityContext": map[string]any{"allowPrivilegeEscalation": true}})
	if _, err := applyDryRun(ctx, find(objs, "Deployment", "")[0]); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) == 0 || !strings.Contains(strings.Join(w, " "), "restricted") {
		t.Errorf("a pod template allowing privilege escalation drew no Pod Security warning (%q): the check above proves nothing", w)
	}
}

func applyDryRun(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := o.GroupVersionKind()
	mapping, err := restMapping(gvk)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{
		FieldManager:    "argocd-controller",
		Force:           ptr.To(true),
		DryRun:          []string{metav1.DryRunAll},
		FieldValidation: "Strict",
	}
	var ri = dyn.Resource(mapping)
	if o.GetNamespace() != "" {
		return ri.Namespace(o.GetNamespace()).Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
	}
	return ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
}

func restMapping(gvk schema.GroupVersionKind) (schema.GroupVersionResource, error) {
	res, err := kube.Discovery().ServerResourcesForGroupVersion(gvk.GroupVersion().String())
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	for _, r := range res.APIResources {
		if r.Kind == gvk.Kind && !strings.Contains(r.Name, "/") {
			return gvk.GroupVersion().WithResource(r.Name), nil
		}
	}
	return schema.GroupVersionResource{}, errors.New("no resource for " + gvk.String())
}

// The ServiceMonitor is a valid prometheus-operator object that selects the
// metrics Service, and only that, on its HTTPS port.
func TestServiceMonitorScrapesTheMetricsService(t *testing.T) {
	if n := len(find(mustRender(t, "ops", nil), "ServiceMonitor", "")); n != 0 {
		t.Fatalf("%d ServiceMonitors rendered by default; the CRD may not exist", n)
	}
	objs := mustRender(t, "ops", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{
		"enabled": true, "interval": "15s", "labels": map[string]any{"release": "kube-prometheus-stack"},
	}}})
	sms := find(objs, "ServiceMonitor", "-metrics")
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors rendered, want 1", len(sms))
	}
	sm := into[monitoringv1.ServiceMonitor](t, sms[0]) // strict: unknown fields fail
	if sm.Namespace != "ops" || sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("namespace %q labels %v", sm.Namespace, sm.Labels)
	}
	if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{"ops"}) {
		t.Errorf("namespaceSelector %+v", sm.Spec.NamespaceSelector)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	var selected []corev1.Service
	for _, o := range find(objs, "Service", "") {
		if svc := into[corev1.Service](t, o); sel.Matches(labels.Set(svc.Labels)) {
			selected = append(selected, *svc)
		}
	}
	if len(selected) != 1 || !strings.HasSuffix(selected[0].Name, "-metrics") {
		t.Fatalf("the selector %s picks %d Services, want the metrics Service", sel, len(selected))
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != selected[0].Spec.Ports[0].Name || ep.Scheme.String() != "https" || ep.Path != "/metrics" || ep.Interval != "15s" {
		t.Errorf("endpoint %+v does not scrape https://<service>:%s/metrics every 15s", ep, selected[0].Spec.Ports[0].Name)
	}
	if ep.BearerTokenFile == "" || ep.TLSConfig == nil || !ptr.Deref(ep.TLSConfig.InsecureSkipVerify, false) {
		t.Errorf("endpoint must send Prometheus's token and accept the self-signed certificate: %+v", ep)
	}

	_, err = render(t, "ops", map[string]any{"metrics": map[string]any{
		"service": map[string]any{"enabled": false}, "serviceMonitor": map[string]any{"enabled": true},
	}})
	if err == nil || !strings.Contains(err.Error(), "metrics.service.enabled") {
		t.Errorf("a ServiceMonitor without the metrics Service rendered (%v)", err)
	}
}

// The chart's ValidatingAdmissionPolicies are config/admission's, for the
// release's ServiceAccount and watchNamespace; they can be turned off, and
// the namespace policy needs a watchNamespace.
func TestAdmissionPoliciesAreConfigAdmission(t *testing.T) {
	want := map[string]map[string]any{}
	for _, f := range []string{"control_plane_namespace_policy.yaml", "namespace_labels_policy.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "admission", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(raw), "\n---\n") {
			var o unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &o.Object); err != nil {
				t.Fatal(err)
			}
			if o.GetKind() == "ValidatingAdmissionPolicy" {
				spec, _, _ := unstructured.NestedMap(o.Object, "spec")
				want[o.GetName()] = spec
			}
		}
	}
	objs := mustRender(t, "ops", map[string]any{"watchNamespace": "mesh-cp"})
	policies := find(objs, "ValidatingAdmissionPolicy", "")
	if len(policies) != 2 || len(find(objs, "ValidatingAdmissionPolicyBinding", "")) != 2 {
		t.Fatalf("want 2 policies and 2 bindings, got %d policies", len(policies))
	}
	for _, p := range policies {
		name := strings.TrimPrefix(p.GetName(), releaseName+"-meshsettings-operator-")
		spec, _, _ := unstructured.NestedMap(p.Object, "spec")
		got, _ := json.Marshal(spec)
		exp, _ := json.Marshal(want[name])
		// What the install fixes: the ServiceAccount and the watched namespace.
		fixed := strings.NewReplacer(
			"system:serviceaccount:meshsettings-system:meshsettings-controller-manager", "system:serviceaccount:ops:"+releaseName+"-meshsettings-operator",
			"'istio-system'", "'mesh-cp'").Replace(string(exp))
		if want[name] == nil || string(got) != fixed {
			t.Errorf("policy %s differs from config/admission:\n--- chart\n%s\n--- config/admission (install names replaced)\n%s", p.GetName(), got, fixed)
		}
	}
	if n := len(find(mustRender(t, "ops", map[string]any{"watchNamespace": ""}), "ValidatingAdmissionPolicy", "")); n != 1 {
		t.Errorf("without watchNamespace: %d policies, want only the namespace-labels one", n)
	}
	if n := len(find(mustRender(t, "ops", map[string]any{"admissionPolicies": map[string]any{"enabled": false}}), "ValidatingAdmissionPolicy", "")); n != 0 {
		t.Errorf("admissionPolicies.enabled=false: %d policies", n)
	}
}

// controlPlane.revisions and the extra names extend the resourceNames the
// operator may patch; nothing else can be.
func TestRevisionsExtendTheNamesTheOperatorMayPatch(t *testing.T) {
	objs := mustRender(t, "ops", map[string]any{"controlPlane": map[string]any{
		"revisions": []any{"", "canary"}, "configMapNames": []any{"istio-mesh"}, "istiodDeploymentNames": []any{"istiod-blue"},
	}})
	role := into[rbacv1.Role](t, find(objs, "Role", "-manager")[0])
	named := map[string][]string{}
	for _, r := range role.Rules {
		if len(r.ResourceNames) > 0 {
			named[strings.Join(r.Resources, ",")+":"+strings.Join(r.Verbs, ",")] = r.ResourceNames
		}
		if slices.Contains(r.Verbs, "patch") && len(r.ResourceNames) == 0 && (slices.Contains(r.Resources, "configmaps") || slices.Contains(r.Resources, "deployments")) {
			t.Errorf("patch on %v without resourceNames", r.Resources)
		}
	}
	want := map[string][]string{
		"configmaps:delete,patch": {"istio", "istio-canary", "istio-mesh"},
		"deployments:patch":       {"istiod", "istiod-canary", "istiod-blue"},
	}
	if !reflect.DeepEqual(named, want) {
		t.Errorf("resourceNames %v, want %v", named, want)
	}
}

// The PodDisruptionBudget keeps the owner of the mesh ConfigMap through node
// drains: it selects exactly the operator's pods, and is not rendered over a
// single replica, where it would block every drain.
func TestPodDisruptionBudget(t *testing.T) {
	objs := mustRender(t, "meshsettings-system", nil)
	pdbs := find(objs, "PodDisruptionBudget", "")
	if len(pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdbs))
	}
	pdb := into[policyv1.PodDisruptionBudget](t, pdbs[0])
	d := deployment(t, objs)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("minAvailable %v, maxUnavailable %v; want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PDB selects %v, the Deployment's pods are %v", pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
	}
	for _, values := range []map[string]any{{"replicas": 1}, {"podDisruptionBudget": map[string]any{"enabled": false}}} {
		objs, err := render(t, "meshsettings-system", values)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(find(objs, "PodDisruptionBudget", "")); n != 0 {
			t.Errorf("values %v: %d PodDisruptionBudgets, want none", values, n)
		}
	}
}

// patchesDeploymentsEverywhere names the ClusterRoles granting patch on
// Deployments cluster-wide (no resourceNames).
func patchesDeploymentsEverywhere(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	for _, o := range find(objs, "ClusterRole", "") {
		for _, r := range into[rbacv1.ClusterRole](t, o).Rules {
			if slices.Contains(r.APIGroups, "apps") && slices.Contains(r.Resources, "deployments") &&
				(slices.Contains(r.Verbs, "patch") || slices.Contains(r.Verbs, "*")) && len(r.ResourceNames) == 0 {
				out = append(out, o.GetName())
			}
		}
	}
	return out
}

// spec.proxyRestart: RolloutRestart needs patch on Deployments in every
// namespace: the chart grants it only with rolloutRestart.enabled, in a
// ClusterRole of its own with the rules of config/rollout-restart, bound to
// the operator's ServiceAccount; and the real API server authorizes that
// ServiceAccount accordingly (SubjectAccessReview), with and without it.
func TestRolloutRestartClusterRoleOnlyWhenEnabled(t *testing.T) {
	const ns = "meshsettings-system"
	off := mustRender(t, ns, nil)
	if got := patchesDeploymentsEverywhere(t, off); len(got) != 0 {
		t.Errorf("by default, ClusterRoles %v patch Deployments in every namespace", got)
	}
	if got := find(off, "ClusterRole", "-rollout-restart"); len(got) != 0 {
		t.Errorf("by default, %d rollout-restart ClusterRoles", len(got))
	}
	// Also with the operator watching every namespace (watchNamespace ""):
	// the manager ClusterRole then carries the control-plane rules, whose
	// Deployment patch names istiod only.
	if got := patchesDeploymentsEverywhere(t, mustRender(t, ns, map[string]any{"watchNamespace": ""})); len(got) != 0 {
		t.Errorf("watchNamespace \"\": ClusterRoles %v patch Deployments in every namespace", got)
	}

	on := mustRender(t, ns, map[string]any{"rolloutRestart": map[string]any{"enabled": true}})
	roles := find(on, "ClusterRole", "-rollout-restart")
	if len(roles) != 1 || !slices.Equal(patchesDeploymentsEverywhere(t, on), []string{roles[0].GetName()}) {
		t.Fatalf("rolloutRestart.enabled: rollout-restart ClusterRoles %d, patching Deployments everywhere %v; want exactly it",
			len(roles), patchesDeploymentsEverywhere(t, on))
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rollout-restart", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var configRole rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &configRole); err != nil {
		t.Fatal(err)
	}
	if got := into[rbacv1.ClusterRole](t, roles[0]).Rules; !reflect.DeepEqual(got, configRole.Rules) {
		t.Errorf("chart rules %+v differ from config/rollout-restart/role.yaml's %+v", got, configRole.Rules)
	}
	bindings := find(on, "ClusterRoleBinding", "-rollout-restart")
	if len(bindings) != 1 {
		t.Fatalf("%d rollout-restart ClusterRoleBindings, want 1", len(bindings))
	}
	b := into[rbacv1.ClusterRoleBinding](t, bindings[0])
	sa := deployment(t, on).Spec.Template.Spec.ServiceAccountName
	if b.RoleRef.Name != roles[0].GetName() || len(b.Subjects) != 1 || b.Subjects[0].Name != sa || b.Subjects[0].Namespace != ns {
		t.Errorf("binding %+v does not bind %s to ServiceAccount %s/%s", b, roles[0].GetName(), ns, sa)
	}

	// What the API server makes of it: install the RBAC objects of each
	// render for real and ask whether the ServiceAccount may patch a
	// Deployment of an application namespace.
	ctx := context.Background()
	user := "system:serviceaccount:" + ns + ":" + sa
	may := func(attrs authorizationv1.ResourceAttributes) bool {
		t.Helper()
		sar, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &attrs,
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	mayPatch := func() bool {
		return may(authorizationv1.ResourceAttributes{Namespace: "shop", Verb: "patch", Group: "apps", Resource: "deployments", Name: "cart"})
	}
	// The authorizer sees new RBAC objects through its informers, a moment later.
	eventually := func(check func() bool) bool {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if check() {
				return true
			}
		}
		return false
	}
	install := func(objs []*unstructured.Unstructured) {
		t.Helper()
		for _, o := range objs {
			if k := o.GetKind(); k != "ClusterRole" && k != "ClusterRoleBinding" {
				continue
			}
			if _, err := applyReal(ctx, o); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = deleteReal(context.Background(), o) })
		}
	}
	install(off)
	// Once the authorizer has the default install (it grants patch on namespaces)...
	if !eventually(func() bool {
		return may(authorizationv1.ResourceAttributes{Verb: "patch", Resource: "namespaces", Name: "shop"})
	}) {
		t.Fatalf("the default install never let %s patch namespaces: the authorizer did not pick it up", user)
	}
	// ...it still refuses Deployments outside istiod's namespace.
	if mayPatch() {
		t.Errorf("without rolloutRestart.enabled, %s may patch deployments in namespace shop", user)
	}
	install(on)
	if !eventually(mayPatch) {
		t.Errorf("with rolloutRestart.enabled, %s may not patch deployments in namespace shop", user)
	}
}

func applyReal(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	mapping, err := restMapping(o.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return nil, err
	}
	return dyn.Resource(mapping).Patch(ctx, o.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "helm", Force: ptr.To(true)})
}

func deleteReal(ctx context.Context, o *unstructured.Unstructured) error {
	mapping, err := restMapping(o.GroupVersionKind())
	if err != nil {
		return err
	}
	return dyn.Resource(mapping).Delete(ctx, o.GetName(), metav1.DeleteOptions{})
}
