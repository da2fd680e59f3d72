package gitops

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshsettings/meshsettings-operator/controllers"
)

// What README says about spec.proxyRestart: RolloutRestart and Argo CD: the
// operator restarts an application Deployment Argo CD manages as
// `kubectl rollout restart` does, and Argo CD neither owns nor reverts the
// annotations it sets, whether it syncs with server-side apply or
// client-side apply: no diff, no second rollout.
var _ = Describe("Argo CD and a Deployment the operator restarted", Ordered, func() {
	const (
		since = "2026-12-03T12:00:00Z"
		at    = "2026-12-03T12:00:05Z"
	)
	var (
		shop, cartYAML string
		restarted      *unstructured.Unstructured
	)
	cartManifest := func(name string) string {
		return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: ` + shop + `
  labels: {app: ` + name + `}
spec:
  replicas: 2
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      containers:
      - name: app
        image: shop/` + name + `:1
`
	}
	restart := func(name string) *unstructured.Unstructured {
		GinkgoHelper()
		d := &appsv1.Deployment{}
		d.Namespace, d.Name = shop, name
		Expect(k8sClient.Patch(ctx, d, controllers.RestartPatch(since, at), client.FieldOwner(controllers.FieldManager))).To(Succeed())
		u := get(depGVR, shop, name)
		Expect(field(u, "spec", "template", "metadata", "annotations", controllers.RestartedAtAnnotation)).To(Equal(at))
		return u
	}

	BeforeAll(func() {
		shop = createNamespace("shop-", nil)
		cartYAML = cartManifest("cart")
		_, err := argoApply(depGVR, manifest(cartYAML, shop), false)
		Expect(err).NotTo(HaveOccurred())
		before := get(depGVR, shop, "cart")
		restarted = restart("cart")
		Expect(restarted.GetGeneration()).To(Equal(before.GetGeneration()+1), "the restart rolls the Deployment")
	})

	It("server-side apply: Argo CD's diff (a dry-run apply of the Git manifest) predicts the live object unchanged", func() {
		predicted, err := argoApply(depGVR, manifest(cartYAML, shop), true)
		Expect(err).NotTo(HaveOccurred())
		Expect(field(predicted, "spec")).To(Equal(field(restarted, "spec")))
		Expect(predicted.GetAnnotations()).To(HaveKeyWithValue(controllers.RestartedForAnnotation, since))
		Expect(predicted.GetGeneration()).To(Equal(restarted.GetGeneration()))
	})

	It("server-side apply: a sync keeps both annotations, rolls nothing, and Argo CD owns neither", func() {
		synced, err := argoApply(depGVR, manifest(cartYAML, shop), false)
		Expect(err).NotTo(HaveOccurred())
		Expect(synced.GetGeneration()).To(Equal(restarted.GetGeneration()))
		Expect(field(synced, "spec", "template", "metadata", "annotations", controllers.RestartedAtAnnotation)).To(Equal(at))
		for _, e := range argoEntries(synced) {
			Expect(string(e.FieldsV1.GetRawBytes())).NotTo(Or(ContainSubstring(controllers.RestartedAtAnnotation), ContainSubstring(controllers.RestartedForAnnotation)))
		}
	})

	It("client-side apply: a sync of the unchanged manifest keeps both annotations and rolls nothing", func() {
		name := "orders"
		ordersYAML := cartManifest(name)
		kubectl(ordersYAML, "apply", "-f", "-")
		before := restart(name)
		after := &unstructured.Unstructured{}
		Expect(after.UnmarshalJSON([]byte(kubectl(ordersYAML, "apply", "-f", "-", "-o", "json")))).To(Succeed())
		Expect(after.GetGeneration()).To(Equal(before.GetGeneration()))
		Expect(field(after, "spec", "template", "metadata", "annotations", controllers.RestartedAtAnnotation)).To(Equal(at))
		Expect(after.GetAnnotations()).To(HaveKeyWithValue(controllers.RestartedForAnnotation, since))
		Expect(kubectl(ordersYAML, "diff", "-f", "-")).To(BeEmpty(), "kubectl diff, the client-side diff, sees nothing")
	})

	It("a manifest that itself sets restartedAt in Git takes it back on sync: that is what ignoreDifferences is for", func() {
		pinned := strings.Replace(cartYAML, "sidecar.istio.io/inject: \"true\"", "sidecar.istio.io/inject: \"true\", "+controllers.RestartedAtAnnotation+": \"2026-01-01T00:00:00Z\"", 1)
		synced, err := argoApply(depGVR, manifest(pinned, shop), false)
		Expect(err).NotTo(HaveOccurred())
		Expect(field(synced, "spec", "template", "metadata", "annotations", controllers.RestartedAtAnnotation)).To(Equal("2026-01-01T00:00:00Z"))
		Expect(synced.GetGeneration()).To(Equal(restarted.GetGeneration()+1), "Argo CD's value rolls the pods once more")
	})
})
