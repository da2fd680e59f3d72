package helm

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What the scenarios build on, checked without the operator: each Helm
// installs the real chart on envtest (no kubelet, no --wait), renders the
// mesh ConfigMap that `helm template` shows, and writes with the field
// manager operation the design relies on: Helm 4's default is server-side
// apply (Apply), client-side Helm writes with Update.
var _ = Describe("the real istio-discovery chart with the real Helm CLIs", func() {
	for _, c := range []struct {
		name string
		cli  *helmCLI
		op   metav1.ManagedFieldsOperationType
	}{
		{"helm4", &helm4, metav1.ManagedFieldsOperationApply},
		{"helm4 --server-side=false", &helm4CSA, metav1.ManagedFieldsOperationUpdate},
		{"helm3", &helm3, metav1.ManagedFieldsOperationUpdate},
	} {
		It(c.name+" installs, upgrades and uninstalls it; the live ConfigMap and env are what it rendered", func() {
			h := *c.cli
			t := target{ns: env.Namespace("istio-chart", nil), revision: "canary"}
			values := valuesFile(chartValues(t, ""))
			l := newLedger("chart only, "+h.Name, t)

			out, err := l.do(h.Name+" install", func() (string, error) {
				return h.write(t.ns, "install", "istiod", chart, "-f", values)
			})
			Expect(err).NotTo(HaveOccurred(), out)
			m := helmManifest(h, t, "istiod")
			rendered := m.configMap(t.configMap())
			Expect(rendered).NotTo(BeNil())
			Expect(rendered.Data).To(Equal(baseline(h, t, values).Data), "helm template renders what helm install applied")
			live, err := t.getConfigMap()
			Expect(err).NotTo(HaveOccurred())
			Expect(parseMesh(live.Data["mesh"])).To(Equal(parseMesh(rendered.Data["mesh"])))
			Expect(parseMesh(live.Data["mesh"])["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod-canary."+t.ns+".svc:15012"))
			Expect(normalizedEnv(t.istiodEnv())).To(Equal(normalizedEnv(discoveryEnv(m.deployment(t.deployment())))))
			v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
			Expect(v).To(Equal("1"), "the chart renders PILOT_TRACE_SAMPLING from traceSampling's default")
			Expect(t.getDeployment().Spec.Template.Spec.Containers[0].Image).To(HaveSuffix(":" + istioTag))

			var ops []metav1.ManagedFieldsOperationType
			for _, mf := range live.ManagedFields {
				if mf.Manager == "helm" {
					ops = append(ops, mf.Operation)
				}
			}
			Expect(ops).To(ConsistOf(c.op), "Helm's managedFields on the mesh ConfigMap")

			name := h.Name + " upgrade --reuse-values (no-op)"
			out, err = l.do(name, func() (string, error) {
				return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values")
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(l.rollouts(name)).To(BeZero(), "without the operator a no-op upgrade rolls nothing")

			out, err = l.do(h.Name+" uninstall", func() (string, error) { return h.run(t.ns, "uninstall", "istiod") })
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(t.getConfigMap()).To(BeNil())
			Expect(t.generation()).To(BeZero())
		})
	}
})
