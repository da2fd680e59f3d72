package gitops

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kubectl runs the envtest kubectl as a cluster admin, reading stdin.
func kubectl(stdin string, args ...string) string {
	GinkgoHelper()
	out, err := testEnv.KubectlIn(stdin, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// What docs/gitops.md says about Argo CD syncing istiod without
// ServerSideApply: client-side apply (a three-way strategic merge from
// kubectl.kubernetes.io/last-applied-configuration) and Replace=true.
var _ = Describe("Argo CD syncing istiod with client-side apply or replace", Ordered, func() {
	var (
		cp, helm, ttl string
		live          *unstructured.Unstructured
	)

	BeforeAll(func() {
		cp = createNamespace("istio-system-", nil)
		// The chart rendered with traceSampling: "": the MeshSettings owns PILOT_TRACE_SAMPLING.
		helm = strings.Replace(ownSamplingIstiod(), "metadata:\n", "metadata:\n  namespace: "+cp+"\n", 1)
		kubectl(helm, "apply", "-f", "-")
		live, ttl = setSharedEnv(cp, "Healthy")
		Expect(envValue(envOf(live), "PILOT_TRACE_SAMPLING")).To(Equal("10"))
	})

	It("keeps the entries only the operator sets on client-side apply of the unchanged manifest: no rollout", func() {
		after := &unstructured.Unstructured{}
		Expect(after.UnmarshalJSON([]byte(kubectl(helm, "apply", "-f", "-", "-o", "json")))).To(Succeed())
		Expect(envValue(envOf(after), "DEFAULT_WORKLOAD_CERT_TTL")).To(Equal(ttl), "client-side apply removed an entry only the operator sets")
		Expect(envValue(envOf(after), "PILOT_TRACE_SAMPLING")).To(Equal("10"))
		Expect(after.GetGeneration()).To(Equal(live.GetGeneration()))
	})

	It("writes every entry again after a replace dropped them all", func() {
		before := get(depGVR, cp, "istiod")
		// The server's answer to the replace, before the operator reacts.
		replaced := &unstructured.Unstructured{}
		Expect(replaced.UnmarshalJSON([]byte(kubectl(helm, "replace", "-f", "-", "-o", "json")))).To(Succeed())
		Expect(envValue(envOf(replaced), "DEFAULT_WORKLOAD_CERT_TTL")).To(Equal("<absent>"))
		Expect(envValue(envOf(replaced), "PILOT_TRACE_SAMPLING")).To(Equal("<absent>"))
		Eventually(func(g Gomega) {
			now := get(depGVR, cp, "istiod")
			g.Expect(envValue(envOf(now), "DEFAULT_WORKLOAD_CERT_TTL")).To(Equal(ttl))
			g.Expect(envValue(envOf(now), "PILOT_TRACE_SAMPLING")).To(Equal("10"))
			g.Expect(now.GetGeneration()).To(BeNumerically(">=", before.GetGeneration()+2), "two rollouts: replace, then the operator")
		}, timeout, interval).Should(Succeed())
	})
})
