package realistiod

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/controllers"
	"github.com/meshsettings/meshsettings-operator/test/harness"
	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
)

func TestRealIstiod(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Real istiod suite")
}

const (
	istioNS = "istio-system"
	// The pinned istiod is 1.31-dev; the image tag tells the operator which
	// release it talks to.
	istiodImage = "docker.io/istio/pilot:1.31.0"
	// What the Helm chart's mesh template writes (see istiod-in-the-loop.md).
	helmMesh = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: cluster.local
`
)

var (
	env       *harness.Env
	clientset *kubernetes.Clientset
	binary    string
	// mainIstiod runs the default revision for the whole suite.
	mainIstiod *istiod.Istiod
)

var _ = BeforeSuite(func() {
	var err error
	env = harness.Start()
	clientset, err = kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())

	By("finding istiod (ISTIOD_BINARY or hack/istiod.sh, which builds it once)")
	binary, err = istiod.Binary(env.Root)
	Expect(err).NotTo(HaveOccurred())

	env.RunManager(controllers.Setup, ctrl.Options{Cache: controllers.CacheOptions("")})

	Expect(env.Client.Create(env.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: istioNS}})).To(Succeed())
	installIstio("")
	mainIstiod = startIstiod("", nil)
	report("istiod ready time (start -> /ready 200), default revision: %s", mainIstiod.ReadyAfter.Round(time.Millisecond))
})

// installIstio creates what Helm installs for a revision ("" = default):
// the mesh ConfigMap with the chart's template and the istiod Deployment,
// both written by field manager helm.
func installIstio(revision string) {
	GinkgoHelper()
	cmName, depName := "istio", "istiod"
	if revision != "" {
		cmName, depName = "istio-"+revision, "istiod-"+revision
	}
	helm := client.FieldOwner("helm")
	Expect(env.Client.Create(env.Ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cmName, Namespace: istioNS},
		Data:       map[string]string{"mesh": helmMesh, "meshNetworks": "networks: {}\n"},
	}, helm)).To(Succeed())
	labels := map[string]string{"app": "istiod", "istio.io/rev": orDefault(revision)}
	Expect(env.Client.Create(env.Ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: depName, Namespace: istioNS, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "istiod",
					Containers: []corev1.Container{{
						Name:  "discovery",
						Image: istiodImage,
						Env: []corev1.EnvVar{
							{Name: "REVISION", Value: orDefault(revision)},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "KUBECONFIG", Value: "/var/run/secrets/remote/config"},
						},
					}},
				},
			},
		},
	}, helm)).To(Succeed())
}

func orDefault(revision string) string {
	if revision == "" {
		return "default"
	}
	return revision
}

// startIstiod runs istiod for a revision and stops it when the enclosing
// node ends.
func startIstiod(revision string, extraEnv []string) *istiod.Istiod {
	GinkgoHelper()
	By("starting the real istiod for revision " + orDefault(revision))
	i, err := istiod.Start(env.Ctx, istiod.Options{
		Binary: binary, Kubeconfig: env.Kubeconfig, Namespace: istioNS, Revision: revision, Env: extraEnv,
		LogPath: fmt.Sprintf("%s/istiod-%s-%d.log", os.TempDir(), orDefault(revision), GinkgoParallelProcess()),
	})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { Expect(i.Stop()).To(Succeed()) })
	return i
}

// deploymentEnv is the env of a new istiod pod of the Deployment, resolved
// as the kubelet would (PILOT_TRACE_SAMPLING, Secret-sourced variables...),
// minus the variables the out-of-cluster process must not take (its
// kubeconfig and identity come from the harness).
func deploymentEnv(name string) []string {
	GinkgoHelper()
	dep := &appsv1.Deployment{}
	Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: name}, dep)).To(Succeed())
	vars, err := istiod.ContainerEnv(env.Ctx, clientset, dep, "discovery")
	Expect(err).NotTo(HaveOccurred())
	out := []string{} // not nil: Restart keeps the old env on nil
	for _, v := range vars {
		switch strings.SplitN(v, "=", 2)[0] {
		case "KUBECONFIG", "POD_NAME", "POD_NAMESPACE", "REVISION":
			continue
		}
		out = append(out, v)
	}
	return out
}

// applySpec creates or updates MeshSettings name in istio-system with spec
// and returns the generation to wait for.
func applySpec(name string, spec meshv1alpha1.MeshSettingsSpec) int64 {
	GinkgoHelper()
	ms := &meshv1alpha1.MeshSettings{}
	err := env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: name}, ms)
	if apierrors.IsNotFound(err) {
		ms = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: istioNS}, Spec: spec}
		Expect(env.Client.Create(env.Ctx, ms)).To(Succeed())
		return ms.Generation
	}
	Expect(err).NotTo(HaveOccurred())
	ms.Spec = spec
	Expect(env.Client.Update(env.Ctx, ms)).To(Succeed())
	return ms.Generation
}

// applied reports whether the MeshSettings reports its mesh document
// written for generation gen.
func applied(name string, gen int64) (bool, *meshv1alpha1.MeshSettings) {
	ms := &meshv1alpha1.MeshSettings{}
	if err := env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: name}, ms); err != nil {
		return false, nil
	}
	c := meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionMeshConfigApplied)
	return ms.Status.ObservedGeneration == gen && c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == gen, ms
}

// deleteSettings deletes a MeshSettings and waits until the finalizer has
// restored the targets and let it go.
func deleteSettings(name string) {
	GinkgoHelper()
	ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: istioNS}}
	Expect(client.IgnoreNotFound(env.Client.Delete(env.Ctx, ms))).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(env.Ctx, client.ObjectKeyFromObject(ms), ms))
	}, 30*time.Second, 50*time.Millisecond).Should(BeTrue(), "MeshSettings %s was not finalized", name)
}

// meshDocument is the mesh key of a ConfigMap in istio-system.
func meshDocument(name string) string {
	GinkgoHelper()
	cm := &corev1.ConfigMap{}
	Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: name}, cm)).To(Succeed())
	return cm.Data["mesh"]
}

// missingLeaves is istiod.MissingLeaves of a ConfigMap's document against
// the given istiod's effective config.
func missingLeaves(i *istiod.Istiod, cmName string) ([]string, error) {
	doc := meshDocument(cmName)
	eff, err := i.EffectiveMesh(context.Background())
	if err != nil {
		return nil, err
	}
	return istiod.MissingLeaves(doc, eff)
}

func specFromYAML(s string) meshv1alpha1.MeshSettingsSpec {
	GinkgoHelper()
	var spec meshv1alpha1.MeshSettingsSpec
	Expect(yaml.UnmarshalStrict([]byte(s), &spec)).To(Succeed(), s)
	return spec
}

// report prints a figure in the suite's report (and on stdout) so the
// numbers reach whoever runs make test.
func report(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	AddReportEntry(msg, ReportEntryVisibilityAlways)
	fmt.Fprintln(os.Stdout, "\nREAL-ISTIOD: "+msg)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	idx := int(float64(len(s)-1) * p)
	return s[idx]
}

// currentGeneration is a MeshSettings' metadata.generation.
func currentGeneration(name string) int64 {
	GinkgoHelper()
	ms := &meshv1alpha1.MeshSettings{}
	Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: name}, ms)).To(Succeed())
	return ms.Generation
}

// deploymentEnvEntry is one env entry of a Deployment's discovery container.
func deploymentEnvEntry(deployment, name string) corev1.EnvVar {
	GinkgoHelper()
	dep := &appsv1.Deployment{}
	Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: deployment}, dep)).To(Succeed())
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == "discovery" {
			for _, e := range c.Env {
				if e.Name == name {
					return e
				}
			}
		}
	}
	Fail("no env " + name + " on " + deployment)
	return corev1.EnvVar{}
}
