package realistiod

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/meshcheck/meshchecktest"
	"github.com/meshsettings/meshsettings-operator/internal/render"
	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
)

// Issue 13 item 5: the documents the operator refuses to write are exactly
// the ones istiod rejects. meshchecktest.Documents cover every rule the
// operator ported from istiod (test/oracle holds them equal to Istio's own
// code); here the real istiod judges each one.
var _ = Describe("Mesh documents the operator refuses", Ordered, func() {
	const revision = "rejections" // its own istiod and ConfigMap: no MeshSettings writes istio-rejections
	var i *istiod.Istiod

	BeforeAll(func() {
		installIstio(revision)
		i = startIstiod(revision, nil)
	})

	It("are exactly the ones the real istiod rejects", func() {
		cm := &corev1.ConfigMap{}
		key := client.ObjectKey{Namespace: istioNS, Name: "istio-" + revision}
		write := func(doc string) {
			GinkgoHelper()
			Expect(env.Client.Get(env.Ctx, key, cm)).To(Succeed())
			cm.Data["mesh"] = doc
			Expect(env.Client.Update(env.Ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		}
		connectTimeout := func(g Gomega) string {
			m, err := i.Mesh(env.Ctx)
			g.Expect(err).NotTo(HaveOccurred())
			return fmt.Sprint(m["connectTimeout"])
		}

		rejected, accepted, skipped := 0, 0, 0
		var verdicts []string
		for n, doc := range meshchecktest.Documents {
			if meshchecktest.IstioVerdictIsRandom(doc) {
				skipped++ // Istio's own verdict depends on Go's map order
				continue
			}
			_, err := render.MergeMesh(&meshv1alpha1.MeshSettingsSpec{}, doc, render.MeshState{})
			operatorRejects := err != nil

			// A marker istiod accepts, then the document: istiod either logs
			// the rejection and keeps the marker, or runs the document, whose
			// connectTimeout (its own or Istio's default) is not the marker.
			ms := 1001 + n%999 // never a whole second: protojson shows 1.001s
			marker := fmt.Sprintf("%d.%03ds", ms/1000, ms%1000)
			write("connectTimeout: " + marker + "\n")
			Eventually(connectTimeout, 10*time.Second, 20*time.Millisecond).Should(Equal(marker), "istiod never ran the marker before %q", doc)
			before := i.LogCount(istiod.RejectedMessage)
			write(doc)
			var istiodRejects bool
			Eventually(func(g Gomega) {
				istiodRejects = i.LogCount(istiod.RejectedMessage) > before
				if !istiodRejects {
					g.Expect(connectTimeout(g)).NotTo(Equal(marker), "istiod neither rejected nor ran %q", doc)
				}
			}, 10*time.Second, 20*time.Millisecond).Should(Succeed())

			Expect(operatorRejects).To(Equal(istiodRejects), "document %q: istiod rejects %v, the operator says %v", doc, istiodRejects, err)
			if istiodRejects {
				// Kept its last known state: the marker is still in force.
				Expect(connectTimeout(Default)).To(Equal(marker), "istiod logged the rejection of %q but changed /debug/mesh", doc)
				rejected++
				verdicts = append(verdicts, fmt.Sprintf("rejected by both: %q", doc))
			} else {
				accepted++
				verdicts = append(verdicts, fmt.Sprintf("accepted by both: %q", doc))
			}
		}
		AddReportEntry("verdicts of the real istiod (= the operator's)", strings.Join(verdicts, "\n"))
		Expect(rejected).To(BeNumerically(">=", 10))
		Expect(accepted).To(BeNumerically(">=", 10))
		report("mesh documents judged by the real istiod and the operator alike: %d rejected, %d accepted (%d skipped: Istio's verdict is random there)",
			rejected, accepted, skipped)
	})
})
