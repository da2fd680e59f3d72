package helm

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// B: the compatibility topology. Helm keeps rendering the mesh ConfigMap and
// writes it client-side (Helm 3, or Helm 4 with --server-side=false); the
// MeshSettings leaves spec.configMapOwnership unset (Merge, the default).
var _ = Describe("B: compatibility topology (Merge, chart renders the ConfigMap)", func() {
	compatibility("helm3", &helm3)
	compatibility("helm4 --server-side=false", &helm4CSA)
})

func compatibility(name string, hp *helmCLI) {
	Describe("with "+name, Ordered, func() {
		var (
			h      helmCLI
			t      target
			app    string
			l      *ledger
			values string
		)
		BeforeAll(func() {
			h = *hp
			t = target{ns: env.Namespace("istio-b", nil)}
			app = env.Namespace("app-b", nil)
			values = valuesFile(chartValues(t, "meshConfig:\n  defaultConfig:\n    drainDuration: 30s\n"))
			l = newLedger("B compatibility, "+h.Name, t)
		})

		It("installs istiod; the chart renders the mesh ConfigMap", func() {
			out, err := l.do(h.Name+" install", func() (string, error) {
				return h.write(t.ns, "install", "istiod", chart, "-f", values)
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(t.meshDoc()["defaultConfig"]).To(HaveKeyWithValue("drainDuration", "30s"))
			v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
			Expect(v).To(Equal("1"))
		})

		It("merges the MeshSettings' keys into Helm's document and keeps Helm's", func() {
			l.act("apply MeshSettings (Merge)", func() {
				applyYAML(meshSettings(t, "", app))
				Eventually(configMapHoldsOperatorKeys(t), time.Minute, 20*time.Millisecond).Should(Succeed())
			})
			doc := t.meshDoc()
			Expect(doc["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod."+t.ns+".svc:15012"))
			Expect(doc).To(HaveKeyWithValue("trustDomain", "cluster.local"))
		})

		It("leaves Helm's PILOT_TRACE_SAMPLING to Helm and reports the chart value to set", func() {
			Eventually(conditionOf(t.ns, msName, "IstiodEnvApplied"), time.Minute, 50*time.Millisecond).Should(And(
				HavePrefix("False/EnvHeldByOtherManager"), ContainSubstring("PILOT_TRACE_SAMPLING"), ContainSubstring("traceSampling")))
			Expect(conditionOf(t.ns, msName, "Ready")()).To(HavePrefix("False/EnvHeldByOtherManager"))
			v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
			Expect(v).To(Equal("1"))
			Expect(l.rollouts("apply MeshSettings (Merge)")).To(BeZero(), "the operator rolled istiod")
			// From here on, every step is sampled: in this topology Helm's write
			// replaces the whole document and the operator merges again after it,
			// so the count of samples lacking its keys is reported, not asserted.
			l.check = configMapHoldsOperatorKeys(t)
		})

		It("upgrades with changed values: Helm exits 0, its new values land, the operator's keys come back", func() {
			var back time.Duration
			out, err := l.do(h.Name+" upgrade drainDuration 40s, accessLogFile", func() (string, error) {
				out, err := h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values",
					"--set", "meshConfig.defaultConfig.drainDuration=40s", "--set", "meshConfig.accessLogFile=/dev/stdout")
				done := time.Now()
				Eventually(configMapHoldsOperatorKeys(t), 30*time.Second, 20*time.Millisecond).Should(Succeed())
				back = time.Since(done)
				return out, err
			})
			Expect(err).NotTo(HaveOccurred(), out)
			AddReportEntry(fmt.Sprintf("B %s: operator's keys back after the upgrade", h.Name), back.String(), ReportEntryVisibilityAlways)
			Expect(t.meshDoc()).To(HaveKeyWithValue("accessLogFile", "/dev/stdout"), "Helm's new value did not land")
			v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
			Expect(v).To(Equal("1"))
		})

		It("then writes nothing for 20 s (no write loop)", func() {
			i := l.rec.len()
			Consistently(func() []event { return l.rec.since(i) }, 20*time.Second, 500*time.Millisecond).Should(BeEmpty())
		})

		It("a no-op upgrade (--reuse-values) exits 0 and moves istiod's generation at most once", func() {
			name := h.Name + " upgrade --reuse-values (no-op)"
			out, err := l.do(name, func() (string, error) {
				return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values")
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(l.rollouts(name)).To(BeNumerically("<=", 1))
			Eventually(configMapHoldsOperatorKeys(t), 30*time.Second, 20*time.Millisecond).Should(Succeed())
		})

		It("rolls back and exits 0", func() {
			out, err := l.do(h.Name+" rollback 1", func() (string, error) {
				return h.write(t.ns, "rollback", "istiod", "1")
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Eventually(configMapHoldsOperatorKeys(t), 30*time.Second, 20*time.Millisecond).Should(Succeed())
			Expect(t.meshDoc()).NotTo(HaveKey("accessLogFile"), "the rollback's values did not land")
		})

		It("after Helm changed values the MeshSettings also sets, deletion leaves exactly Helm's current release", func() {
			name := h.Name + " upgrade drainDuration 40s, traceSampling 2"
			out, err := l.do(name, func() (string, error) {
				return h.write(t.ns, "upgrade", "istiod", chart, "--reuse-values",
					"--set", "meshConfig.defaultConfig.drainDuration=40s", "--set", "traceSampling=2")
			})
			Expect(err).NotTo(HaveOccurred(), out)
			Eventually(configMapHoldsOperatorKeys(t), 30*time.Second, 20*time.Millisecond).Should(Succeed())
			v, _ := envValue(t.istiodEnv(), "PILOT_TRACE_SAMPLING")
			Expect(v).To(Equal("2"), "Helm's new traceSampling did not land")
			Expect(l.rollouts(name)).To(Equal(1), "Helm's env change is one rollout; the operator adds none")
			l.check = nil

			l.act("delete MeshSettings", func() {
				deleteMeshSettings(t.ns, msName)
			})
			m := helmManifest(h, t, "istiod")
			want := m.configMap(t.configMap())
			Expect(want).NotTo(BeNil())
			live, err := t.getConfigMap()
			Expect(err).NotTo(HaveOccurred())
			Expect(parseMesh(live.Data["mesh"])).To(Equal(parseMesh(want.Data["mesh"])))
			Expect(parseMesh(live.Data["meshNetworks"])).To(Equal(parseMesh(want.Data["meshNetworks"])))
			Expect(t.meshDoc()["defaultConfig"]).To(HaveKeyWithValue("drainDuration", "40s"))
			Expect(normalizedEnv(t.istiodEnv())).To(Equal(normalizedEnv(discoveryEnv(m.deployment(t.deployment())))))
		})

		It("E: leaves nothing of the operator behind", func() {
			expectNoTraces(t, app)
		})

		It("uninstalls cleanly", func() {
			out, err := l.do(h.Name+" uninstall", func() (string, error) {
				return h.run(t.ns, "uninstall", "istiod")
			})
			Expect(err).NotTo(HaveOccurred(), out)
		})
	})
}
