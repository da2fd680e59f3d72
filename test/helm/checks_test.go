package helm

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The checking helpers, each shown failing on a bad case.
var _ = Describe("the checking helpers", func() {
	It("operatorKeys names each key the document lacks or holds with another value", func() {
		good := parseMesh("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\ndefaultHttpRetryPolicy: {attempts: 3}\n" +
			"defaultConfig: {drainDuration: 45s, discoveryAddress: x:1}\n")
		Expect(operatorKeys(good)).To(Succeed())
		bad := parseMesh("outboundTrafficPolicy: {}\ndefaultHttpRetryPolicy: {attempts: 2}\ndefaultConfig: {drainDuration: 30s}\n")
		Expect(operatorKeys(bad)).To(MatchError(And(
			ContainSubstring("outboundTrafficPolicy.mode"), ContainSubstring("defaultHttpRetryPolicy.attempts"), ContainSubstring("drainDuration"))))
	})

	It("leafDiff lists the baseline leaves a document lacks or changed, and ignores extra keys", func() {
		base := parseMesh("trustDomain: cluster.local\ndefaultConfig: {discoveryAddress: istiod.x.svc:15012}\ndefaultProviders: {metrics: [prometheus]}\n")
		more := parseMesh("trustDomain: cluster.local\nextra: 1\n" +
			"defaultConfig: {discoveryAddress: istiod.x.svc:15012, drainDuration: 45s}\ndefaultProviders: {metrics: [prometheus]}\n")
		Expect(leafDiff(base, more)).To(BeEmpty())
		Expect(leafDiff(base, parseMesh("trustDomain: example.com\ndefaultConfig: {drainDuration: 45s}\n"))).To(Equal([]string{
			"defaultConfig.discoveryAddress: want istiod.x.svc:15012, got <nil>",
			"defaultProviders.metrics: want [prometheus], got <nil>",
			"trustDomain: want cluster.local, got example.com",
		}))
	})

	It("operatorTraces finds the operator's field manager, annotations and labels, and nothing of others", func() {
		clean := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Annotations:   map[string]string{"helm.sh/resource-policy": "keep", "meta.helm.sh/release-name": "istiod"},
			Labels:        map[string]string{"istio.io/rev": "canary"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "helm", Operation: metav1.ManagedFieldsOperationApply}},
		}}
		Expect(operatorTraces(clean)).To(BeEmpty())
		dirty := clean.DeepCopy()
		dirty.Annotations["mesh.meshsettings.io/managed-keys"] = "[]"
		dirty.Labels["mesh.meshsettings.io/owner"] = "x"
		dirty.ManagedFields = append(dirty.ManagedFields, metav1.ManagedFieldsEntry{Manager: "meshsettings-operator", Operation: metav1.ManagedFieldsOperationApply})
		Expect(operatorTraces(dirty)).To(Equal([]string{
			"annotation mesh.meshsettings.io/managed-keys",
			"field manager meshsettings-operator (Apply)",
			"label mesh.meshsettings.io/owner",
		}))
	})

	It("normalizedEnv makes a rendered env list compare equal to the defaulted live one, and only that", func() {
		fieldRef := func(apiVersion, path string) []corev1.EnvVar {
			return []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: apiVersion, FieldPath: path}}}}
		}
		rendered := fieldRef("", "metadata.name")
		live := fieldRef("v1", "metadata.name")
		Expect(normalizedEnv(rendered)).To(Equal(normalizedEnv(live)))
		Expect(rendered[0].ValueFrom.FieldRef.APIVersion).To(BeEmpty(), "the input is not changed")
		other := fieldRef("v1", "metadata.namespace")
		Expect(normalizedEnv(rendered)).NotTo(Equal(normalizedEnv(other)))
	})
})
