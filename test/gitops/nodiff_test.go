package gitops

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// argoManager is the field manager Argo CD applies with (ServerSideApply=true).
const argoManager = "argocd-controller"

const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
)

var (
	msGVR  = schema.GroupVersionResource{Group: "mesh.meshsettings.io", Version: "v1alpha1", Resource: "meshsettings"}
	depGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	cmGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// argoApply applies a manifest the way Argo CD syncs with ServerSideApply=true
// (field manager argocd-controller, conflicts forced) and, with dryRun, the
// way Server-Side Diff predicts the live object. It returns the server's answer.
func argoApply(gvr schema.GroupVersionResource, manifest *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	body, err := json.Marshal(manifest.Object)
	Expect(err).NotTo(HaveOccurred())
	opts := metav1.PatchOptions{FieldManager: argoManager, Force: ptr.To(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return dyn.Resource(gvr).Namespace(manifest.GetNamespace()).Patch(ctx, manifest.GetName(), types.ApplyPatchType, body, opts)
}

func get(gvr schema.GroupVersionResource, namespace, name string) *unstructured.Unstructured {
	u, err := dyn.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return u
}

// manifest parses YAML, as Argo CD reads it from Git, into a namespace.
func manifest(text, namespace string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	js, err := yaml.YAMLToJSON([]byte(text))
	Expect(err).NotTo(HaveOccurred())
	Expect(u.UnmarshalJSON(js)).To(Succeed())
	u.SetNamespace(namespace)
	return u
}

func field(u *unstructured.Unstructured, path ...string) any {
	v, _, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	Expect(err).NotTo(HaveOccurred())
	return v
}

// argoEntries returns the managedFields entries of Argo CD's field manager.
func argoEntries(u *unstructured.Unstructured) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, e := range u.GetManagedFields() {
		if e.Manager == argoManager {
			out = append(out, e)
		}
	}
	return out
}

// fieldsOf returns the top-level fields set of a managedFields entry.
func fieldsOf(e metav1.ManagedFieldsEntry) map[string]any {
	m := map[string]any{}
	Expect(json.Unmarshal(e.FieldsV1.GetRawBytes(), &m)).To(Succeed())
	return m
}

// health runs health.lua on a live object, as Argo CD does for the app's tree.
func health(u *unstructured.Unstructured) healthStatus {
	script, err := os.ReadFile(filepath.Join(healthDir, "health.lua"))
	Expect(err).NotTo(HaveOccurred())
	hs, err := runHealthLua(u.Object, string(script))
	Expect(err).NotTo(HaveOccurred())
	return *hs
}

func eventuallyHealth(namespace, name, status string) *unstructured.Unstructured {
	var live *unstructured.Unstructured
	Eventually(func(g Gomega) {
		u, err := dyn.Resource(msGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(health(u).Status).To(Equal(status), "health %+v", health(u))
		live = u
	}, timeout, interval).Should(Succeed())
	return live
}

func createNamespace(prefix string, labels map[string]string) string {
	GinkgoHelper()
	return testEnv.Namespace(strings.TrimSuffix(prefix, "-"), labels)
}

// istiodManifest is istiod as Istio's Helm chart renders it (trimmed), with
// the env entries Helm sets.
func istiodManifest(name, revision string, env map[string]string, order []string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  labels:
    app: istiod
    istio.io/rev: ` + revision + `
    app.kubernetes.io/instance: istio-control-plane
spec:
  selector:
    matchLabels:
      app: istiod
      istio.io/rev: ` + revision + `
  template:
    metadata:
      labels:
        app: istiod
        istio.io/rev: ` + revision + `
    spec:
      containers:
      - name: discovery
        image: docker.io/istio/pilot:1.28.1
        args: ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info"]
        ports:
        - containerPort: 15012
          protocol: TCP
        env:
`)
	for _, k := range order {
		b.WriteString("        - name: " + k + "\n          value: \"" + env[k] + "\"\n")
	}
	return b.String()
}

func envOf(u *unstructured.Unstructured) []any {
	containers := field(u, "spec", "template", "spec", "containers").([]any)
	for _, c := range containers {
		if c.(map[string]any)["name"] == "discovery" {
			env, _ := c.(map[string]any)["env"].([]any)
			return env
		}
	}
	Fail("no discovery container")
	return nil
}

// envValue is the value of one env entry, or "<absent>".
func envValue(env []any, name string) string {
	for _, e := range env {
		if m := e.(map[string]any); m["name"] == name {
			v, _ := m["value"].(string)
			return v
		}
	}
	return "<absent>"
}

var _ = Describe("Argo CD applying MeshSettings and istiod with server-side apply", Ordered, func() {
	var (
		cp, app    string
		msManifest *unstructured.Unstructured
		applied    *unstructured.Unstructured
		helmEnv    = map[string]string{
			"REVISION": "1-28", "PILOT_ENABLE_ANALYSIS": "false", "CLUSTER_ID": "Kubernetes", "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION": "true",
		}
		helmEnvKeys = []string{"REVISION", "PILOT_ENABLE_ANALYSIS", "CLUSTER_ID", "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION"}
		istiod      *unstructured.Unstructured
	)

	BeforeAll(func() {
		// The shipped GitOps sample, as Argo CD would read it from Git, in a
		// namespace of its own.
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "mesh_v1alpha1_meshsettings_gitops.yaml"))
		Expect(err).NotTo(HaveOccurred())
		cp = createNamespace("istio-system-", map[string]string{"istio-discovery": "enabled"})
		app = createNamespace("shop-", map[string]string{"istio-discovery": "enabled"})
		msManifest = manifest(string(raw), cp)
		Expect(msManifest.GetLabels()).NotTo(BeEmpty(), "the sample should carry labels to check")
		// Argo CD's tracking annotation, as it adds to every object it applies.
		ann := msManifest.GetAnnotations()
		ann["argocd.argoproj.io/tracking-id"] = "platform-mesh:mesh.meshsettings.io/MeshSettings:" + cp + "/" + msManifest.GetName()
		msManifest.SetAnnotations(ann)
		rev := field(msManifest, "spec", "revision").(string)

		By("Argo CD syncing Istio's Helm output, rendered with configMap=false: istiod, no mesh ConfigMap")
		istiod = manifest(istiodManifest("istiod-"+rev, rev, helmEnv, helmEnvKeys), cp)
		_, err = argoApply(depGVR, istiod, false)
		Expect(err).NotTo(HaveOccurred())

		By("Argo CD syncing the MeshSettings")
		applied, err = argoApply(msGVR, msManifest, false)
		Expect(err).NotTo(HaveOccurred())
	})

	It("stores the MeshSettings exactly as in Git: no default is injected", func() {
		Expect(field(applied, "spec")).To(Equal(field(msManifest, "spec")))
		Expect(applied.GetLabels()).To(Equal(msManifest.GetLabels()))
		Expect(applied.GetAnnotations()).To(Equal(msManifest.GetAnnotations()))
	})

	It("turns Healthy in Argo CD once the operator reconciled it", func() {
		live := eventuallyHealth(cp, msManifest.GetName(), "Healthy")
		Expect(health(live).Message).To(ContainSubstring("applied"))
		Expect(envValue(envOf(get(depGVR, cp, istiod.GetName())), "PILOT_TRACE_SAMPLING")).To(Equal("1"))
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Name: app}, ns)).To(Succeed())
		Expect(ns.Labels).To(HaveKeyWithValue(render.LabelRevision, "1-28"))
	})

	It("leaves spec, labels and annotations to Argo CD: the operator writes only status and its finalizer", func() {
		live := get(msGVR, cp, msManifest.GetName())
		Expect(field(live, "spec")).To(Equal(field(msManifest, "spec")))
		Expect(live.GetLabels()).To(Equal(msManifest.GetLabels()))
		Expect(live.GetAnnotations()).To(Equal(msManifest.GetAnnotations()))
		Expect(live.GetGeneration()).To(Equal(applied.GetGeneration()))
		Expect(live.GetFinalizers()).To(ConsistOf("mesh.meshsettings.io/cleanup"))

		// Argo CD's managedFields entry is the one its apply created.
		Expect(argoEntries(live)).To(Equal(argoEntries(applied)))
		Expect(argoEntries(live)).To(HaveLen(1))

		// Every other manager of the object (the operator: its status and
		// finalizer patches carry its client's default manager name) owns only
		// status or metadata.finalizers.
		Expect(live.GetManagedFields()).To(HaveLen(3), "managers: Argo CD, the operator's finalizer patch, its status patch")
		for _, e := range live.GetManagedFields() {
			if e.Manager == argoManager {
				continue
			}
			f := fieldsOf(e)
			if e.Subresource == "status" {
				Expect(f).To(HaveKey("f:status"))
				Expect(f).To(HaveLen(1), "status write of %s touches %v", e.Manager, f)
				continue
			}
			Expect(f).To(HaveLen(1), "%s writes %v", e.Manager, f)
			Expect(f).To(HaveKey("f:metadata"))
			Expect(f["f:metadata"]).To(HaveLen(1), "%s writes metadata %v", e.Manager, f["f:metadata"])
			Expect(f["f:metadata"]).To(HaveKey("f:finalizers"))
		}
	})

	It("shows no diff when Argo CD compares again (server-side dry-run apply of the same manifest)", func() {
		live := get(msGVR, cp, msManifest.GetName())
		predicted, err := argoApply(msGVR, msManifest, true)
		Expect(err).NotTo(HaveOccurred())
		Expect(field(predicted, "spec")).To(Equal(field(live, "spec")))
		Expect(field(predicted, "spec")).To(Equal(field(msManifest, "spec")))
		Expect(predicted.GetLabels()).To(Equal(live.GetLabels()))
		Expect(predicted.GetLabels()).To(Equal(msManifest.GetLabels()))
		Expect(predicted.GetAnnotations()).To(Equal(live.GetAnnotations()))
		Expect(predicted.GetAnnotations()).To(Equal(msManifest.GetAnnotations()))
		Expect(predicted.GetFinalizers()).To(Equal(live.GetFinalizers()))
		Expect(predicted.GetGeneration()).To(Equal(live.GetGeneration()))
		Expect(argoEntries(predicted)).To(Equal(argoEntries(live)))
		// The whole predicted object is the live one: Server-Side Diff is empty.
		Expect(predicted.Object).To(Equal(live.Object))
	})

	It("writes nothing when Argo CD syncs again (self-heal, a new commit elsewhere)", func() {
		before := get(msGVR, cp, msManifest.GetName())
		after, err := argoApply(msGVR, msManifest, false)
		Expect(err).NotTo(HaveOccurred())
		Expect(after.GetResourceVersion()).To(Equal(before.GetResourceVersion()), "a no-op sync wrote the MeshSettings")
		Expect(after.GetGeneration()).To(Equal(before.GetGeneration()))
		Consistently(func() string {
			return get(msGVR, cp, msManifest.GetName()).GetResourceVersion()
		}, 2*time.Second, 200*time.Millisecond).Should(Equal(before.GetResourceVersion()), "the operator wrote after a no-op sync")
	})

	It("keeps the operator's istiod env when Argo CD re-applies Istio's Helm output; no diff, no rollout", func() {
		live := get(depGVR, cp, istiod.GetName())
		env := envOf(live)
		Expect(envValue(env, "PILOT_TRACE_SAMPLING")).To(Equal("1"))
		predicted, err := argoApply(depGVR, istiod, true)
		Expect(err).NotTo(HaveOccurred())
		Expect(envOf(predicted)).To(Equal(env), "Argo CD would show the operator's env entries as a diff")
		Expect(field(predicted, "spec")).To(Equal(field(live, "spec")))
		Expect(predicted.GetAnnotations()).To(Equal(live.GetAnnotations()))

		after, err := argoApply(depGVR, istiod, false)
		Expect(err).NotTo(HaveOccurred())
		Expect(after.GetGeneration()).To(Equal(live.GetGeneration()), "a sync of the unchanged Helm output rolled istiod")
		Expect(envOf(after)).To(Equal(env))
		for _, k := range helmEnvKeys {
			Expect(envValue(envOf(after), k)).To(Equal(helmEnv[k]))
		}
		Consistently(func() int64 {
			return get(depGVR, cp, istiod.GetName()).GetGeneration()
		}, 2*time.Second, 200*time.Millisecond).Should(Equal(live.GetGeneration()), "istiod rolled after a no-op sync")
	})

	It("owns the mesh ConfigMap (configMapOwnership Own): the revision's baseline plus the spec, nothing for Argo CD to diff", func() {
		rev := field(msManifest, "spec", "revision").(string)
		live := get(cmGVR, cp, "istio-"+rev)
		doc := map[string]any{}
		Expect(yaml.Unmarshal([]byte(field(live, "data", "mesh").(string)), &doc)).To(Succeed())
		Expect(doc["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
		Expect(doc["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod-"+rev+"."+cp+".svc:15012"))
		Expect(doc).To(HaveKeyWithValue("rootNamespace", cp))
		Expect(doc).To(HaveKeyWithValue("trustDomain", "cluster.local"))
		Expect(field(live, "data", "meshNetworks")).To(Equal("networks: {}"))
		for _, e := range live.GetManagedFields() {
			Expect(e.Manager).NotTo(Equal(argoManager), "Argo CD does not manage the ConfigMap")
		}
	})
})

// sharedEnvIstiod is istiod as Istio's chart renders it for the default
// revision with its default traceSampling: PILOT_TRACE_SAMPLING=1.
func sharedEnvIstiod() string {
	env := map[string]string{"REVISION": "default", "PILOT_TRACE_SAMPLING": "1", "CLUSTER_ID": "Kubernetes"}
	return istiodManifest("istiod", "default", env, []string{"REVISION", "PILOT_TRACE_SAMPLING", "CLUSTER_ID"})
}

// ownSamplingIstiod is istiod rendered with traceSampling: "": the
// MeshSettings owns PILOT_TRACE_SAMPLING (docs/helm.md).
func ownSamplingIstiod() string {
	env := map[string]string{"REVISION": "default", "CLUSTER_ID": "Kubernetes"}
	return istiodManifest("istiod", "default", env, []string{"REVISION", "CLUSTER_ID"})
}

// setSharedEnv applies, as Argo CD, a MeshSettings (configMapOwnership Own)
// that sets PILOT_TRACE_SAMPLING=10 and an entry only the operator sets
// (DEFAULT_WORKLOAD_CERT_TTL), waits for the given health and returns istiod
// and the operator's TTL value.
func setSharedEnv(cp, wantHealth string) (live *unstructured.Unstructured, ttl string) {
	GinkgoHelper()
	_, err := argoApply(msGVR, manifest(`apiVersion: mesh.meshsettings.io/v1alpha1
kind: MeshSettings
metadata:
  name: mesh
spec:
  configMapOwnership: Own
  tracing:
    samplingPercentage: "10"
  istiod:
    workloadCertTTL: 12h0m0s
`, cp), false)
	Expect(err).NotTo(HaveOccurred())
	eventuallyHealth(cp, "mesh", wantHealth)
	Eventually(func() string {
		return envValue(envOf(get(depGVR, cp, "istiod")), "DEFAULT_WORKLOAD_CERT_TTL")
	}, timeout, interval).ShouldNot(Equal("<absent>"))
	live = get(depGVR, cp, "istiod")
	return live, envValue(envOf(live), "DEFAULT_WORKLOAD_CERT_TTL")
}

var _ = Describe("Argo CD and the operator both setting one istiod env entry", func() {
	It("is left to Argo CD: the MeshSettings names the chart value to set (Degraded); a sync shows no diff and rolls nothing", func() {
		cp := createNamespace("istio-system-", nil)
		istiod := manifest(sharedEnvIstiod(), cp)
		_, err := argoApply(depGVR, istiod, false)
		Expect(err).NotTo(HaveOccurred())
		dep, ttl := setSharedEnv(cp, "Degraded")
		Expect(health(get(msGVR, cp, "mesh")).Message).To(ContainSubstring(`traceSampling: ""`))
		Expect(envValue(envOf(dep), "PILOT_TRACE_SAMPLING")).To(Equal("1"), "the operator took Argo CD's entry")

		By("Server-Side Diff predicts the live object: no diff")
		predicted, err := argoApply(depGVR, istiod, true)
		Expect(err).NotTo(HaveOccurred())
		Expect(envOf(predicted)).To(Equal(envOf(dep)))
		Expect(envValue(envOf(predicted), "DEFAULT_WORKLOAD_CERT_TTL")).To(Equal(ttl))

		By("a sync rolls nothing, and the operator does not fight")
		synced, err := argoApply(depGVR, istiod, false)
		Expect(err).NotTo(HaveOccurred())
		Expect(synced.GetGeneration()).To(Equal(dep.GetGeneration()))
		Consistently(func() int64 { return get(depGVR, cp, "istiod").GetGeneration() }, 2*time.Second, 200*time.Millisecond).
			Should(Equal(dep.GetGeneration()))
	})
})

var _ = Describe("health.lua on the operator's real status", Ordered, func() {
	var (
		cp, cp2 string // a namespace without istiod, one for a rejected spec
		bad     *unstructured.Unstructured
	)

	It("is Progressing while istiod is missing", func() {
		cp = createNamespace("istio-system-", nil)
		ms := manifest(`apiVersion: mesh.meshsettings.io/v1alpha1
kind: MeshSettings
metadata:
  name: waiting
spec:
  configMapOwnership: Own
  outboundTrafficPolicy:
    mode: ALLOW_ANY
`, cp)
		_, err := argoApply(msGVR, ms, false)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			hs := health(get(msGVR, cp, "waiting"))
			g.Expect(hs.Message).To(ContainSubstring("istiod"))
			g.Expect(hs.Status).To(Equal("Progressing"))
		}, timeout, interval).Should(Succeed())
		Consistently(func() string { return health(get(msGVR, cp, "waiting")).Status }, time.Second, 200*time.Millisecond).
			Should(Equal("Progressing"))
	})

	It("is Degraded for a spec only the controller can reject, naming the field", func() {
		cp2 = createNamespace("istio-system-", nil)
		bad = manifest(`apiVersion: mesh.meshsettings.io/v1alpha1
kind: MeshSettings
metadata:
  name: typo
spec:
  meshConfig:
    trustDomainn: example.org
`, cp2)
		_, err := argoApply(msGVR, bad, false)
		Expect(err).NotTo(HaveOccurred())
		live := eventuallyHealth(cp2, "typo", "Degraded")
		Expect(health(live).Message).To(ContainSubstring("trustDomainn"))
	})

	It("is Degraded with Conflict for a second MeshSettings of the same istiod, naming the first", func() {
		second := manifest(`apiVersion: mesh.meshsettings.io/v1alpha1
kind: MeshSettings
metadata:
  name: waiting-copy
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
`, cp)
		time.Sleep(1100 * time.Millisecond) // creationTimestamp has second precision
		_, err := argoApply(msGVR, second, false)
		Expect(err).NotTo(HaveOccurred())
		live := eventuallyHealth(cp, "waiting-copy", "Degraded")
		Expect(health(live).Message).To(ContainSubstring("waiting"))
	})

	It("is Progressing for a new generation until the operator caught up, then Degraded again", func() {
		before := get(msGVR, cp2, "typo")
		Expect(unstructured.SetNestedField(bad.Object, "example.com", "spec", "meshConfig", "trustDomainn")).To(Succeed())
		fresh, err := argoApply(msGVR, bad, false)
		Expect(err).NotTo(HaveOccurred())
		Expect(fresh.GetGeneration()).To(Equal(before.GetGeneration() + 1))
		Expect(health(fresh).Status).To(Equal("Progressing"), "health of a just-applied generation: %+v", health(fresh))
		eventuallyHealth(cp2, "typo", "Degraded")
	})
})

var _ = Describe("the health check's testdata", func() {
	It("are MeshSettings the API server accepts, status included", func() {
		files, err := filepath.Glob(filepath.Join(healthDir, "testdata", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		cp := createNamespace("testdata-", nil)
		for _, f := range files {
			obj, err := readObject(f)
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{Object: obj}
			// What a user could apply: spec, name, labels and annotations.
			in := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(),
				"metadata": map[string]any{"name": u.GetName(), "namespace": cp, "labels": toAny(u.GetLabels()), "annotations": toAny(u.GetAnnotations())},
				"spec":     obj["spec"],
			}}
			_, err = argoApply(msGVR, in, false)
			Expect(err).NotTo(HaveOccurred(), "%s: spec rejected", f)
			status, ok := obj["status"]
			if !ok {
				continue
			}
			// The status as the operator would write it: validated against the
			// CRD's status schema (dry-run, so the operator's own status stays).
			st := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(),
				"metadata": map[string]any{"name": u.GetName(), "namespace": cp}, "status": status}
			body, err := json.Marshal(st)
			Expect(err).NotTo(HaveOccurred())
			_, err = dyn.Resource(msGVR).Namespace(cp).Patch(ctx, u.GetName(), types.ApplyPatchType, body,
				metav1.PatchOptions{FieldManager: "testdata", Force: ptr.To(true), DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}, "status")
			Expect(err).NotTo(HaveOccurred(), "%s: status rejected", f)
		}
	})
})

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
