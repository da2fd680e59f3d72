package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Documents istiod would drop whole (issue 13 item 5) are never written:
// the operator judges the document it would write with internal/meshcheck.
var _ = Describe("Mesh documents istiod rejects", func() {
	It("stalls with the spec field of each value istiod rejects and writes nothing", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		app := appNamespace(nil)
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec(app)}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")
		written := configMapMesh(cp)

		for _, c := range []struct{ key, value, field, msg string }{
			{"connectTimeout", `"0s"`, "spec.meshConfig.connectTimeout", "duration must be greater than 1ms"},
			{"proxyListenPort", `70000`, "spec.meshConfig.proxyListenPort", "port number 70000 must be in the range 1..65535"},
			{"defaultConfig", `{"discoveryAddress":"istiod.istio-system.svc"}`, "spec.meshConfig.defaultConfig.discoveryAddress", "missing port in address"},
			{"defaultConfig", `{"statusPort":0}`, "spec.meshConfig.defaultConfig.statusPort", "port number 0 must be in the range 1..65535"},
			{"trustDomain", `"prod example.com"`, "spec.meshConfig.trustDomain", `trust domain name "prod example.com" invalid`},
		} {
			By(c.field)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
			ms.Spec.MeshConfig = map[string]apiextensionsv1.JSON{c.key: {Raw: []byte(c.value)}}
			Expect(k8sClient.Update(ctx, ms)).To(Succeed())
			Eventually(func(g Gomega) {
				s := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
				g.Expect(s).NotTo(BeNil())
				g.Expect(s.Reason).To(Equal(meshv1alpha1.ReasonInvalidSpec))
				g.Expect(s.Message).To(ContainSubstring(c.field + ": istiod rejects the value"))
				g.Expect(s.Message).To(ContainSubstring(c.msg))
				g.Expect(s.ObservedGeneration).To(Equal(ms.Generation))
			}, timeout, interval).Should(Succeed())
			Expect(condition(cp, "mesh", meshv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
			Expect(configMapMesh(cp)).To(Equal(written))
		}
	})

	It("writes nothing over another manager's key istiod rejects, and goes on once it is mended", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		bad := helmMesh + "connectTimeout: 10\n" // a number: istiod wants a duration string
		setConfigMapMesh(cp, bad)
		app := appNamespace(nil)
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec(app)}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			r := condition(cp, "mesh", meshv1alpha1.ConditionReady)
			g.Expect(r).NotTo(BeNil())
			g.Expect(r.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(r.Message).To(ContainSubstring("connectTimeout (written by another manager)"))
			g.Expect(r.Reason).To(Equal(meshv1alpha1.ReasonMeshDocumentRejected))
			s := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
			g.Expect(s).NotTo(BeNil())
			g.Expect(s.Reason).To(Equal(meshv1alpha1.ReasonMeshDocumentRejected))
		}, timeout, interval).Should(Succeed())
		Expect(configMapMesh(cp)).To(Equal(bad))
		Expect(condition(cp, "mesh", meshv1alpha1.ConditionMeshConfigApplied)).To(And(
			HaveField("Status", Equal(metav1.ConditionFalse)), HaveField("Reason", Equal(meshv1alpha1.ReasonMeshDocumentRejected))))

		By("the other manager mends its key: the change of the ConfigMap brings the operator back")
		setConfigMapMesh(cp, helmMesh+"connectTimeout: 10s\n")
		eventuallyReady(cp, "mesh")
		Expect(meshDoc(cp, "istio")).To(HaveKeyWithValue("connectTimeout", "10s"))
		Expect(meshDoc(cp, "istio")["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
	})
})

func configMapMesh(namespace string) string {
	GinkgoHelper()
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "istio"}, cm)).To(Succeed())
	return cm.Data["mesh"]
}

// setConfigMapMesh writes the mesh document as Helm 3 would (an update by "helm").
func setConfigMapMesh(namespace, doc string) {
	GinkgoHelper()
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "istio"}, cm)).To(Succeed())
	cm.Data["mesh"] = doc
	Expect(k8sClient.Update(ctx, cm, client.FieldOwner("helm"))).To(Succeed())
}
