package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Who owns the mesh ConfigMap and istiod's env: configMapOwnership Own and
// Merge, and the other managers' writes, server-side (Helm 4, operation
// Apply) and client-side (Helm 3, operation Update).

func emptyNamespace(prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func getConfigMap(namespace, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	return cm, k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm)
}

func parseMesh(doc string) map[string]any {
	m := map[string]any{}
	Expect(yaml.Unmarshal([]byte(doc), &m)).To(Succeed())
	return m
}

func eventuallyCondition(namespace, name, t, reason string, status metav1.ConditionStatus, msgParts ...string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		c := condition(namespace, name, t)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason), c.Message)
		g.Expect(c.Status).To(Equal(status))
		for _, p := range msgParts {
			g.Expect(c.Message).To(ContainSubstring(p))
		}
	}, timeout, interval).Should(Succeed())
}

func deleteAndWait(ms *meshv1alpha1.MeshSettings) {
	GinkgoHelper()
	Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}))
	}, timeout, interval).Should(BeTrue())
}

// noTrace asserts nothing of the operator is left on obj.
func noTrace(obj client.Object) {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	Expect(obj.GetManagedFields()).NotTo(ContainElement(HaveField("Manager", FieldManager)))
	for _, k := range append(render.RecordAnnotations, ManagedEnvAnnotation, ReplacedEnvAnnotation) {
		Expect(obj.GetAnnotations()).NotTo(HaveKey(k))
	}
}

// helmApplyIstiod applies istiod as Helm 4 does: server-side apply, field
// manager helm, no force.
func helmApplyIstiod(namespace string, env ...*corev1ac.EnvVarApplyConfiguration) error {
	labels := map[string]string{"app": "istiod"}
	return k8sClient.Apply(ctx, appsv1ac.Deployment("istiod", namespace).WithSpec(appsv1ac.DeploymentSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(labels).WithSpec(corev1ac.PodSpec().WithContainers(
			corev1ac.Container().WithName("discovery").WithImage("docker.io/istio/pilot:1.28.1").WithEnv(env...))))),
		client.FieldOwner("helm"))
}

var _ = Describe("configMapOwnership Own", func() {
	It("creates the ConfigMap from the chart's baseline, recreates it, and leaves exactly the baseline on deletion", func() {
		ns := emptyNamespace("own-")
		spec := meshv1alpha1.MeshSettingsSpec{
			Revision: "canary", ConfigMapOwnership: meshv1alpha1.ConfigMapOwn,
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
			Drain:                 &meshv1alpha1.Drain{DrainDuration: &metav1.Duration{Duration: 45 * time.Second}},
		}
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns}, Spec: spec}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		baseline := render.ChartBaseline(ns, "canary")
		want := parseMesh(baseline.Mesh)
		want["outboundTrafficPolicy"] = map[string]any{"mode": "REGISTRY_ONLY"}
		want["defaultConfig"].(map[string]any)["drainDuration"] = "45s"

		By("created before istiod exists (Helm then installs with configMap=false)")
		Eventually(func(g Gomega) {
			cm, err := getConfigMap(ns, "istio-canary")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(parseMesh(cm.Data["mesh"])).To(Equal(want))
			g.Expect(cm.Data["meshNetworks"]).To(Equal("networks: {}"))
		}, timeout, interval).Should(Succeed())
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionMeshConfigApplied, meshv1alpha1.ReasonUpToDate, metav1.ConditionTrue)

		By("recreated when deleted (helm uninstall of a release that rendered it, kubectl delete)")
		cm, err := getConfigMap(ns, "istio-canary")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
		Eventually(func(g Gomega) {
			again, err := getConfigMap(ns, "istio-canary")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again.UID).NotTo(Equal(cm.UID))
			g.Expect(parseMesh(again.Data["mesh"])).To(Equal(want))
			g.Expect(again.Data["meshNetworks"]).To(Equal("networks: {}"))
		}, timeout, interval).Should(Succeed())

		By("deletion leaves exactly the baseline, with nothing of the operator")
		deleteAndWait(ms)
		cm, err = getConfigMap(ns, "istio-canary")
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.Data).To(Equal(map[string]string{"mesh": baseline.Mesh, "meshNetworks": baseline.MeshNetworks}))
		noTrace(cm)
	})

	It("takes over an existing document as the baseline, whoever applied it, and recreates the ConfigMap from it", func() {
		ns := emptyNamespace("own-")
		helmDoc := "defaultConfig:\n  discoveryAddress: istiod.x.svc:15012\n  meshId: mesh-1\ntrustDomain: td.example\n"
		Expect(k8sClient.Apply(ctx, corev1ac.ConfigMap("istio", ns).WithData(map[string]string{"mesh": helmDoc, "meshNetworks": "networks: {}"}),
			client.FieldOwner("helm"))).To(Succeed())
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns}, Spec: meshv1alpha1.MeshSettingsSpec{
			ConfigMapOwnership: meshv1alpha1.ConfigMapOwn,
			MeshConfig:         map[string]apiextensionsv1.JSON{"trustDomain": {Raw: []byte(`"prod.example"`)}},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		Eventually(func() any { return meshDoc(ns, "istio")["trustDomain"] }, timeout, interval).Should(Equal("prod.example"))
		Expect(meshDoc(ns, "istio")["defaultConfig"]).To(HaveKeyWithValue("meshId", "mesh-1"))

		By("the baseline is in the status, and a deleted ConfigMap comes back from it, not from the chart defaults")
		Eventually(func(g Gomega) {
			got := &meshv1alpha1.MeshSettings{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
			g.Expect(got.Status.MeshConfig).NotTo(BeNil())
			g.Expect(parseMesh(got.Status.MeshConfig.Baseline)).To(Equal(parseMesh(helmDoc)))
		}, timeout, interval).Should(Succeed())
		cm, err := getConfigMap(ns, "istio")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
		Eventually(func(g Gomega) {
			again, err := getConfigMap(ns, "istio")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again.UID).NotTo(Equal(cm.UID))
			doc := parseMesh(again.Data["mesh"])
			g.Expect(doc["trustDomain"]).To(Equal("prod.example"))
			g.Expect(doc["defaultConfig"]).To(HaveKeyWithValue("meshId", "mesh-1"))
		}, timeout, interval).Should(Succeed())

		deleteAndWait(ms)
		cm, err = getConfigMap(ns, "istio")
		Expect(err).NotTo(HaveOccurred())
		Expect(parseMesh(cm.Data["mesh"])).To(Equal(parseMesh(helmDoc)))
		Expect(cm.Data["meshNetworks"]).To(Equal("networks: {}"))
		noTrace(cm)
	})
})

var _ = Describe("configMapOwnership Merge", func() {
	It("never creates the ConfigMap: it waits with ConfigMapNotFound, then merges into the one Helm creates", func() {
		ns := emptyNamespace("merge-")
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns}, Spec: meshv1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionMeshConfigApplied, meshv1alpha1.ReasonConfigMapNotFound, metav1.ConditionFalse,
			"ConfigMap istio not found in "+ns)
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionReady, meshv1alpha1.ReasonConfigMapNotFound, metav1.ConditionFalse)
		Consistently(func() bool {
			_, err := getConfigMap(ns, "istio")
			return apierrors.IsNotFound(err)
		}, 2*time.Second, 200*time.Millisecond).Should(BeTrue(), "the operator created the ConfigMap")

		By("Helm 3 installs: the operator merges its keys in")
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: ns},
			Data: map[string]string{"mesh": helmMesh}}, client.FieldOwner("helm"))).To(Succeed())
		Eventually(func() any { return meshDoc(ns, "istio")["outboundTrafficPolicy"] }, timeout, interval).
			Should(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
		Expect(meshDoc(ns, "istio")["trustDomain"]).To(Equal("cluster.local"))

		By("helm uninstall deletes it: the operator waits again and does not recreate it")
		cm, err := getConfigMap(ns, "istio")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionMeshConfigApplied, meshv1alpha1.ReasonConfigMapNotFound, metav1.ConditionFalse)
		Consistently(func() bool {
			_, err := getConfigMap(ns, "istio")
			return apierrors.IsNotFound(err)
		}, 2*time.Second, 200*time.Millisecond).Should(BeTrue(), "the operator recreated the ConfigMap")
		deleteAndWait(ms)
	})

	It("re-merges once after a Helm 3 upgrade and restores Helm's current values on deletion", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1") // Helm 3: operation Update
		v1 := "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  drainDuration: 30s\ntrustDomain: cluster.local\n"
		cm, err := getConfigMap(cp, "istio")
		Expect(err).NotTo(HaveOccurred())
		cm.Data["mesh"] = v1
		Expect(k8sClient.Update(ctx, cm, client.FieldOwner("helm"))).To(Succeed())

		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: meshv1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
			Drain:                 &meshv1alpha1.Drain{DrainDuration: &metav1.Duration{Duration: 45 * time.Second}},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")
		Expect(meshDoc(cp, "istio")["defaultConfig"]).To(HaveKeyWithValue("drainDuration", "45s"))

		By("Helm 3 upgrades: drainDuration 30s -> 40s, its whole document without the operator's keys")
		v2 := "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  drainDuration: 40s\ntrustDomain: cluster.local\n"
		cm, err = getConfigMap(cp, "istio")
		Expect(err).NotTo(HaveOccurred())
		cm.Data["mesh"] = v2
		Expect(k8sClient.Update(ctx, cm, client.FieldOwner("helm"))).To(Succeed(), "Helm 3 never conflicts")
		helmRV := cm.ResourceVersion
		Eventually(func(g Gomega) {
			doc := meshDoc(cp, "istio")
			g.Expect(doc["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
			g.Expect(doc["defaultConfig"]).To(HaveKeyWithValue("drainDuration", "45s"))
		}, timeout, interval).Should(Succeed())

		By("one write, then no loop")
		cm, err = getConfigMap(cp, "istio")
		Expect(err).NotTo(HaveOccurred())
		merged := cm.ResourceVersion
		Expect(merged).NotTo(Equal(helmRV))
		Consistently(func() string {
			c, _ := getConfigMap(cp, "istio")
			return c.ResourceVersion
		}, 3*time.Second, 200*time.Millisecond).Should(Equal(merged))

		By("deletion gives back Helm's current document, 40s, not the 30s of the takeover")
		deleteAndWait(ms)
		cm, err = getConfigMap(cp, "istio")
		Expect(err).NotTo(HaveOccurred())
		Expect(parseMesh(cm.Data["mesh"])).To(Equal(parseMesh(v2)))
		noTrace(cm)
	})

	It("writes nothing when another manager applies the mesh key server-side, and says how to fix it", func() {
		ns := emptyNamespace("apply-")
		Expect(k8sClient.Apply(ctx, corev1ac.ConfigMap("istio", ns).WithData(map[string]string{"mesh": helmMesh, "meshNetworks": "networks: {}"}),
			client.FieldOwner("helm"))).To(Succeed()) // Helm 4 defaults
		cm, err := getConfigMap(ns, "istio")
		Expect(err).NotTo(HaveOccurred())
		rv := cm.ResourceVersion
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns}, Spec: meshv1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionStalled, meshv1alpha1.ReasonMeshConfigOwnedByApply, metav1.ConditionTrue,
			`owned by manager "helm" with server-side apply`, "configMap=false", "configMapOwnership: Own", "--server-side=false")
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionMeshConfigApplied, meshv1alpha1.ReasonMeshConfigOwnedByApply, metav1.ConditionFalse)
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionReady, meshv1alpha1.ReasonMeshConfigOwnedByApply, metav1.ConditionFalse)
		cm, err = getConfigMap(ns, "istio")
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.ResourceVersion).To(Equal(rv), "the operator wrote to the ConfigMap")

		By("Helm 4 upgrades without --force-conflicts: no conflict")
		Expect(k8sClient.Apply(ctx, corev1ac.ConfigMap("istio", ns).WithData(map[string]string{"mesh": "trustDomain: upgraded.example\n", "meshNetworks": "networks: {}"}),
			client.FieldOwner("helm"))).To(Succeed())
		Consistently(func() any { return meshDoc(ns, "istio") }, 2*time.Second, 200*time.Millisecond).
			Should(Equal(map[string]any{"trustDomain": "upgraded.example"}))

		By("deletion touches nothing")
		deleteAndWait(ms)
		noTrace(cm)
		Expect(meshDoc(ns, "istio")).To(Equal(map[string]any{"trustDomain": "upgraded.example"}))
	})
})

var _ = Describe("istiod env entries of another manager", func() {
	It("are never taken: the operator reports the chart value to set, and Helm 4 upgrades without a conflict", func() {
		ns := emptyNamespace("env-")
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: ns},
			Data: map[string]string{"mesh": helmMesh}}, client.FieldOwner("helm"))).To(Succeed())
		Expect(helmApplyIstiod(ns, corev1ac.EnvVar().WithName("REVISION").WithValue("default"),
			corev1ac.EnvVar().WithName("PILOT_TRACE_SAMPLING").WithValue("1"))).To(Succeed())
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns}, Spec: meshv1alpha1.MeshSettingsSpec{
			Tracing: &meshv1alpha1.Tracing{SamplingPercentage: "10"},
			Istiod:  &meshv1alpha1.Istiod{Env: []meshv1alpha1.EnvVar{{Name: "PILOT_ENABLE_STATUS", Value: "true"}}},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionIstiodEnvApplied, meshv1alpha1.ReasonEnvHeldByOtherManager, metav1.ConditionFalse,
			`PILOT_TRACE_SAMPLING is applied by helm (Apply) with value "1", not "10"`, `traceSampling: ""`)
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionReady, meshv1alpha1.ReasonEnvHeldByOtherManager, metav1.ConditionFalse)
		Eventually(func() []corev1.EnvVar { return istiodEnv(ns) }, timeout, interval).Should(Equal([]corev1.EnvVar{
			{Name: "REVISION", Value: "default"}, {Name: "PILOT_TRACE_SAMPLING", Value: "1"}, {Name: "PILOT_ENABLE_STATUS", Value: "true"},
		}), "the free entry is applied, the held one left")

		By("helm upgrade --set traceSampling=2 (Helm 4, no force): no conflict, Helm's value stays")
		Expect(helmApplyIstiod(ns, corev1ac.EnvVar().WithName("REVISION").WithValue("default"),
			corev1ac.EnvVar().WithName("PILOT_TRACE_SAMPLING").WithValue("2"))).To(Succeed())
		eventuallyCondition(ns, "mesh", meshv1alpha1.ConditionIstiodEnvApplied, meshv1alpha1.ReasonEnvHeldByOtherManager, metav1.ConditionFalse,
			`with value "2"`)
		Consistently(func() []corev1.EnvVar { return istiodEnv(ns) }, 2*time.Second, 200*time.Millisecond).
			Should(ContainElement(corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "2"}))

		By(`helm upgrade --set traceSampling="": Helm stops rendering it, the MeshSettings owns it`)
		Expect(helmApplyIstiod(ns, corev1ac.EnvVar().WithName("REVISION").WithValue("default"))).To(Succeed())
		eventuallyReady(ns, "mesh")
		Expect(istiodEnv(ns)).To(ContainElement(corev1.EnvVar{Name: "PILOT_TRACE_SAMPLING", Value: "10"}))

		By("deletion leaves Helm's entries and drops the operator's")
		deleteAndWait(ms)
		Expect(istiodEnv(ns)).To(Equal([]corev1.EnvVar{{Name: "REVISION", Value: "default"}}))
		noTrace(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "istiod"}})
		cm, err := getConfigMap(ns, "istio")
		Expect(err).NotTo(HaveOccurred())
		noTrace(cm)
	})
})
