package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Issue 15: every key the operator writes is checked against the release
// istiod runs. A 1.29 key for a 1.28 istiod stalls and writes nothing;
// upgrading istiod's image re-reconciles and writes it.
var _ = Describe("the target Istio release", func() {
	It("stalls on a key istiod 1.28 does not read and writes it once istiod runs 1.29", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "release-"}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())
		cp := ns.Name
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-canary", Namespace: cp},
			Data:       map[string]string{"mesh": helmMesh},
		}, client.FieldOwner("helm"))).To(Succeed())
		labels := map[string]string{"app": "istiod", render.LabelRevision: "canary"}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod-canary", Namespace: cp},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.28.1"}}},
				},
			},
		}
		Expect(k8sClient.Create(ctx, d, client.FieldOwner("helm"))).To(Succeed())
		ms := &meshv1alpha1.MeshSettings{
			ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp},
			Spec: meshv1alpha1.MeshSettingsSpec{
				Revision:              "canary",
				OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
				MeshConfig:            map[string]apiextensionsv1.JSON{"hboneIdleTimeout": {Raw: []byte(`"3600s"`)}},
			},
		}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())

		By("istiod 1.28.1: Stalled, InvalidSpec, naming the key, the release that added it and what istiod runs")
		const msg = "spec.meshConfig.hboneIdleTimeout is read by istiod 1.29 and later; istiod-canary runs 1.28.1"
		Eventually(func(g Gomega) {
			c := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonInvalidSpec))
			g.Expect(c.Message).To(HavePrefix(msg))
			AddReportEntry("Stalled message", c.Message)
		}, timeout, interval).Should(Succeed())
		By("nothing was written: not the 1.29 key, not the key istiod 1.28 reads")
		Consistently(func(g Gomega) {
			doc := meshDoc(cp, "istio-canary")
			g.Expect(doc).NotTo(HaveKey("hboneIdleTimeout"))
			g.Expect(doc).NotTo(HaveKey("outboundTrafficPolicy"))
		}, "2s", interval).Should(Succeed())
		Expect(operatorOwns(configMapNamed(cp, "istio-canary"))).To(BeFalse())

		By("istiod upgraded to 1.29.0: the new image tag re-reconciles, Ready, the key is written")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		d.Spec.Template.Spec.Containers[0].Image = "docker.io/istio/pilot:1.29.0"
		Expect(k8sClient.Update(ctx, d, client.FieldOwner("helm"))).To(Succeed())
		Eventually(func(g Gomega) {
			c := condition(cp, "mesh", meshv1alpha1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready: %s %s", c.Reason, c.Message)
			g.Expect(condition(cp, "mesh", meshv1alpha1.ConditionStalled)).To(BeNil())
		}, timeout, interval).Should(Succeed())
		doc := meshDoc(cp, "istio-canary")
		Expect(doc).To(HaveKeyWithValue("hboneIdleTimeout", "3600s"))
		Expect(doc).To(HaveKeyWithValue("outboundTrafficPolicy", map[string]any{"mode": "REGISTRY_ONLY"}))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
		Expect(ms.Status.Istiod).NotTo(BeNil())
		Expect(ms.Status.Istiod.Release).To(Equal("1.29"))
		Expect(ms.Status.Istiod.ReleaseSource).To(Equal(render.ReleaseFromImageTag))

		By("an image tag naming no release: the newest release known is assumed, and status says so")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		d.Spec.Template.Spec.Containers[0].Image = "docker.io/istio/pilot:latest"
		Expect(k8sClient.Update(ctx, d, client.FieldOwner("helm"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
			g.Expect(ms.Status.Istiod).NotTo(BeNil())
			g.Expect(ms.Status.Istiod.ReleaseSource).To(Equal(render.ReleaseAssumed))
			g.Expect(ms.Status.Istiod.Release).To(Equal("1.32"))
			c := condition(cp, "mesh", meshv1alpha1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Message).To(ContainSubstring(`istiod's image tag "latest" names no Istio release; settings are checked against Istio 1.32, the newest release known`))
		}, timeout, interval).Should(Succeed())
	})
})

func configMapNamed(namespace, name string) *corev1.ConfigMap {
	GinkgoHelper()
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm)).To(Succeed())
	return cm
}
