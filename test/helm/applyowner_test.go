package helm

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	release "helm.sh/helm/v4/pkg/release/v1"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// C: Helm 4 with its defaults (server-side apply) while the chart still
// renders the mesh ConfigMap, and a MeshSettings in Merge: Helm owns
// .data.mesh by Apply. The operator must not lock Helm out; it says so.
var _ = Describe("C: Helm 4 defaults, chart renders the ConfigMap, Merge", Ordered, func() {
	var (
		h      helmCLI
		t      target
		app    string
		l      *ledger
		values string
		helms  string // Helm's document, as installed
	)
	BeforeAll(func() {
		h = helm4
		t = target{ns: env.Namespace("istio-c", nil)}
		app = env.Namespace("app-c", nil)
		values = valuesFile(chartValues(t, ""))
		l = newLedger("C Helm 4 owns the ConfigMap by Apply, "+h.Name, t)
	})

	It("installs istiod with the chart's ConfigMap", func() {
		out, err := l.do("helm4 install (configMap=true)", func() (string, error) {
			return h.write(t.ns, "install", "istiod", chart, "-f", values)
		})
		Expect(err).NotTo(HaveOccurred(), out)
		cm, err := t.getConfigMap()
		Expect(err).NotTo(HaveOccurred())
		helms = cm.Data["mesh"]
	})

	It("reports Ready=False naming Helm's ownership and the remedy, and writes nothing to the document", func() {
		l.act("apply MeshSettings (Merge)", func() {
			applyYAML(meshSettings(t, "", app))
			Eventually(conditionOf(t.ns, msName, "MeshConfigApplied"), time.Minute, 50*time.Millisecond).
				Should(HavePrefix("False/MeshConfigOwnedByApply"))
		})
		Expect(conditionOf(t.ns, msName, "Ready")()).To(And(HavePrefix("False/MeshConfigOwnedByApply"), ContainSubstring(`"helm"`)))
		Expect(conditionOf(t.ns, msName, "Stalled")()).To(HavePrefix("True/MeshConfigOwnedByApply"))
		Expect(conditionOf(t.ns, msName, "MeshConfigApplied")()).To(And(ContainSubstring("configMap=false"), ContainSubstring("Own")))
		cm, err := t.getConfigMap()
		Expect(err).NotTo(HaveOccurred())
		Expect(cm.Data["mesh"]).To(Equal(helms))
		Expect(operatorTraces(cm)).To(BeEmpty())
	})

	for _, op := range []struct {
		name string
		args []string
	}{
		{"helm4 upgrade --reuse-values (no-op)", []string{"upgrade", "istiod", "--reuse-values"}},
		{"helm4 upgrade accessLogFile", []string{"upgrade", "istiod", "--reuse-values", "--set", "meshConfig.accessLogFile=/dev/stdout"}},
		{"helm4 rollback 1", []string{"rollback", "istiod", "1"}},
	} {
		It("never locks Helm out: "+op.name+" exits 0", func() {
			args := op.args
			if args[0] == "upgrade" {
				args = append([]string{args[0], args[1], chart}, args[2:]...)
			}
			out, err := l.do(op.name, func() (string, error) { return h.write(t.ns, args...) })
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(out).NotTo(ContainSubstring("conflict"))
		})
	}

	It("E: leaves nothing of the operator behind after deletion", func() {
		l.act("delete MeshSettings", func() {
			deleteMeshSettings(t.ns, msName)
		})
		expectNoTraces(t, app)
		out, err := l.do("helm4 uninstall", func() (string, error) { return h.run(t.ns, "uninstall", "istiod") })
		Expect(err).NotTo(HaveOccurred(), out)
	})
})

// D: the MeshSettings exists before Istio is installed.
var _ = Describe("D: MeshSettings applied before Istio", func() {
	Describe("Own, then Helm 4 installs with configMap=false", Ordered, func() {
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
			t = target{ns: env.Namespace("istio-d-own", nil)}
			app = env.Namespace("app-d-own", nil)
			values = valuesFile(chartValues(t, "configMap: false\ntraceSampling: \"\"\n"))
			l = newLedger("D Own before install, "+h.Name, t)
			base = parseMesh(baseline(h, t, values).Data["mesh"])
		})

		It("creates the mesh ConfigMap with the baseline and the spec before istiod exists", func() {
			l.act("apply MeshSettings (Own)", func() {
				applyYAML(meshSettings(t, "Own", app))
				Eventually(configMapHoldsOperatorKeys(t), time.Minute, 20*time.Millisecond).Should(Succeed())
			})
			Expect(leafDiff(base, t.meshDoc())).To(BeEmpty())
		})

		It("helm install exits 0, renders no ConfigMap, and the operator converges", func() {
			out, err := l.do("helm4 install (configMap=false)", func() (string, error) {
				return h.write(t.ns, "install", "istiod", chart, "-f", values)
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(helmManifest(h, t, "istiod").configMap(t.configMap())).To(BeNil())
			waitReady(t.ns, msName)
			Eventually(func() string { v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING"); return v }, time.Minute).Should(Equal("10"))
			Expect(operatorKeys(t.meshDoc())).To(Succeed())
		})

		It("E: leaves nothing of the operator behind after deletion", func() {
			l.act("delete MeshSettings", func() {
				deleteMeshSettings(t.ns, msName)
			})
			expectNoTraces(t, app)
			Expect(t.meshDoc()).To(Equal(base))
			out, err := l.do("helm4 uninstall", func() (string, error) { return h.run(t.ns, "uninstall", "istiod") })
			Expect(err).NotTo(HaveOccurred(), out)
		})
	})

	Describe("Own, then the Helm v4 SDK installs with configMap=false (server-side apply)", Ordered, func() {
		var (
			t   target
			app string
			l   *ledger
		)
		BeforeAll(func() {
			t = target{ns: env.Namespace("istio-d-sdk", nil)}
			app = env.Namespace("app-d-sdk", nil)
			l = newLedger("D Own before install, Helm v4 SDK", t)
		})

		It("creates the mesh ConfigMap; the SDK install succeeds and the operator converges", func() {
			l.act("apply MeshSettings (Own)", func() {
				applyYAML(meshSettings(t, "Own", app))
				Eventually(configMapHoldsOperatorKeys(t), time.Minute, 20*time.Millisecond).Should(Succeed())
			})
			var rel *release.Release
			_, err := l.do("Helm v4 SDK install (configMap=false)", func() (string, error) {
				var err error
				rel, err = sdkInstall(t.ns, map[string]any{
					"configMap": false, "traceSampling": "",
					"global": map[string]any{"tag": istioTag, "istioNamespace": t.ns},
				})
				return "", err
			})
			Expect(err).NotTo(HaveOccurred())
			Expect(parseManifest(rel.Manifest).configMap(t.configMap())).To(BeNil())
			waitReady(t.ns, msName)
			Expect(operatorKeys(t.meshDoc())).To(Succeed())
			Expect(leafDiff(parseMesh(render.ChartBaseline(t.ns, "").Mesh), t.meshDoc())).To(BeEmpty())
		})

		It("E: leaves nothing of the operator behind after deletion", func() {
			l.act("delete MeshSettings", func() {
				deleteMeshSettings(t.ns, msName)
			})
			expectNoTraces(t, app)
			Expect(t.meshDoc()).To(Equal(parseMesh(render.ChartBaseline(t.ns, "").Mesh)))
		})
	})

	Describe("Merge, then Helm 3 installs with the chart's ConfigMap", Ordered, func() {
		var (
			h      helmCLI
			t      target
			app    string
			l      *ledger
			values string
		)
		BeforeAll(func() {
			h = helm3
			t = target{ns: env.Namespace("istio-d-merge", nil)}
			app = env.Namespace("app-d-merge", nil)
			values = valuesFile(chartValues(t, ""))
			l = newLedger("D Merge before install, "+h.Name, t)
		})

		It("waits for the ConfigMap (ConfigMapNotFound) and creates none", func() {
			l.act("apply MeshSettings (Merge)", func() {
				applyYAML(meshSettings(t, "", app))
				Eventually(conditionOf(t.ns, msName, "MeshConfigApplied"), time.Minute, 50*time.Millisecond).
					Should(HavePrefix("False/ConfigMapNotFound"))
			})
			Consistently(func() error { cm, err := t.getConfigMap(); Expect(cm).To(BeNil()); return err }, 2*time.Second).Should(Succeed())
		})

		It("helm install exits 0 and the operator converges", func() {
			out, err := l.do("helm3 install (configMap=true)", func() (string, error) {
				return h.write(t.ns, "install", "istiod", chart, "-f", values)
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Eventually(configMapHoldsOperatorKeys(t), time.Minute, 20*time.Millisecond).Should(Succeed())
			Expect(t.meshDoc()["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod."+t.ns+".svc:15012"))
		})

		It("E: leaves nothing of the operator behind after deletion", func() {
			l.act("delete MeshSettings", func() {
				deleteMeshSettings(t.ns, msName)
			})
			expectNoTraces(t, app)
			want := helmManifest(h, t, "istiod").configMap(t.configMap())
			Expect(t.meshDoc()).To(Equal(parseMesh(want.Data["mesh"])))
			out, err := l.do("helm3 uninstall", func() (string, error) { return h.run(t.ns, "uninstall", "istiod") })
			Expect(err).NotTo(HaveOccurred(), out)
		})
	})
})
