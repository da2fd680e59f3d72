package helm

import (
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// msName is the MeshSettings every scenario applies.
const msName = "mesh"

// meshSettings is what the new user applies: outbound policy,
// tracing with samplingPercentage, retry, drain and one namespace label.
// ownership "" leaves spec.configMapOwnership unset (Merge, the default).
func meshSettings(t target, ownership, appNamespace string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata: {name: %s, namespace: %s}\nspec:\n", msName, t.ns)
	if t.revision != "" {
		fmt.Fprintf(&b, "  revision: %s\n", t.revision)
	}
	if ownership != "" {
		fmt.Fprintf(&b, "  configMapOwnership: %s\n", ownership)
	}
	fmt.Fprintf(&b, `  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  tracing: {samplingPercentage: "10"}
  retryPolicy: {attempts: 3, retryOn: [connect-failure, refused-stream, "503"]}
  drain: {drainDuration: 45s}
  namespaces:
  - names: [%s]
    dataplane: Sidecar
`, appNamespace)
	return b.String()
}

// operatorKeys checks that a mesh document holds the MeshSettings' keys.
func operatorKeys(doc map[string]any) error {
	var missing []string
	if m, _ := doc["outboundTrafficPolicy"].(map[string]any); m == nil || m["mode"] != "REGISTRY_ONLY" {
		missing = append(missing, fmt.Sprintf("outboundTrafficPolicy.mode REGISTRY_ONLY (got %v)", doc["outboundTrafficPolicy"]))
	}
	if m, _ := doc["defaultHttpRetryPolicy"].(map[string]any); m == nil || fmt.Sprint(m["attempts"]) != "3" {
		missing = append(missing, fmt.Sprintf("defaultHttpRetryPolicy.attempts 3 (got %v)", doc["defaultHttpRetryPolicy"]))
	}
	if m, _ := doc["defaultConfig"].(map[string]any); m == nil || m["drainDuration"] != "45s" {
		missing = append(missing, fmt.Sprintf("defaultConfig.drainDuration 45s (got %v)", doc["defaultConfig"]))
	}
	if len(missing) > 0 {
		return fmt.Errorf("the mesh document lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// configMapHoldsOperatorKeys is the 20 ms sample of a scenario: the mesh
// ConfigMap exists and holds the operator's keys.
func configMapHoldsOperatorKeys(t target) func() error {
	return func() error {
		cm, err := t.getConfigMap()
		if err != nil {
			return err
		}
		if cm == nil {
			return fmt.Errorf("ConfigMap %s is missing", t.configMap())
		}
		doc := map[string]any{}
		if err := yaml.Unmarshal([]byte(cm.Data["mesh"]), &doc); err != nil {
			return fmt.Errorf("mesh does not parse: %w", err)
		}
		return operatorKeys(doc)
	}
}

// manifest is what a Helm command rendered: the objects by kind/name.
type manifest map[string]map[string]any

func parseManifest(out string) manifest {
	GinkgoHelper()
	m := manifest{}
	for _, doc := range strings.Split(out, "\n---") {
		obj := map[string]any{}
		Expect(yaml.Unmarshal([]byte(doc), &obj)).To(Succeed(), doc)
		if len(obj) == 0 {
			continue
		}
		md, _ := obj["metadata"].(map[string]any)
		m[fmt.Sprintf("%v/%v", obj["kind"], md["name"])] = obj
	}
	return m
}

// configMap decodes the named ConfigMap of the manifest; nil when the
// manifest has none.
func (m manifest) configMap(name string) *corev1.ConfigMap {
	GinkgoHelper()
	obj, ok := m["ConfigMap/"+name]
	if !ok {
		return nil
	}
	cm := &corev1.ConfigMap{}
	data, err := yaml.Marshal(obj)
	Expect(err).NotTo(HaveOccurred())
	Expect(yaml.Unmarshal(data, cm)).To(Succeed())
	return cm
}

func (m manifest) deployment(name string) *appsv1.Deployment {
	GinkgoHelper()
	obj, ok := m["Deployment/"+name]
	Expect(ok).To(BeTrue(), "the manifest has no Deployment %s", name)
	d := &appsv1.Deployment{}
	data, err := yaml.Marshal(obj)
	Expect(err).NotTo(HaveOccurred())
	Expect(yaml.Unmarshal(data, d)).To(Succeed())
	return d
}

// chartValues are the values every scenario installs with: the image tag that
// tells the operator istiod's release, and the namespace (each scenario has
// its own, so the chart's cluster-scoped objects do not collide).
func chartValues(t target, extra string) string {
	return fmt.Sprintf("revision: %q\nglobal:\n  tag: %q\n  istioNamespace: %s\n%s", t.revision, istioTag, t.ns, extra)
}

// baseline is the mesh ConfigMap the chart renders for these values with
// configMap=true: Istio's baseline for the revision.
func baseline(h helmCLI, t target, values string) *corev1.ConfigMap {
	GinkgoHelper()
	out, err := h.run(t.ns, "template", "istiod", chart, "-f", values, "--set", "configMap=true",
		"--show-only", "templates/configmap.yaml")
	Expect(err).NotTo(HaveOccurred(), out)
	cm := parseManifest(out).configMap(t.configMap())
	Expect(cm).NotTo(BeNil(), out)
	return cm
}

// helmManifest is `helm get manifest` of the deployed revision.
func helmManifest(h helmCLI, t target, release string) manifest {
	GinkgoHelper()
	out, err := h.run(t.ns, "get", "manifest", release)
	Expect(err).NotTo(HaveOccurred(), out)
	return parseManifest(out)
}

// expectNoTraces checks E: nothing of the operator on the ConfigMap, istiod
// and the labelled namespace.
func expectNoTraces(t target, appNamespace string) {
	GinkgoHelper()
	if cm, err := t.getConfigMap(); Expect(err).NotTo(HaveOccurred()) && cm != nil {
		Expect(operatorTraces(cm)).To(BeEmpty(), "ConfigMap %s", t.configMap())
	}
	Expect(operatorTraces(t.getDeployment())).To(BeEmpty(), "Deployment %s", t.deployment())
	ns := &corev1.Namespace{}
	Expect(env.Client.Get(env.Ctx, clientKey("", appNamespace), ns)).To(Succeed())
	Expect(operatorTraces(ns)).To(BeEmpty(), "Namespace %s", appNamespace)
	Expect(ns.Labels).NotTo(HaveKey("istio.io/rev"), "the operator's namespace label stays")
}
