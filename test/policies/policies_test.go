package policies

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Policies take effect a moment after they are created.
const policyDelay = 30 * time.Second

func mergePatch(c client.Client, obj client.Object, patch string) error {
	return c.Patch(testEnv.Ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
}

var _ = Describe("A MeshSettings outside the watched namespace", func() {
	It("is refused at admission, saying where it belongs", func() {
		elsewhere := testEnv.Namespace("elsewhere", nil)
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: elsewhere}}
		Eventually(func() error { return testEnv.Client.Create(testEnv.Ctx, ms.DeepCopy()) }).WithTimeout(policyDelay).Should(And(
			Satisfy(apierrors.IsForbidden),
			MatchError(ContainSubstring("MeshSettings "+elsewhere+"/mesh would be ignored: "+
				"the meshsettings operator watches only namespace istio-system (--control-plane-namespace); create it there")),
		))
	})

	It("is admitted in istio-system", func() {
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "admitted", Namespace: "istio-system"}}
		Expect(testEnv.Client.Create(testEnv.Ctx, ms, client.DryRunAll)).To(Succeed())
	})
})

var _ = Describe("The operator's ServiceAccount on namespaces", Ordered, func() {
	var ns *corev1.Namespace
	BeforeAll(func() {
		ns = &corev1.Namespace{}
		ns.Name = testEnv.Namespace("team", map[string]string{"team": "a"})
		// Wait until the policy acts, on a namespace of its own (a patch that
		// passes before then changes it; the policy judges changes only).
		probe := &corev1.Namespace{}
		probe.Name = testEnv.Namespace("probe", nil)
		try := 0
		Eventually(func() error {
			try++
			return mergePatch(asOperator, probe, fmt.Sprintf(`{"metadata":{"labels":{"probe":"%d"}}}`, try))
		}).WithTimeout(policyDelay).Should(MatchError(ContainSubstring("refused on " + probe.Name + ": probe")))
	})

	It("may not set another label, such as pod-security.kubernetes.io/enforce=privileged", func() {
		err := mergePatch(asOperator, ns, `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}}`)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err).To(MatchError(ContainSubstring("the meshsettings operator may change only the Istio labels of a namespace " +
			"(istio-injection, istio.io/rev, istio.io/dataplane-mode, istio.io/use-waypoint, istio.io/use-waypoint-namespace); " +
			"refused on " + ns.Name + ": pod-security.kubernetes.io/enforce")))
	})

	It("may not remove or change a label that is not Istio's", func() {
		Expect(mergePatch(asOperator, ns, `{"metadata":{"labels":{"team":null}}}`)).To(MatchError(ContainSubstring("refused on " + ns.Name + ": team")))
		Expect(mergePatch(asOperator, ns, `{"metadata":{"labels":{"team":"b"}}}`)).To(MatchError(ContainSubstring("refused on " + ns.Name + ": team")))
	})

	It("may not set another annotation", func() {
		Expect(mergePatch(asOperator, ns, `{"metadata":{"annotations":{"scheduler.alpha.kubernetes.io/node-selector":"pool=x"}}}`)).To(
			MatchError(ContainSubstring("may change only the mesh.meshsettings.io/owner annotation of a namespace; " +
				"refused on " + ns.Name + ": scheduler.alpha.kubernetes.io/node-selector")))
	})

	It("may not add a finalizer", func() {
		Expect(mergePatch(asOperator, ns, `{"metadata":{"finalizers":["example.com/hold"]}}`)).To(
			MatchError(ContainSubstring("may change only labels and its annotation of namespace " + ns.Name)))
	})

	It("may set, change and remove the Istio labels and its owner annotation, by server-side apply as it does", func() {
		apply := `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"` + ns.Name + `",` +
			`"labels":{"istio.io/rev":"canary","istio.io/dataplane-mode":"ambient"},"annotations":{"mesh.meshsettings.io/owner":"istio-system/mesh"}}}`
		Expect(asOperator.Patch(testEnv.Ctx, ns, client.RawPatch(types.ApplyPatchType, []byte(apply)), client.FieldOwner("meshsettings-operator"))).To(Succeed())
		Expect(mergePatch(asOperator, ns, `{"metadata":{"labels":{"istio.io/rev":"stable"}}}`)).To(Succeed())
		release := `{"metadata":{"labels":{"istio.io/rev":null,"istio.io/dataplane-mode":null},"annotations":{"mesh.meshsettings.io/owner":null}}}`
		Expect(mergePatch(asOperator, ns, release)).To(Succeed())
		got := &corev1.Namespace{}
		Expect(testEnv.Client.Get(testEnv.Ctx, client.ObjectKeyFromObject(ns), got)).To(Succeed())
		Expect(got.Labels).To(HaveKeyWithValue("team", "a"))
		Expect(got.Labels).NotTo(HaveKey("pod-security.kubernetes.io/enforce"))
	})

	It("leaves everyone else alone", func() {
		Expect(mergePatch(testEnv.Client, ns, `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged","team":"b"}}}`)).To(Succeed())
	})
})

var _ = Describe("The operator's ServiceAccount in istio-system (RBAC resourceNames)", Ordered, func() {
	deployment := func(name string) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "istio/pilot:1.28.1"}}},
				},
			},
		}
	}
	configMap := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system"}, Data: map[string]string{"k": "v"}}
	}
	BeforeAll(func() {
		for _, o := range []client.Object{configMap("istio"), configMap("istio-ca-root-cert"), deployment("istiod"), deployment("istio-ingressgateway")} {
			Expect(testEnv.Client.Create(testEnv.Ctx, o)).To(Succeed())
		}
	})

	It("patches the mesh ConfigMap and istiod, which the install names", func() {
		Expect(mergePatch(asOperator, configMap("istio"), `{"data":{"mesh":"{}"}}`)).To(Succeed())
		Expect(mergePatch(asOperator, deployment("istiod"), `{"metadata":{"annotations":{"mesh.meshsettings.io/managed-env":"[]"}}}`)).To(Succeed())
	})

	It("may not patch or delete another ConfigMap, such as istio-ca-root-cert", func() {
		Expect(apierrors.IsForbidden(mergePatch(asOperator, configMap("istio-ca-root-cert"), `{"data":{"root-cert.pem":"x"}}`))).To(BeTrue())
		Expect(apierrors.IsForbidden(asOperator.Delete(testEnv.Ctx, configMap("istio-ca-root-cert")))).To(BeTrue())
	})

	It("may not patch another Deployment, such as the ingress gateway", func() {
		err := mergePatch(asOperator, deployment("istio-ingressgateway"), `{"spec":{"template":{"spec":{"containers":[{"name":"discovery","image":"evil/image"}]}}}}`)
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	})

	It("still reads and creates what it needs", func() {
		Expect(asOperator.List(testEnv.Ctx, &corev1.ConfigMapList{}, client.InNamespace("istio-system"))).To(Succeed())
		Expect(asOperator.List(testEnv.Ctx, &appsv1.DeploymentList{}, client.InNamespace("istio-system"))).To(Succeed())
		Expect(asOperator.Create(testEnv.Ctx, configMap("istio-new"), client.DryRunAll)).To(Succeed())
	})
})

// config/rollout-restart adds to config/default what spec.proxyRestart:
// RolloutRestart needs, and nothing else: without it the operator may not
// touch a Deployment outside istio-system; with it, it may read one and
// restart it as `kubectl rollout restart` does, but not delete it.
var _ = Describe("config/rollout-restart", Ordered, Serial, func() {
	var shop string
	cart := func() *appsv1.Deployment {
		labels := map[string]string{"app": "cart"}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: shop},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop/cart:1"}}},
				},
			},
		}
	}
	const restart = `{"metadata":{"annotations":{"mesh.meshsettings.io/restarted-for":"2026-12-03T12:00:00Z"}},` +
		`"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-12-03T12:00:05Z"}}}}}`
	var extra string
	BeforeAll(func() {
		shop = testEnv.Namespace("shop", nil)
		Expect(testEnv.Client.Create(testEnv.Ctx, cart())).To(Succeed())

		overlay, err := testEnv.Kubectl("kustomize", filepath.Join(testEnv.Root, "config", "rollout-restart"))
		Expect(err).NotTo(HaveOccurred(), overlay)
		base, err := testEnv.Kubectl("kustomize", filepath.Join(testEnv.Root, "config", "default"))
		Expect(err).NotTo(HaveOccurred(), base)
		var added []string
		for _, doc := range strings.Split(overlay, "\n---\n") {
			if !strings.Contains(base, strings.TrimPrefix(doc, "---\n")) {
				added = append(added, doc)
			}
		}
		Expect(added).To(HaveLen(2), "config/rollout-restart adds exactly a ClusterRole and its binding to config/default")
		extra = strings.Join(added, "\n---\n")
		Expect(extra).To(ContainSubstring("kind: ClusterRole\n"))
		Expect(extra).To(ContainSubstring("kind: ClusterRoleBinding\n"))
	})
	AfterAll(func() {
		out, err := testEnv.KubectlIn(extra, "delete", "--ignore-not-found", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
	})

	It("config/default alone: the operator may not read or patch a Deployment of an application namespace", func() {
		Expect(apierrors.IsForbidden(asOperator.Get(testEnv.Ctx, client.ObjectKeyFromObject(cart()), &appsv1.Deployment{}))).To(BeTrue())
		Expect(apierrors.IsForbidden(mergePatch(asOperator, cart(), restart))).To(BeTrue())
	})

	It("with config/rollout-restart: it reads and restarts it, and may not delete it", func() {
		out, err := testEnv.KubectlIn(extra, "apply", "--server-side", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func() error { return mergePatch(asOperator, cart(), restart) }).WithTimeout(policyDelay).Should(Succeed())
		got := &appsv1.Deployment{}
		Expect(asOperator.Get(testEnv.Ctx, client.ObjectKeyFromObject(cart()), got)).To(Succeed())
		Expect(got.Spec.Template.Annotations).To(HaveKeyWithValue("kubectl.kubernetes.io/restartedAt", "2026-12-03T12:00:05Z"))
		Expect(apierrors.IsForbidden(asOperator.Delete(testEnv.Ctx, cart()))).To(BeTrue())
		Expect(apierrors.IsForbidden(asOperator.List(testEnv.Ctx, &appsv1.DeploymentList{}, client.InNamespace(shop)))).To(BeTrue())
	})
})

// The proxy report reads pods, as metadata, in every namespace; config/
// grants get, list and watch only.
var _ = Describe("The operator's ServiceAccount and pods", func() {
	It("lists pods in every namespace, and may not patch or delete one", func() {
		ns := testEnv.Namespace("pods", nil)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop/web:1"}}}}
		Expect(testEnv.Client.Create(testEnv.Ctx, pod)).To(Succeed())
		pods := &metav1.PartialObjectMetadataList{}
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		Expect(asOperator.List(testEnv.Ctx, pods)).To(Succeed())
		Expect(pods.Items).NotTo(BeEmpty())
		Expect(apierrors.IsForbidden(mergePatch(asOperator, pod, `{"metadata":{"labels":{"x":"y"}}}`))).To(BeTrue())
		Expect(apierrors.IsForbidden(asOperator.Delete(testEnv.Ctx, pod))).To(BeTrue())
	})
})
