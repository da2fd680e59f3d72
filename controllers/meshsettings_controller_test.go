package controllers

import (
	"fmt"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// helmMesh is the mesh document as Istio's Helm chart renders it.
const helmMesh = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  proxyMetadata: {}
  tracing: {}
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: cluster.local
`

var helmEnv = []corev1.EnvVar{
	{Name: "REVISION", Value: "default"},
	{Name: "PILOT_ENABLE_ANALYSIS", Value: "false"},
	{Name: "CLUSTER_ID", Value: "Kubernetes"},
}

const (
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)

// controlPlane creates a namespace with a Helm-like istio ConfigMap and istiod Deployment.
func controlPlane(withIstiod bool, image string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cp-", Labels: map[string]string{"mesh-test": "cp"}}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: ns.Name},
		Data:       map[string]string{"mesh": helmMesh, "meshNetworks": "networks: {}"},
	}
	Expect(k8sClient.Create(ctx, cm, client.FieldOwner("helm"))).To(Succeed())
	if withIstiod {
		createIstiod(ns.Name, image)
	}
	return ns.Name
}

func createIstiod(namespace, image string) {
	createIstiodNamed(namespace, "istiod", image)
}

func createIstiodNamed(namespace, name, image string) {
	labels := map[string]string{"app": "istiod"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "discovery", Image: image, Env: slices.Clone(helmEnv),
				}}},
			},
		},
	}
	Expect(k8sClient.Create(ctx, d, client.FieldOwner("helm"))).To(Succeed())
}

func appNamespace(labels map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app-" + rand.String(6), Labels: labels}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func meshDoc(namespace, name string) map[string]any {
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm)).To(Succeed())
	doc := map[string]any{}
	Expect(yaml.Unmarshal([]byte(cm.Data["mesh"]), &doc)).To(Succeed())
	return doc
}

func istiodEnv(namespace string) []corev1.EnvVar {
	d := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "istiod"}, d)).To(Succeed())
	return d.Spec.Template.Spec.Containers[0].Env
}

func nsLabels(name string) map[string]string {
	ns := &corev1.Namespace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, ns)).To(Succeed())
	return ns.Labels
}

func condition(namespace, name, t string) *metav1.Condition {
	ms := &meshv1alpha1.MeshSettings{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ms); err != nil {
		return nil
	}
	c := meta.FindStatusCondition(ms.Status.Conditions, t)
	if c != nil && c.ObservedGeneration != ms.Generation {
		return nil // not yet about this generation
	}
	return c
}

func eventuallyReady(namespace, name string) {
	Eventually(func(g Gomega) {
		c := condition(namespace, name, meshv1alpha1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready: %s %s", c.Reason, c.Message)
	}, timeout, interval).Should(Succeed())
}

func sampleSpec(app string) meshv1alpha1.MeshSettingsSpec {
	return meshv1alpha1.MeshSettingsSpec{
		OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
		Tracing: &meshv1alpha1.Tracing{
			Enabled:            ptr.To(true),
			SamplingPercentage: "10",
			Providers: []meshv1alpha1.TracingProvider{{
				Name:   "zipkin",
				Zipkin: &meshv1alpha1.ZipkinProvider{Endpoint: meshv1alpha1.Endpoint{Service: "zipkin.istio-system.svc.cluster.local", Port: 9411}},
			}},
			DefaultProviders: []string{"zipkin"},
		},
		Drain: &meshv1alpha1.Drain{DrainDuration: &metav1.Duration{Duration: 45 * time.Second}},
		Istiod: &meshv1alpha1.Istiod{
			WorkloadCertTTL: &metav1.Duration{Duration: 12 * time.Hour},
			Env:             []meshv1alpha1.EnvVar{{Name: "PILOT_ENABLE_STATUS", Value: "true"}},
		},
		Namespaces: []meshv1alpha1.NamespaceRule{{Names: []string{app}, Dataplane: meshv1alpha1.DataplaneSidecar}},
	}
}

func envNames(env []corev1.EnvVar) []string {
	names := make([]string, len(env))
	for i, e := range env {
		names[i] = e.Name
	}
	return names
}

var _ = Describe("MeshSettings controller", func() {
	Describe("one MeshSettings from creation to deletion", Ordered, func() {
		var (
			cp, app string
			ms      *meshv1alpha1.MeshSettings
		)

		BeforeAll(func() {
			cp = controlPlane(true, "docker.io/istio/pilot:1.28.1")
			app = appNamespace(map[string]string{"team": "a"})
			spec := sampleSpec(app)
			// Replaces a value Helm set: it must come back on deletion. (An env
			// entry Helm sets is not taken: see ownership_test.go.)
			spec.MeshConfig = map[string]apiextensionsv1.JSON{"trustDomain": {Raw: []byte(`"example.org"`)}}
			ms = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: spec}
			Expect(k8sClient.Create(ctx, ms)).To(Succeed())
			eventuallyReady(cp, "mesh")
		})

		It("writes the managed keys into the mesh document and keeps Helm's other keys", func() {
			doc := meshDoc(cp, "istio")
			Expect(doc["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
			Expect(doc["enableTracing"]).To(BeTrue())
			Expect(doc["defaultProviders"]).To(Equal(map[string]any{"metrics": []any{"prometheus"}, "tracing": []any{"zipkin"}}))
			Expect(doc["defaultConfig"]).To(Equal(map[string]any{
				"discoveryAddress": "istiod.istio-system.svc:15012", "proxyMetadata": map[string]any{}, "tracing": map[string]any{},
				"drainDuration": "45s",
			}))
			Expect(doc["trustDomain"]).To(Equal("example.org"))
			Expect(doc["rootNamespace"]).To(Equal("istio-system"))
			cm := &corev1.ConfigMap{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istio"}, cm)).To(Succeed())
			Expect(cm.Data["meshNetworks"]).To(Equal("networks: {}"))
		})

		It("keeps Helm's istiod env in order and appends its own entries sorted by name", func() {
			Expect(envNames(istiodEnv(cp))).To(Equal([]string{
				"REVISION", "PILOT_ENABLE_ANALYSIS", "CLUSTER_ID",
				"DEFAULT_WORKLOAD_CERT_TTL", "PILOT_ENABLE_STATUS", "PILOT_TRACE_SAMPLING",
			}))
			Expect(istiodEnv(cp)).To(ContainElement(corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "10"}))
		})

		It("labels the application namespace for the default revision and keeps its own labels", func() {
			Expect(nsLabels(app)).To(HaveKeyWithValue(render.LabelRevision, "default"))
			Expect(nsLabels(app)).To(HaveKeyWithValue("team", "a"))
		})

		It("reports the targets in status, every target condition True", func() {
			got := &meshv1alpha1.MeshSettings{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
			Expect(got.Finalizers).To(ContainElement(Finalizer))
			Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			Expect(got.Status.MeshConfig.ConfigMapName).To(Equal("istio"))
			Expect(got.Status.Istiod.Version).To(Equal("1.28.1"))
			Expect(got.Status.Namespaces.Selected).To(BeEquivalentTo(1))
			Expect(got.Status.Namespaces.Labeled).To(BeEquivalentTo(1))
			Expect(meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionStalled)).To(BeNil())
			Expect(meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionReconciling)).To(BeNil())
			for _, t := range []string{meshv1alpha1.ConditionMeshConfigApplied, meshv1alpha1.ConditionIstiodEnvApplied, meshv1alpha1.ConditionNamespacesLabeled} {
				Expect(meta.IsStatusConditionTrue(got.Status.Conditions, t)).To(BeTrue(), t)
			}
		})

		It("writes nothing when a reconcile finds everything converged", func() {
			rvs := func() []string {
				d := &appsv1.Deployment{}
				Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istiod"}, d)).To(Succeed())
				c := &corev1.ConfigMap{}
				Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istio"}, c)).To(Succeed())
				n := &corev1.Namespace{}
				Expect(k8sClient.Get(ctx, client.ObjectKey{Name: app}, n)).To(Succeed())
				m := &meshv1alpha1.MeshSettings{}
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), m)).To(Succeed())
				return []string{d.ResourceVersion, fmt.Sprint(d.Generation), c.ResourceVersion, n.ResourceVersion, m.ResourceVersion}
			}
			before := rvs()
			// A label change on the MeshSettings' namespace triggers reconciles without changing anything.
			cpNs := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: cp}, cpNs)).To(Succeed())
			cpNs.Labels["poke"] = "1"
			Expect(k8sClient.Update(ctx, cpNs)).To(Succeed())
			Consistently(rvs, 2*time.Second, 200*time.Millisecond).Should(Equal(before))
		})

		It("propagates an update, and a removed field disappears from the targets", func() {
			got := &meshv1alpha1.MeshSettings{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
			got.Spec.OutboundTrafficPolicy.Mode = meshv1alpha1.OutboundAllowAny
			got.Spec.Tracing = nil
			Expect(k8sClient.Update(ctx, got)).To(Succeed())
			eventuallyReady(cp, "mesh")
			doc := meshDoc(cp, "istio")
			Expect(doc["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "ALLOW_ANY"}))
			Expect(doc).NotTo(HaveKey("enableTracing"))
			Expect(doc).NotTo(HaveKey("extensionProviders"))
			Expect(doc["defaultProviders"]).To(Equal(map[string]any{"metrics": []any{"prometheus"}}))
			Expect(envNames(istiodEnv(cp))).NotTo(ContainElement("PILOT_TRACE_SAMPLING"))
		})

		It("removes on deletion what it wrote, and nothing else", func() {
			Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}))
			}, timeout, interval).Should(BeTrue())
			Expect(meshDoc(cp, "istio")).To(Equal(func() map[string]any {
				m := map[string]any{}
				Expect(yaml.Unmarshal([]byte(helmMesh), &m)).To(Succeed())
				return m
			}()))
			Expect(istiodEnv(cp)).To(Equal(helmEnv))
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istiod"}, d)).To(Succeed())
			Expect(d.Annotations).NotTo(HaveKey(ManagedEnvAnnotation))
			Expect(d.Annotations).NotTo(HaveKey(ReplacedEnvAnnotation))
			cm := &corev1.ConfigMap{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istio"}, cm)).To(Succeed())
			Expect(cm.Annotations).NotTo(HaveKey(render.ManagedKeysAnnotation))
			Expect(cm.Annotations).NotTo(HaveKey(render.ReplacedValuesAnnotation))
			Expect(nsLabels(app)).To(Equal(map[string]string{"team": "a", "kubernetes.io/metadata.name": app}))
		})

		It("owns no field after deletion: another applier changes the restored values without a conflict", func() {
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: cp, Name: "istiod"}}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: cp, Name: "istio"}}
			for _, obj := range []client.Object{d, cm} {
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
				Expect(obj.GetManagedFields()).NotTo(ContainElement(HaveField("Manager", FieldManager)))
			}
			Expect(k8sClient.Apply(ctx, corev1ac.ConfigMap("istio", cp).WithData(map[string]string{"mesh": "trustDomain: upgraded.example"}),
				client.FieldOwner("helm"))).To(Succeed())
			Expect(k8sClient.Apply(ctx, appsv1ac.Deployment("istiod", cp).WithSpec(appsv1ac.DeploymentSpec().WithTemplate(
				corev1ac.PodTemplateSpec().WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("discovery").
					WithEnv(corev1ac.EnvVar().WithName("DEFAULT_WORKLOAD_CERT_TTL").WithValue("6h")))))),
				client.FieldOwner("helm"))).To(Succeed())
		})
	})

	Describe("drift of a target", Ordered, func() {
		var cp, app string

		BeforeAll(func() {
			cp = controlPlane(true, "docker.io/istio/pilot:1.28.1")
			app = appNamespace(nil)
			ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec(app)}
			Expect(k8sClient.Create(ctx, ms)).To(Succeed())
			eventuallyReady(cp, "mesh")
		})

		It("restores a managed mesh key edited by hand", func() {
			cm := &corev1.ConfigMap{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istio"}, cm)).To(Succeed())
			cm.Data["mesh"] = "outboundTrafficPolicy:\n  mode: ALLOW_ANY\ntrustDomain: cluster.local\n"
			Expect(k8sClient.Update(ctx, cm)).To(Succeed())
			Eventually(func() any { return meshDoc(cp, "istio")["outboundTrafficPolicy"] }, timeout, interval).
				Should(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
		})

		It("puts back an owned env entry removed by hand", func() {
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istiod"}, d)).To(Succeed())
			d.Spec.Template.Spec.Containers[0].Env = slices.DeleteFunc(d.Spec.Template.Spec.Containers[0].Env,
				func(e corev1.EnvVar) bool { return e.Name == "PILOT_TRACE_SAMPLING" })
			Expect(k8sClient.Update(ctx, d)).To(Succeed())
			Eventually(func() []corev1.EnvVar { return istiodEnv(cp) }, timeout, interval).
				Should(ContainElement(corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "10"}))
		})

		It("puts back a namespace label removed by hand", func() {
			n := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: app}, n)).To(Succeed())
			delete(n.Labels, render.LabelRevision)
			Expect(k8sClient.Update(ctx, n)).To(Succeed())
			Eventually(func() map[string]string { return nsLabels(app) }, timeout, interval).Should(HaveKeyWithValue(render.LabelRevision, "default"))
		})
	})

	It("waits for a missing istiod and writes its env when it appears", func() {
		cp := controlPlane(false, "")
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec("none-" + rand.String(4))}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(cp, "mesh", meshv1alpha1.ConditionIstiodEnvApplied)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonIstiodNotFound))
		}, timeout, interval).Should(Succeed())
		Expect(meshDoc(cp, "istio")["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
		Expect(condition(cp, "mesh", meshv1alpha1.ConditionReady).Reason).To(Equal(meshv1alpha1.ReasonIstiodNotFound))

		createIstiod(cp, "docker.io/istio/pilot:1.28.1")
		eventuallyReady(cp, "mesh")
		Expect(istiodEnv(cp)).To(ContainElement(corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "10"}))
	})

	It("stalls on a free-form key Istio does not know and writes nothing", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		app := appNamespace(nil)
		spec := sampleSpec(app)
		spec.MeshConfig = map[string]apiextensionsv1.JSON{"trustDomainn": {Raw: []byte(`"example.org"`)}}
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: spec}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonInvalidSpec))
			g.Expect(c.Message).To(ContainSubstring("spec.meshConfig.trustDomainn"))
		}, timeout, interval).Should(Succeed())
		Expect(condition(cp, "mesh", meshv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		cm := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istio"}, cm)).To(Succeed())
		Expect(cm.Data["mesh"]).To(Equal(helmMesh))
		Expect(istiodEnv(cp)).To(Equal(helmEnv))
		Expect(nsLabels(app)).NotTo(HaveKey(render.LabelRevision))
	})

	It("lets the oldest of two MeshSettings for one revision write; the other reports Conflict", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		first := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "first", Namespace: cp}, Spec: sampleSpec("x-" + rand.String(4))}
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		eventuallyReady(cp, "first")
		time.Sleep(1100 * time.Millisecond) // creationTimestamp has second precision
		second := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "a-second", Namespace: cp}, Spec: meshv1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundAllowAny},
		}}
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(cp, "a-second", meshv1alpha1.ConditionStalled)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonConflict))
			g.Expect(c.Message).To(ContainSubstring("first"))
		}, timeout, interval).Should(Succeed())
		Expect(meshDoc(cp, "istio")["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))

		By("once the first is gone, the second takes over")
		Expect(k8sClient.Delete(ctx, first)).To(Succeed())
		eventuallyReady(cp, "a-second")
		Expect(meshDoc(cp, "istio")["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "ALLOW_ANY"}))
	})

	It("leaves the env entries Helm holds in place and reports them, so deletion restores Helm's exact list", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		// Helm 3 renders PILOT_TRACE_SAMPLING and CLUSTER_ID; the spec sets both.
		original := []corev1.EnvVar{
			{Name: "REVISION", Value: "default"},
			{Name: "PILOT_TRACE_SAMPLING", Value: "1"},
			{Name: "PILOT_ENABLE_ANALYSIS", Value: "false"},
			{Name: "CLUSTER_ID", Value: "Kubernetes"},
		}
		d := &appsv1.Deployment{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istiod"}, d)).To(Succeed())
		d.Spec.Template.Spec.Containers[0].Env = original
		Expect(k8sClient.Update(ctx, d, client.FieldOwner("helm"))).To(Succeed())

		spec := sampleSpec(appNamespace(nil))
		spec.Istiod.ClusterID = "east-1"
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: spec}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(cp, "mesh", meshv1alpha1.ConditionIstiodEnvApplied)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonEnvHeldByOtherManager))
			g.Expect(c.Message).To(ContainSubstring(`PILOT_TRACE_SAMPLING is applied by helm (Update) with value "1", not "10"`))
			g.Expect(c.Message).To(ContainSubstring(`CLUSTER_ID is applied by helm (Update) with value "Kubernetes", not "east-1"`))
			g.Expect(c.Message).To(ContainSubstring(`global.multiCluster.clusterName: "east-1"`))
		}, timeout, interval).Should(Succeed())
		Eventually(func() []corev1.EnvVar { return istiodEnv(cp) }, timeout, interval).Should(Equal([]corev1.EnvVar{
			{Name: "REVISION", Value: "default"},
			{Name: "PILOT_TRACE_SAMPLING", Value: "1"},
			{Name: "PILOT_ENABLE_ANALYSIS", Value: "false"},
			{Name: "CLUSTER_ID", Value: "Kubernetes"},
			{Name: "DEFAULT_WORKLOAD_CERT_TTL", Value: "12h"},
			{Name: "PILOT_ENABLE_STATUS", Value: "true"},
		}))

		Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}))
		}, timeout, interval).Should(BeTrue())
		Expect(istiodEnv(cp)).To(Equal(original))
	})

	It("skips env vars an old istiod no longer reads and lists them", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.27.3")
		spec := sampleSpec("y-" + rand.String(4))
		spec.Istiod.Features = &meshv1alpha1.IstiodFeatures{InboundRetryPolicy: ptr.To(true), DeferredStatsCreation: ptr.To(true)}
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: spec}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")
		got := &meshv1alpha1.MeshSettings{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
		// deferredStatsCreation is deprecated: listed whatever the version, never written.
		Expect(got.Status.IgnoredSettings).To(ConsistOf(HaveField("Name", "ENABLE_INBOUND_RETRY_POLICY"), HaveField("Name", "ENABLE_DEFERRED_STATS_CREATION")))
		Expect(envNames(istiodEnv(cp))).NotTo(ContainElement("ENABLE_DEFERRED_STATS_CREATION"))
		Expect(envNames(istiodEnv(cp))).NotTo(ContainElement("ENABLE_INBOUND_RETRY_POLICY"))

		By("warning once: the reconcile its own writes trigger sees the status it wrote")
		ignoredWarnings := func() int {
			var list eventsv1.EventList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(cp))).To(Succeed())
			n := 0
			for _, e := range list.Items {
				if e.Reason == "SettingIgnored" && e.Regarding.Name == "mesh" {
					n++
					if e.Series != nil {
						n += int(e.Series.Count) - 1
					}
				}
			}
			return n
		}
		Eventually(ignoredWarnings, timeout, interval).Should(Equal(1))
		Consistently(ignoredWarnings, 2*time.Second, interval).Should(Equal(1))
	})

	Describe("namespace rules with a selector", Ordered, func() {
		var cp, key, inside, conflicting string
		var ms *meshv1alpha1.MeshSettings

		BeforeAll(func() {
			cp = controlPlane(true, "docker.io/istio/pilot:1.28.1")
			key = "sel-" + rand.String(5)
			inside = appNamespace(map[string]string{key: "yes"})
			conflicting = appNamespace(map[string]string{key: "yes", render.LabelInjection: render.InjectionEnabled})
			spec := meshv1alpha1.MeshSettingsSpec{
				Revision: "canary",
				Namespaces: []meshv1alpha1.NamespaceRule{{
					Selector:  &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{key: "yes"}},
					Dataplane: meshv1alpha1.DataplaneSidecar,
				}},
			}
			Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio-canary", Namespace: cp}})).To(Succeed())
			ms = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "canary", Namespace: cp}, Spec: spec}
			Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		})

		It("labels a namespace the selector matches with the revision", func() {
			Eventually(func() map[string]string { return nsLabels(inside) }, timeout, interval).Should(HaveKeyWithValue(render.LabelRevision, "canary"))
		})

		It("reports a namespace whose istio-injection label conflicts, and leaves it unlabeled", func() {
			Eventually(func(g Gomega) {
				c := condition(cp, "canary", meshv1alpha1.ConditionNamespacesLabeled)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonLabelConflict))
				g.Expect(c.Message).To(ContainSubstring(conflicting))
			}, timeout, interval).Should(Succeed())
			Expect(nsLabels(conflicting)).NotTo(HaveKey(render.LabelRevision), "istio-injection=enabled and istio.io/rev must not be combined")
			got := &meshv1alpha1.MeshSettings{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
			Expect(got.Status.Namespaces.Conflicts).To(ConsistOf(And(HaveField("Namespace", conflicting), HaveField("Label", render.LabelInjection))))
		})

		It("labels a namespace created later that matches the selector", func() {
			late := appNamespace(map[string]string{key: "yes"})
			Eventually(func() map[string]string { return nsLabels(late) }, timeout, interval).Should(HaveKeyWithValue(render.LabelRevision, "canary"))
		})

		It("removes exactly its own labels from a namespace relabelled out of the selector", func() {
			n := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: inside}, n)).To(Succeed())
			n.Labels[key] = "no"
			Expect(k8sClient.Update(ctx, n)).To(Succeed())
			Eventually(func() map[string]string { return nsLabels(inside) }, timeout, interval).ShouldNot(HaveKey(render.LabelRevision))
			Expect(nsLabels(inside)).To(HaveKeyWithValue(key, "no"))
		})
	})

})
