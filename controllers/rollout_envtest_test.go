package controllers

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// The RolloutRestart executor against a real API server. envtest runs no
// Deployment controller and no kubelet: the test plays the Deployment
// controller, setting status by hand through the status subresource when a
// rollout has finished, and creates and deletes pods itself.

// createDeployment creates a Deployment of 2 replicas, rolled out.
func createDeployment(ns, name string) {
	GinkgoHelper()
	labels := map[string]string{"app": name}
	Expect(k8sClient.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop/" + name + ":1"}}}}},
	})).To(Succeed())
	markRolledOut(ns, name)
}

func getDeployment(ns, name string) *appsv1.Deployment {
	GinkgoHelper()
	d := &appsv1.Deployment{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	return d
}

// markRolledOut plays the Deployment controller once the new pods are available.
func markRolledOut(ns, name string) {
	GinkgoHelper()
	d := getDeployment(ns, name)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
			LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}}
	Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
}

var _ = Describe("RolloutRestart executor", Ordered, func() {
	const since = "2026-12-03T12:00:00Z"
	var (
		shop string
		r    *MeshSettingsReconciler
	)
	key := func(name string) string { return shop + "/" + name }
	get := func(name string) *appsv1.Deployment { return getDeployment(shop, name) }
	restartedAt := func(name string) string { return get(name).Spec.Template.Annotations[RestartedAtAnnotation] }
	rolledOut := func(name string) { markRolledOut(shop, name) }
	all := []string{"a", "b", "c", "d", "e"}
	pending := func(names ...string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = key(n)
		}
		return out
	}

	BeforeAll(func() {
		shop = testEnv.Namespace("shop", nil)
		for _, n := range all {
			createDeployment(shop, n)
		}
		r = &MeshSettingsReconciler{Client: k8sClient, APIReader: k8sClient}
	})

	var first *rolloutResult
	It("restarts at most RolloutRestartConcurrency Deployments, in order, as kubectl rollout restart does", func() {
		first = r.rolloutRestart(ctx, since, nil, pending(all...))
		Expect(first.err).NotTo(HaveOccurred())
		Expect(first.restarted).To(Equal(pending("a", "b")))
		Expect(first.restarting).To(Equal(pending("a", "b")))
		Expect(first.requeue()).To(Equal(rolloutRecheck))
		for _, n := range []string{"a", "b"} {
			d := get(n)
			Expect(d.Spec.Template.Annotations).To(HaveKey(RestartedAtAnnotation))
			Expect(d.Annotations).To(HaveKeyWithValue(RestartedForAnnotation, since))
			Expect(d.Generation).To(Equal(int64(2)), "the template changed: the Deployment rolls")
		}
		for _, n := range []string{"c", "d", "e"} {
			Expect(get(n).Spec.Template.Annotations).NotTo(HaveKey(RestartedAtAnnotation))
		}
	})

	It("waits while they roll: a pass restarts nothing and patches nothing again", func() {
		atA := restartedAt("a")
		res := r.rolloutRestart(ctx, since, first.restarting, pending(all...))
		Expect(res.err).NotTo(HaveOccurred())
		Expect(res.restarted).To(BeEmpty())
		Expect(res.restarting).To(Equal(pending("a", "b")))
		Expect(restartedAt("a")).To(Equal(atA))
		Expect(get("a").Generation).To(Equal(int64(2)))
	})

	var third *rolloutResult
	It("starts the next one when one becomes available", func() {
		rolledOut("a")
		// a's pods may still be counted a moment: it stays in pending.
		third = r.rolloutRestart(ctx, since, pending("a", "b"), pending(all...))
		Expect(third.err).NotTo(HaveOccurred())
		Expect(third.restarted).To(Equal(pending("c")))
		Expect(third.restarting).To(Equal(pending("b", "c")))
	})

	It("never restarts a Deployment twice for one change, even after losing its record of what rolls", func() {
		atA := restartedAt("a")
		// No waited list (a status write was lost): the markers on the
		// Deployments say what was restarted and what still rolls.
		res := r.rolloutRestart(ctx, since, nil, pending(all...))
		Expect(res.err).NotTo(HaveOccurred())
		Expect(res.restarted).To(BeEmpty())
		Expect(res.restarting).To(Equal(pending("b", "c")))
		Expect(restartedAt("a")).To(Equal(atA))
		Expect(get("a").Generation).To(Equal(int64(2)))
	})

	It("restarts the rest as slots free up, and stops when nothing is pending", func() {
		rolledOut("b")
		rolledOut("c")
		res := r.rolloutRestart(ctx, since, third.restarting, pending("d", "e"))
		Expect(res.restarted).To(Equal(pending("d", "e")))
		rolledOut("d")
		rolledOut("e")
		res = r.rolloutRestart(ctx, since, res.restarting, nil)
		Expect(res.err).NotTo(HaveOccurred())
		Expect(res.restarted).To(BeEmpty())
		Expect(res.restarting).To(BeEmpty())
		Expect(res.requeue()).To(BeZero())
		for _, n := range all {
			Expect(get(n).Generation).To(Equal(int64(2)), "%s was restarted exactly once", n)
		}
	})

	It("restarts again for a later change", func() {
		res := r.rolloutRestart(ctx, "2026-12-03T13:00:00Z", nil, pending("a"))
		Expect(res.restarted).To(Equal(pending("a")))
		Expect(get("a").Generation).To(Equal(int64(3)))
	})

	It("gives up on a failed rollout, saying why, and frees its slot", func() {
		Expect(r.rolloutRestart(ctx, "2026-12-03T14:00:00Z", nil, pending("b")).restarted).To(Equal(pending("b")))
		d := get("b")
		d.Status.ObservedGeneration = d.Generation
		d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "b-1" has timed out progressing.`, LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()})
		d.Status.UpdatedReplicas = 1
		Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
		res := r.rolloutRestart(ctx, "2026-12-03T14:00:00Z", pending("b"), pending("b", "c"))
		Expect(res.failed).To(ConsistOf(ContainSubstring(key("b") + ": rollout failed: ReplicaSet \"b-1\" has timed out progressing.")))
		Expect(res.restarted).To(Equal(pending("c")))
		Expect(res.restarting).To(Equal(pending("c")))
	})

	It("without the rollout-restart ClusterRole: restarts nothing and says what to install", func() {
		cfg := rest.CopyConfig(testEnv.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:meshsettings-system:meshsettings-controller-manager"}
		limited, err := client.New(cfg, client.Options{Scheme: testEnv.Scheme})
		Expect(err).NotTo(HaveOccurred())
		before := get("d").Generation
		res := (&MeshSettingsReconciler{Client: limited, APIReader: limited}).rolloutRestart(ctx, "2026-12-03T15:00:00Z", nil, pending("d"))
		Expect(res.err).To(MatchError(ContainSubstring("rolloutRestart.enabled=true")))
		Expect(res.restarted).To(BeEmpty())
		Expect(get("d").Generation).To(Equal(before))
		fmt.Fprintln(GinkgoWriter, res.err)
	})
})

// The executor in the operator: a MeshSettings with proxyRestart
// RolloutRestart, pods with sidecars of its revision owned by Deployments
// (through ReplicaSets), and a drain change.
var _ = Describe("proxyRestart RolloutRestart", Ordered, func() {
	const name = "mesh"
	var cp, rev, shop string
	deployments := []string{"web1", "web2", "web3"}
	oldPod := func(d string) string { return d + "-aaaa-1" }
	newPod := func(d string) string { return d + "-bbbb-1" }
	// replacePods plays the ReplicaSet controller of a restarted Deployment.
	replacePods := func(d string) {
		GinkgoHelper()
		createPod(testPod{ns: shop, name: newPod(d), rev: rev, owner: "ReplicaSet/" + d + "-bbbb", hash: "bbbb"})
		deletePods(shop, oldPod(d))
	}
	restarting := func() []string {
		ps, _, _ := proxiesOf(cp, name)
		if ps == nil {
			return nil
		}
		return ps.Restarting
	}
	key := func(d string) string { return shop + "/" + d }

	BeforeAll(func() {
		rev = "rev" + rand.String(5)
		cp = controlPlaneForRevision(rev)
		shop = appNamespace(map[string]string{render.LabelRevision: rev})
		for _, d := range deployments {
			createDeployment(shop, d)
			createPod(testPod{ns: shop, name: oldPod(d), rev: rev, owner: "ReplicaSet/" + d + "-aaaa", hash: "aaaa"})
		}
		createPod(testPod{ns: shop, name: "db-0", rev: rev, owner: "StatefulSet/db"})
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cp},
			Spec: meshv1alpha1.MeshSettingsSpec{Revision: rev, ProxyRestart: meshv1alpha1.ProxyRestartRolloutRestart}}
		Expect(k8sClient.Create(ctx, ms)).To(Succeed())
		eventuallyReady(cp, name)
	})

	It("restarts nothing while nothing is pending", func() {
		Consistently(func(g Gomega) {
			for _, d := range deployments {
				g.Expect(getDeployment(shop, d).Generation).To(BeEquivalentTo(1))
			}
		}, 2*time.Second, interval).Should(Succeed())
	})

	var since string
	It("after a drain change restarts two of the three Deployments, marking each with the change", func() {
		afterNextSecond(time.Now())
		patchSpec(cp, name, func(s *meshv1alpha1.MeshSettingsSpec) {
			s.Drain = &meshv1alpha1.Drain{DrainDuration: &metav1.Duration{Duration: 30 * time.Second}}
		})
		Eventually(func(g Gomega) {
			ps, _, _ := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(ps.RestartRequiredSince).NotTo(BeNil())
			g.Expect(ps.Restarting).To(Equal([]string{key("web1"), key("web2")}))
			since = ps.RestartRequiredSince.UTC().Format(time.RFC3339)
		}, timeout, interval).Should(Succeed())
		for _, d := range []string{"web1", "web2"} {
			got := getDeployment(shop, d)
			Expect(got.Annotations).To(HaveKeyWithValue(RestartedForAnnotation, since))
			Expect(got.Spec.Template.Annotations).To(HaveKey(RestartedAtAnnotation))
			Expect(got.Generation).To(BeEquivalentTo(2))
		}
		Expect(getDeployment(shop, "web3").Generation).To(BeEquivalentTo(1))
		Eventually(func() []string { return eventNotes(cp, name, reasonRolloutRestarted) }, timeout, interval).Should(
			ContainElement(ContainSubstring("Restarted Deployment " + key("web1") + ", " + key("web2"))))
	})

	It("waits while they roll: the new pods alone do not free a slot", func() {
		replacePods("web1") // a pod deletion makes a pass
		Eventually(func(g Gomega) {
			ps, _, _ := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(ps.Pending).To(BeEquivalentTo(3)) // web2, web3, db-0
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(restarting()).To(Equal([]string{key("web1"), key("web2")}))
			g.Expect(getDeployment(shop, "web3").Generation).To(BeEquivalentTo(1))
		}, 3*time.Second, interval).Should(Succeed())
	})

	It("restarts the third once one has rolled out (the recheck finds it)", func() {
		markRolledOut(shop, "web1")
		Eventually(restarting, 3*rolloutRecheck, interval).Should(Equal([]string{key("web2"), key("web3")}))
		Expect(getDeployment(shop, "web3").Annotations).To(HaveKeyWithValue(RestartedForAnnotation, since))
		Expect(getDeployment(shop, "web1").Generation).To(BeEquivalentTo(2), "web1 is not restarted again")
	})

	It("stops when nothing is pending; each Deployment was restarted once, the StatefulSet never", func() {
		replacePods("web2")
		replacePods("web3")
		markRolledOut(shop, "web2")
		markRolledOut(shop, "web3")
		deletePods(shop, "db-0")
		Eventually(func(g Gomega) {
			ps, c, _ := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(ps.Pending).To(BeZero())
			g.Expect(ps.Restarting).To(BeEmpty())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		}, 3*rolloutRecheck, interval).Should(Succeed())
		for _, d := range deployments {
			Expect(getDeployment(shop, d).Generation).To(BeEquivalentTo(2), "%s restarted exactly once", d)
		}
	})

	It("with proxyRestart Report (the default) restarts nothing", func() {
		afterNextSecond(time.Now()) // the pods of the last restart predate the next change
		patchSpec(cp, name, func(s *meshv1alpha1.MeshSettingsSpec) {
			s.ProxyRestart = ""
			s.Drain.DrainDuration = &metav1.Duration{Duration: 40 * time.Second}
		})
		Eventually(func(g Gomega) {
			ps, _, _ := proxiesOf(cp, name)
			g.Expect(ps).NotTo(BeNil())
			g.Expect(ps.Pending).To(BeEquivalentTo(3))
			g.Expect(ps.Restarting).To(BeEmpty())
		}, timeout, interval).Should(Succeed())
		Consistently(func(g Gomega) {
			for _, d := range deployments {
				g.Expect(getDeployment(shop, d).Generation).To(BeEquivalentTo(2))
			}
		}, 2*time.Second, interval).Should(Succeed())
	})
})
