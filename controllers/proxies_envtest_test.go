package controllers

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// The proxy report against a real API server: pods are created directly
// (no kubelet runs; an unscheduled pod is deleted at once), carrying the
// markers Istio's injector, istio-cni and gateway controller put on them.
// The MeshSettings targets a revision of its own, so pods of other specs
// (all of the default revision) are never counted here.

type testPod struct {
	ns, name string
	// rev: injected sidecar of this revision (sidecar.istio.io/status);
	// waypoint: deployed by istiod's gateway controller instead.
	rev      string
	waypoint bool
	ambient  bool
	// owner: "ReplicaSet/web-5d8f" (with hash label 5d8f), "StatefulSet/db", "" for a bare pod.
	owner, hash string
}

func createPod(p testPod) {
	GinkgoHelper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.ns, Labels: map[string]string{"app": "x"}, Annotations: map[string]string{
			// What the chart and tools put on pods, which the cache drops.
			"kubectl.kubernetes.io/last-applied-configuration": `{"big":"` + rand.String(512) + `"}`,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	switch {
	case p.waypoint:
		pod.Labels["gateway.istio.io/managed"] = "istio.io-mesh-controller"
		pod.Labels["gateway.networking.k8s.io/gateway-name"] = "waypoint"
		pod.Annotations["istio.io/rev"] = p.rev
	case p.rev != "":
		pod.Annotations["sidecar.istio.io/status"] = fmt.Sprintf(
			`{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":%q}`, p.rev)
	}
	if p.ambient {
		pod.Annotations["ambient.istio.io/redirection"] = "enabled"
	}
	if p.hash != "" {
		pod.Labels["pod-template-hash"] = p.hash
	}
	if p.owner != "" {
		kind, name, _ := strings.Cut(p.owner, "/")
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name,
			UID: types.UID(rand.String(8)), Controller: ptr.To(true)}}
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
}

func deletePods(ns string, names ...string) {
	GinkgoHelper()
	for _, n := range names {
		Expect(k8sClient.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})).To(Succeed())
	}
}

func proxiesOf(namespace, name string) (*meshv1alpha1.ProxiesStatus, *metav1.Condition, *metav1.Condition) {
	ms := &meshv1alpha1.MeshSettings{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ms)).To(Succeed())
	if ms.Status.ObservedGeneration != ms.Generation {
		return nil, nil, nil
	}
	return ms.Status.Proxies, meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionProxiesUpToDate),
		meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionReady)
}

// afterNextSecond waits until the clock is in a later second than t:
// creationTimestamp and restartRequiredSince keep seconds.
func afterNextSecond(t time.Time) {
	time.Sleep(time.Until(t.Truncate(time.Second).Add(1100 * time.Millisecond)))
}

var _ = Describe("proxy report", Ordered, func() {
	var (
		cp, rev, a, b, c string
		before           time.Time
		since            metav1.Time
	)
	const name = "mesh"

	BeforeAll(func() {
		rev = "rev" + rand.String(5)
		cp = controlPlaneForRevision(rev)
		a = appNamespace(map[string]string{render.LabelRevision: rev})
		b = appNamespace(map[string]string{render.LabelRevision: rev})
		c = appNamespace(map[string]string{render.LabelRevision: rev})
		for _, p := range []testPod{
			{ns: a, name: "web-5d8f-1", rev: rev, owner: "ReplicaSet/web-5d8f", hash: "5d8f"},
			{ns: a, name: "web-5d8f-2", rev: rev, owner: "ReplicaSet/web-5d8f", hash: "5d8f"},
			{ns: a, name: "web-5d8f-3", rev: rev, owner: "ReplicaSet/web-5d8f", hash: "5d8f"},
			{ns: a, name: "bare", rev: rev},
			{ns: a, name: "other-rev", rev: "other", owner: "ReplicaSet/api-77aa", hash: "77aa"},
			{ns: a, name: "no-sidecar", owner: "ReplicaSet/batch-1b2c", hash: "1b2c"},
			{ns: b, name: "db-0", rev: rev, owner: "StatefulSet/db"},
			{ns: b, name: "db-1", rev: rev, owner: "StatefulSet/db"},
			{ns: b, name: "waypoint-6c9d-1", rev: rev, waypoint: true, owner: "ReplicaSet/waypoint-6c9d", hash: "6c9d"},
			{ns: b, name: "ambient", ambient: true, owner: "ReplicaSet/shop-aa11", hash: "aa11"},
		} {
			createPod(p)
		}
		before = time.Now()
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cp},
			Spec: meshv1alpha1.MeshSettingsSpec{Revision: rev}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, name)
	})

	It("reports nothing pending before any change that needs a new pod", func() {
		Eventually(func(g Gomega) {
			ps, c, _ := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(ps.Pending).To(BeZero())
			g.Expect(ps.RestartRequiredSince).To(BeNil())
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonUpToDate))
		}, timeout, interval).Should(Succeed())
	})

	It("counts exactly the proxies of its revision that predate a drain change, by namespace and workload", func() {
		afterNextSecond(before)
		patchSpec(cp, name, func(s *meshv1alpha1.MeshSettingsSpec) {
			s.Drain = &meshv1alpha1.Drain{DrainDuration: &metav1.Duration{Duration: 30 * time.Second}}
		})
		Eventually(func(g Gomega) {
			ps, c, ready := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(ps.RestartRequiredSince).NotTo(BeNil())
			g.Expect(ps.Changes).To(Equal([]string{"defaultConfig.drainDuration"}))
			// a: web x3 and the bare pod; b: db x2 and the waypoint. Not
			// counted: another revision's sidecar, a pod without one, an
			// ambient pod.
			g.Expect(ps.Pending).To(BeEquivalentTo(7))
			g.Expect(ps.Namespaces).To(Equal([]meshv1alpha1.PendingNamespace{
				{Namespace: a, Pending: 4, Workloads: []string{"Deployment/web", "Pod/bare"}},
				{Namespace: b, Pending: 3, Workloads: []string{"StatefulSet/db", "Deployment/waypoint"}},
			}))
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonRestartPending))
			g.Expect(c.Message).To(ContainSubstring("7 predate the change of defaultConfig.drainDuration"))
			// Restarting workloads is the user's part: Ready stays True.
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
			since = *ps.RestartRequiredSince
		}, timeout, interval).Should(Succeed())
	})

	It("shows the count in kubectl's PENDING column", func() {
		out, err := testEnv.Kubectl("get", "mset", "-n", cp)
		Expect(err).NotTo(HaveOccurred(), out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(2), out)
		// Columns are aligned (an empty OUTBOUND leaves a gap): read at PENDING's offset.
		col := strings.Index(lines[0], "PENDING")
		Expect(col).To(BeNumerically(">", 0), out)
		Expect(strings.Fields(lines[1][col:])[0]).To(Equal("7"), out)
		GinkgoWriter.Printf("kubectl get mset -n %s\n%s\n", cp, out)
		wide, err := testEnv.Kubectl("get", "mset", name, "-n", cp, "-o", "jsonpath={.status.proxies}")
		Expect(err).NotTo(HaveOccurred(), wide)
		GinkgoWriter.Printf("status.proxies: %s\n", wide)
	})

	It("tells how to restart them in one Normal event", func() {
		Eventually(func() []string { return eventNotes(cp, name, meshv1alpha1.ReasonRestartPending) }, timeout, interval).Should(ConsistOf(
			And(ContainSubstring("7 proxies"),
				ContainSubstring("kubectl rollout restart deployment -n "+a+" web"),
				ContainSubstring("kubectl rollout restart deployment -n "+b+" waypoint")),
		))
		GinkgoWriter.Printf("event RestartPending: %s\n", eventNotes(cp, name, meshv1alpha1.ReasonRestartPending)[0])
	})

	It("does not count pods created after the change", func() {
		afterNextSecond(since.Time)
		createPod(testPod{ns: a, name: "web-9e0f-1", rev: rev, owner: "ReplicaSet/web-9e0f", hash: "9e0f"})
		// A deletion makes a pass: the new pod is in the cache by then.
		deletePods(a, "web-5d8f-3")
		Eventually(func(g Gomega) {
			ps, _, _ := proxiesOf(cp, name)
			g.Expect(ps.Pending).To(BeEquivalentTo(6))
			// Three each: the tie is broken by namespace name.
			g.Expect(ps.Namespaces).To(ConsistOf(
				meshv1alpha1.PendingNamespace{Namespace: a, Pending: 3, Workloads: []string{"Deployment/web", "Pod/bare"}},
				meshv1alpha1.PendingNamespace{Namespace: b, Pending: 3, Workloads: []string{"StatefulSet/db", "Deployment/waypoint"}},
			))
			g.Expect(ps.Namespaces[0].Namespace < ps.Namespaces[1].Namespace).To(BeTrue())
		}, timeout, interval).Should(Succeed())
	})

	It("turns ProxiesUpToDate True as the old pods are deleted", func() {
		deletePods(a, "web-5d8f-1", "web-5d8f-2", "bare")
		Eventually(func(g Gomega) {
			ps, _, _ := proxiesOf(cp, name)
			g.Expect(ps.Pending).To(BeEquivalentTo(3))
			g.Expect(ps.Namespaces).To(HaveLen(1))
			g.Expect(ps.Namespaces[0].Namespace).To(Equal(b))
		}, timeout, interval).Should(Succeed())
		deletePods(b, "db-0", "db-1", "waypoint-6c9d-1")
		Eventually(func(g Gomega) {
			ps, c, _ := proxiesOf(cp, name)
			g.Expect(ps.Pending).To(BeZero())
			g.Expect(ps.Namespaces).To(BeEmpty())
			g.Expect(ps.RestartRequiredSince.Equal(&since)).To(BeTrue(), "the change time stays")
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}, timeout, interval).Should(Succeed())
		Eventually(func() int { return eventCount(cp, name, meshv1alpha1.ConditionProxiesUpToDate) }, timeout, interval).Should(Equal(1))
	})

	It("reports nothing pending after a change that acts live (outbound mode)", func() {
		createPod(testPod{ns: b, name: "db-2", rev: rev, owner: "StatefulSet/db"})
		afterNextSecond(time.Now())
		patchSpec(cp, name, func(s *meshv1alpha1.MeshSettingsSpec) {
			s.OutboundTrafficPolicy = &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly}
		})
		Eventually(func(g Gomega) {
			g.Expect(meshDoc(cp, "istio-"+rev)["outboundTrafficPolicy"]).To(Equal(map[string]any{"mode": "REGISTRY_ONLY"}))
			ps, c, _ := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			ps, _, _ := proxiesOf(cp, name)
			g.Expect(ps.Pending).To(BeZero())
			g.Expect(ps.RestartRequiredSince.Equal(&since)).To(BeTrue(), "a live change is no restart")
		}, 2*time.Second, interval).Should(Succeed())
	})

	It("does not take restoring a value another manager rewrote for a change", func() {
		cm := &corev1.ConfigMap{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: cp, Name: "istio-" + rev}, cm)).To(Succeed())
		cm.Data["mesh"] = helmMesh // as a helm upgrade would: the operator's drainDuration is gone
		Expect(k8sClient.Update(ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		Eventually(func(g Gomega) {
			dc, _ := meshDoc(cp, "istio-"+rev)["defaultConfig"].(map[string]any)
			g.Expect(dc).To(HaveKeyWithValue("drainDuration", "30s"))
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			ps, c, _ := proxiesOf(cp, name)
			g.Expect(ps.RestartRequiredSince.Equal(&since)).To(BeTrue(), "the restore moved restartRequiredSince")
			g.Expect(ps.Pending).To(BeZero())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}, 2*time.Second, interval).Should(Succeed())
	})

	It("counts injected proxies whose namespace no longer selects their revision", func() {
		createPod(testPod{ns: c, name: "api-1", rev: rev, owner: "ReplicaSet/api-42ab", hash: "42ab"})
		createPod(testPod{ns: c, name: "api-2", rev: rev, owner: "ReplicaSet/api-42ab", hash: "42ab"})
		Consistently(func() int32 { ps, _, _ := proxiesOf(cp, name); return ps.Pending }, 2*time.Second, interval).Should(BeZero())

		// The namespace moves to another revision: its running sidecars are
		// the old revision's until their pods are recreated.
		nsObj := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: c}, nsObj)).To(Succeed())
		nsObj.Labels[render.LabelRevision] = "canary"
		Expect(k8sClient.Update(ctx, nsObj)).To(Succeed())
		Eventually(func(g Gomega) {
			ps, cond, _ := proxiesOf(cp, name)
			g.Expect(ps.Pending).To(BeEquivalentTo(2))
			g.Expect(ps.Namespaces).To(Equal([]meshv1alpha1.PendingNamespace{{Namespace: c, Pending: 2, Workloads: []string{"Deployment/api"}}}))
			g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(cond.Message).To(ContainSubstring("2 run revision " + rev + ", which their namespace no longer selects"))
		}, timeout, interval).Should(Succeed())
		deletePods(c, "api-1", "api-2")
		Eventually(func(g Gomega) {
			ps, cond, _ := proxiesOf(cp, name)
			g.Expect(ps.Pending).To(BeZero())
			g.Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		}, timeout, interval).Should(Succeed())
	})
})

// controlPlaneForRevision is controlPlane for a named revision: ConfigMap
// istio-<rev> and Deployment istiod-<rev>.
func controlPlaneForRevision(rev string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cp-", Labels: map[string]string{"mesh-test": "cp"}}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio-" + rev, Namespace: ns.Name},
		Data: map[string]string{"mesh": helmMesh}}
	Expect(k8sClient.Create(ctx, cm, client.FieldOwner("helm"))).To(Succeed())
	createIstiodNamed(ns.Name, "istiod-"+rev, "docker.io/istio/pilot:1.28.1")
	return ns.Name
}

func patchSpec(namespace, name string, edit func(*meshv1alpha1.MeshSettingsSpec)) {
	GinkgoHelper()
	ms := &meshv1alpha1.MeshSettings{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, ms)).To(Succeed())
	orig := ms.DeepCopy()
	edit(&ms.Spec)
	Expect(k8sClient.Patch(ctx, ms, client.MergeFrom(orig))).To(Succeed())
}
