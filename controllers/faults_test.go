package controllers

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// The fault suite of issue 17: what status shows while a fault lasts, and the
// end state, against a real API server with the operator's manager running.

// warnings counts the events of reason about MeshSettings name, series included.
func eventCount(namespace, name, reason string) int {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	n := 0
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Name == name {
			n++
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
		}
	}
	return n
}

func eventNotes(namespace, name, reason string) []string {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(namespace))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Name == name {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func configMap(namespace string) *corev1.ConfigMap {
	GinkgoHelper()
	cm := &corev1.ConfigMap{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "istio"}, cm)).To(Succeed())
	return cm
}

func operatorOwns(obj client.Object) bool {
	for _, f := range obj.GetManagedFields() {
		if f.Manager == FieldManager {
			return true
		}
	}
	return false
}

func expectGone(ms *meshv1alpha1.MeshSettings) {
	GinkgoHelper()
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}))
	}, timeout, interval).Should(BeTrue(), "deletion must complete")
}

func expectRejected(cp string, mention ...string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		s := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
		g.Expect(s).NotTo(BeNil())
		g.Expect(s.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(s.Reason).To(Equal(meshv1alpha1.ReasonMeshDocumentRejected))
		for _, m := range mention {
			g.Expect(s.Message).To(ContainSubstring(m))
		}
		a := condition(cp, "mesh", meshv1alpha1.ConditionMeshConfigApplied)
		g.Expect(a).NotTo(BeNil())
		g.Expect(a.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(a.Reason).To(Equal(meshv1alpha1.ReasonMeshDocumentRejected))
		r := condition(cp, "mesh", meshv1alpha1.ConditionReady)
		g.Expect(r).NotTo(BeNil())
		g.Expect(r.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(r.Reason).To(Equal(meshv1alpha1.ReasonMeshDocumentRejected))
		g.Expect(condition(cp, "mesh", meshv1alpha1.ConditionReconciling)).To(BeNil())
	}, timeout, interval).Should(Succeed())
}

var _ = Describe("Faults (issue 17)", func() {
	Describe("1: a mesh document istiod would reject, written by another manager", Ordered, func() {
		const garbage = "outboundTrafficPolicy: [mode: REGISTRY_ONLY\n"
		var (
			cp, app string
			ms      *meshv1alpha1.MeshSettings
		)

		BeforeAll(func() {
			cp = controlPlane(true, "docker.io/istio/pilot:1.28.1")
			app = appNamespace(nil)
			ms = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec(app)}
			Expect(k8sClient.Create(ctx, ms)).To(Succeed())
			eventuallyReady(cp, "mesh")
		})

		It("stalls on a document that is not YAML, writes nothing and emits one event", func() {
			setConfigMapMesh(cp, garbage)
			expectRejected(cp, fmt.Sprintf("ConfigMap %s/istio", cp), `key "mesh"`, "not a valid YAML mapping")
			Consistently(configMapMesh, 3*time.Second, interval).WithArguments(cp).Should(Equal(garbage), "nothing may be written")
			Expect(eventCount(cp, "mesh", meshv1alpha1.ReasonMeshDocumentRejected)).To(Equal(1), "one event per transition")
		})

		It("stalls on a document of the wrong type (a list where istiod wants a mapping) and writes nothing", func() {
			wrongType := "- outboundTrafficPolicy\n- trustDomain\n"
			setConfigMapMesh(cp, wrongType)
			expectRejected(cp, "not a valid YAML mapping")
			Consistently(configMapMesh, 2*time.Second, interval).WithArguments(cp).Should(Equal(wrongType))
		})

		It("recovers when the other manager mends the document (the ConfigMap's change brings it back)", func() {
			setConfigMapMesh(cp, helmMesh)
			eventuallyReady(cp, "mesh")
			Expect(meshDoc(cp, "istio")["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
			Expect(condition(cp, "mesh", meshv1alpha1.ConditionStalled)).To(BeNil())
		})

		It("still completes a deletion: leaves the document, releases the rest and says so", func() {
			setConfigMapMesh(cp, garbage)
			expectRejected(cp)
			Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
			expectGone(ms)
			cm := configMap(cp)
			Expect(cm.Data["mesh"]).To(Equal(garbage))
			Expect(cm.Annotations).NotTo(HaveKey(render.ManagedKeysAnnotation))
			Expect(cm.Annotations).NotTo(HaveKey(render.ReplacedValuesAnnotation))
			Expect(operatorOwns(cm)).To(BeFalse(), "the operator's field ownership of the ConfigMap is dropped")
			Expect(istiodEnv(cp)).To(Equal(helmEnv), "istiod's env is restored")
			Expect(nsLabels(app)).NotTo(HaveKey(render.LabelRevision))
			Eventually(eventNotes, timeout, interval).WithArguments(cp, "mesh", "CleanupIncomplete").Should(
				ContainElement(And(ContainSubstring(fmt.Sprintf("ConfigMap %s/istio", cp)), ContainSubstring("outboundTrafficPolicy"))))
		})
	})

	It("2: a record removed by a replace (ConfigMap and istiod) is not taken for values the operator replaced; deletion removes what the operator wrote", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		app := appNamespace(nil)
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec(app)}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")

		By("kubectl replace of the ConfigMap without the record annotations")
		cm := configMap(cp)
		cm.Annotations = nil
		cm.ManagedFields = nil
		Expect(k8sClient.Update(ctx, cm, client.FieldOwner("kubectl-replace"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(configMap(cp).Annotations).To(HaveKey(render.ManagedKeysAnnotation))
		}, timeout, interval).Should(Succeed(), "the operator records its keys again")
		Eventually(eventCount, timeout, interval).WithArguments(cp, "mesh", "RecordDamaged").Should(Equal(1))
		eventuallyReady(cp, "mesh")
		replaced, err := render.DecodeReplaced(configMap(cp).Annotations[render.ReplacedValuesAnnotation])
		Expect(err).NotTo(HaveOccurred())
		Expect(replaced).NotTo(HaveKey(render.Path("outboundTrafficPolicy")), "its own value is not a value it replaced")
		Expect(replaced).NotTo(HaveKey(render.Path("enableTracing")))

		By("the same for istiod: replaced without the operator's env record")
		d := &appsv1.Deployment{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istiod"}, d)).To(Succeed())
		Expect(d.Annotations).To(HaveKey(ManagedEnvAnnotation))
		delete(d.Annotations, ManagedEnvAnnotation)
		delete(d.Annotations, ReplacedEnvAnnotation)
		Expect(k8sClient.Update(ctx, d, client.FieldOwner("kubectl-replace"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istiod"}, d)).To(Succeed())
			g.Expect(d.Annotations).To(HaveKey(ManagedEnvAnnotation))
			g.Expect(d.Annotations).NotTo(HaveKey(ReplacedEnvAnnotation), "its own entries are not entries it replaced")
		}, timeout, interval).Should(Succeed())

		By("a damaged record: reported, every key kept, the record rewritten")
		cm = configMap(cp)
		cm.Annotations[render.ManagedKeysAnnotation] = "outboundTrafficPolicy"
		Expect(k8sClient.Update(ctx, cm, client.FieldOwner("kubectl-edit"))).To(Succeed())
		Eventually(eventCount, timeout, interval).WithArguments(cp, "mesh", "RecordDamaged").Should(Equal(2))
		Eventually(func(g Gomega) {
			_, err := render.DecodeManaged(configMap(cp).Annotations[render.ManagedKeysAnnotation])
			g.Expect(err).NotTo(HaveOccurred())
		}, timeout, interval).Should(Succeed())
		eventuallyReady(cp, "mesh")

		By("deletion removes the operator's keys and keeps Helm's")
		Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
		expectGone(ms)
		doc := meshDoc(cp, "istio")
		Expect(doc).NotTo(HaveKey("outboundTrafficPolicy"))
		Expect(doc).NotTo(HaveKey("enableTracing"))
		Expect(doc).NotTo(HaveKey("extensionProviders"))
		Expect(doc).To(HaveKeyWithValue("trustDomain", "cluster.local"))
		Expect(doc["defaultConfig"]).To(HaveKeyWithValue("discoveryAddress", "istiod.istio-system.svc:15012"))
		Expect(doc["defaultConfig"]).NotTo(HaveKey("drainDuration"))
		Expect(istiodEnv(cp)).To(Equal(helmEnv), "the env entries it wrote are gone, Helm's are as they were")
	})

	It("3: warns about discoverySelectors once, with and without label conflicts, however many passes run", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		key := "f3-" + rand.String(5)
		conflicting := appNamespace(map[string]string{key: "yes"})
		spec := meshv1alpha1.MeshSettingsSpec{
			DiscoverySelectors: []meshv1alpha1.LabelSelector{{MatchLabels: map[string]string{"not-" + key: "x"}}},
			Namespaces: []meshv1alpha1.NamespaceRule{{
				Selector: &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{key: "yes"}}, Dataplane: meshv1alpha1.DataplaneSidecar,
			}},
		}
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: spec}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")
		Expect(condition(cp, "mesh", meshv1alpha1.ConditionReady).Message).To(ContainSubstring("warning: discoverySelectors do not select"))
		Eventually(eventCount, timeout, interval).WithArguments(cp, "mesh", "DiscoverySelectors").Should(Equal(1))
		poke := func(i int) { // a change of the ConfigMap runs a pass that changes nothing
			cm := configMap(cp)
			cm.Data["meshNetworks"] = fmt.Sprintf("networks: {} # %d", i)
			Expect(k8sClient.Update(ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		}
		for i := range 3 {
			poke(i)
		}
		Consistently(eventCount, 2*time.Second, interval).WithArguments(cp, "mesh", "DiscoverySelectors").Should(Equal(1))

		By("with a label held by another manager")
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: conflicting}, ns)).To(Succeed())
		ns.Labels[render.LabelInjection] = render.InjectionEnabled
		Expect(k8sClient.Update(ctx, ns, client.FieldOwner("kubectl-label"))).To(Succeed())
		Eventually(func(g Gomega) {
			s := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
			g.Expect(s).NotTo(BeNil())
			g.Expect(s.Reason).To(Equal(meshv1alpha1.ReasonLabelConflict))
			g.Expect(s.Message).To(ContainSubstring("warning: discoverySelectors do not select"))
		}, timeout, interval).Should(Succeed())
		for i := range 3 {
			poke(10 + i)
		}
		Consistently(eventCount, 2*time.Second, interval).WithArguments(cp, "mesh", "DiscoverySelectors").Should(Equal(1))
		Expect(eventCount(cp, "mesh", meshv1alpha1.ReasonLabelConflict)).To(Equal(1))
	})

	It("3: says Reconciling with the new observedGeneration before labeling many namespaces", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		key := "many-" + rand.String(5)
		for range longPass + 10 {
			appNamespace(map[string]string{key: "yes"})
		}
		rule := meshv1alpha1.NamespaceRule{Selector: &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{key: "yes"}}, Dataplane: meshv1alpha1.DataplaneSidecar}
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp},
			Spec: meshv1alpha1.MeshSettingsSpec{Namespaces: []meshv1alpha1.NamespaceRule{rule}}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")

		w, err := testEnv.Dynamic().Resource(meshv1alpha1.GroupVersion.WithResource("meshsettings")).Namespace(cp).
			Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=mesh"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
		ms.Spec.Namespaces[0].Dataplane = meshv1alpha1.DataplaneAmbient
		Expect(k8sClient.Update(ctx, ms)).To(Succeed())

		var seen []string
		sawReconciling := false
		Eventually(func() bool {
			select {
			case ev := <-w.ResultChan():
				u, ok := ev.Object.(runtime.Unstructured)
				if !ok {
					return false
				}
				var got meshv1alpha1.MeshSettings
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &got)).To(Succeed())
				if got.Status.ObservedGeneration != 2 {
					return false
				}
				rec := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionReconciling)
				ready := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionReady)
				seen = append(seen, fmt.Sprintf("reconciling=%v ready=%s/%s", rec != nil, ready.Status, ready.Reason))
				if rec != nil && rec.Status == metav1.ConditionTrue && ready.Status == metav1.ConditionFalse {
					sawReconciling = true
				}
				return ready.Status == metav1.ConditionTrue
			default:
				return false
			}
		}, timeout, 10*time.Millisecond).Should(BeTrue())
		Expect(sawReconciling).To(BeTrue(), "status of generation 2 seen: %v", seen)
		Expect(seen[0]).To(HavePrefix("reconciling=true ready=False/Progressing"), "the first status of generation 2: %v", seen)
	})

	It("7: a spec that can never fit a ConfigMap is InvalidSpec, and nothing is written", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		huge := strings.Repeat("x", render.MaxConfigMapData+1024)
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: meshv1alpha1.MeshSettingsSpec{
			MeshConfig: map[string]apiextensionsv1.JSON{"ingressClass": {Raw: []byte(`"` + huge + `"`)}},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			s := condition(cp, "mesh", meshv1alpha1.ConditionStalled)
			g.Expect(s).NotTo(BeNil())
			g.Expect(s.Reason).To(Equal(meshv1alpha1.ReasonInvalidSpec))
			g.Expect(s.Message).To(ContainSubstring("spec.meshConfig"))
			g.Expect(s.Message).To(ContainSubstring("1 MiB"))
			r := condition(cp, "mesh", meshv1alpha1.ConditionReady)
			g.Expect(r.Reason).To(Equal(meshv1alpha1.ReasonInvalidSpec))
		}, timeout, interval).Should(Succeed())
		Expect(configMapMesh(cp)).To(Equal(helmMesh))
		Expect(operatorOwns(configMap(cp))).To(BeFalse())
		Consistently(eventCount, 2*time.Second, interval).WithArguments(cp, "mesh", meshv1alpha1.ReasonInvalidSpec).Should(Equal(1))

		By("deletion of a MeshSettings that wrote nothing completes")
		Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
		expectGone(ms)
		Expect(configMapMesh(cp)).To(Equal(helmMesh))
	})

	It("3: a write the API server refuses is ApplyFailed once, and a deletion that must retry says why in status", func() {
		cp := controlPlane(true, "docker.io/istio/pilot:1.28.1")
		app := appNamespace(nil)
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: sampleSpec(app)}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, "mesh")

		By("Helm makes the ConfigMap immutable; the spec changes")
		cm := configMap(cp)
		cm.Immutable = ptr.To(true)
		Expect(k8sClient.Update(ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), ms)).To(Succeed())
		ms.Spec.OutboundTrafficPolicy.Mode = meshv1alpha1.OutboundAllowAny
		Expect(k8sClient.Update(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			a := condition(cp, "mesh", meshv1alpha1.ConditionMeshConfigApplied)
			g.Expect(a).NotTo(BeNil())
			g.Expect(a.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(a.Reason).To(Equal(meshv1alpha1.ReasonApplyFailed))
			g.Expect(a.Message).To(ContainSubstring(fmt.Sprintf("applying ConfigMap %s/istio", cp)))
			r := condition(cp, "mesh", meshv1alpha1.ConditionReconciling)
			g.Expect(r).NotTo(BeNil())
			g.Expect(r.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(condition(cp, "mesh", meshv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
		}, timeout, interval).Should(Succeed())
		Consistently(eventCount, 3*time.Second, interval).WithArguments(cp, "mesh", meshv1alpha1.ReasonApplyFailed).Should(Equal(1),
			"retries with the same error are one transition")

		By("deleting: releasing the keys fails, and the status says so while it retries")
		Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
		Eventually(func(g Gomega) {
			got := &meshv1alpha1.MeshSettings{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
			r := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionReconciling)
			g.Expect(r).NotTo(BeNil())
			g.Expect(r.Message).To(ContainSubstring("Deleting"))
			g.Expect(r.Message).To(ContainSubstring(fmt.Sprintf("ConfigMap %s/istio", cp)))
		}, timeout, interval).Should(Succeed())

		By("Helm replaces the ConfigMap with a mutable one: the deletion completes")
		old := configMap(cp)
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: cp, Annotations: old.Annotations},
			Data:       old.Data,
		}, client.FieldOwner("helm"))).To(Succeed())
		expectGone(ms)
	})
})
