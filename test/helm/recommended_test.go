package helm

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// A: the recommended topology. Helm 4 with its defaults (server-side apply)
// installs istiod of revision canary with configMap=false and
// traceSampling "" (so the chart renders neither the mesh ConfigMap nor
// PILOT_TRACE_SAMPLING); the MeshSettings owns the mesh ConfigMap.
var _ = Describe("A: recommended topology (Helm 4 defaults, configMap=false, Own)", Ordered, func() {
	var (
		h      helmCLI
		t      target
		app    string
		l      *ledger
		values string
		base   map[string]any
	)
	BeforeAll(func() {
		h = helm4
		t = target{ns: env.Namespace("istio-a", nil), revision: "canary"}
		app = env.Namespace("app-a", nil)
		values = valuesFile(chartValues(t, "configMap: false\ntraceSampling: \"\"\n"))
		l = newLedger("A recommended, "+h.Name, t)
		base = parseMesh(baseline(h, t, values).Data["mesh"])
	})

	It("installs istiod; the chart renders no mesh ConfigMap and no PILOT_TRACE_SAMPLING", func() {
		out, err := l.do("helm4 install (configMap=false)", func() (string, error) {
			return h.write(t.ns, "install", "istiod", chart, "-f", values)
		})
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(t.getConfigMap()).To(BeNil())
		Expect(helmManifest(h, t, "istiod").configMap(t.configMap())).To(BeNil())
		_, set := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
		Expect(set).To(BeFalse())
	})

	It("goes Ready with Istio's baseline for the revision plus the spec", func() {
		l.act("apply MeshSettings (Own)", func() {
			applyYAML(meshSettings(t, "Own", app))
			waitReady(t.ns, msName)
		})
		doc := t.meshDoc()
		Expect(operatorKeys(doc)).To(Succeed())
		Expect(leafDiff(base, doc)).To(BeEmpty(), "the document lacks the chart's baseline")
		Expect(base["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod-canary."+t.ns+".svc:15012"))
		v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
		Expect(v).To(Equal("10"))
		// From here on, sampled every 20 ms during every step: the operator's
		// keys and the chart's baseline for the revision.
		holdsKeys := configMapHoldsOperatorKeys(t)
		l.check = func() error {
			if err := holdsKeys(); err != nil {
				return err
			}
			cm, err := t.getConfigMap()
			if err != nil {
				return err
			}
			live := map[string]any{}
			if err := yaml.Unmarshal([]byte(cm.Data["mesh"]), &live); err != nil {
				return err
			}
			if d := leafDiff(base, live); len(d) > 0 {
				return fmt.Errorf("the document lacks the baseline: %v", d)
			}
			return nil
		}
	})

	It("upgrades with changed values: Helm exits 0, its value lands, the operator's stay", func() {
		out, err := l.do("helm4 upgrade env PILOT_ENABLE_CDS_CACHE", func() (string, error) {
			return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values", "--set", "env.PILOT_ENABLE_CDS_CACHE=false")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		v, _ := envValue(t.istiodEnv(), "PILOT_ENABLE_CDS_CACHE")
		Expect(v).To(Equal("false"))
		v, _ = envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
		Expect(v).To(Equal("10"))
		Expect(l.rollouts("helm4 upgrade env PILOT_ENABLE_CDS_CACHE")).To(Equal(1), "Helm's change is one rollout; the operator adds none")
	})

	It("a no-op upgrade (--reuse-values) exits 0 and leaves istiod's generation unchanged", func() {
		name := "helm4 upgrade --reuse-values (no-op)"
		out, err := l.do(name, func() (string, error) {
			return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(l.rollouts(name)).To(BeZero())
	})

	It("rolls back and exits 0", func() {
		out, err := l.do("helm4 rollback 1", func() (string, error) {
			return h.write(t.ns, "rollback", "istiod", "1")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		_, set := envValue(t.istiodEnv(), "PILOT_ENABLE_CDS_CACHE")
		Expect(set).To(BeFalse(), "the rollback's values did not land")
	})

	It("upgrades again and exits 0", func() {
		out, err := l.do("helm4 upgrade env PILOT_ENABLE_CDS_CACHE again", func() (string, error) {
			return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values", "--set", "env.PILOT_ENABLE_CDS_CACHE=false")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		doc := t.meshDoc()
		Expect(operatorKeys(doc)).To(Succeed())
		Expect(leafDiff(base, doc)).To(BeEmpty())
	})

	It("never lacked the operator's keys or the baseline during any Helm operation", func() {
		for _, s := range l.steps {
			if s.samples > 0 {
				Expect(s.misses).To(BeZero(), "step %q: %d of %d samples lacked the operator's keys or the baseline", s.name, s.misses, s.samples)
			}
		}
	})

	It("on deletion leaves the ConfigMap holding exactly the baseline", func() {
		l.check = nil
		l.act("delete MeshSettings", func() {
			deleteMeshSettings(t.ns, msName)
		})
		want := baseline(h, t, values)
		live, err := t.getConfigMap()
		Expect(err).NotTo(HaveOccurred())
		Expect(live).NotTo(BeNil(), "the ConfigMap must stay: istiod falls back to built-in defaults without it")
		Expect(parseMesh(live.Data["mesh"])).To(Equal(parseMesh(want.Data["mesh"])))
		Expect(parseMesh(live.Data["meshNetworks"])).To(Equal(parseMesh(want.Data["meshNetworks"])))
		Expect(live.Data).To(HaveLen(len(want.Data)))
		_, set := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
		Expect(set).To(BeFalse(), "the operator's env entry stays")
	})

	It("E: leaves nothing of the operator behind", func() {
		expectNoTraces(t, app)
	})

	It("uninstalls cleanly", func() {
		out, err := l.do("helm4 uninstall", func() (string, error) {
			return h.run(t.ns, "uninstall", "istiod")
		})
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(t.generation, 30*time.Second).Should(BeZero(), "istiod is still there")
		out, err = h.run(t.ns, "list", "-q")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(strings.TrimSpace(out)).To(BeEmpty(), "a release is left")
		secrets, err := kube.CoreV1().Secrets(t.ns).List(env.Ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
		Expect(err).NotTo(HaveOccurred())
		Expect(secrets.Items).To(BeEmpty(), "Helm's release records are left")
	})
})
