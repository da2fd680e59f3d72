package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

const (
	ns       = "istio-system"
	fullName = "meshsettings-full"
)

func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := cp.Kubectl(args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

func meshDoc() map[string]any {
	GinkgoHelper()
	doc := map[string]any{}
	Expect(yaml.Unmarshal([]byte(kubectl("get", "cm", "istio-canary", "-n", ns, "-o", "jsonpath={.data.mesh}")), &doc)).To(Succeed())
	return doc
}

func labels(namespace string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	Expect(yaml.Unmarshal([]byte(kubectl("get", "ns", namespace, "-o", "jsonpath={.metadata.labels}")), &out)).To(Succeed())
	return out
}

func waitReady(generation string) {
	GinkgoHelper()
	kubectl("wait", "--for=jsonpath={.status.observedGeneration}="+generation, "mset/"+fullName, "-n", ns, "--timeout=60s")
	kubectl("wait", "--for=condition=Ready", "mset/"+fullName, "-n", ns, "--timeout=60s")
}

var _ = Describe("the operator binary, driven through kubectl", Ordered, func() {
	var helmDoc map[string]any

	BeforeAll(func() {
		helmDoc = meshDoc()
	})

	It("applies the full sample, reports Ready and writes the three targets", func() {
		startOperator("operator")
		kubectl("apply", "-f", filepath.Join(root, "config", "samples", "mesh_v1alpha1_meshsettings_full.yaml"))
		waitReady("1")

		By("kubectl get mset shows revision, readiness, reason and outbound policy")
		out := kubectl("get", "mset", "-n", ns)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "REVISION", "READY", "REASON", "OUTBOUND", "PENDING", "AGE"}))
		Expect(strings.Fields(lines[1])[:5]).To(Equal([]string{fullName, "canary", "True", "Reconciled", "REGISTRY_ONLY"}))
		Expect(kubectl("get", "mset", "-n", ns, "-o", "wide")).To(ContainSubstring("istio-canary"))

		By("the mesh document holds the sample's keys and Helm's")
		doc := meshDoc()
		Expect(doc["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
		Expect(doc["trustDomain"]).To(Equal("prod.example.com"))
		Expect(doc["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod-canary.istio-system.svc:15012"))
		Expect(doc["defaultHttpRetryPolicy"]).To(HaveKeyWithValue("attempts", BeNumerically("==", 3)))

		By("istiod's env holds the operator's entries and Helm's")
		env := kubectl("get", "deploy", "istiod-canary", "-n", ns, "-o",
			`jsonpath={range .spec.template.spec.containers[0].env[*]}{.name}={.value}{"\n"}{end}`)
		Expect(env).To(ContainSubstring("PILOT_TRACE_SAMPLING=10\n"))
		Expect(env).To(ContainSubstring("CLUSTER_ID=eu-west-1-prod\n"))
		Expect(env).To(ContainSubstring("REVISION=canary\n"))
		Expect(env).NotTo(ContainSubstring("EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"), "istiod 1.28 no longer reads it")
		Expect(kubectl("get", "mset", fullName, "-n", ns, "-o", "jsonpath={.status.ignoredSettings[*].name}")).
			To(ContainSubstring("EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"))

		By("namespaces carry the labels of their rule")
		Expect(labels("bookinfo")).To(HaveKeyWithValue(render.LabelRevision, "canary"))
		Expect(labels("checkout")).To(HaveKeyWithValue(render.LabelRevision, "canary"))
		Expect(labels("payments-prod")).To(And(
			HaveKeyWithValue(render.LabelDataplaneMode, render.DataplaneModeAmbient),
			HaveKeyWithValue(render.LabelUseWaypoint, "payments-waypoint"),
			HaveKeyWithValue(render.LabelUseWaypointNamespace, "mesh-waypoints")))
		Expect(labels("payments-sandbox")).NotTo(HaveKey(render.LabelDataplaneMode))
		Expect(labels("legacy-batch")).To(HaveKeyWithValue(render.LabelInjection, render.InjectionDisabled))
	})

	It("refuses an invalid manifest with the validation message and changes nothing", func() {
		before := kubectl("get", "cm", "istio-canary", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
		bad := `apiVersion: mesh.meshsettings.io/v1alpha1
kind: MeshSettings
metadata: {name: bad, namespace: istio-system}
spec:
  retryPolicy: {attempts: 2, retryOn: [connect-failure, sometimes]}
  drain: {drainDuration: 1500ms}
`
		out, err := cp.KubectlIn(bad, "apply", "-f", "-")
		Expect(err).To(HaveOccurred(), out)
		Expect(err.Error()).To(ContainSubstring("unknown retryOn condition sometimes"))
		Expect(err.Error()).To(ContainSubstring("drainDuration must be whole seconds"))
		_, err = cp.Kubectl("get", "mset", "bad", "-n", ns)
		Expect(err).To(MatchError(ContainSubstring("NotFound")))
		Expect(kubectl("get", "cm", "istio-canary", "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")).To(Equal(before))
	})

	It("converges to the same result after a crash, and then writes nothing", func() {
		// The first spec's operator is stopped by its cleanup; start a fresh one per phase.
		By("changing the spec while no operator runs")
		kubectl("patch", "mset", fullName, "-n", ns, "--type=merge", "-p", `{"spec":{"outboundTrafficPolicy":{"mode":"ALLOW_ANY"}}}`)
		op := startOperator("operator-restarted")
		waitReady("2")
		Expect(meshDoc()["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "ALLOW_ANY"}))

		By("killing it and starting another: the converged targets are not written again")
		rv := func() string {
			return kubectl("get", "cm/istio-canary", "deploy/istiod-canary", "ns/bookinfo", "-n", ns, "-o", "jsonpath={.items[*].metadata.resourceVersion}")
		}
		before := rv()
		op.Kill()
		startOperator("operator-after-crash")
		Consistently(rv, 3*time.Second, 300*time.Millisecond).Should(Equal(before))
		waitReady("2")
	})

	It("runs two replicas with --leader-elect of which only the leader writes", func() {
		leArgs := []string{"--leader-elect", "--leader-election-namespace=" + ns}
		a := startOperator("replica-a", leArgs...)
		Eventually(func() string { return a.Logs() }, 30*time.Second, 200*time.Millisecond).Should(ContainSubstring("Successfully acquired lease"))
		b := startOperator("replica-b", leArgs...)
		Eventually(func() string { return b.Logs() }, 10*time.Second, 200*time.Millisecond).Should(ContainSubstring("Attempting to acquire leader lease"))

		kubectl("patch", "mset", fullName, "-n", ns, "--type=merge", "-p", `{"spec":{"outboundTrafficPolicy":{"mode":"REGISTRY_ONLY"}}}`)
		waitReady("3")
		Expect(meshDoc()["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
		Expect(b.Logs()).NotTo(ContainSubstring("Starting Controller"), "the standby must not run the controller")
		Expect(b.Logs()).NotTo(ContainSubstring("Successfully acquired lease"))
		holder := kubectl("get", "lease", "meshsettings-operator.mesh.meshsettings.io", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}")
		Expect(holder).NotTo(BeEmpty())

		By("the standby takes over when the leader stops")
		a.Stop()
		Eventually(func() string { return b.Logs() }, 30*time.Second, 200*time.Millisecond).Should(ContainSubstring("Successfully acquired lease"))
		kubectl("patch", "mset", fullName, "-n", ns, "--type=merge", "-p", `{"spec":{"outboundTrafficPolicy":{"mode":"ALLOW_ANY"}}}`)
		waitReady("4")
		Expect(meshDoc()["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "ALLOW_ANY"}))
		Expect(kubectl("get", "lease", "meshsettings-operator.mesh.meshsettings.io", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}")).NotTo(Equal(holder))

		By("only the operator's one field manager (besides Helm's and kubectl's) ever wrote the ConfigMap")
		managers := strings.Fields(kubectl("get", "cm", "istio-canary", "-n", ns, "-o", "jsonpath={.metadata.managedFields[*].manager}"))
		Expect(managers).To(ContainElement("meshsettings-operator"))
		for _, m := range managers {
			Expect(m).To(BeElementOf("meshsettings-operator", "helm", "kubectl-client-side-apply", "kubectl"))
		}
	})

	It("removes what it wrote when the MeshSettings is deleted, and nothing else", func() {
		startOperator("operator-delete")
		kubectl("delete", "mset", fullName, "-n", ns, "--timeout=60s")
		Expect(meshDoc()).To(Equal(helmDoc))
		Expect(labels("bookinfo")).NotTo(HaveKey(render.LabelRevision))
		Expect(labels("payments-prod")).To(And(HaveKeyWithValue("team", "payments"), Not(HaveKey(render.LabelDataplaneMode))))
		env := kubectl("get", "deploy", "istiod-canary", "-n", ns, "-o",
			`jsonpath={range .spec.template.spec.containers[0].env[*]}{.name}={.value}{"\n"}{end}`)
		Expect(env).NotTo(ContainSubstring("PILOT_TRACE_SAMPLING="), "the operator's entry stays behind")
		Expect(env).To(ContainSubstring("CLUSTER_ID=eu-west-1-prod\n"), "Helm's entry was changed")
		Expect(env).NotTo(ContainSubstring("PILOT_ENABLE_STATUS"))
	})

	It("has deploy manifests the API server accepts", func() {
		manifests := kubectl("kustomize", filepath.Join(root, "config", "default"))
		Expect(manifests).To(ContainSubstring("kind: Deployment"))
		// A server-side dry run creates nothing, so the namespaced objects need their namespace for real.
		kubectl("create", "namespace", "meshsettings-system")
		// Forced: envtest installed the CRD under another field manager.
		out, err := cp.KubectlIn(manifests, "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		installer, err := os.ReadFile(filepath.Join(root, "dist", "install.yaml"))
		Expect(err).NotTo(HaveOccurred(), "make build-installer writes dist/install.yaml")
		Expect(installerCRDSpec(string(installer))).To(Equal(crdSpec()), "dist/install.yaml is stale: run make build-installer")
		out, err = cp.KubectlIn(string(installer), "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("customresourcedefinition.apiextensions.k8s.io/meshsettings.mesh.meshsettings.io serverside-applied (server dry run)"))
		Expect(out).To(ContainSubstring("deployment.apps/meshsettings-controller-manager serverside-applied (server dry run)"))
	})
})

// crdSpec is the spec of the generated CRD.
func crdSpec() map[string]any {
	GinkgoHelper()
	b, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "mesh.meshsettings.io_meshsettings.yaml"))
	Expect(err).NotTo(HaveOccurred())
	crd := map[string]any{}
	Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
	return crd["spec"].(map[string]any)
}

// installerCRDSpec is the spec of the CRD in an installer YAML stream.
func installerCRDSpec(stream string) map[string]any {
	GinkgoHelper()
	for _, doc := range strings.Split(stream, "\n---\n") {
		obj := map[string]any{}
		Expect(yaml.Unmarshal([]byte(doc), &obj)).To(Succeed())
		if obj["kind"] == "CustomResourceDefinition" {
			return obj["spec"].(map[string]any)
		}
	}
	Fail("no CustomResourceDefinition in dist/install.yaml")
	return nil
}
