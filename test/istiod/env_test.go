package realistiod

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// collateralNames are the env vars the binary says it reads
// (`pilot-discovery collateral`), parsed independently of hack/istiod-env.sh.
func collateralNames() []string {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	out, err := exec.Command(binary, "collateral", "--html_fragment_with_front_matter", "-o", dir).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	html, err := os.ReadFile(filepath.Join(dir, "pilot-discovery.html"))
	Expect(err).NotTo(HaveOccurred())
	section := string(html)
	i := strings.Index(section, `id="envvars"`)
	Expect(i).To(BeNumerically(">=", 0), "no env var section in pilot-discovery's collateral")
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`<td><a href='#[^']*'><code>([A-Za-z0-9_]+)</code>`).FindAllStringSubmatch(section[i:], -1) {
		names[m[1]] = true
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	return list
}

var _ = Describe("istiod env: what the operator writes is what istiod reads", Ordered, func() {
	It("the embedded list (internal/render/istiod_env.txt) is exactly what this istiod lists; else run hack/istiod-env.sh", func() {
		_, embedded := render.IstiodEnvNames()
		got := collateralNames()
		Expect(len(got)).To(BeNumerically(">", 100))
		Expect(embedded).To(Equal(got), "internal/render/istiod_env.txt drifted from pilot-discovery collateral: run hack/istiod-env.sh")
		Expect(got).NotTo(ContainElement("ENABLE_DEFERRED_STATS_CREATION"), "the deprecation rests on this")
	})

	It("every variable the full sample writes is one istiod reads, a warned spec.istiod.env entry, or listed in ignoredSettings", func() {
		raw, err := os.ReadFile(filepath.Join(env.Root, "config", "samples", "mesh_v1alpha1_meshsettings_full.yaml"))
		Expect(err).NotTo(HaveOccurred())
		sample := &meshv1alpha1.MeshSettings{}
		Expect(yaml.UnmarshalStrict(raw, sample)).To(Succeed())
		// The default revision's istiod of this suite; the rest of the spec as shipped.
		spec := sample.Spec
		spec.Revision, spec.Target = "", nil
		spec.Namespaces = nil
		Expect(env.Client.Create(env.Ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "otel-collector-auth", Namespace: istioNS},
			Data:       map[string][]byte{"authorization": []byte("Bearer sample")},
		})).To(Succeed())
		DeferCleanup(func() {
			deleteSettings("env")
			Eventually(func() []string { return deploymentEnv("istiod") }, 20*time.Second, 50*time.Millisecond).
				ShouldNot(ContainElement(HavePrefix("PILOT_TRACE_SAMPLING=")), "deletion removes the operator's env entries")
			Expect(mainIstiod.Restart(env.Ctx, deploymentEnv("istiod"))).To(Succeed())
		})
		gen := applySpec("env", spec)
		var ms *meshv1alpha1.MeshSettings
		Eventually(func() bool {
			var ok bool
			ok, ms = applied("env", gen)
			c := meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionIstiodEnvApplied)
			return ok && c != nil && c.Status == "True" && c.ObservedGeneration == gen
		}, 30*time.Second, 50*time.Millisecond).Should(BeTrue())

		reads := collateralNames()
		ready := meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionReady)
		Expect(ready).NotTo(BeNil())
		var written []string
		for _, v := range deploymentEnv("istiod") {
			written = append(written, strings.SplitN(v, "=", 2)[0])
		}
		for _, e := range spec.Istiod.Env {
			Expect(written).To(ContainElement(e.Name), "spec.istiod.env entries are written as given")
		}
		for _, name := range written {
			if slices.Contains(reads, name) {
				continue
			}
			Expect(ready.Message).To(ContainSubstring("does not read env "+name+" (spec.istiod.env["+name+"])"),
				"%s is written, istiod does not read it, and the Ready condition does not warn", name)
		}
		By("PILOT_ENABLE_STATUS, in the full sample, is one of them")
		Expect(reads).NotTo(ContainElement("PILOT_ENABLE_STATUS"))
		Expect(ready.Message).To(ContainSubstring("does not read env PILOT_ENABLE_STATUS"))

		By("each typed feature flag is written or listed in status.ignoredSettings, never both")
		ignored := map[string]bool{}
		for _, s := range ms.Status.IgnoredSettings {
			ignored[s.Name] = true
			Expect(written).NotTo(ContainElement(s.Name))
		}
		for _, name := range []string{"ENABLE_ENHANCED_RESOURCE_SCOPING", "ENABLE_DEFERRED_CLUSTER_CREATION", "ENABLE_DEFERRED_STATS_CREATION",
			"ENABLE_INBOUND_RETRY_POLICY", "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"} {
			Expect(ignored).To(HaveKey(name), "istiod does not read %s", name)
		}
		Expect(written).To(ContainElement("ENABLE_ENHANCED_DESTINATIONRULE_MERGE"))

		By("the sample sources its header variable from a Secret: no header warning")
		Expect(ready.Message).NotTo(ContainSubstring("which istiod's container does not set"))

		By("istiod restarted with that env starts, and parses every variable it reads")
		Expect(mainIstiod.Restart(env.Ctx, deploymentEnv("istiod"))).To(Succeed())
		Expect(mainIstiod.Lines("Invalid environment variable")).To(BeEmpty())
		procEnv, err := mainIstiod.ProcessEnv(env.Ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(procEnv).To(HaveKeyWithValue("CLUSTER_ID", "eu-west-1-prod"))
		Expect(procEnv).NotTo(HaveKey("ENABLE_DEFERRED_STATS_CREATION"))
		Expect(procEnv).To(HaveKeyWithValue("OTEL_EXPORTER_AUTH_HEADER", "Bearer sample"))

		By("without the env entry, the header variable is set nowhere: the Ready condition says so")
		spec.Istiod.Env = slices.DeleteFunc(slices.Clone(spec.Istiod.Env), func(e meshv1alpha1.EnvVar) bool { return e.Name == "OTEL_EXPORTER_AUTH_HEADER" })
		gen = applySpec("env", spec)
		Eventually(func() string {
			ok, ms := applied("env", gen)
			if !ok {
				return ""
			}
			return meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionReady).Message
		}, 30*time.Second, 50*time.Millisecond).Should(ContainSubstring(
			"tracing provider otel-http: header authorization reads env OTEL_EXPORTER_AUTH_HEADER, which istiod's container does not set"))
	})
})
