package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// planCounters reads the namespace planning metrics of one MeshSettings:
// namespaces evaluated and full walks, over all its passes.
func planCounters(key string) (evaluated, walks float64) {
	m := &dto.Metric{}
	Expect(namespacesEvaluated.WithLabelValues(key).Write(m)).To(Succeed())
	evaluated = m.GetCounter().GetValue()
	m = &dto.Metric{}
	Expect(namespaceWalks.WithLabelValues(key).Write(m)).To(Succeed())
	return evaluated, m.GetCounter().GetValue()
}

// settled waits until no MeshSettings of the suite is being deleted (a
// departure changes the set of MeshSettings, which rightly walks every
// namespace) and the counters of key stand still.
func settled(key string) (evaluated, walks float64) {
	Eventually(func(g Gomega) {
		var all meshv1alpha1.MeshSettingsList
		g.Expect(k8sClient.List(ctx, &all)).To(Succeed())
		for i := range all.Items {
			g.Expect(all.Items[i].DeletionTimestamp).To(BeNil(), "MeshSettings %s is being deleted", all.Items[i].Name)
		}
	}, timeout, interval).Should(Succeed())
	var last [2]float64
	Eventually(func() bool {
		e, w := planCounters(key)
		still := last == [2]float64{e, w}
		last = [2]float64{e, w}
		return still
	}, timeout, time.Second).Should(BeTrue())
	return last[0], last[1]
}

func selectedLabeled(namespace, name string) (int32, int32) {
	ms := &meshv1alpha1.MeshSettings{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ms)).To(Succeed())
	if ms.Status.Namespaces == nil {
		return -1, -1
	}
	return ms.Status.Namespaces.Selected, ms.Status.Namespaces.Labeled
}

// updateSpec changes the spec, retrying while the operator writes the status.
func updateSpec(ms *meshv1alpha1.MeshSettings, change func(*meshv1alpha1.MeshSettingsSpec)) {
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), ms); err != nil {
			return err
		}
		change(&ms.Spec)
		return k8sClient.Update(ctx, ms)
	}, timeout, interval).Should(Succeed())
}

var _ = Describe("incremental namespace planning (issue 18)", Ordered, func() {
	const total, selected = 300, 100
	var cp, key, counterKey string
	var outside []string
	var ms *meshv1alpha1.MeshSettings

	BeforeAll(func() {
		cp = controlPlane(true, "docker.io/istio/pilot:1.28.1")
		key = "inc-" + rand.String(5)
		for i := range total {
			v := "no"
			if i < selected {
				v = "yes"
			}
			n := appNamespace(map[string]string{key: v})
			if v == "no" {
				outside = append(outside, n)
			}
		}
		ms = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: cp}, Spec: meshv1alpha1.MeshSettingsSpec{
			Namespaces: []meshv1alpha1.NamespaceRule{{
				Selector:  &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{key: "yes"}},
				Dataplane: meshv1alpha1.DataplaneSidecar,
			}},
		}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		counterKey = cp + "/mesh"
		eventuallyReady(cp, "mesh")
		Eventually(func() [2]int32 { s, l := selectedLabeled(cp, "mesh"); return [2]int32{s, l} }, timeout, interval).
			Should(Equal([2]int32{selected, selected}))
	})

	It("walks every namespace on its first pass", func() {
		evaluated, walks := settled(counterKey)
		Expect(walks).To(BeNumerically(">=", 1))
		Expect(evaluated).To(BeNumerically(">=", total))
	})

	It("re-plans only the namespace of an event: a namespace relabeled into the selection", func() {
		evaluated0, walks0 := settled(counterKey)
		n := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: outside[0]}, n)).To(Succeed())
		n.Labels[key] = "yes"
		Expect(k8sClient.Update(ctx, n)).To(Succeed())
		Eventually(func() map[string]string { return nsLabels(outside[0]) }, timeout, interval).Should(HaveKeyWithValue(render.LabelRevision, "default"))
		Eventually(func() [2]int32 { s, l := selectedLabeled(cp, "mesh"); return [2]int32{s, l} }, timeout, interval).
			Should(Equal([2]int32{selected + 1, selected + 1}))
		evaluated, walks := settled(counterKey)
		Expect(walks).To(Equal(walks0), "a namespace event must not walk every namespace")
		// The user's change, then the operator's own write: the same namespace twice.
		Expect(evaluated-evaluated0).To(BeNumerically("<=", 3), "namespaces evaluated for one namespace event")
	})

	It("re-plans only the namespaces of a burst of creations, and counts them exactly", func() {
		evaluated0, walks0 := settled(counterKey)
		burst := make([]string, 0, 20)
		for range 20 {
			burst = append(burst, appNamespace(map[string]string{key: "yes"}))
		}
		for _, n := range burst {
			Eventually(func() map[string]string { return nsLabels(n) }, timeout, interval).Should(HaveKeyWithValue(render.LabelRevision, "default"))
		}
		Eventually(func() [2]int32 { s, l := selectedLabeled(cp, "mesh"); return [2]int32{s, l} }, timeout, interval).
			Should(Equal([2]int32{selected + 21, selected + 21}))
		evaluated, walks := settled(counterKey)
		Expect(walks).To(Equal(walks0))
		Expect(evaluated - evaluated0).To(BeNumerically("<=", 2*20+5))
	})

	It("re-plans only a rule's members when only its labels change, and releases a namespace deleted meanwhile from the counts", func() {
		evaluated0, walks0 := settled(counterKey)
		Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: outside[0]}})).To(Succeed())
		updateSpec(ms, func(s *meshv1alpha1.MeshSettingsSpec) { s.Namespaces[0].Dataplane = meshv1alpha1.DataplaneAmbient })
		eventuallyReady(cp, "mesh")
		Eventually(func() [2]int32 { s, l := selectedLabeled(cp, "mesh"); return [2]int32{s, l} }, timeout, interval).
			Should(Equal([2]int32{selected + 20, selected + 20}))
		evaluated, walks := settled(counterKey)
		Expect(walks).To(Equal(walks0), "a change of labels alone must not walk every namespace")
		// Each member once for the spec change and once for its write; never the other 199.
		Expect(evaluated - evaluated0).To(BeNumerically("<=", 2*(selected+21)+5))
		var list corev1.NamespaceList
		Expect(k8sClient.List(ctx, &list, client.MatchingLabels{key: "yes"})).To(Succeed())
		for _, n := range list.Items {
			if n.DeletionTimestamp.IsZero() {
				Expect(n.Labels).To(HaveKeyWithValue(render.LabelDataplaneMode, render.DataplaneModeAmbient), n.Name)
				Expect(n.Labels).NotTo(HaveKey(render.LabelRevision), n.Name)
			}
		}
	})

	It("walks every namespace once when a selector changes", func() {
		_, walks0 := settled(counterKey)
		updateSpec(ms, func(s *meshv1alpha1.MeshSettingsSpec) {
			s.Namespaces[0].Selector = &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{key: "no"}}
		})
		eventuallyReady(cp, "mesh")
		Eventually(func() [2]int32 { s, l := selectedLabeled(cp, "mesh"); return [2]int32{s, l} }, timeout, interval).
			Should(Equal([2]int32{total - selected - 1, total - selected - 1}))
		_, walks := settled(counterKey)
		Expect(walks).To(BeNumerically(">", walks0))
		Expect(nsLabels(outside[1])).To(HaveKeyWithValue(render.LabelDataplaneMode, render.DataplaneModeAmbient))
	})

	It("releases every namespace it labeled when deleted, and drops its metrics", func() {
		Expect(k8sClient.Delete(ctx, ms)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}))
		}, timeout, interval).Should(BeTrue())
		var list corev1.NamespaceList
		Expect(k8sClient.List(ctx, &list, client.HasLabels{key})).To(Succeed())
		Expect(len(list.Items)).To(BeNumerically(">=", total-1))
		for _, n := range list.Items {
			Expect(n.Labels).NotTo(HaveKey(render.LabelDataplaneMode), n.Name)
			Expect(n.Annotations).NotTo(HaveKey(OwnerAnnotation), n.Name)
		}
		Expect(namespacesEvaluated.DeleteLabelValues(counterKey)).To(BeFalse(), "the series outlived its MeshSettings")
	})
})
