package helm

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/rendercmd"
	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
)

// The documented handoff from a Helm-owned mesh ConfigMap to the operator,
// measured with a real istiod: annotate the live ConfigMap with
// helm.sh/resource-policy: keep, apply a MeshSettings with Own holding the
// release's meshConfig values, then `helm upgrade --set configMap=false`.
// Goal: istiod never runs without a declared setting.
var _ = Describe("handoff from a Helm-owned ConfigMap to the operator (Own), measured with a real istiod", Ordered, func() {
	var (
		h      helmCLI
		t      target
		l      *ledger
		values string
		proc   *istiod.Istiod
		helms  string // the document Helm rendered: every leaf of it is declared
	)
	BeforeAll(func() {
		h = helm4
		t = target{ns: env.Namespace("istio-handoff", nil)}
		values = valuesFile(chartValues(t, `traceSampling: ""
meshConfig:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  defaultHttpRetryPolicy: {attempts: 3, retryOn: "connect-failure,refused-stream,503"}
  defaultConfig: {drainDuration: 45s}
`))
		l = newLedger("handoff "+h.Name, t)
	})
	AfterAll(func() {
		if proc != nil {
			Expect(proc.Stop()).To(Succeed())
		}
	})

	It("installs istiod with the chart's ConfigMap and starts the real istiod on it", func() {
		out, err := l.do("helm4 install (configMap=true, meshConfig values)", func() (string, error) {
			return h.write(t.ns, "install", "istiod", chart, "-f", values)
		})
		Expect(err).NotTo(HaveOccurred(), out)
		cm, err := t.getConfigMap()
		Expect(err).NotTo(HaveOccurred())
		helms = cm.Data["mesh"]
		Expect(operatorKeys(parseMesh(helms))).To(Succeed(), "the release's values carry the settings the MeshSettings takes over")

		bin, err := istiod.Binary(env.Root)
		Expect(err).NotTo(HaveOccurred())
		proc, err = istiod.Start(env.Ctx, istiod.Options{Binary: bin, Kubeconfig: env.Kubeconfig, Namespace: t.ns})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() ([]string, error) {
			eff, err := proc.EffectiveMesh(env.Ctx)
			if err != nil {
				return nil, err
			}
			return istiod.MissingLeaves(helms, eff)
		}, time.Minute, 100*time.Millisecond).Should(BeEmpty(), "istiod does not run Helm's document")
	})

	It("hands the ConfigMap over without istiod ever lacking a declared setting", func() {
		gaps := measureGaps(env.Ctx, proc, helms)

		out, err := l.do("annotate helm.sh/resource-policy=keep", func() (string, error) {
			return env.Kubectl("annotate", "configmap", t.configMap(), "-n", t.ns, "helm.sh/resource-policy=keep")
		})
		Expect(err).NotTo(HaveOccurred(), out)

		// The MeshSettings is what the import command makes of the release's
		// values, as a user runs it: `helm get values --all` into
		// `render --import-helm-values`.
		values, err := h.run(t.ns, "get", "values", "istiod", "--all", "-o", "yaml")
		Expect(err).NotTo(HaveOccurred(), values)
		ms, err := rendercmd.ImportHelmValues([]byte(values), rendercmd.ImportOptions{Name: msName, Namespace: t.ns})
		Expect(err).NotTo(HaveOccurred())
		Expect(ms.Spec.ConfigMapOwnership).To(Equal(meshv1alpha1.ConfigMapOwn))
		imported, err := yaml.Marshal(ms)
		Expect(err).NotTo(HaveOccurred())
		l.act("apply the imported MeshSettings (Own)", func() {
			applyYAML(string(imported))
			waitReady(t.ns, msName)
		})

		out, err = l.do("helm4 upgrade --reuse-values --set configMap=false", func() (string, error) {
			return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values", "--set", "configMap=false")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(helmManifest(h, t, "istiod").configMap(t.configMap())).To(BeNil())
		cm, err := t.getConfigMap()
		Expect(err).NotTo(HaveOccurred())
		Expect(cm).NotTo(BeNil(), "Helm deleted the ConfigMap despite the keep annotation")

		out, err = l.do("helm4 upgrade --reuse-values (no-op)", func() (string, error) {
			return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		time.Sleep(time.Second) // a last second of samples after the handoff settled

		g := gaps.end()
		AddReportEntry("handoff gap (helm4, real istiod /debug/mesh every 50 ms)", g.String(), ReportEntryVisibilityAlways)
		Expect(g.samples).To(BeNumerically(">", 20))
		Expect(g.lacking).To(BeZero(), g.String())
		Expect(operatorKeys(t.meshDoc())).To(Succeed())
	})
})
